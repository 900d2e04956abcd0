"""The ledger's row primitives over SQLite (the rows are decoded by :mod:`..sql.rows`).

A :class:`SqliteStore` lives for one transaction: it remembers the rows it has read or
written in that transaction (so the ledger's repeated look-ups cost nothing), and is
thrown away at commit, so nothing it holds can go stale.
"""

from __future__ import annotations

import json
import sqlite3

from ...events import TERMINAL_RUN_TYPES, Event
from ..base import HookRecord, StepRecord
from ..ledger import RunRow, TaskRow
from ..locks import LockEntry
from ..sql.rows import dumps as _dumps
from ..sql.rows import hook_from_row, lock_from_row, lock_params, run_row_from_row, step_from_row
from . import queries as q

__all__ = ["SqliteStore"]


class SqliteStore:
    """:class:`durably.worlds.ledger.Store` inside one open write transaction.

    Args:
        conn: the writer connection, with ``BEGIN IMMEDIATE`` already issued.
    """

    __slots__ = (
        "_attrs",
        "_conn",
        "_now",
        "_runs",
        "_steps",
        "changed_runs",
        "changed_streams",
        "ended_runs",
    )

    def __init__(self, conn: sqlite3.Connection, now: float = 0.0) -> None:
        self._conn = conn
        self._now = now
        #: Streams closed in this transaction (their readers are woken at commit).
        self.changed_streams: set[tuple[str, str]] = set()
        self._runs: dict[str, RunRow] = {}
        # The attributes JSON each run had when read, to skip re-encoding unchanged ones.
        self._attrs: dict[str, tuple[dict[str, str], str]] = {}
        self._steps: dict[tuple[str, int], StepRecord | None] = {}
        #: Runs whose log grew in this transaction (their waiters are woken at commit).
        self.changed_runs: set[str] = set()
        #: Runs that ended in this transaction (their end's waiters are woken at commit).
        self.ended_runs: set[str] = set()

    def get_run_row(self, run_id: str) -> RunRow | None:
        row = self._runs.get(run_id)
        if row is not None:
            return row
        found = self._conn.execute(q.GET_RUN, (run_id,)).fetchall()
        if not found:
            return None
        row = self._runs[run_id] = run_row_from_row(found[0])
        self._attrs[run_id] = (dict(row.record.attributes), found[0][14])
        return row

    def find_idempotent(self, namespace: str, workflow_name: str, key: str) -> str | None:
        found = self._conn.execute(q.FIND_IDEMPOTENT, (namespace, workflow_name, key)).fetchall()
        return str(found[0][0]) if found else None

    def insert_run(self, row: RunRow) -> None:
        r = row.record
        attrs = _dumps(r.attributes)
        self._conn.execute(
            q.INSERT_RUN,
            (
                r.run_id,
                r.workflow_name,
                r.namespace,
                r.deployment,
                r.status,
                r.created_at,
                r.started_at,
                r.completed_at,
                r.last_seq,
                r.idempotency_key,
                r.parent_run_id,
                r.parent_call,
                r.error_type,
                int(r.cancel_requested),
                attrs,
                row.decided_seq,
                row.turn_seq,
                row.turn_due_at,
                row.lease_owner,
                row.lease_until,
            ),
        )
        self._runs[r.run_id] = row
        self._attrs[r.run_id] = (dict(r.attributes), attrs)

    def save_run(self, row: RunRow) -> None:
        r = row.record
        before = self._attrs.get(r.run_id)
        if before is not None and before[0] == r.attributes:
            attrs = before[1]
        else:
            attrs = _dumps(r.attributes)
            self._attrs[r.run_id] = (dict(r.attributes), attrs)
        self._conn.execute(
            q.SAVE_RUN,
            (
                r.status,
                r.started_at,
                r.completed_at,
                r.last_seq,
                r.error_type,
                int(r.cancel_requested),
                attrs,
                row.decided_seq,
                row.turn_seq,
                row.turn_due_at,
                row.lease_owner,
                row.lease_until,
                r.run_id,
            ),
        )
        self._runs[r.run_id] = row

    def insert_event(self, event: Event) -> None:
        self._conn.execute(
            q.INSERT_EVENT,
            (
                event.run_id,
                event.seq,
                event.type.value,
                event.call,
                _dumps(event.data) if event.data else None,
                event.payload,
                event.created_at,
            ),
        )
        self.changed_runs.add(event.run_id)
        if event.type in TERMINAL_RUN_TYPES:
            self.ended_runs.add(event.run_id)

    def get_step(self, run_id: str, call: int) -> StepRecord | None:
        key = (run_id, call)
        if key in self._steps:
            return self._steps[key]
        found = self._conn.execute(q.GET_STEP, key).fetchall()
        step = self._steps[key] = step_from_row(found[0]) if found else None
        return step

    def save_step(self, step: StepRecord, *, new: bool) -> None:
        s = step
        if new:
            self._conn.execute(
                q.INSERT_STEP,
                (
                    s.run_id,
                    s.call,
                    s.kind,
                    s.name,
                    s.status,
                    s.attempts,
                    s.created_at,
                    s.started_at,
                    s.completed_at,
                    s.due_at,
                    s.error_type,
                    s.child_run_id,
                ),
            )
        else:
            self._conn.execute(
                q.UPDATE_STEP,
                (
                    s.kind,
                    s.name,
                    s.status,
                    s.attempts,
                    s.created_at,
                    s.started_at,
                    s.completed_at,
                    s.due_at,
                    s.error_type,
                    s.child_run_id,
                    s.run_id,
                    s.call,
                ),
            )
        self._steps[(s.run_id, s.call)] = s

    def put_task(self, task: TaskRow) -> None:
        t = task
        self._conn.execute(
            q.PUT_TASK,
            (
                t.run_id,
                t.call,
                t.kind,
                t.namespace,
                t.deployment,
                t.visible_at,
                t.attempt,
                t.lease_owner,
                t.lease_until,
            ),
        )

    def delete_task(self, run_id: str, call: int) -> None:
        self._conn.execute(q.DELETE_TASK, (run_id, call))

    def delete_run_tasks(self, run_id: str) -> None:
        self._conn.execute(q.DELETE_RUN_TASKS, (run_id,))

    def get_hook(self, token: str) -> HookRecord | None:
        found = self._conn.execute(q.GET_HOOK, (token,)).fetchall()
        return hook_from_row(found[0]) if found else None

    def put_hook(self, hook: HookRecord) -> None:
        h = hook
        self._conn.execute(
            q.PUT_HOOK,
            (
                h.token,
                h.run_id,
                h.call,
                h.hook_type,
                h.namespace,
                h.created_at,
                json.dumps(h.metadata, separators=(",", ":")),
            ),
        )

    def delete_hook(self, token: str) -> None:
        self._conn.execute(q.DELETE_HOOK, (token,))

    def delete_run_hooks(self, run_id: str) -> None:
        self._conn.execute(q.DELETE_RUN_HOOKS, (run_id,))

    def close_stream(self, run_id: str, namespace: str) -> None:
        self._conn.execute(q.CLOSE_STREAM, (run_id, namespace, self._now))
        self.changed_streams.add((run_id, namespace))

    def close_run_streams(self, run_id: str) -> None:
        for (ns,) in self._conn.execute(q.CLOSE_RUN_STREAMS, (self._now, run_id)).fetchall():
            self.changed_streams.add((run_id, str(ns)))

    # -- locks (durably.worlds.locks) --

    def lock_holders(self, key: str) -> list[LockEntry]:
        return [lock_from_row(r) for r in self._conn.execute(q.LOCK_HOLDERS, (key,))]

    def lock_waiters(self, key: str, n: int) -> list[LockEntry]:
        return [lock_from_row(r) for r in self._conn.execute(q.LOCK_WAITERS, (key, n))]

    def run_locks(self, run_id: str) -> list[LockEntry]:
        return [lock_from_row(r) for r in self._conn.execute(q.RUN_LOCKS, (run_id,))]

    def put_lock(self, entry: LockEntry) -> None:
        self._conn.execute(q.PUT_LOCK, lock_params(entry))

    def delete_lock(self, key: str, run_id: str, call: int) -> None:
        self._conn.execute(q.DELETE_LOCK, (key, run_id, call))
