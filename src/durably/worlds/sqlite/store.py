"""The ledger's row primitives over SQLite (the rows are decoded by :mod:`..sql.rows`).

A :class:`SqliteStore` lives for one transaction: it remembers the rows it has read or
written in that transaction (so the ledger's repeated look-ups cost nothing). It writes
the changes to runs, steps and events at :meth:`~SqliteStore.flush`, once each: events in
one statement, steps in another, and of a run only the columns that changed (a step
changes none that is indexed, so no index page is rewritten). With a
:class:`~.memo.RowMemo`, it starts from the rows the writer committed last instead of
reading them again, and leaves the rows it committed there for the next transaction.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ...events import TERMINAL_RUN_TYPES, Event
from ..base import HookRecord, StepRecord
from ..ledger import RunRow, TaskRow
from ..locks import LockEntry
from ..sql.rows import dumps as _dumps
from ..sql.rows import hook_from_row, lock_from_row, lock_params, run_row_from_row, step_from_row
from ..store import step_values
from . import queries as q
from .memo import RUN_STATE, RowMemo, run_state

__all__ = ["SqliteStore"]

_ATTRIBUTES = RUN_STATE.index("attributes")
_CANCEL = RUN_STATE.index("cancel_requested")


class SqliteStore:
    """:class:`durably.worlds.ledger.Store` inside one open write transaction.

    Args:
        conn: the writer connection, with ``BEGIN IMMEDIATE`` already issued.
        now: the transaction's time (streams closed in it are stamped with it).
        memo: the rows the writer committed last, to start from (checked here against
            the database's version) and to leave this transaction's rows in at
            :meth:`flush`. The caller drops it if the transaction does not commit.
    """

    __slots__ = (
        "_conn",
        "_events",
        "_memo",
        "_now",
        "_runs",
        "_saved_runs",
        "_saved_steps",
        "_steps",
        "_stored",
        "changed_runs",
        "changed_streams",
        "ended_runs",
    )

    def __init__(
        self, conn: sqlite3.Connection, now: float = 0.0, memo: RowMemo | None = None
    ) -> None:
        self._conn = conn
        self._now = now
        self._memo = memo
        if memo is not None:
            memo.check(conn)
        #: Streams closed in this transaction (their readers are woken at commit).
        self.changed_streams: set[tuple[str, str]] = set()
        self._runs: dict[str, RunRow] = {}
        # Each run's RUN_STATE as stored, to write only what changed.
        self._stored: dict[str, tuple[Any, ...]] = {}
        self._saved_runs: set[str] = set()
        self._steps: dict[tuple[str, int], StepRecord | None] = {}
        self._saved_steps: dict[tuple[str, int], StepRecord] = {}
        self._events: list[tuple[Any, ...]] = []
        #: Runs whose log grew in this transaction (their waiters are woken at commit).
        self.changed_runs: set[str] = set()
        #: Runs that ended in this transaction (their end's waiters are woken at commit).
        self.ended_runs: set[str] = set()

    def get_run_row(self, run_id: str) -> RunRow | None:
        row = self._runs.get(run_id)
        if row is not None:
            return row
        memo = self._memo
        if memo is not None:
            found_memo = memo.runs.get(run_id)
            if found_memo is not None:
                row, self._stored[run_id] = found_memo
                self._runs[run_id] = row
                return row
        found = self._conn.execute(q.GET_RUN, (run_id,)).fetchall()
        if not found:
            return None
        row = self._runs[run_id] = run_row_from_row(found[0])
        self._stored[run_id] = run_state(row, copy=True)
        return row

    def find_idempotent(self, namespace: str, workflow_name: str, key: str) -> str | None:
        found = self._conn.execute(q.FIND_IDEMPOTENT, (namespace, workflow_name, key)).fetchall()
        return str(found[0][0]) if found else None

    def insert_run(self, row: RunRow) -> None:
        r = row.record
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
                _dumps(r.attributes),
                row.decided_seq,
                row.turn_seq,
                row.turn_due_at,
                row.lease_owner,
                row.lease_until,
            ),
        )
        self._runs[r.run_id] = row
        self._stored[r.run_id] = run_state(row, copy=True)
        self._saved_runs.add(r.run_id)

    def save_run(self, row: RunRow) -> None:
        # Written at flush (the row is the one this store handed out or inserted).
        run_id = row.record.run_id
        self._runs[run_id] = row
        self._saved_runs.add(run_id)

    def insert_event(self, event: Event) -> None:
        self._events.append(
            (
                event.run_id,
                event.seq,
                event.type.value,
                event.call,
                _dumps(event.data) if event.data else None,
                event.payload,
                event.created_at,
            )
        )
        self.changed_runs.add(event.run_id)
        if event.type in TERMINAL_RUN_TYPES:
            self.ended_runs.add(event.run_id)

    def get_step(self, run_id: str, call: int) -> StepRecord | None:
        key = (run_id, call)
        if key in self._steps:
            return self._steps[key]
        memo = self._memo
        if memo is not None:
            step = memo.steps.get(key)
            if step is not None:
                self._steps[key] = step
                return step
        found = self._conn.execute(q.GET_STEP, key).fetchall()
        step = self._steps[key] = step_from_row(found[0]) if found else None
        return step

    def save_step(self, step: StepRecord, *, new: bool) -> None:
        # Written at flush; one upsert serves a new row and a changed one alike.
        key = (step.run_id, step.call)
        self._steps[key] = self._saved_steps[key] = step

    def flush(self) -> None:
        """Write the events, steps and runs changed in this transaction, and leave the
        rows in the memo (if any); call once, last, before the commit."""
        conn = self._conn
        if self._events:
            conn.executemany(q.INSERT_EVENT, self._events)
        if self._saved_steps:
            conn.executemany(
                q.UPSERT_STEP,
                [step_values(s) for s in self._saved_steps.values()],
            )
        memo = self._memo
        for run_id, row in self._runs.items():
            stored = self._stored[run_id]
            state = run_state(row)
            if state == stored:
                pass
            elif run_id in self._saved_runs:
                self._update_run(run_id, state, stored)
                stored = run_state(row, copy=True)
            else:
                # Changed but not saved: the database keeps what it has, and the memo
                # must not offer the changed row as stored.
                if memo is not None:
                    memo.runs.pop(run_id, None)
                continue
            if memo is not None:
                memo.runs.pop(run_id, None)  # to the end: the newest are kept longest
                memo.runs[run_id] = (row, stored)
        if memo is not None:
            steps = memo.steps
            for key, step in self._steps.items():
                if step is not None:
                    steps.pop(key, None)
                    steps[key] = step
            memo.trim()

    def _update_run(self, run_id: str, state: tuple[Any, ...], stored: tuple[Any, ...]) -> None:
        columns: list[str] = []
        params: list[Any] = []
        for i, value in enumerate(state):
            if value != stored[i]:
                columns.append(RUN_STATE[i])
                if i == _ATTRIBUTES:
                    value = _dumps(value)
                elif i == _CANCEL:
                    value = int(value)
                params.append(value)
        params.append(run_id)
        self._conn.execute(q.update_run(tuple(columns)), params)

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
