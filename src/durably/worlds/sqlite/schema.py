"""Schema versions: the numbered ``migrations/NNN_name.sql`` files and ``user_version``.

``PRAGMA user_version`` holds the number of the last migration applied. :func:`migrate`
applies the missing ones in order inside one ``BEGIN IMMEDIATE`` transaction, so several
processes opening a new database at once apply each migration exactly once.
"""

from __future__ import annotations

import sqlite3

from ..sql.migrations import Migration, pending_migrations
from ..sql.migrations import load_migrations as _load
from . import queries as q

__all__ = ["Migration", "load_migrations", "migrate"]


def load_migrations() -> list[Migration]:
    """Every SQLite migration shipped with the package, by version."""
    return _load(__package__ or "durably.worlds.sqlite", "sqlite")


def migrate(conn: sqlite3.Connection, path: str) -> int:
    """Bring the database up to the newest schema; return its version.

    Args:
        conn: a connection in autocommit mode (``isolation_level=None``).
        path: the database file, for error messages.

    Raises:
        WorldError: the database was written by a newer durably.
    """
    migrations = load_migrations()
    latest = migrations[-1].version if migrations else 0
    # Cheap check first: an up-to-date database needs no write lock at all.
    if _user_version(conn) == latest:
        return latest
    conn.execute(q.BEGIN_IMMEDIATE)
    try:
        current = _user_version(conn)
        what = f"the database {path} has schema version"
        for mig in pending_migrations(migrations, current, what):
            for stmt in mig.statements():
                conn.execute(stmt)
            conn.execute(q.SET_USER_VERSION.format(version=mig.version))
        conn.execute(q.COMMIT)
    except BaseException:
        if conn.in_transaction:
            conn.execute(q.ROLLBACK)
        raise
    return latest


def _user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute(q.GET_USER_VERSION).fetchall()[0][0])
