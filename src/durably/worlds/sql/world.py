"""The base of the SQL worlds: the reads every dialect answers with the same statement
names, the same parameters and the same row decoding.

A dialect (:class:`~durably.worlds.sqlite.SqliteWorld`,
:class:`~durably.worlds.postgres.PostgresWorld`) subclasses :class:`SqlWorld`, gives it
its named statements (``sql``) and says how one statement is run (:meth:`SqlWorld._fetch`);
it keeps to itself what truly differs: connections, commits, claims, wake-ups, streams.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Protocol

from ...events import Event
from ..base import (
    ChunkBatch,
    DeploymentRecord,
    HookRecord,
    LeaseRecord,
    QueuedTask,
    RunFilter,
    RunQueue,
    RunRecord,
    RunWrite,
    StepRecord,
    StreamChunk,
    StreamInfo,
)
from ..locks import LockEntry
from ..rates import RateDecision, RateState
from ..schedules import ScheduleRecord, TickDecision
from .rows import (
    chunk_from_row,
    deployment_from_row,
    event_from_row,
    hook_from_row,
    lock_from_row,
    run_row_from_row,
    step_from_row,
    stream_info_from_row,
)

__all__ = ["FlowBackend", "ReadStatements", "SqlWorld", "closing_write", "refuse_write"]


class ReadStatements(Protocol):
    """The named statements :class:`SqlWorld`'s reads run; each dialect's take the same
    parameters, in the order the reads give them."""

    @property
    def GET_RUN(self) -> str: ...  # (run_id)
    @property
    def READ_EVENTS(self) -> str: ...  # (run_id, after_seq, limit or NULL)
    @property
    def READ_LOG(self) -> str: ...  # (run_id, after_seq)
    @property
    def READ_COMMAND(self) -> str: ...  # (run_id, call)
    @property
    def LIST_STEPS(self) -> str: ...  # (run_id)
    @property
    def RUN_TASKS(self) -> str: ...  # (run_id)
    @property
    def COUNT_RUNS(self) -> str: ...  # (workflow, namespace, deployment, prefix, attrs)
    @property
    def LIST_LEASES(self) -> str: ...  # (namespace)
    @property
    def GET_HOOK(self) -> str: ...  # (token)
    @property
    def LIST_HOOKS(self) -> str: ...  # (namespace, run_id, limit)
    @property
    def LIST_LOCKS(self) -> str: ...  # (key, run_id, limit)
    @property
    def STREAM_INFO(self) -> str: ...  # (run_id)
    @property
    def LIST_DEPLOYMENTS(self) -> str: ...  # (namespace)
    @property
    def SCAN_EVENT_PAYLOADS(self) -> str: ...  # (run_id, seq, limit)
    @property
    def SCAN_CHUNK_PAYLOADS(self) -> str: ...  # (run_id, namespace, idx, limit)


class FlowBackend(Protocol):
    """A dialect's flow control (rate limiters, schedules): the ``World`` methods of
    the same names, with the time given (see :class:`~durably.worlds.base.World`)."""

    async def take_rate(
        self,
        *,
        limiter: str,
        limit: int,
        per: float,
        owner: str,
        run_id: str,
        call: int,
        now: float,
    ) -> RateDecision: ...
    async def list_rates(self) -> list[RateState]: ...
    async def sync_schedules(
        self, namespace: str, put: Sequence[ScheduleRecord], drop: Sequence[str], now: float
    ) -> None: ...
    async def list_schedules(self, namespace: str | None) -> list[ScheduleRecord]: ...
    async def advance_schedule(
        self, namespace: str, workflow_name: str, decision: TickDecision
    ) -> bool: ...
    async def schedule_ran(
        self, namespace: str, workflow_name: str, *, tick: float, run_id: str
    ) -> None: ...


class SqlWorld(ABC):
    """What the SQL worlds share; a dialect provides ``sql``, :meth:`_fetch` and
    ``flow`` (its rate limiters and schedules)."""

    url: str
    sql: ReadStatements
    flow: FlowBackend

    @abstractmethod
    async def _fetch(self, what: str, sql: str, *args: Any) -> Sequence[Any]:
        """Run one read statement and return its rows (``what`` names it in errors)."""

    async def _fetch_one(self, what: str, sql: str, *args: Any) -> Any | None:
        rows = await self._fetch(what, sql, *args)
        return rows[0] if rows else None

    # -- runs, events, steps ------------------------------------------------------------

    async def get_run(self, run_id: str) -> RunRecord | None:
        """The run's projection, or ``None``."""
        row = await self._fetch_one("read a run", self.sql.GET_RUN, run_id)
        return run_row_from_row(row).record if row is not None else None

    async def read_events(
        self, run_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[Event]:
        """The run's events with ``seq > after_seq``, in order."""
        rows = await self._fetch("read events", self.sql.READ_EVENTS, run_id, after_seq, limit)
        return [event_from_row(r) for r in rows]

    async def read_log(self, run_id: str, *, after_seq: int = 0) -> list[Event]:
        """The run's events with ``seq > after_seq`` as a replay reads them: those of
        :data:`~durably.events.DATA_UNREAD_BY_REPLAY` without their data (``{}``)."""
        rows = await self._fetch("read events", self.sql.READ_LOG, run_id, after_seq)
        return [event_from_row(r) for r in rows]

    async def read_command(self, run_id: str, call: int) -> Event | None:
        """The command event that created durable call ``call`` of the run."""
        row = await self._fetch_one("read a command", self.sql.READ_COMMAND, run_id, call)
        return event_from_row(row) if row is not None else None

    async def list_steps(self, run_id: str) -> list[StepRecord]:
        """The run's ``steps`` projection, by call."""
        rows = await self._fetch("list steps", self.sql.LIST_STEPS, run_id)
        return [step_from_row(r) for r in rows]

    async def run_queue(self, run_id: str) -> RunQueue | None:
        """What the run has in the queue: its turn and its tasks, with their leases."""
        row = await self._fetch_one("read a run", self.sql.GET_RUN, run_id)
        if row is None:
            return None
        run = run_row_from_row(row)
        rows = await self._fetch("read a run's tasks", self.sql.RUN_TASKS, run_id)
        tasks = [QueuedTask(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]
        return RunQueue(run.turn_due_at, run.lease_owner, run.lease_until, tasks)

    async def count_runs(self, flt: RunFilter) -> dict[str, int]:
        """How many runs match ``flt`` (its status, limit and offset aside), by status."""
        rows = await self._fetch(
            "count runs",
            self.sql.COUNT_RUNS,
            flt.workflow_name,
            flt.namespace,
            flt.deployment,
            flt.run_id_prefix,
            json.dumps(flt.attributes) if flt.attributes else None,
        )
        return {str(r[0]): int(r[1]) for r in rows}

    async def list_leases(self, namespace: str | None = None) -> list[LeaseRecord]:
        """Every lease on a run's turn or a task, by owner, run and call."""
        rows = await self._fetch("list leases", self.sql.LIST_LEASES, namespace)
        return [
            LeaseRecord(
                owner=r[0],
                run_id=r[1],
                kind=r[2],
                lease_until=float(r[3]),
                call=r[4],
                name=r[5],
                workflow_name=r[6],
                namespace=r[7],
                deployment=r[8],
            )
            for r in rows
        ]

    # -- hooks ----------------------------------------------------------------------------

    async def get_hook(self, token: str) -> HookRecord | None:
        """The live hook holding ``token``, if any."""
        row = await self._fetch_one("read a hook", self.sql.GET_HOOK, token)
        return hook_from_row(row) if row is not None else None

    async def list_hooks(
        self, *, namespace: str | None = None, run_id: str | None = None, limit: int = 100
    ) -> list[HookRecord]:
        """Live hooks, newest first."""
        rows = await self._fetch(
            "list hooks", self.sql.LIST_HOOKS, namespace, run_id, max(limit, 0)
        )
        return [hook_from_row(r) for r in rows]

    async def list_locks(
        self, *, key: str | None = None, run_id: str | None = None, limit: int = 1000
    ) -> list[LockEntry]:
        """Lock entries (holders, then waiters in order), by key."""
        rows = await self._fetch("list locks", self.sql.LIST_LOCKS, key, run_id, max(limit, 0))
        return [lock_from_row(r) for r in rows]

    # -- streams and deployments ------------------------------------------------------------

    async def stream_info(self, run_id: str) -> list[StreamInfo]:
        """The run's streams."""
        rows = await self._fetch("read streams", self.sql.STREAM_INFO, run_id)
        return [stream_info_from_row(r) for r in rows]

    async def list_deployments(self, namespace: str | None = None) -> list[DeploymentRecord]:
        """Deployments seen, newest first, with their runs in flight."""
        rows = await self._fetch("list deployments", self.sql.LIST_DEPLOYMENTS, namespace)
        return [deployment_from_row(r) for r in rows]

    # -- payloads at rest (re-encryption) ----------------------------------------------------

    async def scan_event_payloads(
        self, *, after: tuple[str, int] | None, limit: int
    ) -> list[Event]:
        """Events that carry a payload, in (run_id, seq) order after ``after``."""
        run_id, seq = after if after is not None else ("", 0)
        rows = await self._fetch(
            "read payloads", self.sql.SCAN_EVENT_PAYLOADS, run_id, seq, max(limit, 0)
        )
        return [event_from_row(r) for r in rows]

    async def scan_chunk_payloads(
        self, *, after: tuple[str, str, int] | None, limit: int
    ) -> list[tuple[str, str, StreamChunk]]:
        """Stream chunks as (run_id, namespace, chunk), in that order after ``after``."""
        run_id, ns, idx = after if after is not None else ("", "", -1)
        rows = await self._fetch(
            "read payloads", self.sql.SCAN_CHUNK_PAYLOADS, run_id, ns, idx, max(limit, 0)
        )
        return [(r[0], r[1], chunk_from_row(r, 2)) for r in rows]

    # -- flow control: rate limits and schedules (each dialect's ``flow``) ------------------

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
        """A step's start under a rate limit (see ``World.take_rate``)."""
        return await self.flow.take_rate(
            limiter=limiter,
            limit=limit,
            per=per,
            owner=owner,
            run_id=run_id,
            call=call,
            now=time.time() if now is None else now,
        )

    async def list_rates(self) -> list[RateState]:
        """Every limiter with the starts of its current window."""
        return await self.flow.list_rates()

    async def sync_schedules(
        self, namespace: str, put: Sequence[ScheduleRecord], drop: Sequence[str], now: float
    ) -> None:
        """Register a registry's schedules (see ``World.sync_schedules``)."""
        await self.flow.sync_schedules(namespace, put, drop, now)

    async def list_schedules(self, namespace: str | None = None) -> list[ScheduleRecord]:
        """The schedules (of ``namespace``, or all)."""
        return await self.flow.list_schedules(namespace)

    async def advance_schedule(
        self, namespace: str, workflow_name: str, decision: TickDecision
    ) -> bool:
        """Decide a tick by compare and set (see ``World.advance_schedule``)."""
        return await self.flow.advance_schedule(namespace, workflow_name, decision)

    async def schedule_ran(
        self, namespace: str, workflow_name: str, *, tick: float, run_id: str
    ) -> None:
        """Record the run of a decided tick."""
        await self.flow.schedule_ran(namespace, workflow_name, tick=tick, run_id=run_id)


def refuse_write(
    batch: ChunkBatch,
    *,
    exists: bool,
    closed: bool,
    closer: tuple[int | None, int] = (None, 0),
) -> bool:
    """Raise if ``batch`` may not be appended to its stream; return whether it reopens
    the stream (closed by ``closer``, an earlier attempt of the step writing it).

    Raises:
        ValueError: the run does not exist, or the stream is closed (and the batch
            writes or closes, and is not a retry of the step that closed it).
    """
    if not exists:
        raise ValueError(f"cannot write to a stream of run {batch.run_id}: no such run")
    if not closed or not (batch.chunks or batch.close):
        return False
    if batch.reopens(*closer):
        return True
    raise ValueError(f"stream {batch.namespace or '(default)'!r} of run {batch.run_id} is closed")


def closing_write(batch: ChunkBatch, count: int) -> RunWrite:
    """The write that closes ``batch``'s stream at ``count`` chunks: a fact in its run's
    log, committed with the chunks."""
    return RunWrite(batch.run_id, facts=[batch.closing_fact(count)])
