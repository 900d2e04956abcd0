"""What a ``postgresql://`` world URL says, and how to say it back without the password."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from ...errors import WorldError
from ..urls import scheme_of

__all__ = ["DEFAULT_SCHEMA", "PostgresConfig", "parse_postgres_url", "redact"]

DEFAULT_SCHEMA = "durably"
_EXAMPLE = "postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?schema=NAME]"
_SCHEMES = ("postgresql", "postgres")
# Session settings: JIT compiling costs more than it saves on durably's short statements;
# and those statements touch a handful of rows by key, which the planner cannot know when
# the rows come from a JSON document or an array (it guesses 100), so without these it
# may hash whole tables where an index finds the few rows.
_SETTINGS = (
    ("application_name", "durably"),
    ("jit", "off"),
    ("enable_hashjoin", "off"),
    ("enable_mergejoin", "off"),
)


@dataclass(frozen=True, slots=True)
class PostgresConfig:
    """A parsed ``postgresql://`` URL.

    Attributes:
        dsn: the URL for the driver, without durably's own parameters; any parameter
            asyncpg does not know (``synchronous_commit=off`` ...) is a server setting.
        schema: the schema holding every table of the world (created if missing).
        pool_size: connections at most per event loop that uses the world.
        reconnect_seconds: how long an operation keeps retrying while the server is
            unreachable (a restart, a failover) before it raises ``WorldError``.
        display: the URL with the password left out, for messages and logs.
        server_settings: session settings durably asks for (a URL parameter of the
            same name wins).
    """

    dsn: str
    schema: str = DEFAULT_SCHEMA
    pool_size: int = 10
    reconnect_seconds: float = 30.0
    display: str = ""
    server_settings: tuple[tuple[str, str], ...] = ()

    @property
    def quoted_schema(self) -> str:
        """The schema as a quoted SQL identifier."""
        return '"' + self.schema.replace('"', '""') + '"'

    @property
    def channel(self) -> str:
        """The LISTEN/NOTIFY channel of this schema (channels are per database)."""
        name = f"durably:{self.schema}"
        if len(name.encode()) > 63:  # NAMEDATALEN - 1
            name = "durably:" + hashlib.sha256(self.schema.encode()).hexdigest()[:32]
        return name


def redact(url: str) -> str:
    """``url`` without its password (``postgresql://app:***@db/app``)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)
        user = netloc[0].split(":", 1)[0]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))
    except ValueError:
        return re.sub(r"(//[^:/@]*):[^@/]*@", r"\1:***@", url)


def parse_postgres_url(url: str) -> PostgresConfig:
    """Read a ``postgresql://`` (or ``postgres://``) world URL.

    Query parameters durably reads (the others go to the driver): ``schema=NAME``
    (default ``durably``), ``pool_size=N`` (default 10 per event loop),
    ``reconnect_seconds=S`` (default 30).

    Raises:
        WorldError: the URL is malformed; the message says how to write it.
    """
    shown = redact(url)
    try:
        parts = urlsplit(url)
        _ = parts.port  # validates the port
    except ValueError as e:
        raise WorldError(
            f"the postgres world URL {shown!r} is malformed ({e}); write it as {_EXAMPLE}"
        )
    if scheme_of(url) not in _SCHEMES:
        raise WorldError(f"not a postgres world URL: {shown!r}; write it as {_EXAMPLE}")
    try:
        url.encode("utf-8")
        unquoted_nul = "\x00" in unquote(url)
    except UnicodeEncodeError:
        unquoted_nul = True
    if unquoted_nul:
        # The server takes neither in a name, a password or a setting.
        raise WorldError(
            f"the postgres world URL {shown!r} holds a NUL byte or a lone surrogate "
            f"(maybe percent-encoded); write it as {_EXAMPLE}"
        )
    if not parts.path.strip("/") and not parts.hostname:
        raise WorldError(
            f"the postgres world URL {shown!r} names no host and no database; write it as "
            f"{_EXAMPLE}"
        )
    schema = DEFAULT_SCHEMA
    pool_size = 10
    reconnect = 30.0
    rest: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "schema":
            schema = value
            if not schema or len(schema.encode()) > 63 or "\x00" in schema:
                raise WorldError(
                    f"the postgres world URL {shown!r} has schema={value!r}; a schema name "
                    "is 1 to 63 bytes, e.g. schema=durably"
                )
        elif key == "pool_size":
            pool_size = int(_number(shown, key, value, 1))
        elif key == "reconnect_seconds":
            reconnect = _number(shown, key, value, 0)
        else:
            rest.append((key, value))
    dsn = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(rest)))
    display = shown.split("?", 1)[0] + (f"?schema={schema}" if schema != DEFAULT_SCHEMA else "")
    given = {key for key, _ in rest}
    settings = tuple((k, v) for k, v in _SETTINGS if k not in given)
    return PostgresConfig(dsn, schema, pool_size, reconnect, display, settings)


def _number(shown: str, key: str, value: str, low: float) -> float:
    try:
        n = float(value) if key != "pool_size" else int(value)
    except ValueError:
        n = low - 1
    if not n >= low:  # also refuses nan
        raise WorldError(
            f"the postgres world URL {shown!r} has {key}={value!r}; use a number of at least "
            f"{low:g}"
        )
    return n
