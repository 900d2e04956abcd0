"""``Run``: a handle on one run, from any process that shares its world."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from . import serde
from .errors import RunCancelledError, RunNotFoundError, WorkflowRunFailedError
from .events import Event
from .runtime.failures import rebuild_error
from .streams import read_stream
from .waiting import Waiting, end_event, waiting_of
from .worlds.base import TERMINAL_STATUSES, RunRecord, StepRecord, StreamChunk, StreamInfo

if TYPE_CHECKING:
    from .registry import Workflows

__all__ = ["Run"]


class Run:
    """A handle on a run. Cheap to make; every method reads the world afresh."""

    def __init__(self, registry: Workflows, run_id: str, workflow_name: str | None = None):
        self.registry = registry
        self.run_id = run_id
        self.workflow_name = workflow_name

    def __repr__(self) -> str:
        return f"<Run {self.run_id} of {self.workflow_name!r}>"

    async def record(self) -> RunRecord:
        """The run's status record.

        Raises:
            RunNotFoundError: the run does not exist in this world.
        """
        world = await self.registry.open()
        rec = await world.get_run(self.run_id)
        if rec is None:
            raise RunNotFoundError(self.run_id, self.registry.world_url)
        return rec

    async def status(self) -> str:
        """``"pending"``, ``"running"``, ``"completed"``, ``"failed"`` or ``"cancelled"``."""
        return (await self.record()).status

    async def waiting(self) -> Waiting:
        """What the run waits for now, and since when: finer than :meth:`status`, which
        says ``running`` for all of these. ``kind`` is ``"step"`` (a step attempt runs on
        a worker, under a lease), ``"retry"``, ``"sleep"``, ``"hook"``, ``"child"``,
        ``"turn"`` (its body runs), ``"worker"`` (ready work no worker holds: none of
        its namespace and deployment is running, or all are busy) or ``None`` (ended).
        See :mod:`durably.waiting`."""
        world = await self.registry.open()
        return await waiting_of(world, await self.record())

    async def steps(self) -> list[StepRecord]:
        """The run's durable calls (steps, waits, child runs) with their status."""
        world = await self.registry.open()
        return await world.list_steps(self.run_id)

    async def events(self) -> list[Event]:
        """The run's event log."""
        world = await self.registry.open()
        return await world.read_events(self.run_id)

    async def attributes(self) -> dict[str, str]:
        """The run's plaintext attributes."""
        return dict((await self.record()).attributes)

    async def wait(self, timeout: float | None = None) -> RunRecord:
        """Wait until the run ends and return its record (no busy loop: in-process
        wake-ups, cross-process polling that backs off).

        Raises:
            TimeoutError: ``timeout`` seconds passed first.
        """
        world = await self.registry.open()
        until = None if timeout is None else time.monotonic() + timeout
        ends = getattr(world, "wait_for_run_end", None)  # a world of an older protocol
        while ends is not None:
            left = 30.0 if until is None else until - time.monotonic()
            rec: RunRecord | None = await ends(self.run_id, timeout=max(min(left, 30.0), 0.0))
            if rec is None:
                raise RunNotFoundError(self.run_id, self.registry.world_url)
            if rec.status in TERMINAL_STATUSES:
                return rec
            if until is not None and time.monotonic() >= until:
                raise TimeoutError(f"run {self.run_id} is still {rec.status}")
        while True:
            rec = await world.get_run(self.run_id)
            if rec is None:
                raise RunNotFoundError(self.run_id, self.registry.world_url)
            if rec.status in TERMINAL_STATUSES:
                return rec
            left = 30.0 if until is None else until - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"run {self.run_id} is still {rec.status}")
            await world.wait_for_run(self.run_id, after_seq=rec.last_seq, timeout=min(left, 30.0))

    async def return_value(self, timeout: float | None = None) -> Any:
        """Wait for the run to end and return its result.

        Raises:
            WorkflowRunFailedError: the run failed; ``.cause`` is its error.
            RunCancelledError: the run was cancelled.
            TimeoutError: ``timeout`` seconds passed first.
        """
        rec = await self.wait(timeout)
        end = await self._end_event(rec)
        if rec.status == "cancelled":
            raise RunCancelledError(self.run_id, end.data.get("reason") if end else None)
        if rec.status == "failed":
            raise WorkflowRunFailedError(self.run_id, rebuild_error(end.payload if end else None))
        if end is None or end.payload is None:
            return None
        wfobj = self.registry.workflows.get(rec.workflow_name)
        if wfobj is not None:
            return wfobj.spec.shape.decode_result(end.payload)
        return serde.decode(end.payload, where=f"the result of run {self.run_id}")

    async def _end_event(self, rec: RunRecord) -> Event | None:
        return await end_event(await self.registry.open(), rec)

    async def cancel(self, reason: str | None = None) -> None:
        """Ask the run to stop: its body gets ``asyncio.CancelledError`` at its current
        await, may clean up, and the run ends as ``cancelled``. No-op on an ended run."""
        await (await self.registry.control()).cancel(self.run_id, reason)

    async def wake(self) -> int:
        """Fire the run's pending durable timers now (a sleep ends early); returns how
        many. For operators: the body sees the timers fire as if their time had come."""
        return await (await self.registry.control()).wake(self.run_id)

    async def fork(self, from_step: int, *, deployment: str | None = None) -> Run:
        """Start a new run of this run's workflow and input that reuses the recorded
        results of its durable calls before ``from_step`` (counted from 0 in call order,
        as ``durably inspect run`` numbers them) and runs from call ``from_step`` on.

        This run is not changed. The fork is pinned to this run's deployment, or to
        ``deployment`` (``"latest"``: the newest the world has seen), so a fork made after
        a fix runs the tail on the fixed code. See :mod:`durably.fork` for what is copied.

        Raises:
            ForkError: ``from_step`` is out of range, or a child run or a live hook before
                it cannot be copied.
        """
        control = await self.registry.control()
        new_id = await control.fork(self.run_id, from_step, deployment=deployment)
        return Run(self.registry, new_id, self.workflow_name)

    async def stream_info(self) -> list[StreamInfo]:
        """The run's streams: namespace, chunk count, whether closed."""
        world = await self.registry.open()
        return await world.stream_info(self.run_id)

    async def chunks(
        self, start_index: int = 0, namespace: str | None = None, *, committed: bool = False
    ) -> AsyncIterator[StreamChunk]:
        """Raw chunks (index, stored payload, the step attempt that wrote it) from
        ``start_index``, tailing live until the stream is closed (or the run ended without
        opening it). ``start_index`` and ``committed`` are as in :meth:`readable`; a
        chunk's ``committed`` is ``True`` when its attempt is known to be committed (on
        every chunk a committed reader yields) and ``None`` when a live reader did not
        check."""
        world = await self.registry.open()
        async for chunk in read_stream(
            world, self.run_id, namespace or "", start_index, committed=committed
        ):
            yield chunk

    async def readable(
        self,
        start_index: int = 0,
        namespace: str | None = None,
        type: Any = None,
        *,
        committed: bool = False,
    ) -> AsyncIterator[Any]:
        """The values of stream ``namespace`` from ``start_index``, as they are written,
        from any process; ends when the stream is closed. To resume after a disconnect,
        pass ``start_index=last_seen + 1``: nothing is duplicated or skipped.

        A negative ``start_index`` counts from the end of the chunks written when
        reading starts: ``-1`` is the last one (``-3`` of 10 chunks starts at 7; more
        negative than the count starts at 0).

        Steps run at least once: an attempt that failed or was killed may have written
        chunks that its retry writes again. A live reader (the default) sees every chunk
        at once, those of such attempts too (each chunk says which attempt wrote it: see
        :meth:`chunks`). With ``committed=True`` only the chunks of step attempts whose
        completion is recorded are yielded (and chunks not written by a step attempt),
        in index order, each once its attempt has completed; the chunks of attempts that
        failed or were lost are skipped, so such a reader never sees a duplicate. Whether
        an attempt completed is read from the run's steps (their status and recorded
        attempt), once per change of the run, not per chunk.

        An attempt may close the stream and then fail or be killed before its completion
        is recorded; its retry then reopens the stream, writes and closes it again. A live
        reader ends at the first close it meets, such a one included; a committed reader
        ends only at a final close (its step ended, or the run did).
        """
        where = f"a chunk of stream {namespace or '(default)'!r} of run {self.run_id}"
        async for chunk in self.chunks(start_index, namespace, committed=committed):
            yield serde.decode(chunk.payload, type, where=where)

    def __await__(self) -> Any:
        return self.return_value().__await__()
