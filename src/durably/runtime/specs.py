"""What the runtime knows of a workflow and its steps (specs), and what a turn hands the
worker: the step calls to run and the child runs to create with it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..retry import DEFAULT_RETRY, RetryPolicy
from .calls import CallShape

__all__ = ["ChildStart", "HookSink", "StepCall", "StepSpec", "WorkflowSpec"]


@dataclass(slots=True)
class StepSpec:
    """A step as the runtime needs it: how to call it and how to retry it."""

    name: str
    fn: Callable[..., Any] | None
    shape: CallShape | None
    max_retries: int = DEFAULT_RETRY.max_retries
    retry_after: float | None = None
    timeout: float | None = None
    #: A method step bound to its instance or class: the receiver is not recorded, so a
    #: worker that did not run the body gets the callable by replaying it.
    bound: bool = False

    @property
    def retry(self) -> RetryPolicy:
        """The step's retry policy (its own options over :data:`DEFAULT_RETRY`)."""
        return RetryPolicy.of(self.max_retries, self.retry_after)


@dataclass(slots=True)
class WorkflowSpec:
    """A workflow as the runtime needs it."""

    name: str
    fn: Callable[..., Any]
    shape: CallShape
    #: Its concurrency limit, as ``(namespace, args, kwargs) -> (lock key, limit)``.
    admission: Callable[..., tuple[str, int]] | None = None


@dataclass(slots=True)
class StepCall:
    """A step call a run made: what a worker needs to execute it."""

    call: int
    spec: StepSpec
    args: bytes


@dataclass(slots=True)
class ChildStart:
    """A child run the body started: what a worker needs to create it with the turn."""

    call: int
    run_id: str
    workflow_name: str
    args: bytes
    created: dict[str, Any]  # the ``run_created`` data (with the parent's trace context)


class HookSink(Protocol):
    """Where a hook's facts go (see :class:`durably.hooks.HookWait`)."""

    def registered(self, error: BaseException | None) -> None:
        """The token was taken (``None``) or refused (``error``)."""

    def received(self, payload: bytes | None) -> None:
        """A resume arrived."""
