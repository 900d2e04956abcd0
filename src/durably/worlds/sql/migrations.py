"""Schema migrations as numbered ``.sql`` files, loaded the same way for every dialect.

Each dialect keeps its own files in a ``migrations/`` folder beside its code, named
``NNN_what.sql`` and numbered 1..n without gaps (a number once shipped is never reused
or renumbered: databases record the last one applied). How a dialect records and
applies them (``PRAGMA user_version``, a ``schema_migrations`` table) is its own.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable

from ...errors import WorldError

__all__ = ["Migration", "load_migrations", "pending_migrations", "read_migrations"]

_NAME = re.compile(r"^(\d+)_[\w-]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered schema change (a file of SQL statements)."""

    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """The file's statements one by one, for drivers that run one at a time
        (``executescript`` would commit first). Comment-only parts are dropped.

        Raises:
            WorldError: the file ends inside a statement.
        """
        out: list[str] = []
        buf = ""
        for part in self.sql.split(";"):
            buf += part + ";"
            # sqlite3's tokenizer knows when a ";" ends a statement (not in a string).
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


def read_migrations(folder: Traversable | Iterable[Traversable], dialect: str) -> list[Migration]:
    """The ``NNN_name.sql`` files of ``folder`` (other files are ignored), by version.

    Args:
        folder: the folder, or its entries.
        dialect: for the error message (``"sqlite"``, ``"postgres"``).

    Raises:
        WorldError: the numbers are not 1..n without gaps or repeats.
    """
    entries = folder.iterdir() if isinstance(folder, Traversable) else folder
    found: list[Migration] = []
    for entry in entries:
        m = _NAME.match(entry.name)
        if m is not None:
            found.append(Migration(int(m.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if versions != list(range(1, len(found) + 1)):
        raise WorldError(f"{dialect} migrations are not numbered 1..n without gaps: {versions}")
    return found


def load_migrations(package: str, dialect: str) -> list[Migration]:
    """The migrations shipped in ``package``'s ``migrations/`` folder, by version."""
    return read_migrations(resources.files(package).joinpath("migrations"), dialect)


def pending_migrations(migrations: list[Migration], current: int, what: str) -> list[Migration]:
    """The migrations a database at version ``current`` still needs, in order.

    Args:
        migrations: every migration shipped, in version order.
        current: the schema version the database is at (0: a new database).
        what: the error's start, up to the version (``"the database /x.db has schema
            version"``).

    Raises:
        WorldError: the database was written by a newer durably.
    """
    latest = migrations[-1].version if migrations else 0
    if current > latest:
        raise WorldError(
            f"{what} {current}, newer than this durably knows "
            f"({latest}); upgrade durably in this environment"
        )
    return [mig for mig in migrations if mig.version > current]
