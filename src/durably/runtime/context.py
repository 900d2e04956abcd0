"""Where code is running: inside a workflow body, inside a step, or neither.

A workflow body runs on a :class:`~durably.runtime.loop.WorkflowLoop`, so "am I in a
workflow" is "is the running loop a workflow loop"; a step runs on the worker's loop with
its metadata in a context variable. The deterministic helpers (``now``, ``random``, ...)
read the run that owns the running workflow loop.
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

from .loop import WorkflowLoop

if TYPE_CHECKING:
    from .instance import RunInstance

__all__ = [
    "StepMetadata",
    "WorkflowMetadata",
    "current_instance",
    "get_step_metadata",
    "get_workflow_metadata",
    "in_step",
    "in_workflow",
    "now",
    "random",
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
        step_started_at: when this attempt started (UTC).
        call: the step's durable call in its run (what stream chunks it writes record,
            with ``attempt``, as the attempt that wrote them).
    """

    run_id: str
    step_id: str
    step_name: str
    attempt: int
    step_started_at: datetime
    call: int | None = None


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


def current_instance() -> RunInstance | None:
    """The run whose body is running on this thread's running loop, if any."""
    loop = events._get_running_loop()
    if isinstance(loop, WorkflowLoop):
        return loop.host  # type: ignore[return-value]
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
    """Metadata of the run whose body is running.

    Raises:
        RuntimeError: not inside a workflow body.
    """
    return _instance("get_workflow_metadata").metadata()


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
