"""Callbacks a workflow body installs for the steps of its agent runs.

A UI layer (``stream_chat``) needs code of its own to run *inside* an agent's steps: the
model step's live events (to write UI chunks token by token, from the step), and the
announcement of a hook's token when the run starts waiting for an approval or an event.
The body sets them with :func:`durably.ai.step_callbacks`; the backend carries what was set
where a step was called into that step (a step runs in a task of the worker, which does not
inherit the body's context).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic_ai.agent import EventStreamHandler

    from .approvals import ApprovalRequest, EventRequest

__all__ = ["StepCallbacks", "carried", "carry_into_step", "step_callbacks"]


@dataclass(frozen=True)
class StepCallbacks:
    """What runs inside an agent's steps besides pydantic-ai's own work.

    Attributes:
        model_events: called inside each model step with the live events of the model's
            streamed response (pydantic-ai's ``EventStreamHandler``: ``(ctx, events)``).
            It runs in the step, so ``durably.get_writable()`` and
            ``durably.get_step_metadata()`` (``step_id``, ``attempt``: tell a retried attempt
            from the first) work there. Setting it makes the agent stream its model requests.
        run_events: whether ``model_events`` also receives the run's other events (tool
            calls and results, the final result), each inside a step ``{agent}.events``
            of its own (``True``, pydantic-ai's rule for a durable handler); ``False``
            leaves them to whoever reads the run workflow-side (``agent.iter()``,
            ``agent.run_stream_events()``), at no step's cost.
        approval_requested: called inside the step ``{agent}.approval`` with the pending
            approvals (:class:`~durably.ai.ApprovalRequest`, each with its hook token) once
            the run waits for them. A retried step calls it again with the same tokens.
        event_requested: called inside the step ``{agent}.ask.{name}`` with an
            :class:`~durably.ai.EventRequest` when the run waits for an external event
            (``wait_for_external_event``, ``RequestInput``) and ``ask`` did not answer.
    """

    model_events: EventStreamHandler[Any] | None = None
    approval_requested: Callable[[list[ApprovalRequest]], Awaitable[None]] | None = None
    event_requested: Callable[[EventRequest], Awaitable[None]] | None = None
    run_events: bool = True


_NONE = StepCallbacks()
_current: ContextVar[StepCallbacks] = ContextVar("durably_ai_step_callbacks", default=_NONE)


@contextmanager
def step_callbacks(
    *,
    model_events: EventStreamHandler[Any] | None = None,
    approval_requested: Callable[[list[ApprovalRequest]], Awaitable[None]] | None = None,
    event_requested: Callable[[EventRequest], Awaitable[None]] | None = None,
    run_events: bool | None = None,
) -> Iterator[StepCallbacks]:
    """Install callbacks for the steps of the agent runs made inside this block (in a
    workflow body). Callbacks not given keep what an enclosing block set.

    Example::

        with step_callbacks(model_events=write_ui_chunks, approval_requested=announce):
            result = await agent.run(prompt)
    """
    outer = _current.get()
    callbacks = StepCallbacks(
        model_events=model_events or outer.model_events,
        approval_requested=approval_requested or outer.approval_requested,
        event_requested=event_requested or outer.event_requested,
        run_events=outer.run_events if run_events is None else run_events,
    )
    token = _current.set(callbacks)
    try:
        yield callbacks
    finally:
        _current.reset(token)


def carried() -> StepCallbacks:
    """The callbacks in force where a step is called (the workflow side)."""
    return _current.get()


@contextmanager
def carry_into_step(callbacks: StepCallbacks) -> Iterator[None]:
    """Make ``callbacks`` the ones in force inside a step's body."""
    token = _current.set(callbacks)
    try:
        yield
    finally:
        _current.reset(token)
