"""The worker: claims work from the world, advances runs, executes steps.

One worker serves one registry (namespace and deployment) on one event loop. It:

* claims runs that need a turn and step/timer tasks that are due, under leases that a
  heartbeat keeps alive (a killed worker's leases expire and another takes over);
* keeps the live body of each run it advanced in memory (the sticky cache), feeding it
  only the events it has not seen, so a step costs the same at step 5,000 as at step 1;
* runs a step it just recorded itself when it has a free slot (inline continuation), and
  records the step's result, the run's next commands and the queue changes in one commit;
* batches the commits of concurrent runs into one transaction (group commit).

Each of those is a module of this package, and :class:`Worker` composes them:

* :mod:`.claims`: the claim loop, the idle wait and the heartbeat;
* :mod:`.slots`: the step slots, turns in flight and leases the worker holds;
* :mod:`.turns`: a run's turn (advance, commit, sticky cache, run-end fan-out);
* :mod:`.steps`: one attempt of a step, its timeout, and recording its outcome;
* :mod:`.cancels`: stopping the steps running here of a run that was cancelled;
* :mod:`.group_commit`: many runs' commits in one transaction;
* :mod:`.schedules`: the schedule driver, one run per tick across all workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any

from ..crypto import sealer_of
from ..events import Event, EventType, NewEvent
from ..runtime.instance import RunInstance, StepCall
from ..streams import StreamWriter
from ..worlds.base import RunRecord, RunWrite, Task, World, WriteResult
from .cancels import Cancels
from .claims import Claims
from .group_commit import GroupCommit
from .retention import retention_loop
from .schedules import ScheduleDriver
from .slots import Slots
from .steps import Steps
from .turns import Turns

if TYPE_CHECKING:
    from ..registry import Workflows

__all__ = ["Worker"]

_log = logging.getLogger("durably.worker")


class Worker:
    """Executes the runs of one registry. Made by the registry; see ``Workflows``."""

    def __init__(
        self,
        registry: Workflows,
        world: World,
        *,
        concurrency: int = 16,
        lease_seconds: float | None = None,
        poll_interval: float = 1.0,
        max_cached_runs: int | None = None,
    ) -> None:
        self.slots = Slots(concurrency, self.kick)
        self.registry = registry
        self.world = world
        self.namespace = registry.namespace
        self.deployment = registry.deployment
        self.concurrency = concurrency
        if lease_seconds is None:
            lease_seconds = float(os.environ.get("DURABLY_LEASE_SECONDS", "30"))
        if max_cached_runs is None:
            max_cached_runs = int(os.environ.get("DURABLY_MAX_CACHED_RUNS", "1000"))
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.max_cached_runs = max_cached_runs
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.committer = GroupCommit(world, self.owner, lease_seconds, self.kick)
        self.streams = StreamWriter(world, max_chunk_bytes=registry.limits.max_payload_bytes)
        self.cancels = Cancels(world)
        self.turns = Turns(
            registry,
            world,
            self.committer,
            self.slots,
            owner=self.owner,
            max_cached_runs=max_cached_runs,
            stopping=self._is_stopping,
            kick=self.kick,
            spawn=self._spawn,
            launch=self._launch,
            stop_steps=self.cancels.stop,
        )
        self.steps = Steps(
            registry,
            world,
            self.turns,
            self.committer,
            self.slots,
            self.streams,
            self.cancels,
            stopping=self._is_stopping,
            spawn_step=self._spawn_step,
        )
        self._wake = asyncio.Event()
        self.claims = Claims(
            world,
            self.slots,
            owner=self.owner,
            namespace=self.namespace,
            deployment=self.deployment,
            # Live views: a workflow or step registered after the worker started is
            # claimed from then on.
            workflows=registry.workflows.keys(),
            steps=registry.steps.keys(),
            lease_seconds=lease_seconds,
            poll_interval=poll_interval,
            wake=self._wake,
            stopping=self._is_stopping,
            on_run=self.begin,
            on_step=self._take_step,
            on_timer=self._take_timer,
            on_beat=self.cancels.check,
            clock=lambda: registry.clock,
            quiet=self.quiet,
            also_due=lambda: self.schedules.upcoming(),
        )
        self.schedules = ScheduleDriver(registry, world, stopping=self._is_stopping)
        # Schedules and rate-limit windows read "now" from the registry's clock (a test's
        # virtual clock skips ahead; see durably.testing), the real time without one.
        self.schedules.clock = self.steps.rate_clock = lambda: _now_of(registry)
        self._bg: set[asyncio.Task[Any]] = set()
        self._step_tasks: set[asyncio.Task[Any]] = set()
        self._main: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._retention: asyncio.Task[None] | None = None
        self._schedules: asyncio.Task[None] | None = None
        self._stopping = False
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def instances(self) -> dict[str, RunInstance]:
        """The live bodies of runs kept in memory (the sticky cache)."""
        return self.turns.instances

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start claiming work on the running loop."""
        self.loop = asyncio.get_running_loop()
        self._main = self.loop.create_task(self.claims.loop(), name="durably-worker")
        self._heartbeat = self.loop.create_task(self._keep_alive(), name="durably-heartbeat")
        if self.registry.retention is not None:
            keep = retention_loop(self.world, self.registry.namespace, self.registry.retention)
            self._retention = self.loop.create_task(keep, name="durably-retention")
        self._schedules = self.loop.create_task(self.schedules.loop(), name="durably-schedules")

    @property
    def running(self) -> bool:
        """True while the worker claims work."""
        return self._main is not None and not self._main.done() and not self._stopping

    def quiet(self) -> bool:
        """Whether nothing of this worker is in flight: no step attempt, no turn, no
        lease held (a virtual clock skips ahead only then)."""
        runs, tasks = self.slots.held()
        return not (self._step_tasks or self._bg or self.slots.busy or runs or tasks)

    def kick(self) -> None:
        """Look for work now (something was just recorded in this process)."""
        self._wake.set()

    def can_begin(self) -> bool:
        """Whether a run started in this process now should be advanced here at once.

        Past a few dozen turns in flight (a burst of starts), new runs go through the
        queue instead, so a burst is taken in batches rather than all at once in memory.
        """
        return self.running and self.slots.turns_free > 0

    def begin(self, run_id: str) -> None:
        """Advance a run this process just created leased to this worker."""
        self.slots.hold_run(run_id)
        self._spawn(self.turns.claimed_turn(run_id))

    async def begin_created(self, create: RunWrite) -> WriteResult | None:
        """Create a run (``create``: its ``run_created`` timed, as the record will be) and
        take its first turn here, in one commit: the live body is made from what
        ``create`` holds, so nothing is read back, and the steps the turn claimed start
        at once. Returns the creation's result, or ``None`` when this worker cannot
        (the caller creates the run in the queue).

        Crash safety is that of any turn: the steps it claimed are leased to this
        worker, and another takes them over when their leases expire.
        """
        meta = create.create
        wf = None if meta is None else self.registry.workflows.get(meta.workflow_name)
        facts = create.facts
        if wf is None or meta is None or not facts or facts[0].type is not EventType.RUN_CREATED:
            return None
        run_id = create.run_id
        record = RunRecord(
            run_id=run_id,
            workflow_name=meta.workflow_name,
            namespace=meta.namespace,
            deployment=meta.deployment,
            status="pending",
            created_at=facts[0].created_at,
            started_at=None,
            completed_at=None,
            last_seq=len(facts),
            idempotency_key=meta.idempotency_key,
            parent_run_id=meta.parent_run_id,
            parent_call=meta.parent_call,
        )
        inst = RunInstance(
            record, wf.spec, self.registry.limits, hook_digest=sealer_of(self.world).hook_digest
        )
        events = [
            Event(run_id, seq, f.type, f.call, f.data, f.payload, f.created_at)
            for seq, f in enumerate(facts, 1)
        ]
        self.slots.hold_run(run_id)
        try:
            inst.index(events)
            for ev in events:
                inst.feed(ev)
            calls, result = await self.turns.first_turn(inst, create)
        finally:
            self.slots.drop_run(run_id)
        self._launch(run_id, calls, self.registry.clock.now())
        return result

    async def advance(
        self,
        run_id: str,
        facts: Sequence[NewEvent] = (),
        *,
        read: bool = False,
        release: bool = False,
    ) -> list[StepCall]:
        """Move a run forward: feed it what it has not seen, deliver ``facts`` (this
        worker's own news), and commit the facts with the body's next commands.

        Returns the new steps this worker claimed to run at once (the caller runs them).
        """
        return await self.turns.advance(run_id, facts, read=read, release=release)

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming, let running steps finish for up to ``grace`` seconds, then hand
        back every lease still held so other workers take over at once."""
        if self._stopping:
            return
        self._stopping = True
        self._wake.set()
        loops = [
            t
            for t in (self._main, self._heartbeat, self._retention, self._schedules)
            if t is not None
        ]
        for t in loops:
            t.cancel()
        try:
            # A claim in flight runs to its end, and the claim loop hands back what it
            # leased (see Claims._claim): wait for that before the world may close.
            if loops:
                await asyncio.wait(loops, timeout=grace)
            pending = [t for t in self._step_tasks | self._bg if not t.done()]
            if pending:
                _, late = await asyncio.wait(pending, timeout=grace)
                for t in late:
                    t.cancel()
                if late:
                    await asyncio.wait(late, timeout=2.0)
            await self.streams.aclose()
            runs, tasks = self.slots.held()
            with contextlib.suppress(Exception):
                await self.world.release(owner=self.owner, run_ids=runs, tasks=tasks)
        except asyncio.CancelledError:
            # Cancelled while stopping (aclose() under a timeout): stop what still runs
            # without waiting for it; the leases it held expire on their own.
            for t in self._step_tasks | self._bg:
                t.cancel()
            raise
        finally:
            self.turns.close()

    def abandon(self) -> None:
        """Forget everything without touching the world (its loop is gone); the leases
        expire on their own."""
        self._stopping = True
        for inst in self.turns.instances.values():
            with contextlib.suppress(BaseException):
                inst.close()
        self.turns.instances.clear()

    # -- the parts' background tasks ---------------------------------------------------

    def _is_stopping(self) -> bool:
        return self._stopping or self._torn_down()

    def _torn_down(self) -> bool:
        """Whether the event loop is ending under the worker without :meth:`stop`:
        ``asyncio.run()`` returned from its main coroutine and cancels every task. A
        step cancelled so is then handed back, not recorded as failed."""
        main = self._main
        return main is not None and (main.done() or main.cancelling() > 0)

    async def _keep_alive(self) -> None:
        """The heartbeat; when the loop ends without :meth:`stop` (a script that
        started a run and returned), hand back what the worker holds, so that another
        worker takes it over at once instead of when the leases expire."""
        try:
            await self.claims.heartbeat()
        except asyncio.CancelledError:
            if not self._stopping:
                await self._hand_back_at_exit()
            raise

    async def _hand_back_at_exit(self) -> None:
        self._stopping = True
        # The loop cancelled every task at once: let them unwind (a step attempt in a
        # thread cannot be stopped; its task lease is handed back all the same).
        pending = [t for t in self._step_tasks | self._bg if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=2.0)
        runs, tasks = self.slots.held()
        if runs or tasks:
            with contextlib.suppress(Exception):
                await self.world.release(owner=self.owner, run_ids=runs, tasks=tasks)

    def _take_step(self, task: Task) -> None:
        self._spawn_step(self.steps.claimed(task))

    def _take_timer(self, task: Task) -> None:
        self._spawn(self.turns.fire_timer(task))

    def _launch(self, run_id: str, calls: Sequence[StepCall], started: float) -> None:
        self.steps.launch(run_id, calls, started)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        self._track(coro, self._bg)

    def _spawn_step(self, coro: Awaitable[Any]) -> None:
        # Step tasks are the ones stop() gives time to finish their attempt.
        self._track(coro, self._step_tasks)

    def _track(self, coro: Awaitable[Any], group: set[asyncio.Task[Any]]) -> None:
        task = asyncio.ensure_future(coro)
        group.add(task)
        task.add_done_callback(group.discard)
        task.add_done_callback(_log_crash)
        task.add_done_callback(self._settled)

    def _settled(self, task: asyncio.Task[Any]) -> None:
        # Under a skipping clock, the claim loop skips ahead as soon as the worker is
        # quiet: tell it now rather than at its next poll.
        if self.registry.clock.skipping and self.quiet():
            self.kick()


def _now_of(registry: Workflows) -> float:
    """The registry's time: its clock's (``Workflows.clock``, which a test may make
    virtual)."""
    return float(registry.clock.now())


def _log_crash(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _log.error("durably worker task crashed", exc_info=task.exception())
