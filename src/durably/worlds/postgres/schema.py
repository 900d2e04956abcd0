"""Schema versions: the numbered ``migrations/NNN_name.sql`` files and the
``schema_migrations`` table that records which were applied.

:func:`migrate` applies the missing ones in order, in one transaction under a
transaction-scoped advisory lock, so several workers starting at once on a new database
apply each migration exactly once; an up-to-date schema costs one read and no lock.
"""

from __future__ import annotations

import asyncpg

from ..sql.migrations import Migration, pending_migrations
from ..sql.migrations import load_migrations as _load
from . import queries as q
from .config import PostgresConfig

__all__ = ["Migration", "latest_version", "load_migrations", "migrate"]


def load_migrations() -> list[Migration]:
    """Every Postgres migration shipped with the package, by version."""
    return _load(__package__ or "durably.worlds.postgres", "postgres")


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
        pending_migrations(migrations, current, _what(config))  # raises if newer
        if current == latest:
            return latest
    async with conn.transaction():
        await conn.execute(q.MIGRATION_LOCK, config.schema)
        if not await conn.fetchval(q.SCHEMA_EXISTS, config.schema):
            await conn.execute(stmts.CREATE_SCHEMA)
        await conn.execute(stmts.MIGRATIONS_TABLE)
        current = await conn.fetchval(stmts.SCHEMA_VERSION)
        pending = pending_migrations(migrations, current, _what(config))
        await conn.execute(stmts.SET_MIGRATION_SEARCH_PATH)
        for mig in pending:
            await conn.execute(mig.sql)
            await conn.execute(stmts.RECORD_MIGRATION, mig.version, mig.name)
    return latest


def _what(config: PostgresConfig) -> str:
    return f"the schema {config.schema!r} of {config.display} has version"
