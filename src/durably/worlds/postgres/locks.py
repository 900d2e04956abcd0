"""Locks and concurrency limits on Postgres: what a commit that changes lock state reads,
and how two such commits never race.

The ledger's lock rules (:mod:`durably.worlds.locks`) read a key's holders and its first
waiters, a run's entries when it ends, and the run rows of waiters it grants. Those rows
are only known once read, and two commits deciding on the same key must not both see it
free. So a commit that names a lock key (a ``lock_requested`` or ``lock_released``
command, a run created under a concurrency limit) or may end a run with lock entries
(``RunWrite.locks``) runs in one transaction that:

1. reads the keys of the entries of the runs it may end (their set changes only in the
   commits of those runs' own turns, which this is) and takes a transaction advisory
   lock per key, named or read, in one order (so two commits never deadlock on them), in
   one statement: every change to a key's rows happens under it;
3. reads the runs rows locked (``PRELOAD_LOCKED``), then the lock rows (every holder,
   the first waiters), then the runs rows of those waiters (by version: the write
   applies only if they did not change since);
4. applies the ledger and writes, the lock rows in their own statement.

Commits that touch no lock stay on the one-round-trip path.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from ...events import EventType
from ..base import Commit
from ..ledger import OverlayStore
from ..locks import waiter_order
from ..sql.rows import lock_from_row, lock_params
from .queries import Statements
from .store import CommitReads, LockRows, Preloaded

__all__ = ["lock_keys", "read_lock_rows", "touches_locks", "write_lock_rows"]

_LOCK_EVENTS = frozenset({EventType.LOCK_REQUESTED, EventType.LOCK_RELEASED})


def lock_keys(commit: Commit) -> set[str]:
    """The lock keys a commit names: lock commands, and creations under a limit."""
    keys: set[str] = set()
    for w in commit.writes:
        meta = w.create
        if meta is not None and meta.concurrency_limit and meta.concurrency_key:
            keys.add(meta.concurrency_key)
        for ev in w.commands:
            if ev.type in _LOCK_EVENTS and ev.data.get("key") is not None:
                keys.add(str(ev.data["key"]))
    return keys


def touches_locks(commit: Commit) -> bool:
    """Whether the commit must take the lock path (see the module's docstring)."""
    return any(w.locks for w in commit.writes) or bool(lock_keys(commit))


async def read_lock_rows(
    conn: asyncpg.Connection, sql: Statements, commit: Commit, reads: CommitReads
) -> Preloaded:
    """Steps 1-3 of the module's docstring, inside the caller's transaction."""
    ending = sorted({w.run_id for w in commit.writes if w.locks})
    named = sorted(lock_keys(commit))
    ordered = sorted(r[0] for r in await conn.fetch(sql.LOCK_KEYS_XACT, named, ending))
    base = Preloaded.read(reads, await conn.fetch(sql.PRELOAD_LOCKED, *reads.params()))
    # Enough waiters for every grant this commit can make (one per release or request).
    n = 2 * sum(len(w.commands) + 1 for w in commit.writes) + 4
    rows = LockRows()
    for r in await conn.fetch(sql.READ_LOCKS, ordered, n, ending):
        entry = lock_from_row(r, 1)
        if r[0] == "h":
            rows.holders.setdefault(entry.key, []).append(entry)
        elif r[0] == "w":
            rows.waiters.setdefault(entry.key, []).append(entry)
        else:
            rows.by_run.setdefault(entry.run_id, []).append(entry)
    for key in ordered:
        rows.holders.setdefault(key, [])
        rows.waiters[key] = sorted(rows.waiters.get(key, []), key=waiter_order)
    for run_id in ending:
        rows.by_run.setdefault(run_id, [])
    base.locks = rows
    # The runs rows of the waiters it may grant (not locked: checked by version).
    others = sorted(
        {e.run_id for ws in rows.waiters.values() for e in ws} - set(base.runs) - set(ending)
    )
    if others:
        more = CommitReads(run_ids=others)
        extra = Preloaded.read(more, await conn.fetch(sql.PRELOAD, *more.params()))
        base.add_runs(extra, others)
    return base


async def write_lock_rows(conn: asyncpg.Connection, sql: Statements, txn: OverlayStore) -> None:
    """Write the lock rows the ledger changed (inside the caller's transaction)."""
    if not txn.locks:
        return
    gone = [k for k, e in txn.locks.items() if e is None]
    put = [lock_params(e) for e in txn.locks.values() if e is not None]
    args: list[Any] = [
        [k[0] for k in gone],
        [k[1] for k in gone],
        [k[2] for k in gone],
        *([list(col) for col in zip(*put, strict=True)] if put else [[] for _ in range(9)]),
    ]
    await conn.execute(sql.WRITE_LOCKS, *args)
