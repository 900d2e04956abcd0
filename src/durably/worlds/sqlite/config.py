"""What a ``sqlite://`` world URL says, and where that world keeps its default key."""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

from ...crypto import key_file_for
from ...errors import WorldError
from ..urls import KeyPolicy, scheme_of

__all__ = ["SqliteConfig", "key_policy", "parse_sqlite_url"]

_SYNCHRONOUS = ("full", "normal", "off")
_EXAMPLE = "sqlite:///.durably/durably.db (relative) or sqlite:////var/app/durably.db (absolute)"


@dataclass(frozen=True, slots=True)
class SqliteConfig:
    """What a ``sqlite://`` URL says.

    Attributes:
        path: the database file, absolute.
        synchronous: ``"full"``, ``"normal"`` (default) or ``"off"``.
        busy_timeout_ms: how long a write waits for another process's write lock.
    """

    path: str
    synchronous: str = "normal"
    busy_timeout_ms: int = 5000


def parse_sqlite_url(url: str) -> SqliteConfig:
    """Read a ``sqlite:///relative.db`` or ``sqlite:////absolute.db`` URL.

    Query parameters: ``synchronous=full|normal|off``, ``busy_timeout_ms=N``. A relative
    path is taken relative to the current working directory, now.

    Raises:
        WorldError: the URL is malformed; the message says how to write it.
    """
    if scheme_of(url) != "sqlite":
        raise WorldError(f"not a sqlite world URL: {url!r}; write it as {_EXAMPLE}")
    rest, _, query = url[len("sqlite://") :].partition("?")
    if not rest.startswith("/"):
        host = rest.split("/", 1)[0]
        raise WorldError(
            f"the sqlite URL {url!r} has a host part ({host!r}); a sqlite URL has no host, "
            f"so it starts with three slashes: {_EXAMPLE}"
        )
    path = unquote(rest[1:])
    if "\x00" in path or not _utf8(path):
        raise WorldError(
            f"the sqlite URL {url!r} names a path SQLite cannot open (a NUL byte or a lone "
            f"surrogate); write it as {_EXAMPLE}"
        )
    if not path or path.endswith(("/", os.sep)):
        raise WorldError(f"the sqlite URL {url!r} names no database file; write it as {_EXAMPLE}")
    if path == ":memory:":
        raise WorldError(
            "an in-memory SQLite database cannot be shared by durably's connections; "
            "use the 'memory://' world for tests"
        )
    synchronous = "normal"
    busy_timeout_ms = 5000
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "synchronous":
            if value.lower() not in _SYNCHRONOUS:
                raise WorldError(
                    f"the sqlite URL {url!r} has synchronous={value!r}; "
                    f"use one of {', '.join(_SYNCHRONOUS)}"
                )
            synchronous = value.lower()
        elif key == "busy_timeout_ms":
            try:
                busy_timeout_ms = int(value)
            except ValueError:
                busy_timeout_ms = -1
            if busy_timeout_ms < 0:
                raise WorldError(
                    f"the sqlite URL {url!r} has busy_timeout_ms={value!r}; "
                    "use a whole number of milliseconds, e.g. busy_timeout_ms=5000"
                )
        else:
            raise WorldError(
                f"the sqlite URL {url!r} has an unknown parameter {key!r}; "
                "known parameters are synchronous=full|normal|off and busy_timeout_ms=N"
            )
    return SqliteConfig(os.path.abspath(path), synchronous, busy_timeout_ms)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def key_policy(url: str) -> KeyPolicy:
    """An SQLite world's default key: a file beside the database (``PATH.key``), made
    on first use.

    Raises:
        WorldError: the URL is malformed.
    """
    return KeyPolicy("file", key_file_for(parse_sqlite_url(url).path))
