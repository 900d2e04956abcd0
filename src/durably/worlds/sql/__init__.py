"""What the SQL worlds share: the migration loader (numbered ``.sql`` files), the row
decoders, and :class:`SqlWorld`, the base of the SQLite and Postgres dialects.

Each dialect (``worlds/sqlite``, ``worlds/postgres``) keeps its schema, its migrations and
its named statements (``queries.py``) to itself.
"""

from __future__ import annotations

from .migrations import Migration, load_migrations, pending_migrations, read_migrations
from .world import SqlWorld

__all__ = ["Migration", "SqlWorld", "load_migrations", "pending_migrations", "read_migrations"]
