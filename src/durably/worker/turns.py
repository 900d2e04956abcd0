"""Turns: moving a run forward and committing what it did.

A turn feeds a run's live body the events it has not seen and this worker's own news
(a step's result, a timer fired), then commits those facts with the body's next commands
in one write, guarded by the last sequence number the body saw (so two workers racing on
one run cannot both advance it). The same commit claims the new steps this worker has
free slots for, creates the child runs the body started, and, when the run ends, tells
its parent and cancels its children still running.

A run's live body stays in memory between turns (the sticky cache) while it is likely
to move soon, so the next turn feeds it only the new events instead of replaying the log.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from .. import telemetry
from ..crypto import sealer_of
from ..errors import NonDeterminismError, RunCancelledError
from ..events import TERMINAL_RUN_TYPES, Event, EventType, NewEvent
from ..runtime.failures import encode_error, error_type_name
from ..runtime.instance import ChildStart, RunInstance, StepCall
from ..runtime.recorded import PayloadOpener
from ..worlds.base import (
    TERMINAL_STATUSES,
    RunMeta,
    RunRecord,
    RunWrite,
    Task,
    World,
    WriteResult,
)
from .group_commit import GroupCommit
from .slots import Slots

if TYPE_CHECKING:
    from ..registry import Workflows

__all__ = ["STICKY_TIMER_HORIZON", "Turns", "child_write"]

_log = logging.getLogger("durably.worker")

#: A run whose next timer is further away than this leaves the sticky cache.
STICKY_TIMER_HORIZON = 2.0

#: Runs steps a turn claimed: (run id, step calls, when they started).
Launch = Callable[[str, Sequence[StepCall], float], None]


class Turns:
    """Advances the runs of one worker and keeps their live bodies (the sticky cache).

    Args:
        registry: the workflows this process has.
        world: where the runs are.
        committer: commits turns (together with other runs' turns).
        slots: the worker's step slots and leases.
        owner: the worker's lease owner name.
        max_cached_runs: most live bodies kept in memory.
        stopping: whether the worker is stopping (then a turn claims no steps).
        kick: tells the claim loop to claim now.
        spawn: runs a coroutine in the background.
        launch: runs steps a turn claimed for this worker.
        stop_steps: stops the attempts running here of some steps of a run (those its
            body had called when it was cancelled).
    """

    def __init__(
        self,
        registry: Workflows,
        world: World,
        committer: GroupCommit,
        slots: Slots,
        *,
        owner: str,
        max_cached_runs: int,
        stopping: Callable[[], bool],
        kick: Callable[[], None],
        spawn: Callable[[Awaitable[Any]], None],
        launch: Launch,
        stop_steps: Callable[[str, frozenset[int]], None],
    ) -> None:
        self.registry = registry
        self.world = world
        self.committer = committer
        self.slots = slots
        self.owner = owner
        self.max_cached_runs = max_cached_runs
        self.instances: OrderedDict[str, RunInstance] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        #: Live bodies in a turn now (out of the cache meanwhile): steps claimed from
        #: the queue meanwhile read their call and metadata here, not from the world.
        self._turning: dict[str, RunInstance] = {}
        #: Facts of a run waiting for its lock, to go in one turn (see _advance_together).
        self._mail: dict[str, list[tuple[Sequence[NewEvent], asyncio.Future[list[StepCall]]]]] = {}
        self._foreign: set[str] = set()  # runs of workflows this process lacks
        self._stopping = stopping
        self._kick = kick
        self._spawn = spawn
        self._launch = launch
        self._stop_steps = stop_steps

    def _now(self) -> float:
        # The registry's clock (a test may skip it ahead): the time of this worker's facts.
        return self.registry.clock.now()

    # -- entry points ------------------------------------------------------------------

    async def claimed_turn(self, run_id: str) -> None:
        """Take the turn of a run this worker holds the lease of, then hand it back."""
        try:
            await self.advance_and_launch(run_id, read=True, release=True)
        finally:
            self.slots.drop_run(run_id)

    async def first_turn(
        self, inst: RunInstance, create: RunWrite
    ) -> tuple[list[StepCall], WriteResult]:
        """The first turn of a run not recorded yet (``inst`` has seen ``create``'s
        facts), committed together with its creation: the run is created, started and
        its first steps claimed by this worker in one commit. Returns the steps claimed
        (the caller runs them) and the result of the creation (not ``ok``, and nothing
        recorded of the turn, when an idempotency key matched an existing run)."""
        try:
            created = create.facts[0].data
            async with self._lock(inst.run_id):
                with telemetry.created_turn_span(inst.run_id, created):
                    now = self._now()
                    started = NewEvent(EventType.RUN_STARTED, None, {}, None, now)
                    inst.deliver(started, now)
                    return await self._commit_turn(inst, [started], 0, True, create=create)
        finally:
            self._forget_lock(inst.run_id)

    async def fire_timer(self, task: Task) -> None:
        """A timer task is due: deliver it to its run."""
        try:
            fired = NewEvent(EventType.WAIT_COMPLETED, task.call, {}, None, self._now())
            await self.advance_and_launch(task.run_id, [fired], read=False)
        finally:
            self.slots.drop_task(task.run_id, task.call)

    async def advance_and_launch(
        self,
        run_id: str,
        facts: Sequence[NewEvent] = (),
        *,
        read: bool = True,
        release: bool = False,
    ) -> None:
        """Advance a run, then run the steps its turn claimed."""
        self._launch(
            run_id, await self.advance(run_id, facts, read=read, release=release), self._now()
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
        lock = self._lock(run_id)
        try:
            if facts and not read and not release:
                return await self._advance_together(run_id, facts)
            # acquire/release, not ``async with``: two coroutines less per step.
            await lock.acquire()
            try:
                return await self._turn(run_id, facts, read=read, release=release)
            finally:
                lock.release()
        finally:
            self._turning.pop(run_id, None)
            self._forget_lock(run_id)

    async def _advance_together(self, run_id: str, facts: Sequence[NewEvent]) -> list[StepCall]:
        """Deliver ``facts`` in one turn with those of the run's other steps that ended
        while it waited for the run (a gather's steps end together): one commit for them
        all, not one each, one after another. The turn's new steps go to the caller that
        takes it; the others get none (or its error, and record their facts again)."""
        mail = self._mail.setdefault(run_id, [])
        mine: asyncio.Future[list[StepCall]] = asyncio.get_running_loop().create_future()
        mail.append((facts, mine))
        try:
            async with self._lock(run_id):
                if mine.done():
                    return mine.result()  # a turn that held the run took these facts
                batch = self._mail.pop(run_id, [])
                together = [f for fs, _ in batch for f in fs]
                try:
                    claimed = await self._turn(run_id, together, read=False, release=False)
                except Exception as e:
                    for _, fut in batch:
                        if fut is not mine and not fut.done():
                            fut.set_exception(e)
                    raise
                except BaseException:
                    # Cancelled: the others' facts wait for the next turn of the run.
                    rest = [b for b in batch if b[1] is not mine]
                    if rest:
                        self._mail[run_id] = rest + self._mail.get(run_id, [])
                    raise
                for _, fut in batch:
                    if fut is not mine and not fut.done():
                        fut.set_result([])
                return claimed
        finally:
            left = self._mail.get(run_id)
            if left is not None and not mine.done():
                left[:] = [b for b in left if b[1] is not mine]
                if not left:
                    del self._mail[run_id]

    # -- one turn ----------------------------------------------------------------------

    async def _turn(
        self, run_id: str, facts: Sequence[NewEvent], *, read: bool, release: bool
    ) -> list[StepCall]:
        """One turn of run ``run_id``, under its lock."""
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
        self._turning[run_id] = inst
        now = self._now()
        last_read = inst.seen_seq
        try:
            if read:
                events, opener = await self._read_log(run_id, inst.seen_seq)
                if events:
                    last_read = events[-1].seq
                    inst.index(events, opener)
                inst.feed_log(events, opener)
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
        if inst.cancel_requested:
            # Its steps running here stop now (not at their end, maybe hours away).
            self._stop_steps(run_id, inst.steps_at_cancel)
        return (await self._commit_turn(inst, list(facts), expected, release))[0]

    async def _commit_turn(
        self,
        inst: RunInstance,
        facts: list[NewEvent],
        expected: int,
        release: bool,
        create: RunWrite | None = None,
    ) -> tuple[list[StepCall], WriteResult]:
        """Commit the turn (with ``create``: with the run's creation, leased to this
        worker); returns the steps it claimed for this worker to run now, and what
        happened to the run's write."""
        run_id = inst.run_id
        commands = inst.new_commands()
        claimed: list[StepCall] = []
        if not self._stopping():
            for sc in inst.new_step_calls():
                if not self.slots.try_take():
                    break
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
        if create is not None:
            writes[0].create, writes[0].lease = create.create, True
            writes[0].facts = [*create.facts, *facts]
        # A child is created only if its parent's turn is.
        children = inst.new_child_starts()
        if children:
            writes += [child_write(inst.record, c) for c in children]
        end = None
        for c in commands:
            if c.type in TERMINAL_RUN_TYPES:
                end = c
                break
        if end is not None:
            writes[0].locks = inst.uses_locks  # its end releases its permits
            writes += _ending_writes(inst, end)
        try:
            if create is None:
                results = await self.committer.commit(writes)
            else:  # a start(): its caller hears of an outage rather than wait it out
                results = await self.committer.commit_now(writes)
        except BaseException:
            self.slots.give_back(len(claimed))
            inst.close()
            raise
        res = results[0]
        telemetry.note_turn(res.ok, commands)
        if not res.ok:
            self.slots.give_back(len(claimed))
            inst.close()
            self._kick()  # the run may need a turn now; claim it afresh
            return [], res
        inst.committed(res.own_seq)
        if res.last_seq > res.own_seq:
            # The world appended facts of its own (a hook registered or refused): read
            # them in the run's next turn, right away.
            self._spawn(self.advance_and_launch(run_id))
        if inst.done:
            inst.close()
            self._locks.pop(run_id, None)
        else:
            self._keep(inst)
        return claimed, res

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
        writes = [
            RunWrite(
                run_id,
                facts=facts,
                expected_seq=seen,
                commands=[end],
                release=release,
                locks=inst.uses_locks,
            )
        ]
        writes += _ending_writes(inst, end)
        await self.committer.commit(writes)
        self._locks.pop(run_id, None)

    # -- live bodies -------------------------------------------------------------------

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

    def _keep(self, inst: RunInstance) -> None:
        """Keep a run's live body in memory only while it is likely to move soon."""
        keep = inst.waiting_on_steps()
        if not keep:
            timers = inst.loop.pending_timers().values()
            now = self._now()
            keep = any(due - now <= STICKY_TIMER_HORIZON for due in timers)
        if not keep:
            inst.close()
            return
        self.instances[inst.run_id] = inst
        self.instances.move_to_end(inst.run_id)
        while len(self.instances) > self.max_cached_runs:
            _, old = self.instances.popitem(last=False)
            old.close()

    async def _read_log(
        self, run_id: str, after_seq: int
    ) -> tuple[list[Event], PayloadOpener | None]:
        """The run's events after ``after_seq``; payloads left sealed when the world
        can give them so, with what opens them (a replay opens only what it uses)."""
        sealed = getattr(self.world, "read_sealed_events", None)
        if sealed is None:
            return await self.world.read_events(run_id, after_seq=after_seq), None
        events, opener = await sealed(run_id, after_seq=after_seq)
        return events, opener

    def live(self, run_id: str) -> RunInstance | None:
        """The run's live body, if it is in memory (kept, or in a turn now)."""
        return self.instances.get(run_id) or self._turning.get(run_id)

    def cached_step(self, run_id: str, call: int) -> StepCall | None:
        """Step ``call`` of a run whose live body is in memory, if it is."""
        inst = self.live(run_id)
        if inst is not None and call in inst.steps:
            return inst.steps[call]
        return None

    async def replayed_step(self, run_id: str, call: int) -> StepCall | None:
        """Step ``call`` as a replay of the run's body makes it (how an ad-hoc step,
        ``durably.run_step``, gets its callable), or ``None``. Nothing is committed."""
        async with self._lock(run_id):
            inst = self.instances.pop(run_id, None) or await self._load(run_id)
            if inst is None:
                return None
            try:
                events, opener = await self._read_log(run_id, inst.seen_seq)
                inst.index(events, opener)
                inst.feed_log(events, opener)
            except NonDeterminismError:
                inst.close()
                return None
            replayed = inst.steps.get(call)
            inst.close()  # nothing of this replay is committed
            return replayed

    def close(self) -> None:
        """Close every live body (the worker stops)."""
        for inst in self.instances.values():
            inst.close()
        self.instances.clear()

    # -- one lock per run in flight ----------------------------------------------------

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

    def _forget_lock(self, run_id: str) -> None:
        """Drop a run's lock once nothing holds it, waits on it, or keeps the run in
        memory (a sleeping run costs this worker nothing)."""
        lock = self._locks.get(run_id)
        if lock is None or lock.locked() or run_id in self.instances:
            return
        if getattr(lock, "_waiters", None):
            return
        del self._locks[run_id]


# -- what a turn writes besides the run's own record ------------------------------------


def child_write(parent: RunRecord, start: ChildStart) -> RunWrite:
    """The creation of a child run the body of ``parent`` started; applied only if the
    parent's turn is."""
    return RunWrite(
        start.run_id,
        create=RunMeta(
            workflow_name=start.workflow_name,
            namespace=parent.namespace,
            deployment=parent.deployment,
            parent_run_id=parent.run_id,
            parent_call=start.call,
            concurrency_key=start.created.get("concurrency_key"),
            concurrency_limit=start.created.get("concurrency_limit"),
        ),
        facts=[NewEvent(EventType.RUN_CREATED, None, start.created, start.args)],
        requires=parent.run_id,
    )


def _ending_writes(inst: RunInstance, end: NewEvent) -> list[RunWrite]:
    """What a run's end tells others: its parent gets the outcome, its children that are
    still running are cancelled. Applied only if the end itself is."""
    run_id = inst.run_id
    writes: list[RunWrite] = []
    rec = inst.record
    if rec.parent_run_id and rec.parent_call is not None:
        writes.append(_parent_write(rec, end))
    for child_id in inst.pending_children():
        stop = NewEvent(EventType.RUN_CANCEL_REQUESTED, None, {"reason": "parent ended"})
        writes.append(RunWrite(child_id, facts=[stop], requires=run_id))
    return writes


def _parent_write(rec: RunRecord, end: NewEvent) -> RunWrite:
    """The outcome of child run ``rec`` for its parent's log."""
    assert rec.parent_run_id is not None
    if end.type is EventType.RUN_COMPLETED:
        fact = NewEvent(EventType.CHILD_COMPLETED, rec.parent_call, {}, end.payload)
    elif end.type is EventType.RUN_FAILED:
        fact = NewEvent(EventType.CHILD_FAILED, rec.parent_call, dict(end.data), end.payload)
    else:
        err = RunCancelledError(rec.run_id)
        fact = NewEvent(
            EventType.CHILD_FAILED,
            rec.parent_call,
            {"error_type": error_type_name(err)},
            encode_error(err),
        )
    return RunWrite(rec.parent_run_id, facts=[fact], requires=rec.run_id)
