"""Top-level functions of the public API: start, get_run, sleep, run_step."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from .durations import deadline
from .registry import Workflow, default_registry
from .retry import DEFAULT_RETRY
from .run import Run
from .runtime.calls import CallShape
from .runtime.context import current_instance
from .runtime.specs import StepSpec

__all__ = ["get_run", "run_step", "sleep", "start"]


async def start(
    workflow: Workflow[Any, Any],
    *args: Any,
    idempotency_key: str | None = None,
    deployment: str | None = None,
    attributes: dict[str, Any] | None = None,
    priority: int = 0,
    **kwargs: Any,
) -> Run:
    """Record a run of ``workflow`` durably and return its :class:`Run` before it executes.

    Args:
        workflow: a function decorated with ``@wf.workflow``.
        *args: the workflow's positional arguments.
        **kwargs: the workflow's keyword arguments.
        idempotency_key: return the run already started with this key, if any.
        deployment: pin the run to this deployment (``"latest"``: the newest seen).
        attributes: plaintext attributes the run starts with (searchable at once).
        priority: higher starts first among pending runs of the registry (default 0).
    """
    if not isinstance(workflow, Workflow):
        raise TypeError(f"start() takes a workflow decorated with @wf.workflow, got {workflow!r}")
    return await workflow.registry.start(
        workflow,
        *args,
        idempotency_key=idempotency_key,
        deployment=deployment,
        attributes=attributes,
        priority=priority,
        **kwargs,
    )


async def get_run(run_id: str) -> Run:
    """A handle on an existing run, through the registry made last in this process.

    Raises:
        RunNotFoundError: no run has this id.
    """
    return await default_registry().get_run(run_id)


def sleep(duration: str | float | int | timedelta | datetime) -> Awaitable[None]:
    """Suspend the run durably for ``duration`` (``"10s"``, ``"2h"``, ``"30d"``, seconds,
    a ``timedelta``) or until an aware ``datetime``.

    A sleeping run holds no worker slot and no memory; the timer survives restarts of every
    process. Outside a workflow this is a plain ``asyncio.sleep``.
    """
    inst = current_instance()
    if inst is None:
        now = time.time()
        return asyncio.sleep(max(deadline(duration, now) - now, 0.0))
    loop = inst.loop
    when = deadline(duration, loop.time())
    fut: asyncio.Future[None] = loop.create_future()
    loop.timer_name = "sleep"
    handle = loop.call_at(when, _wake, fut)

    def on_done(f: asyncio.Future[None]) -> None:
        if f.cancelled():
            handle.cancel()

    fut.add_done_callback(on_done)
    return fut


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


_shapes: dict[Any, CallShape] = {}


def _shape(name: str, fn: Callable[..., Any]) -> CallShape:
    shape = _shapes.get(fn)
    if shape is None:
        if len(_shapes) > 4096:
            _shapes.clear()
        shape = _shapes[fn] = CallShape(fn, kind="step", name=name)
    return shape


def run_step(
    name: str,
    fn: Callable[..., Any],
    args: tuple[Any, ...] | list[Any] = (),
    kwargs: dict[str, Any] | None = None,
    *,
    max_retries: int = DEFAULT_RETRY.max_retries,
    retry_after: str | float | timedelta | None = None,
    timeout: str | float | timedelta | None = None,
) -> Awaitable[Any]:
    """Run any callable as a named step: recorded, retried and replayed like a decorated
    one. This is how integrations (agent frameworks, SDK clients) make calls durable.

    Outside a workflow, ``fn`` is simply called.
    """
    kwargs = dict(kwargs or {})
    inst = current_instance()
    if inst is None:
        return _plain(fn, tuple(args), kwargs)
    from .durations import parse_duration

    spec = StepSpec(
        name,
        fn,
        _shape(name, fn),
        max_retries=max_retries,
        retry_after=None if retry_after is None else parse_duration(retry_after),
        timeout=None if timeout is None else parse_duration(timeout),
    )
    assert spec.shape is not None
    return inst.call_step(spec, spec.shape, tuple(args), kwargs)


async def _plain(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        return await result
    return result
