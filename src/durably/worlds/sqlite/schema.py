"""Schema versions: the numbered ``migrations/NNN_name.sql`` files and ``user_version``.

``PRAGMA user_version`` holds the number of the last migration applied. :func:`migrate`
applies the missing ones in order inside one ``BEGIN IMMEDIATE`` transaction, so several
processes opening a new database at once apply each migration exactly once.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from importlib import resources

from ...errors import WorldError
from . import queries as q

__all__ = ["Migration", "load_migrations", "migrate"]

_NAME = re.compile(r"^(\d+)_[\w-]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered schema change."""

    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """The file's statements, one by one (``executescript`` would commit first)."""
        out: list[str] = []
        buf = ""
        for part in self.sql.split(";"):
            buf += part + ";"
            if sqlite3.complete_statement(buf):
                if _strip_comments(buf):
                    out.append(_drop_leading_comments(buf))
                buf = ""
        if _strip_comments(buf.rstrip(";")):
            raise WorldError(f"migration {self.name} ends with an unterminated statement")
        return out


def _drop_leading_comments(sql: str) -> str:
    lines = sql.strip().splitlines()
    while lines and (not lines[0].strip() or lines[0].lstrip().startswith("--")):
        lines.pop(0)
    return "\n".join(lines)


def _strip_comments(sql: str) -> str:
    lines = (line.split("--", 1)[0] for line in sql.splitlines())
    return "".join(lines).strip().strip(";").strip()


def load_migrations() -> list[Migration]:
    """Every migration shipped with the package, by version."""
    folder = resources.files(__package__ or "durably.worlds.sqlite").joinpath("migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        m = _NAME.match(entry.name)
        if m is not None:
            found.append(Migration(int(m.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if versions != list(range(1, len(found) + 1)):
        raise WorldError(f"sqlite migrations are not numbered 1..n without gaps: {versions}")
    return found


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
        if current > latest:
            raise WorldError(
                f"the database {path} has schema version {current}, newer than this "
                f"durably knows ({latest}); upgrade durably in this environment"
            )
        for mig in migrations:
            if mig.version <= current:
                continue
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
