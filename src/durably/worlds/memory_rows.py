"""The rows of the ``memory://`` world and how a committed transaction reaches them
(the world itself, its reads and claims, is :mod:`durably.worlds.memory`)."""

from __future__ import annotations

import threading
from collections.abc import Collection

from ..events import Event
from .base import HookRecord, StepRecord, StreamChunk
from .ledger import OverlayStore, RunRow, TaskRow
from .locks import LockEntry, waiter_order
from .notify import Signal
from .schedules import ScheduleTable


class _Data:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.runs: dict[str, RunRow] = {}
        self.events: dict[str, list[Event]] = {}
        self.steps: dict[str, dict[int, StepRecord]] = {}
        self.tasks: dict[tuple[str, int], TaskRow] = {}
        self.idempotency: dict[tuple[str, str, str], str] = {}
        self.hooks: dict[str, HookRecord] = {}
        self.deployments: dict[tuple[str, str], list[float]] = {}
        self.streams: dict[tuple[str, str], _Stream] = {}
        self.stream_signals: dict[tuple[str, str], Signal] = {}
        self.work = Signal()
        self.run_signals: dict[str, Signal] = {}
        # Flow control (memory_flow.py): each limiter's recent starts; the schedules.
        self.rates: dict[str, list[float]] = {}
        self.schedules = ScheduleTable()
        #: Lock entries by key, then by (run_id, call) (see durably.worlds.locks).
        self.locks: dict[str, dict[tuple[str, int], LockEntry]] = {}

    def run_signal(self, run_id: str) -> Signal:
        sig = self.run_signals.get(run_id)
        if sig is None:
            sig = self.run_signals[run_id] = Signal()
        return sig


class _Stream:
    __slots__ = ("chunks", "closed", "closer", "updated_at")

    def __init__(self, now: float) -> None:
        self.chunks: list[StreamChunk] = []
        self.closed = False
        #: The step attempt that closed it ((None, 0): open, or closed by the run's end).
        self.closer: tuple[int | None, int] = (None, 0)
        self.updated_at = now


class _Committed:
    """The committed data as a :class:`~.ledger.Source` (call under the data's lock)."""

    def __init__(self, data: _Data) -> None:
        self.d = data

    def get_run_row(self, run_id: str) -> RunRow | None:
        return self.d.runs.get(run_id)

    def find_idempotent(self, namespace: str, workflow_name: str, key: str) -> str | None:
        return self.d.idempotency.get((namespace, workflow_name, key))

    def get_step(self, run_id: str, call: int) -> StepRecord | None:
        steps = self.d.steps.get(run_id)
        return None if steps is None else steps.get(call)

    def get_hook(self, token: str) -> HookRecord | None:
        return self.d.hooks.get(token)

    def lock_holders(self, key: str) -> list[LockEntry]:
        return [e for e in self.d.locks.get(key, {}).values() if e.holding]

    def lock_waiters(self, key: str, n: int) -> list[LockEntry]:
        waiting = [e for e in self.d.locks.get(key, {}).values() if not e.holding]
        return sorted(waiting, key=waiter_order)[:n]

    def run_locks(self, run_id: str) -> list[LockEntry]:
        return [
            e for entries in self.d.locks.values() for e in entries.values() if e.run_id == run_id
        ]


def _publish(d: _Data, txn: OverlayStore, now: float) -> set[str]:
    """Apply a successful commit's changes to the shared data."""
    d.runs.update(txn.runs)
    logs = d.events
    for rid in txn.new_runs:
        logs.setdefault(rid, [])
    changed = set()
    for ev in txn.events:
        log = logs.get(ev.run_id)
        if log is None:
            log = logs[ev.run_id] = []
        log.append(ev)
        changed.add(ev.run_id)
    for (rid, call), (step, _) in txn.steps.items():
        steps = d.steps.get(rid)
        if steps is None:
            steps = d.steps[rid] = {}
        steps[call] = step
    if txn.dropped_task_runs:
        for key in [k for k in d.tasks if k[0] in txn.dropped_task_runs]:
            del d.tasks[key]
    for key, task in txn.tasks.items():
        if task is None:
            d.tasks.pop(key, None)
        else:
            d.tasks[key] = task
    if txn.dropped_hook_runs:
        for token in [t for t, h in d.hooks.items() if h.run_id in txn.dropped_hook_runs]:
            del d.hooks[token]
    for token, hook in txn.hooks.items():
        if hook is None:
            d.hooks.pop(token, None)
        else:
            d.hooks[token] = hook
    if txn.idem:
        d.idempotency.update(txn.idem)
    for (lock_key, rid, call), entry in txn.locks.items():
        entries = d.locks.setdefault(lock_key, {})
        if entry is None:
            entries.pop((rid, call), None)
            if not entries:
                del d.locks[lock_key]
        else:
            entries[(rid, call)] = entry
    if not txn.closed_streams and not txn.closed_stream_runs:
        return changed
    closing = set(txn.closed_streams)
    if txn.closed_stream_runs:
        closing |= {k for k in d.streams if k[0] in txn.closed_stream_runs}
    for skey in closing:
        stream = d.streams.get(skey)
        if stream is None:
            stream = d.streams[skey] = _Stream(now)
        stream.closed = True
        stream.closer = (None, 0)  # append_chunks names the attempt that closed it
        stream.updated_at = now
        sig = d.stream_signals.get(skey)
        if sig is not None:
            sig.fire()
    return changed


def _takes(
    d: _Data, t: TaskRow, workflows: Collection[str] | None, steps: Collection[str] | None
) -> bool:
    """Whether a worker with these workflows and steps can do task ``t`` (see
    ``World.claim``): a step by its name, or any task of a run of its workflows."""
    if workflows is None or d.runs[t.run_id].record.workflow_name in workflows:
        return True
    return t.kind == "step" and (steps is None or d.steps[t.run_id][t.call].name in steps)


def _prunable(
    d: _Data,
    ended_before: float,
    statuses: Collection[str] | None,
    namespace: str | None,
    limit: int,
) -> list[str]:
    """The ids of ended runs that :meth:`MemoryWorld.prune_runs` would delete, oldest
    end first."""
    ended = ("completed", "failed", "cancelled")
    found = [
        row.record
        for row in d.runs.values()
        if row.record.status in ended
        and (statuses is None or row.record.status in statuses)
        and (namespace is None or row.record.namespace == namespace)
        and row.record.completed_at is not None
        and row.record.completed_at < ended_before
    ]
    found.sort(key=lambda r: (r.completed_at or 0.0, r.run_id))
    return [r.run_id for r in found[: max(limit, 0)]]


def _delete_runs(d: _Data, run_ids: list[str]) -> None:
    """Remove runs and everything they own from the shared data."""
    doomed = set(run_ids)
    for rid in run_ids:
        row = d.runs.pop(rid)
        rec = row.record
        if rec.idempotency_key is not None:
            d.idempotency.pop((rec.namespace, rec.workflow_name, rec.idempotency_key), None)
        d.events.pop(rid, None)
        d.steps.pop(rid, None)
        d.run_signals.pop(rid, None)
    for key in [k for k in d.tasks if k[0] in doomed]:
        del d.tasks[key]
    for token in [t for t, h in d.hooks.items() if h.run_id in doomed]:
        del d.hooks[token]
    for skey in [k for k in d.streams if k[0] in doomed]:
        del d.streams[skey]
        d.stream_signals.pop(skey, None)
