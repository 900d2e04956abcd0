"""``memory://``: the whole protocol in process memory, for tests.

Same semantics as every other world (it runs the shared :mod:`.ledger` rules), nothing
persisted. Several registries in one process that open ``memory://NAME`` with the same
name share one store, so a test can start runs from one and execute them with another.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import ClassVar

from ..events import Event
from . import memory_flow
from .base import (
    TERMINAL_STATUSES,
    ChunkBatch,
    Claim,
    Commit,
    CommitResult,
    DeploymentRecord,
    HookRecord,
    LeaseRecord,
    PayloadSealer,
    QueuedTask,
    RunFilter,
    RunQueue,
    RunRecord,
    RunWrite,
    StepRecord,
    StreamChunk,
    StreamInfo,
    Task,
)
from .ledger import OverlayStore, apply_commit, copy_run_row
from .locks import LockEntry, waiter_order
from .memory_rows import _Committed, _Data, _delete_runs, _prunable, _publish, _Stream, _takes
from .notify import Signal
from .rates import RateDecision, RateState
from .schedules import ScheduleRecord, TickDecision
from .urls import KeyPolicy

__all__ = ["MemoryWorld"]


class MemoryWorld:
    """A world in process memory. ``memory://`` is private to the registry that opens
    it; ``memory://NAME`` is shared by every registry of the process that names it."""

    _shared: ClassVar[dict[str, _Data]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        name = url.split("://", 1)[1] if "://" in url else ""
        if name:
            with self._shared_lock:
                self._d = self._shared.setdefault(name, _Data())
        else:
            self._d = _Data()

    @classmethod
    def key_policy(cls, url: str) -> KeyPolicy:
        """The default key: one made for this process per URL, forgotten with it."""
        return KeyPolicy("process")

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def commit(self, commit: Commit) -> CommitResult:
        d = self._d
        with d.lock:
            now = time.time()
            txn = OverlayStore(_Committed(d))
            result = apply_commit(txn, commit, now)
            changed = _publish(d, txn, now)
        for rid in changed:
            sig = d.run_signals.get(rid)
            if sig is not None:
                sig.fire()
        if result.new_work:
            d.work.fire()
        return result

    async def claim(
        self,
        *,
        owner: str,
        namespace: str,
        deployment: str,
        max_runs: int,
        max_tasks: int,
        lease_seconds: float,
        workflows: Collection[str] | None = None,
        steps: Collection[str] | None = None,
        due_by: float | None = None,
    ) -> Claim:
        now = time.time()
        due_at = now if due_by is None else max(now, due_by)
        until = now + lease_seconds
        out = Claim()
        d = self._d
        with d.lock:
            if max_runs > 0:
                due = [
                    row
                    for row in d.runs.values()
                    if row.turn_due_at is not None
                    and row.turn_due_at <= due_at
                    and row.record.namespace == namespace
                    and row.record.deployment == deployment
                    and (row.lease_until is None or row.lease_until < now)
                    and (workflows is None or row.record.workflow_name in workflows)
                ]
                due.sort(key=lambda r: r.turn_due_at or 0.0)
                for row in due[:max_runs]:
                    row.lease_owner = owner
                    row.lease_until = until
                    out.runs.append(row.record.run_id)
            if max_tasks > 0:
                ready = [
                    t
                    for t in d.tasks.values()
                    if t.visible_at <= due_at
                    and t.namespace == namespace
                    and t.deployment == deployment
                    and (t.lease_until is None or t.lease_until < now)
                    and _takes(d, t, workflows, steps)
                ]
                ready.sort(key=lambda t: t.visible_at)
                for t in ready[:max_tasks]:
                    t.lease_owner = owner
                    t.lease_until = until
                    if t.kind == "step":
                        t.attempt += 1
                        step = d.steps[t.run_id][t.call]
                        d.steps[t.run_id][t.call] = replace(
                            step, status="running", attempts=t.attempt, started_at=now
                        )
                    out.tasks.append(Task(t.run_id, t.call, t.kind, t.attempt, t.visible_at))  # type: ignore[arg-type]
        return out

    async def extend_leases(
        self,
        *,
        owner: str,
        run_ids: Sequence[str],
        tasks: Sequence[tuple[str, int]],
        lease_seconds: float,
    ) -> None:
        until = time.time() + lease_seconds
        d = self._d
        with d.lock:
            for rid in run_ids:
                row = d.runs.get(rid)
                if row is not None and row.lease_owner == owner:
                    row.lease_until = until
            for key in tasks:
                t = d.tasks.get(key)
                if t is not None and t.lease_owner == owner:
                    t.lease_until = until

    async def release(
        self, *, owner: str, run_ids: Sequence[str], tasks: Sequence[tuple[str, int]]
    ) -> None:
        d = self._d
        with d.lock:
            for rid in run_ids:
                row = d.runs.get(rid)
                if row is not None and row.lease_owner == owner:
                    row.lease_owner = None
                    row.lease_until = None
            for key in tasks:
                t = d.tasks.get(key)
                if t is not None and t.lease_owner == owner:
                    t.lease_owner = None
                    t.lease_until = None
                    if t.kind == "step" and t.attempt > 0:
                        t.attempt -= 1  # handed back, not lost: the attempt does not count
        d.work.fire()

    async def next_due(
        self,
        *,
        namespace: str,
        deployment: str,
        workflows: Collection[str] | None = None,
        steps: Collection[str] | None = None,
    ) -> float | None:
        d = self._d
        best: float | None = None
        with d.lock:
            for row in d.runs.values():
                r = row.record
                if row.turn_due_at is None or r.namespace != namespace:
                    continue
                if r.deployment != deployment:
                    continue
                if workflows is not None and r.workflow_name not in workflows:
                    continue
                at = max(row.turn_due_at, row.lease_until or 0.0)
                best = at if best is None else min(best, at)
            for t in d.tasks.values():
                if t.namespace != namespace or t.deployment != deployment:
                    continue
                if not _takes(d, t, workflows, steps):
                    continue
                at = max(t.visible_at, t.lease_until or 0.0)
                best = at if best is None else min(best, at)
        return best

    async def wait_for_work(self, *, namespace: str, timeout: float) -> None:
        await self._d.work.wait(timeout)

    async def wait_for_run(self, run_id: str, *, after_seq: int, timeout: float) -> None:
        d = self._d
        with d.lock:
            sig = d.run_signal(run_id)
            armed = sig.arm()
            row = d.runs.get(run_id)
            if row is None or row.record.last_seq > after_seq:
                sig.disarm(armed)
                return
        await sig.wait(timeout, armed)

    async def wait_for_run_end(self, run_id: str, *, timeout: float) -> RunRecord | None:
        """The run's record once it has ended, or as it is after ``timeout``; ``None``
        if there is no such run."""
        d = self._d
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            with d.lock:
                sig = d.run_signal(run_id)
                armed = sig.arm()
                row = d.runs.get(run_id)
                rec = None if row is None else copy_run_row(row).record
            remaining = deadline - loop.time()
            if rec is None or rec.status in TERMINAL_STATUSES or remaining <= 0:
                sig.disarm(armed)
                return rec
            await sig.wait(remaining, armed)

    async def get_run(self, run_id: str) -> RunRecord | None:
        with self._d.lock:
            row = self._d.runs.get(run_id)
            return None if row is None else copy_run_row(row).record

    async def list_runs(self, flt: RunFilter) -> list[RunRecord]:
        with self._d.lock:
            rows = [copy_run_row(r).record for r in self._d.runs.values()]
        out = [
            r
            for r in rows
            if (flt.status is None or r.status == flt.status)
            and (flt.workflow_name is None or r.workflow_name == flt.workflow_name)
            and (flt.namespace is None or r.namespace == flt.namespace)
            and (flt.deployment is None or r.deployment == flt.deployment)
            and (flt.run_id_prefix is None or r.run_id.startswith(flt.run_id_prefix))
            and all(r.attributes.get(k) == v for k, v in flt.attributes.items())
        ]
        out.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
        start = max(flt.offset, 0)
        return out[start : start + flt.limit]

    async def read_events(
        self, run_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        with self._d.lock:
            evs = self._d.events.get(run_id, [])
            out = evs[after_seq:]  # seqs are 1-based and dense
        return out if limit is None else out[:limit]

    async def read_command(self, run_id: str, call: int) -> Event | None:
        with self._d.lock:
            for ev in self._d.events.get(run_id, []):
                if ev.call == call and ev.type.endswith("_created"):
                    return ev
        return None

    async def list_steps(self, run_id: str) -> list[StepRecord]:
        with self._d.lock:
            steps = self._d.steps.get(run_id, {})
            return [replace(steps[c]) for c in sorted(steps)]

    async def run_queue(self, run_id: str) -> RunQueue | None:
        d = self._d
        with d.lock:
            row = d.runs.get(run_id)
            if row is None:
                return None
            tasks = sorted((t for k, t in d.tasks.items() if k[0] == run_id), key=lambda t: t.call)
            return RunQueue(
                row.turn_due_at,
                row.lease_owner,
                row.lease_until,
                [
                    QueuedTask(
                        t.call,
                        t.kind,  # type: ignore[arg-type]
                        t.visible_at,
                        t.attempt,
                        t.lease_owner,
                        t.lease_until,
                    )
                    for t in tasks
                ],
            )

    async def count_runs(self, flt: RunFilter) -> dict[str, int]:
        every = replace(flt, status=None, limit=len(self._d.runs) + 1, offset=0)
        counts: dict[str, int] = {}
        for r in await self.list_runs(every):
            counts[r.status] = counts.get(r.status, 0) + 1
        return counts

    async def list_leases(self, namespace: str | None = None) -> list[LeaseRecord]:
        d = self._d
        out: list[LeaseRecord] = []
        with d.lock:
            for row in d.runs.values():
                r = row.record
                if row.lease_owner is None or row.lease_until is None:
                    continue
                if namespace is None or r.namespace == namespace:
                    out.append(
                        LeaseRecord(
                            row.lease_owner,
                            r.run_id,
                            "turn",
                            row.lease_until,
                            workflow_name=r.workflow_name,
                            namespace=r.namespace,
                            deployment=r.deployment,
                        )
                    )
            for (run_id, call), t in d.tasks.items():
                run = d.runs.get(run_id)
                if t.lease_owner is None or t.lease_until is None or run is None:
                    continue
                if namespace is None or t.namespace == namespace:
                    step = d.steps.get(run_id, {}).get(call)
                    out.append(
                        LeaseRecord(
                            t.lease_owner,
                            run_id,
                            t.kind,  # type: ignore[arg-type]
                            t.lease_until,
                            call=call,
                            name=step.name if step is not None else None,
                            workflow_name=run.record.workflow_name,
                            namespace=t.namespace,
                            deployment=t.deployment,
                        )
                    )
        out.sort(key=lambda x: (x.owner, x.run_id, -1 if x.call is None else x.call))
        return out

    async def get_hook(self, token: str) -> HookRecord | None:
        with self._d.lock:
            return self._d.hooks.get(token)

    async def list_locks(
        self, *, key: str | None = None, run_id: str | None = None, limit: int = 1000
    ) -> list[LockEntry]:
        with self._d.lock:
            found = [
                replace(e)
                for k, entries in self._d.locks.items()
                if key is None or k == key
                for e in entries.values()
                if run_id is None or e.run_id == run_id
            ]
        found.sort(key=lambda e: (e.key, not e.holding, *waiter_order(e)))
        return found[: max(limit, 0)]

    async def list_hooks(
        self, *, namespace: str | None = None, run_id: str | None = None, limit: int = 100
    ) -> list[HookRecord]:
        with self._d.lock:
            hooks = [
                h
                for h in self._d.hooks.values()
                if (namespace is None or h.namespace == namespace)
                and (run_id is None or h.run_id == run_id)
            ]
        hooks.sort(key=lambda h: (h.created_at, h.token), reverse=True)
        return hooks[: max(limit, 0)]

    async def append_chunks(
        self, batches: Sequence[ChunkBatch], sealer: PayloadSealer | None = None
    ) -> list[int]:
        d = self._d
        now = time.time()
        fired: list[Signal] = []
        with d.lock:
            for b in batches:
                if b.run_id not in d.runs:
                    raise ValueError(f"cannot write to a stream of run {b.run_id}: no such run")
                stream = d.streams.get((b.run_id, b.namespace))
                if (
                    stream is not None
                    and stream.closed
                    and (b.chunks or b.close)
                    and not b.reopens(*stream.closer)
                ):
                    raise ValueError(
                        f"stream {b.namespace or '(default)'!r} of run {b.run_id} is closed"
                    )
            counts = []
            closing: list[RunWrite] = []
            for b in batches:
                key = (b.run_id, b.namespace)
                stream = d.streams.get(key)
                if stream is None:
                    stream = d.streams[key] = _Stream(now)
                if stream.closed and (b.chunks or b.close):
                    stream.closed, stream.closer = False, (None, 0)  # a retry reopens it
                for i, payload in enumerate(b.chunks):
                    index = len(stream.chunks)
                    if sealer is not None:
                        payload = sealer.seal_chunk(b.run_id, b.namespace, index, payload)
                    call, attempt = b.writer(i)
                    stream.chunks.append(StreamChunk(index, payload, now, call, attempt))
                stream.updated_at = now
                counts.append(len(stream.chunks))
                if b.close:
                    fact = b.closing_fact(len(stream.chunks))
                    closing.append(RunWrite(b.run_id, facts=[fact]))
                sig = d.stream_signals.get(key)
                if sig is not None:
                    fired.append(sig)
            if closing:
                txn = OverlayStore(_Committed(d))
                apply_commit(txn, Commit(closing), now)
                _publish(d, txn, now)
                for b in batches:
                    if b.close:
                        d.streams[(b.run_id, b.namespace)].closer = b.closer
        for sig in fired:
            sig.fire()
        return counts

    async def read_chunks(
        self, run_id: str, namespace: str, *, start_index: int = 0, limit: int = 1000
    ) -> tuple[list[StreamChunk], bool]:
        with self._d.lock:
            stream = self._d.streams.get((run_id, namespace))
            if stream is None:
                return [], False
            out = stream.chunks[max(start_index, 0) : max(start_index, 0) + max(limit, 0)]
            done = stream.closed and max(start_index, 0) + len(out) >= len(stream.chunks)
            return list(out), done

    async def wait_for_chunks(
        self, run_id: str, namespace: str, *, after_count: int, timeout: float
    ) -> None:
        d = self._d
        key = (run_id, namespace)
        with d.lock:
            sig = d.stream_signals.get(key)
            if sig is None:
                sig = d.stream_signals[key] = Signal()
            armed = sig.arm()
            stream = d.streams.get(key)
            if stream is not None and (stream.closed or len(stream.chunks) > after_count):
                sig.disarm(armed)
                return
        await sig.wait(timeout, armed)

    async def stream_info(self, run_id: str) -> list[StreamInfo]:
        with self._d.lock:
            return [
                StreamInfo(ns, len(st.chunks), st.closed, st.updated_at, *st.closer)
                for (rid, ns), st in sorted(self._d.streams.items())
                if rid == run_id
            ]

    # -- deployments -------------------------------------------------------------------

    async def touch_deployment(self, namespace: str, deployment: str) -> None:
        now = time.time()
        with self._d.lock:
            seen = self._d.deployments.setdefault((namespace, deployment), [now, now])
            seen[1] = now

    async def list_deployments(self, namespace: str | None = None) -> list[DeploymentRecord]:
        d = self._d
        with d.lock:
            counts: dict[tuple[str, str], int] = {}
            for row in d.runs.values():
                r = row.record
                if namespace is not None and r.namespace != namespace:
                    continue
                key = (r.namespace, r.deployment)
                counts.setdefault(key, 0)
                if r.status in ("pending", "running"):
                    counts[key] += 1
            out = []
            keys = {k for k in d.deployments if namespace is None or k[0] == namespace}
            for key in keys | set(counts):
                first, last = d.deployments.get(key, [0.0, 0.0])
                out.append(DeploymentRecord(key[0], key[1], first, last, counts.get(key, 0)))
        out.sort(key=lambda r: (r.first_seen, r.name), reverse=True)
        return out

    async def move_runs(self, namespace: str, from_deployment: str, to_deployment: str) -> int:
        d = self._d
        moved = 0
        with d.lock:
            for row in d.runs.values():
                r = row.record
                if r.namespace != namespace or r.deployment != from_deployment:
                    continue
                if r.status not in ("pending", "running"):
                    continue
                mine = [t for k, t in d.tasks.items() if k[0] == r.run_id]
                if any(t.kind == "step" and t.lease_owner is not None for t in mine):
                    continue  # a step is in flight: it finishes where it started
                if row.lease_owner is not None and (row.lease_until or 0) > time.time():
                    continue  # a turn is in progress
                r.deployment = to_deployment
                for t in mine:
                    t.deployment = to_deployment
                moved += 1
        if moved:
            d.work.fire()
        return moved

    async def prune_runs(
        self,
        *,
        ended_before: float,
        statuses: Collection[str] | None = None,
        namespace: str | None = None,
        limit: int = 500,
        dry_run: bool = False,
    ) -> list[str]:
        """Delete up to ``limit`` runs that ended before ``ended_before`` (see
        ``World.prune_runs``); return their ids."""
        with self._d.lock:
            ids = _prunable(self._d, ended_before, statuses, namespace, limit)
            if not dry_run:
                _delete_runs(self._d, ids)
        return ids

    # -- payloads at rest (re-encryption) ----------------------------------------------

    async def scan_event_payloads(
        self, *, after: tuple[str, int] | None, limit: int
    ) -> list[Event]:
        with self._d.lock:
            out: list[Event] = []
            for rid in sorted(self._d.events):
                if after is not None and rid < after[0]:
                    continue
                for ev in self._d.events[rid]:
                    if ev.payload is None or (after is not None and (rid, ev.seq) <= after):
                        continue
                    out.append(ev)
                    if len(out) >= limit:
                        return out
            return out

    async def scan_chunk_payloads(
        self, *, after: tuple[str, str, int] | None, limit: int
    ) -> list[tuple[str, str, StreamChunk]]:
        with self._d.lock:
            out: list[tuple[str, str, StreamChunk]] = []
            for rid, ns in sorted(self._d.streams):
                for c in self._d.streams[(rid, ns)].chunks:
                    if after is not None and (rid, ns, c.index) <= after:
                        continue
                    out.append((rid, ns, c))
                    if len(out) >= limit:
                        return out
            return out

    async def swap_payloads(
        self,
        events: Sequence[tuple[str, int, bytes, bytes]],
        chunks: Sequence[tuple[str, str, int, bytes, bytes]],
    ) -> int:
        d = self._d
        n = 0
        with d.lock:
            for rid, seq, old, new in events:
                log = d.events.get(rid, [])
                if 0 < seq <= len(log) and log[seq - 1].payload == old:
                    ev = log[seq - 1]
                    log[seq - 1] = Event(
                        ev.run_id, ev.seq, ev.type, ev.call, ev.data, new, ev.created_at
                    )
                    n += 1
            for rid, ns, idx, old, new in chunks:
                stream = d.streams.get((rid, ns))
                if stream is not None and 0 <= idx < len(stream.chunks):
                    c = stream.chunks[idx]
                    if c.payload == old:
                        stream.chunks[idx] = StreamChunk(
                            c.index, new, c.created_at, c.call, c.attempt
                        )
                        n += 1
        return n

    # -- flow control: rate limits and schedules ---------------------------------------

    async def take_rate(
        self,
        *,
        limiter: str,
        limit: int,
        per: float,
        owner: str,
        run_id: str,
        call: int,
        now: float | None = None,
    ) -> RateDecision:
        at = time.time() if now is None else now
        return memory_flow.take_rate(
            self._d,
            limiter=limiter,
            limit=limit,
            per=per,
            owner=owner,
            run_id=run_id,
            call=call,
            now=at,
        )

    async def list_rates(self) -> list[RateState]:
        return memory_flow.list_rates(self._d)

    async def sync_schedules(
        self, namespace: str, put: Sequence[ScheduleRecord], drop: Sequence[str], now: float
    ) -> None:
        with self._d.lock:
            self._d.schedules.sync(namespace, put, drop, now)

    async def list_schedules(self, namespace: str | None = None) -> list[ScheduleRecord]:
        with self._d.lock:
            return self._d.schedules.list(namespace)

    async def advance_schedule(
        self, namespace: str, workflow_name: str, decision: TickDecision
    ) -> bool:
        with self._d.lock:
            return self._d.schedules.advance(namespace, workflow_name, decision)

    async def schedule_ran(
        self, namespace: str, workflow_name: str, *, tick: float, run_id: str
    ) -> None:
        with self._d.lock:
            self._d.schedules.ran(namespace, workflow_name, tick=tick, run_id=run_id)
