"""``postgresql://`` (and ``postgres://``): the self-hosted world, for many workers on
many machines sharing one PostgreSQL database.

The schema lives in ``migrations/`` as numbered ``.sql`` files (applied on open, or by
``durably migrate``); every statement the world runs is a named constant in
:mod:`.queries`.
"""

from __future__ import annotations

from .config import PostgresConfig, parse_postgres_url
from .world import PostgresWorld

__all__ = ["PostgresConfig", "PostgresWorld", "parse_postgres_url"]
