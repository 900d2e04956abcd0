"""``postgresql://`` (and ``postgres://``): the self-hosted world, for many workers on
many machines sharing one PostgreSQL database.

The schema lives in ``migrations/`` as numbered ``.sql`` files (applied on open, or by
``durably migrate``); every statement the world runs is a named constant in
:mod:`.queries`.
"""

from __future__ import annotations

from ..._extras import require

# Before anything imports asyncpg: without the extra, say which one to install.
require("postgres", "The PostgreSQL world (postgresql:// URLs)")

from .config import PostgresConfig, parse_postgres_url  # noqa: E402
from .world import PostgresWorld  # noqa: E402

__all__ = ["PostgresConfig", "PostgresWorld", "parse_postgres_url"]
