"""``sqlite:///PATH``: the embedded default world (stdlib ``sqlite3``, WAL, one file).

The schema lives in ``migrations/`` as numbered ``.sql`` files; every statement the world
runs is a named constant in :mod:`.queries`.
"""

from __future__ import annotations

from .world import SqliteConfig, SqliteWorld, parse_sqlite_url

__all__ = ["SqliteConfig", "SqliteWorld", "parse_sqlite_url"]
