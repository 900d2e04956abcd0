"""The worker: claims work from the world, advances runs, executes steps.

One worker serves one registry (namespace and deployment) on one event loop. It:

* claims runs that need a turn and step/timer tasks that are due, under leases that a
  heartbeat keeps alive (a killed worker's leases expire and another takes over);
* keeps the live body of each run it advanced in memory (the sticky cache), feeding it
  only the events it has not seen, so a step costs the same at step 5,000 as at step 1;
* runs a step it just recorded itself when it has a free slot (inline continuation), and
  records the step's result, the run's next commands and the queue changes in one commit;
* batches the commits of concurrent runs into one transaction (group commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import secrets
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from . import telemetry
from .crypto import sealer_of
from .durations import deadline
from .errors import (
    FatalError,
    NonDeterminismError,
    PayloadTooLargeError,
    RetryableError,
    SerializationError,
    StepNotRegisteredError,
    StepTimeoutError,
)
from .events import TERMINAL_RUN_TYPES, EventType, NewEvent
from .runtime.context import SERVICES, STEP, StepMetadata, StepServices
from .runtime.failures import encode_error, error_type_name
from .runtime.instance import RunInstance, StepCall, StepSpec
from .streams import StreamWriter
from .worlds.base import TERMINAL_STATUSES, Commit, RunWrite, Task, World, WriteResult

if TYPE_CHECKING:
    from .registry import Workflows

__all__ = ["Worker"]

_log = logging.getLogger("durably.worker")

#: Backoff of a failed step attempt without ``retry_after``: base * 2**(attempt-1), capped.
DEFAULT_RETRY_BASE = 1.0
MAX_RETRY_DELAY = 300.0
#: Turns a worker advances at once (claimed, or begun by start() in this process).
MAX_TURNS_AT_ONCE = 64
#: A run whose next timer is further away than this leaves the sticky cache.
STICKY_TIMER_HORIZON = 2.0


class GroupCommit:
    """Folds the commits of concurrent runs into one world transaction."""

    def __init__(
        self,
        world: World,
        owner: str,
        lease_seconds: float,
        on_new_work: Callable[[], None] | None = None,
    ) -> None:
        self.world = world
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.on_new_work = on_new_work
        self._queue: list[tuple[list[RunWrite], asyncio.Future[list[WriteResult]]]] = []
        self._leading = False
        self.concurrent = 0  # how many callers are likely to commit soon

    async def commit(self, writes: list[RunWrite]) -> list[WriteResult]:
        """Commit ``writes`` atomically (possibly together with other callers' writes)."""
        if self._leading:
            fut: asyncio.Future[list[WriteResult]] = asyncio.get_running_loop().create_future()
            self._queue.append((writes, fut))
            return await fut
        self._leading = True
        try:
            if self.concurrent > 1:
                await asyncio.sleep(0)  # let the others that are ready join this batch
            mine: list[WriteResult] | None = None
            batch: list[tuple[list[RunWrite], asyncio.Future[list[WriteResult]] | None]]
            batch = [(writes, None), *self._queue]
            self._queue = []
            while batch:
                flat = [w for ws, _ in batch for w in ws]
                try:
                    result = await self.world.commit(
                        Commit(flat, owner=self.owner, lease_seconds=self.lease_seconds)
                    )
                except BaseException as e:
                    # Those who queued meanwhile must hear it too, not wait for a commit
                    # that may never come.
                    for _, f in [*batch, *self._queue]:
                        if f is not None and not f.done():
                            f.set_exception(e)
                    self._queue = []
                    if mine is None:
                        raise
                    break
                if result.new_work and self.on_new_work is not None:
                    self.on_new_work()
                i = 0
                for ws, f in batch:
                    part = result.results[i : i + len(ws)]
                    i += len(ws)
                    if f is None:
                        mine = part
                    elif not f.done():
                        f.set_result(part)
                batch = list(self._queue)
                self._queue = []
            assert mine is not None
            return mine
        finally:
            self._leading = False


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
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
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
        self._services = StepServices(world, self.streams)
        self.instances: OrderedDict[str, RunInstance] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self._busy = 0  # step slots in use or reserved
        self._held_runs: set[str] = set()
        self._foreign: set[str] = set()  # runs of workflows this process lacks
        self._held_tasks: set[tuple[str, int]] = set()
        self._bg: set[asyncio.Task[Any]] = set()
        self._step_tasks: set[asyncio.Task[Any]] = set()
        self._main: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._starved = False  # the claim loop waits for a free slot
        self.loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start claiming work on the running loop."""
        self.loop = asyncio.get_running_loop()
        self._main = self.loop.create_task(self._claim_loop(), name="durably-worker")
        self._heartbeat = self.loop.create_task(self._beat(), name="durably-heartbeat")

    @property
    def running(self) -> bool:
        """True while the worker claims work."""
        return self._main is not None and not self._main.done() and not self._stopping

    def kick(self) -> None:
        """Look for work now (something was just recorded in this process)."""
        self._wake.set()

    def can_begin(self) -> bool:
        """Whether a run started in this process now should be advanced here at once.

        Past a few dozen turns in flight (a burst of starts), new runs go through the
        queue instead, so a burst is taken in batches rather than all at once in memory.
        """
        return self.running and len(self._held_runs) < MAX_TURNS_AT_ONCE

    def begin(self, run_id: str) -> None:
        """Advance a run this process just created leased to this worker."""
        self._held_runs.add(run_id)
        self._spawn(self._claimed_turn(run_id))

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming, let running steps finish for up to ``grace`` seconds, then hand
        back every lease still held so other workers take over at once."""
        if self._stopping:
            return
        self._stopping = True
        self._wake.set()
        for t in (self._main, self._heartbeat):
            if t is not None:
                t.cancel()
        pending = [t for t in self._step_tasks | self._bg if not t.done()]
        if pending:
            _, late = await asyncio.wait(pending, timeout=grace)
            for t in late:
                t.cancel()
            if late:
                await asyncio.wait(late, timeout=2.0)
        await self.streams.aclose()
        with contextlib.suppress(Exception):
            await self.world.release(
                owner=self.owner, run_ids=list(self._held_runs), tasks=list(self._held_tasks)
            )
        for inst in self.instances.values():
            inst.close()
        self.instances.clear()

    def abandon(self) -> None:
        """Forget everything without touching the world (its loop is gone); the leases
        expire on their own."""
        self._stopping = True
        for inst in self.instances.values():
            with contextlib.suppress(BaseException):
                inst.close()
        self.instances.clear()

    def _spawn(self, coro: Awaitable[Any], *, step: bool = False) -> None:
        task = asyncio.ensure_future(coro)
        group = self._step_tasks if step else self._bg
        group.add(task)
        task.add_done_callback(group.discard)
        task.add_done_callback(_log_crash)

    # -- claiming ----------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        world = self.world
        while not self._stopping:
            try:
                # Cleared before the claim, so news that arrives while it runs (a commit
                # of this worker that queued work) is not lost before the idle wait.
                self._wake.clear()
                free = self.concurrency - self._busy
                claim = await world.claim(
                    owner=self.owner,
                    namespace=self.namespace,
                    deployment=self.deployment,
                    max_runs=max(MAX_TURNS_AT_ONCE - len(self._held_runs), 0),
                    max_tasks=max(free, 0),
                    lease_seconds=self.lease_seconds,
                )
                for run_id in claim.runs:
                    self._held_runs.add(run_id)
                    self._spawn(self._claimed_turn(run_id))
                for task in claim.tasks:
                    self._held_tasks.add((task.run_id, task.call))
                    if task.kind == "step":
                        self._busy += 1
                        self._spawn(self._claimed_step(task), step=True)
                    else:
                        self._spawn(self._fire_timer(task))
                if claim.runs or claim.tasks:
                    await asyncio.sleep(0)
                    continue
                await self._idle(free > 0)
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("durably worker: claiming failed; retrying in 1s")
                await asyncio.sleep(1.0)

    async def _idle(self, can_take_tasks: bool) -> None:
        self._starved = not can_take_tasks
        timeout = self.poll_interval
        due = await self.world.next_due(namespace=self.namespace, deployment=self.deployment)
        if due is not None and can_take_tasks:
            timeout = min(timeout, max(due - time.time(), 0.0))
        if timeout <= 0:
            await asyncio.sleep(0.001)
            return
        if self._wake.is_set():
            return  # news since this round's claim began: claim again
        waker = asyncio.ensure_future(self._wake.wait())
        watcher = asyncio.ensure_future(
            self.world.wait_for_work(namespace=self.namespace, timeout=timeout)
        )
        try:
            await asyncio.wait({waker, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waker.cancel()
            watcher.cancel()

    async def _beat(self) -> None:
        while True:
            try:
                # The world keeps when each deployment's workers were last alive, so
                # runs pinned to a deployment nobody serves any more are visible.
                await self.world.touch_deployment(self.namespace, self.deployment)
            except Exception:
                _log.exception("durably worker: recording the deployment failed")
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                if self._held_runs or self._held_tasks:
                    await self.world.extend_leases(
                        owner=self.owner,
                        run_ids=list(self._held_runs),
                        tasks=list(self._held_tasks),
                        lease_seconds=self.lease_seconds,
                    )
            except Exception:
                _log.exception("durably worker: extending leases failed")

    # -- advancing runs ----------------------------------------------------------------

    def _lock(self, run_id: str) -> asyncio.Lock:
        lock = self._locks.get(run_id)
        if lock is None:
            lock = self._locks[run_id] = asyncio.Lock()
            if len(self._locks) > 2 * self.max_cached_runs + 1024:
                self._prune_locks()
        return lock

    def _prune_locks(self) -> None:
        """Forget the locks of runs that are neither in memory nor being advanced."""
        for run_id, lock in list(self._locks.items()):
            if not lock.locked() and run_id not in self.instances:
                del self._locks[run_id]

    async def _claimed_turn(self, run_id: str) -> None:
        try:
            await self._advance_and_launch(run_id, read=True, release=True)
        finally:
            self._held_runs.discard(run_id)

    async def _load(self, run_id: str) -> RunInstance | None:
        rec = await self.world.get_run(run_id)
        if rec is None or rec.status in TERMINAL_STATUSES:
            return None
        wf = self.registry.workflows.get(rec.workflow_name)
        if wf is None:
            self._foreign.add(run_id)
            _log.error(
                "durably worker: run %s is of workflow %r, which this process has not "
                "registered (registered: %s); leaving it for a worker that has",
                run_id,
                rec.workflow_name,
                ", ".join(sorted(self.registry.workflows)) or "none",
            )
            return None
        return RunInstance(
            rec, wf.spec, self.registry.limits, hook_digest=sealer_of(self.world).hook_digest
        )

    @telemetry.traced_turn
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
        try:
            return await self._advance(run_id, facts, read=read, release=release)
        finally:
            self._forget_lock(run_id)

    def _forget_lock(self, run_id: str) -> None:
        """Drop a run's lock once nothing holds it, waits on it, or keeps the run in
        memory (a sleeping run costs this worker nothing)."""
        lock = self._locks.get(run_id)
        if lock is None or lock.locked() or run_id in self.instances:
            return
        if getattr(lock, "_waiters", None):
            return
        del self._locks[run_id]

    async def _advance(
        self, run_id: str, facts: Sequence[NewEvent], *, read: bool, release: bool
    ) -> list[StepCall]:
        async with self._lock(run_id):
            inst = self.instances.pop(run_id, None)
            if inst is None:
                inst = await self._load(run_id)
                if inst is None:
                    if facts:
                        await self.committer.commit([RunWrite(run_id, facts=list(facts))])
                    if release and run_id not in self._foreign:
                        await self.world.release(owner=self.owner, run_ids=[run_id], tasks=())
                    # A run of a workflow this process does not have keeps its lease
                    # until it expires, so this worker does not claim it in a loop.
                    self._foreign.discard(run_id)
                    return []
                read = True
            now = time.time()
            last_read = inst.seen_seq
            try:
                if read:
                    events = await self.world.read_events(run_id, after_seq=inst.seen_seq)
                    if events:
                        last_read = events[-1].seq
                        inst.index(events)
                    for ev in events:
                        inst.feed(ev)
                expected = inst.seen_seq
                if not inst.record.started_at and inst.task is None and not inst.done:
                    started = NewEvent(EventType.RUN_STARTED, None, {}, None, now)
                    facts = [started, *facts]
                for fact in facts:
                    if not fact.created_at:
                        fact.created_at = now
                    inst.deliver(fact, fact.created_at)
            except NonDeterminismError as e:
                inst.close()
                await self._fail_run(inst, last_read, list(facts), e, release)
                return []
            return await self._commit_turn(inst, list(facts), expected, release, now)

    async def _commit_turn(
        self,
        inst: RunInstance,
        facts: list[NewEvent],
        expected: int,
        release: bool,
        now: float,
    ) -> list[StepCall]:
        """Commit the turn; returns the steps it claimed for this worker to run now."""
        run_id = inst.run_id
        commands = inst.new_commands()
        claimed: list[StepCall] = []
        if not self._stopping:
            for sc in inst.new_step_calls():
                if self._busy >= self.concurrency:
                    break
                self._busy += 1
                claimed.append(sc)
        writes = [
            RunWrite(
                run_id,
                facts=facts,
                expected_seq=expected,
                commands=commands,
                claim_calls=[sc.call for sc in claimed],
                release=release,
            )
        ]
        writes += [replace(cw, requires=run_id) for cw in inst.child_writes()]
        end = next((c for c in commands if c.type in TERMINAL_RUN_TYPES), None)
        if end is not None:
            writes += self._ending_writes(inst, end)
        try:
            results = await self.committer.commit(writes)
        except BaseException:
            self._busy -= len(claimed)
            inst.close()
            raise
        res = results[0]
        telemetry.note_turn(res.ok, commands)
        if not res.ok:
            self._busy -= len(claimed)
            inst.close()
            self._wake.set()  # the run may need a turn now; claim it afresh
            return []
        inst.committed(res.own_seq)
        if res.last_seq > res.own_seq:
            # The world appended facts of its own (a hook registered or refused): read
            # them in the run's next turn, right away.
            self._spawn(self._advance_and_launch(run_id))
        if inst.done:
            inst.close()
            self._locks.pop(run_id, None)
        else:
            self._keep(inst)
        return claimed

    async def _advance_and_launch(
        self,
        run_id: str,
        facts: Sequence[NewEvent] = (),
        *,
        read: bool = True,
        release: bool = False,
    ) -> None:
        self._launch(
            run_id, await self.advance(run_id, facts, read=read, release=release), time.time()
        )

    def _parent_write(self, inst: RunInstance, end: NewEvent) -> RunWrite:
        rec = inst.record
        assert rec.parent_run_id is not None
        if end.type is EventType.RUN_COMPLETED:
            fact = NewEvent(EventType.CHILD_COMPLETED, rec.parent_call, {}, end.payload)
        elif end.type is EventType.RUN_FAILED:
            fact = NewEvent(EventType.CHILD_FAILED, rec.parent_call, dict(end.data), end.payload)
        else:
            from .errors import RunCancelledError

            err = RunCancelledError(rec.run_id)
            fact = NewEvent(
                EventType.CHILD_FAILED,
                rec.parent_call,
                {"error_type": error_type_name(err)},
                encode_error(err),
            )
        return RunWrite(rec.parent_run_id, facts=[fact], requires=rec.run_id)

    async def _fail_run(
        self,
        inst: RunInstance,
        seen: int,
        facts: list[NewEvent],
        error: BaseException,
        release: bool,
    ) -> None:
        """End a run whose replay diverged from its log (its body cannot go on)."""
        _log.error("durably: %s", error)
        run_id = inst.run_id
        end = NewEvent(
            EventType.RUN_FAILED,
            None,
            {"error_type": error_type_name(error)},
            encode_error(error),
        )
        telemetry.note_turn(True, [end])
        writes = [RunWrite(run_id, facts=facts, expected_seq=seen, commands=[end], release=release)]
        writes += self._ending_writes(inst, end)
        await self.committer.commit(writes)
        self._locks.pop(run_id, None)

    def _ending_writes(self, inst: RunInstance, end: NewEvent) -> list[RunWrite]:
        """What a run's end tells others: its parent gets the outcome, its children that
        are still running are cancelled. Applied only if the end itself is."""
        run_id = inst.run_id
        writes: list[RunWrite] = []
        rec = inst.record
        if rec.parent_run_id and rec.parent_call is not None:
            writes.append(self._parent_write(inst, end))
        for child_id in inst.pending_children():
            stop = NewEvent(EventType.RUN_CANCEL_REQUESTED, None, {"reason": "parent ended"})
            writes.append(RunWrite(child_id, facts=[stop], requires=run_id))
        return writes

    def _keep(self, inst: RunInstance) -> None:
        """Keep a run's live body in memory only while it is likely to move soon."""
        keep = inst.waiting_on_steps()
        if not keep:
            timers = inst.loop.pending_timers().values()
            keep = any(due - time.time() <= STICKY_TIMER_HORIZON for due in timers)
        if not keep:
            inst.close()
            return
        self.instances[inst.run_id] = inst
        self.instances.move_to_end(inst.run_id)
        while len(self.instances) > self.max_cached_runs:
            _, old = self.instances.popitem(last=False)
            old.close()

    # -- timers ------------------------------------------------------------------------

    async def _fire_timer(self, task: Task) -> None:
        try:
            fired = NewEvent(EventType.WAIT_COMPLETED, task.call, {}, None, time.time())
            await self._advance_and_launch(task.run_id, [fired], read=False)
        finally:
            self._held_tasks.discard((task.run_id, task.call))

    # -- steps -------------------------------------------------------------------------

    async def _claimed_step(self, task: Task) -> None:
        key = (task.run_id, task.call)
        handed_over = False
        try:
            sc = await self._step_call(task.run_id, task.call)
            if sc is None:
                return
            if task.attempt > sc.spec.max_retries + 1:
                err = FatalError(
                    f"step {sc.spec.name!r} was started {task.attempt - 1} times and the "
                    "worker running it was lost each time (killed or crashed); giving up"
                )
                lost = self._failed(sc, err, task.attempt, None)
                await self._advance_and_launch(task.run_id, [lost], read=False)
                return
            handed_over = True  # _execute gives the slot back
            await self._execute(task.run_id, sc, task.attempt, time.time())
        finally:
            if not handed_over:
                self._busy -= 1
                if self._starved:
                    self._wake.set()
            self._held_tasks.discard(key)

    async def _step_call(self, run_id: str, call: int) -> StepCall | None:
        inst = self.instances.get(run_id)
        if inst is not None and call in inst.steps:
            return inst.steps[call]
        ev = await self.world.read_command(run_id, call)
        if ev is None or ev.type is not EventType.STEP_CREATED:
            return None
        name = str(ev.data.get("name"))
        step = self.registry.steps.get(name)
        if step is not None:
            base = step.spec
            spec = StepSpec(
                name,
                base.fn,
                base.shape,
                max_retries=int(ev.data.get("max_retries", 3)),
                retry_after=ev.data.get("retry_after"),
                timeout=ev.data.get("timeout"),
            )
            return StepCall(call, spec, ev.payload or b"")
        # An ad-hoc step (durably.run_step): replaying the body registers its callable.
        async with self._lock(run_id):
            inst = self.instances.pop(run_id, None) or await self._load(run_id)
            if inst is not None:
                try:
                    events = await self.world.read_events(run_id, after_seq=inst.seen_seq)
                    inst.index(events)
                    for e in events:
                        inst.feed(e)
                except NonDeterminismError:
                    inst.close()
                    inst = None
            if inst is not None:
                replayed = inst.steps.get(call)
                inst.close()  # nothing of this replay is committed
                if replayed is not None:
                    # The callable comes from the replay; the arguments from the log.
                    return StepCall(call, replayed.spec, ev.payload or b"")
        spec = StepSpec(name, None, None, max_retries=0)
        return StepCall(call, spec, ev.payload or b"")

    async def _execute(self, run_id: str, sc: StepCall, attempt: int, started: float) -> None:
        """Run one attempt of a step in a slot this worker holds, record it, and go on
        with the run's next step in this same task when the commit claimed one (the
        common sequential case: no task and no queue round trip per step)."""
        current: StepCall | None = sc
        while current is not None:
            key = (run_id, current.call)
            self._held_tasks.add(key)
            self.committer.concurrent += 1
            try:
                fact = await self._attempt(run_id, current, attempt, started)
            finally:
                self._busy -= 1
                self.committer.concurrent -= 1
                if self._starved:
                    self._wake.set()
            following: list[StepCall] = []
            try:
                following = await self._record(run_id, fact)
            finally:
                self._held_tasks.discard(key)
            started, attempt = time.time(), 1
            current = following[0] if following else None
            self._launch(run_id, following[1:], started)

    async def _record(self, run_id: str, fact: NewEvent) -> list[StepCall]:
        """Record a step attempt's outcome, retrying while the world is unreachable (a
        result in hand is worth a few seconds; if it cannot be recorded, the task's lease
        expires and the step runs again elsewhere)."""
        delay = 0.2
        for attempt in range(6):
            try:
                if fact.type is EventType.STEP_RETRYING:
                    await self.committer.commit([RunWrite(run_id, facts=[fact])])
                    return []
                return await self.advance(run_id, [fact])
            except asyncio.CancelledError:
                raise
            except Exception:
                if attempt == 5 or self._stopping:
                    raise
                _log.warning("durably worker: recording a step of %s failed; retrying", run_id)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 3.0)
        return []

    def _launch(self, run_id: str, calls: Sequence[StepCall], started: float) -> None:
        """Run steps this worker claimed inline, each in a task of its own."""
        for sc in calls:
            self._held_tasks.add((run_id, sc.call))
            self._spawn(self._execute(run_id, sc, 1, started), step=True)

    @telemetry.traced_attempt
    async def _attempt(self, run_id: str, sc: StepCall, attempt: int, started: float) -> NewEvent:
        spec = sc.spec
        if spec.fn is None or spec.shape is None:
            err = StepNotRegisteredError(
                f"step {spec.name!r} of run {run_id} is not registered in this process; "
                "decorate it with @wf.step in the module the worker imports"
            )
            return self._failed(sc, err, attempt, started)
        meta = StepMetadata(
            run_id=run_id,
            step_id=f"{run_id}.{sc.call}",
            step_name=spec.name,
            attempt=attempt,
            step_started_at=datetime.fromtimestamp(started, UTC),
        )
        token = STEP.set(meta)
        services = SERVICES.set(self._services)
        try:
            args, kwargs = spec.shape.decode_args(sc.args)
            result = await _call(spec.fn, args, kwargs, spec.timeout, spec.name)
            # Everything the step streamed is stored before its completion is.
            await self.streams.drain(run_id)
            payload = spec.shape.encode_result(result)
            if len(payload) > self.registry.limits.max_payload_bytes:
                raise PayloadTooLargeError(
                    f"the return value of step {spec.name!r} is {len(payload):,} bytes "
                    f"serialized, over the limit of {self.registry.limits.max_payload_bytes:,};"
                    " store large data elsewhere and return a reference"
                )
        except asyncio.CancelledError:
            if self._stopping:
                raise
            return self._failed(sc, RuntimeError("the step was cancelled"), attempt, started)
        except (FatalError, SerializationError, PayloadTooLargeError) as e:
            return self._failed(sc, e, attempt, started)
        except Exception as e:
            if attempt > spec.max_retries:
                return self._failed(sc, e, attempt, started)
            return self._retrying(sc, e, attempt, started)
        finally:
            STEP.reset(token)
            SERVICES.reset(services)
        return NewEvent(
            EventType.STEP_COMPLETED,
            sc.call,
            {"attempt": attempt, "started_at": started},
            payload,
            time.time(),
        )

    def _failed(
        self, sc: StepCall, err: BaseException, attempt: int, started: float | None
    ) -> NewEvent:
        data: dict[str, Any] = {"attempt": attempt, "error_type": error_type_name(err)}
        if started is not None:
            data["started_at"] = started
        return NewEvent(EventType.STEP_FAILED, sc.call, data, encode_error(err), time.time())

    def _retrying(self, sc: StepCall, err: BaseException, attempt: int, started: float) -> NewEvent:
        now = time.time()
        if isinstance(err, RetryableError) and err.retry_after is not None:
            retry_at = deadline(err.retry_after, now)
        else:
            base = sc.spec.retry_after if sc.spec.retry_after is not None else DEFAULT_RETRY_BASE
            retry_at = now + min(base * (2 ** (attempt - 1)), MAX_RETRY_DELAY)
        return NewEvent(
            EventType.STEP_RETRYING,
            sc.call,
            {
                "attempt": attempt,
                "error_type": error_type_name(err),
                "retry_at": retry_at,
                "started_at": started,
            },
            encode_error(err),
            now,
        )


async def _call(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    timeout: float | None,
    name: str,
) -> Any:
    if inspect.iscoroutinefunction(fn):
        aw: Awaitable[Any] = fn(*args, **kwargs)
    else:
        aw = asyncio.to_thread(fn, *args, **kwargs)
    if timeout is None:
        return await aw
    try:
        return await asyncio.wait_for(aw, timeout)
    except TimeoutError:
        raise StepTimeoutError(
            f"step {name!r} ran longer than its timeout of {timeout:g}s"
        ) from None


def _log_crash(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _log.error("durably worker task crashed", exc_info=task.exception())
