"""Schema versions: the numbered ``migrations/NNN_name.sql`` files and the
``schema_migrations`` table that records which were applied.

:func:`migrate` applies the missing ones in order, in one transaction under a
transaction-scoped advisory lock, so several workers starting at once on a new database
apply each migration exactly once; an up-to-date schema costs one read and no lock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from ...errors import WorldError
from . import queries as q
from .config import PostgresConfig

__all__ = ["Migration", "latest_version", "load_migrations", "migrate"]

_NAME = re.compile(r"^(\d+)_[\w-]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered schema change (a file of SQL statements)."""

    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """Every migration shipped with the package, by version."""
    folder = resources.files(__package__ or "durably.worlds.postgres").joinpath("migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        m = _NAME.match(entry.name)
        if m is not None:
            found.append(Migration(int(m.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if versions != list(range(1, len(found) + 1)):
        raise WorldError(f"postgres migrations are not numbered 1..n without gaps: {versions}")
    return found


def latest_version() -> int:
    """The schema version this durably writes."""
    return len(load_migrations())


async def migrate(conn: asyncpg.Connection, config: PostgresConfig) -> int:
    """Bring the world's schema up to the newest version; return it.

    Raises:
        WorldError: the schema was written by a newer durably.
    """
    stmts = q.Statements.for_schema(config.quoted_schema)
    migrations = load_migrations()
    latest = migrations[-1].version if migrations else 0
    table = f"{config.quoted_schema}.schema_migrations"
    exists = await conn.fetchval(q.SCHEMA_EXISTS, config.schema)
    if exists and await conn.fetchval(q.MIGRATIONS_TABLE_EXISTS, table):
        current = await conn.fetchval(stmts.SCHEMA_VERSION)
        _check_not_newer(config, current, latest)
        if current == latest:
            return latest
    async with conn.transaction():
        await conn.execute(q.MIGRATION_LOCK, config.schema)
        if not await conn.fetchval(q.SCHEMA_EXISTS, config.schema):
            await conn.execute(stmts.CREATE_SCHEMA)
        await conn.execute(stmts.MIGRATIONS_TABLE)
        current = await conn.fetchval(stmts.SCHEMA_VERSION)
        _check_not_newer(config, current, latest)
        await conn.execute(stmts.SET_MIGRATION_SEARCH_PATH)
        for mig in migrations:
            if mig.version <= current:
                continue
            await conn.execute(mig.sql)
            await conn.execute(stmts.RECORD_MIGRATION, mig.version, mig.name)
    return latest


def _check_not_newer(config: PostgresConfig, current: int, latest: int) -> None:
    if current > latest:
        raise WorldError(
            f"the schema {config.schema!r} of {config.display} has version {current}, newer "
            f"than this durably knows ({latest}); upgrade durably in this environment"
        )
