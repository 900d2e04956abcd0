"""Steps: running one attempt of a step and recording how it went.

A step reaches a worker two ways: claimed from the queue (a task, perhaps a retry or a
step another worker lost), or claimed inline by the commit of the turn that created it.
Either way it runs in a slot this worker holds; the attempt's outcome (completed,
retrying at a time :mod:`durably.retry` says, or failed) is recorded as the step's fact
in the run's next turn. When that turn claims the run's next step, the same task goes on
with it: no task and no queue round trip per step of a sequential run.

An attempt ends early when its run is cancelled (see :mod:`.cancels`): an ``async`` step
gets ``asyncio.CancelledError`` at its current await, and the attempt is recorded as
failed with :class:`~durably.errors.RunCancelledError`, not retried. A ``def`` step runs
in a thread, and Python cannot stop a thread: when its run is cancelled or it runs past
its ``timeout``, its attempt is abandoned at once (recorded as cancelled, or as timed out
and retried as the step says) while the thread runs on to its end in the background.
What it returns then is discarded, what it writes (stream chunks, attributes) is refused
with :class:`~durably.errors.StepAbandonedError`, and :func:`durably.step_cancelled`
turns true so that it can return early.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import types
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .. import telemetry
from ..errors import (
    FatalError,
    PayloadTooLargeError,
    RunCancelledError,
    StepNotRegisteredError,
    StepTimeoutError,
)
from ..events import EventType, NewEvent
from ..rate_limits import RateLimit
from ..retry import DEFAULT_RETRY
from ..runtime.context import (
    ATTEMPT,
    SERVICES,
    STEP,
    StepMetadata,
    StepServices,
    WorkflowMetadata,
)
from ..runtime.failures import encode_error, error_type_name
from ..runtime.specs import StepCall, StepSpec
from ..streams import StreamWriter
from ..worlds.base import RunWrite, Task, World
from .cancels import Cancels
from .group_commit import GroupCommit
from .slots import Slots
from .turns import Turns

if TYPE_CHECKING:
    from ..registry import Workflows

__all__ = ["Steps"]

_log = logging.getLogger("durably.worker")


class Steps:
    """Executes the steps of one worker.

    Args:
        registry: the steps this process has.
        world: where the runs are.
        turns: advances a run with a step's outcome.
        committer: commits a retry's fact.
        slots: the worker's step slots and leases.
        streams: the stream writer steps write through.
        cancels: the attempts running here, to stop when their run is cancelled.
        stopping: whether the worker is stopping.
        spawn_step: runs a step's coroutine in a task of its own.
    """

    def __init__(
        self,
        registry: Workflows,
        world: World,
        turns: Turns,
        committer: GroupCommit,
        slots: Slots,
        streams: StreamWriter,
        cancels: Cancels,
        *,
        stopping: Callable[[], bool],
        spawn_step: Callable[[Awaitable[Any]], None],
    ) -> None:
        self.registry = registry
        self.world = world
        self.turns = turns
        self.committer = committer
        self.slots = slots
        self.streams = streams
        self.cancels = cancels
        self._services = StepServices(world, streams)
        self._stopping = stopping
        self._spawn_step = spawn_step
        #: Where rate-limit windows read "now" (``None``: the world's clock); a test's
        #: virtual clock (``durably.testing``) may set it.
        self.rate_clock: Callable[[], float] | None = None

    def _now(self) -> float:
        # The registry's clock (a test may skip it ahead): when attempts start and end.
        return self.registry.clock.now()

    # -- entry points ------------------------------------------------------------------

    async def claimed(self, task: Task) -> None:
        """Run a step task claimed from the queue (its slot and lease already taken)."""
        handed_over = False
        try:
            sc = await self._step_call(task.run_id, task.call)
            if sc is None:
                return
            if not sc.spec.retry.may_run(task.attempt):
                err = FatalError(
                    f"step {sc.spec.name!r} was started {task.attempt - 1} times and the "
                    "worker running it was lost each time (killed or crashed); giving up"
                )
                lost = _failed(sc, err, task.attempt, None)
                await self.turns.advance_and_launch(task.run_id, [lost], read=False)
                return
            handed_over = True  # _execute gives the slot back
            await self._execute(task.run_id, sc, task.attempt, self._now())
        finally:
            if not handed_over:
                self.slots.give_back()
            self.slots.drop_task(task.run_id, task.call)

    def launch(self, run_id: str, calls: Sequence[StepCall], started: float) -> None:
        """Run steps a turn claimed inline (their slots already taken), each in a task of
        its own."""
        for sc in calls:
            self.slots.hold_task(run_id, sc.call)
            self._spawn_step(self._execute(run_id, sc, 1, started))

    # -- which step ----------------------------------------------------------------------

    async def _step_call(self, run_id: str, call: int) -> StepCall | None:
        cached = self.turns.cached_step(run_id, call)
        if cached is not None:
            return cached
        ev = await self.world.read_command(run_id, call)
        if ev is None or ev.type is not EventType.STEP_CREATED:
            return None
        name = str(ev.data.get("name"))
        step = self.registry.steps.get(name)
        if step is not None and not ev.data.get("bound"):
            base = step.spec
            spec = StepSpec(
                name,
                base.fn,
                base.shape,
                max_retries=int(ev.data.get("max_retries", DEFAULT_RETRY.max_retries)),
                retry_after=ev.data.get("retry_after"),
                timeout=ev.data.get("timeout"),
            )
            return StepCall(call, spec, ev.payload or b"")
        # An ad-hoc step (durably.run_step), or a method step bound to an object of the
        # body: replaying the body makes its callable.
        replayed = await self.turns.replayed_step(run_id, call)
        if replayed is not None:
            # The callable comes from the replay; the arguments from the log.
            return StepCall(call, replayed.spec, ev.payload or b"")
        spec = StepSpec(name, None, None, max_retries=0)
        return StepCall(call, spec, ev.payload or b"")

    # -- running and recording ---------------------------------------------------------

    async def _execute(self, run_id: str, sc: StepCall, attempt: int, started: float) -> None:
        """Run one attempt of a step in a slot this worker holds, record it, and go on
        with the run's next step in this same task when the commit claimed one (the
        common sequential case: no task and no queue round trip per step)."""
        current: StepCall | None = sc
        while current is not None:
            call = current.call
            self.slots.hold_task(run_id, call)
            rate = self.registry.rate_limits.get(current.spec.name)
            if rate is not None:
                if not await self._rate_granted(run_id, current, rate):
                    self.slots.give_back()
                    self.slots.drop_task(run_id, call)
                    return
                started = self._now()
            self.committer.concurrent += 1
            try:
                fact = await self._attempt(run_id, current, attempt, started)
            finally:
                self.committer.concurrent -= 1
                self.slots.give_back()
            following: list[StepCall] = []
            try:
                following = await self._record(run_id, fact)
            finally:
                self.slots.drop_task(run_id, call)
            started, attempt = self._now(), 1
            current = following[0] if following else None
            if len(following) > 1:
                self.launch(run_id, following[1:], started)

    async def _rate_granted(self, run_id: str, sc: StepCall, rate: RateLimit) -> bool:
        """Ask the world for this step's start under its rate limit. Not granted, the
        world moved its task to when the window lets it begin (a durable wait: any
        worker claims it then), or the task is no longer this worker's."""
        try:
            decision = await self.world.take_rate(
                limiter=rate.name,
                limit=rate.limit,
                per=rate.per,
                owner=self.committer.owner,
                run_id=run_id,
                call=sc.call,
                now=self.rate_clock() if self.rate_clock is not None else None,
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            _log.warning(
                "durably worker: asking for the start of rate-limited step %r of %s failed;"
                " handing it back",
                sc.spec.name,
                run_id,
                exc_info=True,
            )
            with contextlib.suppress(Exception):
                await self.world.release(
                    owner=self.committer.owner, run_ids=(), tasks=[(run_id, sc.call)]
                )
            return False
        if not decision.granted and decision.retry_at is not None:
            _log.debug(
                "durably worker: step %r of %s waits for rate limit %s until %.3f",
                sc.spec.name,
                run_id,
                rate,
                decision.retry_at,
            )
        return decision.granted

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
                return await self.turns.advance(run_id, [fact])
            except asyncio.CancelledError:
                raise
            except Exception:
                if attempt == 5 or self._stopping():
                    raise
                _log.warning("durably worker: recording a step of %s failed; retrying", run_id)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 3.0)
        return []

    async def _workflow_metadata(self, run_id: str) -> WorkflowMetadata | None:
        """The metadata of the step's run: from its live body when this worker has it,
        else read from the world (a step claimed from the queue)."""
        inst = self.turns.live(run_id)
        if inst is not None:
            return inst.metadata()
        rec = await self.world.get_run(run_id)
        if rec is None:
            return None
        return WorkflowMetadata(
            run_id=run_id,
            workflow_name=rec.workflow_name,
            started_at=datetime.fromtimestamp(rec.started_at or rec.created_at, UTC),
            deployment=rec.deployment,
        )

    async def _first_start(self, run_id: str, call: int, started: float) -> float:
        """When the first attempt of step ``call`` started: recorded with the first
        attempt that failed (its ``step_retrying``); ``started`` if none is found."""
        created = await self.world.read_command(run_id, call)
        after = created.seq if created is not None else 0
        for ev in await self.world.read_events(run_id, after_seq=after):
            if ev.call == call and ev.type is EventType.STEP_RETRYING:
                return float(ev.data.get("started_at", started))
        return started

    @telemetry.traced_attempt
    async def _attempt(self, run_id: str, sc: StepCall, attempt: int, started: float) -> NewEvent:
        spec = sc.spec
        if spec.fn is None or spec.shape is None:
            err = StepNotRegisteredError(
                f"step {spec.name!r} of run {run_id} is not registered in this process; "
                "decorate it with @wf.step in the module the worker imports"
            )
            return _failed(sc, err, attempt, started)
        started_at = datetime.fromtimestamp(started, UTC)
        if attempt == 1:
            first_at = started_at
        else:
            first_at = datetime.fromtimestamp(
                await self._first_start(run_id, sc.call, started), UTC
            )
        inst = self.turns.instances.get(run_id)
        meta = StepMetadata(
            run_id=run_id,
            step_id=f"{run_id}.{sc.call}",
            step_name=spec.name,
            attempt=attempt,
            step_started_at=started_at,
            call=sc.call,
            first_attempt_started_at=first_at,
            # From the run's live body when this worker has it (no await: the common case).
            workflow=inst.metadata() if inst is not None else await self._workflow_metadata(run_id),
        )
        running = self.cancels.begin(run_id, sc.call)
        token = STEP.set(meta)
        services = SERVICES.set(self._services)
        state = ATTEMPT.set(running.state)
        try:
            args, kwargs = spec.shape.decode_args(sc.args)
            if spec.timeout is None and _is_async(spec.fn):
                result = await spec.fn(*args, **kwargs)  # the common case: no wrapper
            else:
                result = await _call(spec.fn, args, kwargs, spec.timeout, spec.name)
            # Everything the step streamed is stored before its completion is.
            await self.streams.drain(run_id)
            payload = spec.shape.encode_result(result)
            limit = self.registry.limits.max_payload_bytes
            if len(payload) > limit:
                raise PayloadTooLargeError(
                    f"the return value of step {spec.name!r} is {len(payload):,} bytes "
                    f"serialized, over the limit of {limit:,};"
                    " store large data elsewhere and return a reference"
                )
        except asyncio.CancelledError:
            if running.state.cancelled:
                # Its run was cancelled: this attempt ends here, and there is no other.
                return _failed(sc, RunCancelledError(run_id), attempt, started)
            if self._stopping():
                raise
            return _failed(sc, RuntimeError("the step was cancelled"), attempt, started)
        except Exception as e:
            now = self._now()
            retry_at = spec.retry.next_attempt(e, attempt, now)
            if retry_at is None:
                return _failed(sc, e, attempt, started)
            return _retrying(sc, e, attempt, started, retry_at, now)
        finally:
            self.cancels.end(running)
            if running.state.cancelled and running.task is not None and running.task.cancelling():
                # The cancel was this attempt's alone: the task goes on recording it.
                running.task.uncancel()
            ATTEMPT.reset(state)
            STEP.reset(token)
            SERVICES.reset(services)
        return NewEvent(
            EventType.STEP_COMPLETED,
            sc.call,
            {"attempt": attempt, "started_at": started},
            payload,
            self._now(),
        )


def _failed(sc: StepCall, err: BaseException, attempt: int, started: float | None) -> NewEvent:
    """The fact of a step's last attempt failing (``started`` unknown if it was lost)."""
    data: dict[str, Any] = {"attempt": attempt, "error_type": error_type_name(err)}
    if started is not None:
        data["started_at"] = started
    # Stamped by the turn that records it, with the registry's clock.
    return NewEvent(EventType.STEP_FAILED, sc.call, data, encode_error(err))


def _retrying(
    sc: StepCall, err: BaseException, attempt: int, started: float, retry_at: float, now: float
) -> NewEvent:
    """The fact of a step's attempt failing with another one due at ``retry_at``."""
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
    """Call a step's function (a plain function in a thread), within its timeout."""
    if _is_async(fn):
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


#: Whether a plain function is a coroutine function, remembered (asked once per attempt;
#: ``inspect`` takes a handful of calls to say). Bounded: ad-hoc steps make new closures.
_ASYNC_FUNCTIONS: dict[Callable[..., Any], bool] = {}


def _is_async(fn: Callable[..., Any]) -> bool:
    if type(fn) is not types.FunctionType:  # a method, a partial, a callable object
        return inspect.iscoroutinefunction(fn)
    known = _ASYNC_FUNCTIONS.get(fn)
    if known is None:
        if len(_ASYNC_FUNCTIONS) >= 1024:
            _ASYNC_FUNCTIONS.clear()
        known = _ASYNC_FUNCTIONS[fn] = inspect.iscoroutinefunction(fn)
    return known
