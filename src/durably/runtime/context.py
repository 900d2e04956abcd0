"""Where code is running: inside a workflow body, inside a step, or neither.

A workflow body runs on a :class:`~durably.runtime.loop.WorkflowLoop`, so "am I in a
workflow" is "is the running loop a workflow loop"; a step runs on the worker's loop with
its metadata in a context variable. The deterministic helpers (``now``, ``random``, ...)
read the run that owns the running workflow loop.

A step attempt also carries a :class:`StepAttempt` the worker changes when it gives up on
the attempt (its run was cancelled, it ran past its timeout): :func:`step_cancelled` reads
it, so a ``def`` step running in a thread, which nothing can interrupt, can return early,
and what such a thread writes after its attempt ended is refused.
"""

from __future__ import annotations

import random as _random
import time as _time
import uuid as _uuid
from asyncio import events
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import StepAbandonedError
from .loop import WorkflowLoop

if TYPE_CHECKING:
    from .instance import RunInstance

__all__ = [
    "ATTEMPT",
    "StepAttempt",
    "StepMetadata",
    "WorkflowMetadata",
    "check_attempt_live",
    "current_instance",
    "get_step_metadata",
    "get_workflow_metadata",
    "in_step",
    "in_workflow",
    "now",
    "random",
    "step_cancelled",
    "time_ns",
    "uuid4",
]


@dataclass(frozen=True, slots=True)
class StepMetadata:
    """About the step attempt that is running.

    Attributes:
        run_id: the run the step belongs to.
        step_id: stable across retries of this call; use it as an idempotency key.
        step_name: the registered step name.
        attempt: 1 for the first attempt, 2 for the first retry, ...
        step_started_at: when the *current* attempt started (UTC): on a retry, the
            retry's start (each attempt gets its own timeout from then).
        call: the step's durable call in its run (what stream chunks it writes record,
            with ``attempt``, as the attempt that wrote them).
        first_attempt_started_at: when the step's first attempt started (UTC): the same
            as ``step_started_at`` on the first attempt; on a retry, the start recorded
            with the first failed attempt (use it for deadlines across retries).
        workflow: the metadata of the run the step belongs to (what
            :func:`get_workflow_metadata` returns inside the step).
    """

    run_id: str
    step_id: str
    step_name: str
    attempt: int
    step_started_at: datetime
    call: int | None = None
    first_attempt_started_at: datetime | None = None
    workflow: WorkflowMetadata | None = None


@dataclass(frozen=True, slots=True)
class WorkflowMetadata:
    """About the run whose body is running.

    Attributes:
        run_id: the run.
        workflow_name: the registered workflow name.
        started_at: when the run started (UTC).
        deployment: the deployment the run is pinned to.
    """

    run_id: str
    workflow_name: str
    started_at: datetime
    deployment: str


STEP: ContextVar[StepMetadata | None] = ContextVar("durably_step", default=None)


@dataclass(frozen=True, slots=True)
class StepServices:
    """What a running step may use of the worker that runs it (typed loosely here so
    the runtime does not import the worker): ``world`` and ``streams``."""

    world: Any
    streams: Any


SERVICES: ContextVar[StepServices | None] = ContextVar("durably_services", default=None)


class StepAttempt:
    """What the worker tells a running step attempt (read from any thread).

    Attributes:
        cancelled: its run was cancelled; an ``async`` step also gets
            ``asyncio.CancelledError`` at its current await.
        over: the attempt's outcome is decided (recorded or about to be): whatever its
            code still does (a ``def`` step's thread past its timeout) is discarded.
    """

    __slots__ = ("cancelled", "over")

    def __init__(self) -> None:
        self.cancelled = False
        self.over = False


ATTEMPT: ContextVar[StepAttempt | None] = ContextVar("durably_attempt", default=None)


def step_cancelled() -> bool:
    """True once durably has given up on the running step attempt: its run was cancelled,
    it ran past its ``timeout``, or its worker stopped. Its result will be discarded.

    An ``async`` step needs it rarely (it gets ``asyncio.CancelledError`` at its current
    await). A ``def`` step runs in a thread, which Python cannot interrupt: poll this in
    its long loops and return early. False outside a step.
    """
    attempt = ATTEMPT.get()
    return attempt is not None and (attempt.cancelled or attempt.over)


def check_attempt_live(what: str) -> None:
    """Refuse ``what`` (a write to the log) from a step attempt that is already over.

    Raises:
        StepAbandonedError: the running attempt's outcome is already decided.
    """
    attempt = ATTEMPT.get()
    if attempt is not None and attempt.over:
        meta = STEP.get()
        step = f"step {meta.step_name!r} of run {meta.run_id}" if meta else "a step"
        raise StepAbandonedError(
            f"{what} from an attempt of {step} that has already ended (it ran past its "
            "timeout, its run was cancelled, or its worker stopped) is not recorded; "
            "check durably.step_cancelled() in long-running code and return early"
        )


def current_instance() -> RunInstance | None:
    """The run whose body is running on this thread's running loop, if any."""
    loop = events._get_running_loop()
    if isinstance(loop, WorkflowLoop):
        return loop._host  # type: ignore[return-value]  # (called once per durable call)
    return None


def _instance(what: str) -> RunInstance:
    inst = current_instance()
    if inst is None:
        raise RuntimeError(
            f"durably.{what}() works only inside a workflow body (a function decorated "
            "with @wf.workflow, while it runs as part of a run)"
        )
    return inst


def in_workflow() -> bool:
    """True inside a workflow body."""
    return current_instance() is not None


def in_step() -> bool:
    """True inside a step body that runs as part of a run."""
    return STEP.get() is not None


def get_step_metadata() -> StepMetadata:
    """Metadata of the running step attempt.

    Raises:
        RuntimeError: not inside a step that runs as part of a run.
    """
    meta = STEP.get()
    if meta is None:
        raise RuntimeError(
            "get_step_metadata() works only inside a step body while it runs as part of a "
            "run (a step called outside any workflow is a plain function call)"
        )
    return meta


def get_workflow_metadata() -> WorkflowMetadata:
    """Metadata of the run whose body is running, or (inside a step) of the run the
    running step belongs to.

    Raises:
        RuntimeError: neither inside a workflow body nor inside a step of a run.
    """
    inst = current_instance()
    if inst is not None:
        return inst.metadata()
    meta = STEP.get()
    if meta is not None and meta.workflow is not None:
        return meta.workflow
    raise RuntimeError(
        "get_workflow_metadata() works only inside a workflow body or a step while it runs "
        "as part of a run (a step called outside any workflow is a plain function call)"
    )


def now() -> datetime:
    """The run's durable clock as an aware UTC datetime (same value on every replay).

    Outside a workflow this is the real time.
    """
    inst = current_instance()
    t = inst.loop.time() if inst is not None else _time.time()
    return datetime.fromtimestamp(t, UTC)


def time_ns() -> int:
    """The run's durable clock in nanoseconds since the epoch."""
    inst = current_instance()
    if inst is None:
        return _time.time_ns()
    return int(inst.loop.time() * 1_000_000_000)


def random() -> _random.Random:
    """The run's deterministic ``random.Random`` (seeded by the run id)."""
    inst = current_instance()
    if inst is None:
        return _random.Random()
    return inst.rng


def uuid4() -> _uuid.UUID:
    """A version-4 UUID drawn from the run's deterministic random source."""
    inst = current_instance()
    if inst is None:
        return _uuid.uuid4()
    return _uuid.UUID(int=inst.rng.getrandbits(128), version=4)
