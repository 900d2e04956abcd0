"""The rows a commit changes and the :class:`Store` the ledger changes them through.

:func:`durably.worlds.ledger.apply_commit` reads and writes a world's rows only through a
:class:`Store`: row primitives inside one open transaction. A world that runs synchronous
code inside its transaction (SQLite) implements it directly; one that does not (memory,
a remote database) collects a commit's changes in an :class:`OverlayStore` over a
read-only :class:`Source` and applies them in one go.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ..events import Event
from .base import HookRecord, RunRecord, StepRecord
from .locks import LockEntry, waiter_order

__all__ = [
    "OverlayStore",
    "RunRow",
    "Source",
    "Store",
    "TaskRow",
    "copy_run_row",
    "copy_step",
    "step_values",
]


@dataclass(slots=True)
class RunRow:
    """A run's projection plus the bookkeeping the queue needs."""

    record: RunRecord
    decided_seq: int = 0
    turn_seq: int = 0
    turn_due_at: float | None = None
    lease_owner: str | None = None
    lease_until: float | None = None


@dataclass(slots=True)
class TaskRow:
    """A queue entry: a step to execute or a timer to fire."""

    run_id: str
    call: int
    kind: str
    namespace: str
    deployment: str
    visible_at: float
    attempt: int = 0
    lease_owner: str | None = None
    lease_until: float | None = None


class Store(Protocol):
    """Row primitives inside one open transaction."""

    def get_run_row(self, run_id: str) -> RunRow | None:
        """The run's row, or None when no run has this id."""

    def find_idempotent(self, namespace: str, workflow_name: str, key: str) -> str | None:
        """The id of the run of this workflow started with ``key``, if any."""

    def insert_run(self, row: RunRow) -> None:
        """Add a new run's row (its idempotency key, if any, becomes taken)."""

    def save_run(self, row: RunRow) -> None:
        """Write back a run row changed by the ledger."""

    def insert_event(self, event: Event) -> None:
        """Append one event to its run's log."""

    def get_step(self, run_id: str, call: int) -> StepRecord | None:
        """The projection row of call ``call`` of a run, or None."""

    def save_step(self, step: StepRecord, *, new: bool) -> None:
        """Write a call's projection row (``new``: it did not exist before)."""

    def put_task(self, task: TaskRow) -> None:
        """Queue (or replace) the task of a call: a step to execute or a timer."""

    def delete_task(self, run_id: str, call: int) -> None:
        """Remove the task of a call (done, cancelled or superseded)."""

    def delete_run_tasks(self, run_id: str) -> None:
        """Remove every task of a run (the run ended)."""

    def get_hook(self, token: str) -> HookRecord | None:
        """The live hook indexed under ``token`` (a digest), or None."""

    def put_hook(self, hook: HookRecord) -> None:
        """Index a live hook under its token."""

    def delete_hook(self, token: str) -> None:
        """Drop a hook from the index (disposed)."""

    def delete_run_hooks(self, run_id: str) -> None:
        """Drop every hook of a run from the index (the run ended)."""

    def close_stream(self, run_id: str, namespace: str) -> None:
        """Mark one stream of a run closed."""

    def close_run_streams(self, run_id: str) -> None:
        """Mark every stream of a run closed (the run ended)."""

    # -- locks (durably.worlds.locks) --

    def lock_holders(self, key: str) -> list[LockEntry]:
        """Every entry holding a permit of lock ``key``."""

    def lock_waiters(self, key: str, n: int) -> list[LockEntry]:
        """The first ``n`` waiters of lock ``key`` (priority, then arrival order)."""

    def run_locks(self, run_id: str) -> list[LockEntry]:
        """Every lock entry of a run, held or waiting."""

    def put_lock(self, entry: LockEntry) -> None:
        """Add or replace a lock entry (by key, run and call)."""

    def delete_lock(self, key: str, run_id: str, call: int) -> None:
        """Remove a lock entry (released, or no longer waited for)."""


class Source(Protocol):
    """Read access to committed rows, for :class:`OverlayStore`."""

    def get_run_row(self, run_id: str) -> RunRow | None:
        """The run's row, or None when no run has this id."""

    def find_idempotent(self, namespace: str, workflow_name: str, key: str) -> str | None:
        """The id of the run of this workflow started with ``key``, if any."""

    def get_step(self, run_id: str, call: int) -> StepRecord | None:
        """The projection row of call ``call`` of a run, or None."""

    def get_hook(self, token: str) -> HookRecord | None:
        """The live hook indexed under ``token`` (a digest), or None."""

    def lock_holders(self, key: str) -> list[LockEntry]:
        """Every entry holding a permit of lock ``key``."""

    def lock_waiters(self, key: str, n: int) -> list[LockEntry]:
        """The first ``n`` waiters of lock ``key`` (priority, then arrival order)."""

    def run_locks(self, run_id: str) -> list[LockEntry]:
        """Every lock entry of a run, held or waiting."""


def copy_run_row(row: RunRow) -> RunRow:
    """A copy that can be changed without touching the original (built field by field:
    this runs for every commit, and ``copy.copy`` is several times slower)."""
    r = row.record
    rec = RunRecord(
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
        r.cancel_requested,
        dict(r.attributes),
    )
    return RunRow(
        rec, row.decided_seq, row.turn_seq, row.turn_due_at, row.lease_owner, row.lease_until
    )


def step_values(s: StepRecord) -> tuple[Any, ...]:
    """A steps row's columns in table order (``StepRecord``'s fields; what SQL binds)."""
    return (
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
    )


def copy_step(s: StepRecord) -> StepRecord:
    """A copy of a steps row that can be changed without touching the original."""
    return StepRecord(*step_values(s))


class OverlayStore:
    """A :class:`Store` that collects a commit's changes in memory over a read-only
    :class:`Source`; the world then applies them (or drops them) in one go.

    The memory world reads its dicts through it; a world driven asynchronously (a remote
    database) preloads the rows a commit touches, runs :func:`apply_commit` here, and
    writes the collected changes back in one transaction.
    """

    def __init__(self, source: Source) -> None:
        self.source = source
        self.runs: dict[str, RunRow] = {}
        self.new_runs: set[str] = set()
        self.events: list[Event] = []
        self.steps: dict[tuple[str, int], tuple[StepRecord, bool]] = {}
        self.tasks: dict[tuple[str, int], TaskRow | None] = {}
        self.dropped_task_runs: set[str] = set()
        self.idem: dict[tuple[str, str, str], str] = {}
        self.hooks: dict[str, HookRecord | None] = {}
        self.dropped_hook_runs: set[str] = set()
        self.closed_streams: set[tuple[str, str]] = set()
        self.closed_stream_runs: set[str] = set()
        #: Lock entries put (an entry) or deleted (None), by (key, run_id, call).
        self.locks: dict[tuple[str, str, int], LockEntry | None] = {}

    def get_run_row(self, run_id: str) -> RunRow | None:
        row = self.runs.get(run_id)
        if row is None:
            base = self.source.get_run_row(run_id)
            if base is None:
                return None
            row = self.runs[run_id] = copy_run_row(base)
        return row

    def find_idempotent(self, namespace: str, workflow_name: str, key: str) -> str | None:
        k = (namespace, workflow_name, key)
        return self.idem.get(k) or self.source.find_idempotent(*k)

    def insert_run(self, row: RunRow) -> None:
        rec = row.record
        self.runs[rec.run_id] = row
        self.new_runs.add(rec.run_id)
        if rec.idempotency_key is not None:
            self.idem[(rec.namespace, rec.workflow_name, rec.idempotency_key)] = rec.run_id

    def save_run(self, row: RunRow) -> None:
        self.runs[row.record.run_id] = row

    def insert_event(self, event: Event) -> None:
        self.events.append(event)

    def get_step(self, run_id: str, call: int) -> StepRecord | None:
        entry = self.steps.get((run_id, call))
        if entry is not None:
            return entry[0]
        return self.source.get_step(run_id, call)

    def save_step(self, step: StepRecord, *, new: bool) -> None:
        key = (step.run_id, step.call)
        prior = self.steps.get(key)
        self.steps[key] = (step, new or (prior is not None and prior[1]))

    def put_task(self, task: TaskRow) -> None:
        self.tasks[(task.run_id, task.call)] = task

    def delete_task(self, run_id: str, call: int) -> None:
        self.tasks[(run_id, call)] = None

    def delete_run_tasks(self, run_id: str) -> None:
        self.dropped_task_runs.add(run_id)
        for key in [k for k in self.tasks if k[0] == run_id]:
            del self.tasks[key]

    def get_hook(self, token: str) -> HookRecord | None:
        if token in self.hooks:
            return self.hooks[token]
        hook = self.source.get_hook(token)
        if hook is not None and hook.run_id in self.dropped_hook_runs:
            return None
        return hook

    def put_hook(self, hook: HookRecord) -> None:
        self.hooks[hook.token] = hook

    def delete_hook(self, token: str) -> None:
        self.hooks[token] = None

    def delete_run_hooks(self, run_id: str) -> None:
        self.dropped_hook_runs.add(run_id)
        for token, hook in list(self.hooks.items()):
            if hook is not None and hook.run_id == run_id:
                self.hooks[token] = None

    def close_stream(self, run_id: str, namespace: str) -> None:
        self.closed_streams.add((run_id, namespace))

    def close_run_streams(self, run_id: str) -> None:
        self.closed_stream_runs.add(run_id)

    # -- locks: the committed entries, with this commit's changes over them --

    def _merged(self, found: list[LockEntry], keep: object) -> list[LockEntry]:
        out = {(e.key, e.run_id, e.call): e for e in found}
        for k, e in self.locks.items():
            if e is None:
                out.pop(k, None)
            elif keep(e):  # type: ignore[operator]
                out[k] = e
            else:
                out.pop(k, None)
        return [e for e in out.values() if keep(e)]  # type: ignore[operator]

    def lock_holders(self, key: str) -> list[LockEntry]:
        return self._merged(self.source.lock_holders(key), lambda e: e.key == key and e.holding)

    def lock_waiters(self, key: str, n: int) -> list[LockEntry]:
        # Enough committed waiters to fill ``n`` after this commit's removals.
        removed = sum(1 for k in self.locks if k[0] == key)
        found = self.source.lock_waiters(key, n + removed)
        out = self._merged(found, lambda e: e.key == key and not e.holding)
        return sorted(out, key=waiter_order)[:n]

    def run_locks(self, run_id: str) -> list[LockEntry]:
        return self._merged(self.source.run_locks(run_id), lambda e: e.run_id == run_id)

    def put_lock(self, entry: LockEntry) -> None:
        self.locks[(entry.key, entry.run_id, entry.call)] = _copy_lock(entry)

    def delete_lock(self, key: str, run_id: str, call: int) -> None:
        self.locks[(key, run_id, call)] = None


def _copy_lock(e: LockEntry) -> LockEntry:
    return LockEntry(
        e.key,
        e.run_id,
        e.call,
        e.limit,
        e.holding,
        e.priority,
        e.queued_at,
        e.namespace,
        e.workflow_name,
    )
