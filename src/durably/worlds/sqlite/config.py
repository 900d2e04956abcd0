"""What a ``sqlite://`` world URL says, and where that world keeps its default key."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote

from ...crypto import MAGIC, key_file_for, sealed_key_id
from ...errors import WorldError
from ..urls import KeyPolicy, check_text, scheme_of
from . import queries as q

__all__ = ["SqliteConfig", "key_policy", "parse_sqlite_url", "stored_key_id"]

_SYNCHRONOUS = ("full", "normal", "off")
_SEALED_PAYLOADS = (("events", q.SEALED_EVENT_PAYLOAD), ("chunks", q.SEALED_CHUNK_PAYLOAD))
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
    check_text(url)
    path = unquote(rest[1:])
    check_text(path, "database path of the sqlite URL")  # %00 decodes to a NUL byte
    if not _utf8(path):
        raise WorldError(
            f"the sqlite URL {url!r} names a path SQLite cannot open (a lone surrogate, "
            f"not text); write it as {_EXAMPLE}"
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
    path = parse_sqlite_url(url).path
    return KeyPolicy("file", key_file_for(path), stored_key_id=lambda: stored_key_id(path))


def stored_key_id(path: str) -> str | None:
    """The id of the key the encrypted payloads stored in the database at ``path`` need
    (``None``: there is no database there, or it holds no encrypted payload).

    Never creates the file: it is asked before a key file is made, so that a new key is
    never made beside data it could not read. A file that cannot be read as a database
    counts as holding none (opening the world reports what is wrong with it).
    """
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return None
    uri = "file:" + quote(path)
    for mode in ("rw", "ro"):  # rw may make the WAL's -shm file; ro for a read-only folder
        try:
            conn = sqlite3.connect(f"{uri}?mode={mode}", uri=True, timeout=5.0)
        except sqlite3.Error:
            continue
        try:
            conn.execute(q.PRAGMA_QUERY_ONLY)
            for table, sql in _SEALED_PAYLOADS:
                if not conn.execute(q.HAS_TABLE, (table,)).fetchall():
                    continue
                rows = conn.execute(sql, (MAGIC,)).fetchall()
                if rows:
                    return sealed_key_id(bytes(rows[0][0]))
            return None
        except (sqlite3.Error, IndexError, UnicodeDecodeError):
            continue
        finally:
            conn.close()
    return None
