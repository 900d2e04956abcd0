"""The event loop a workflow body runs on.

Like Temporal's Python SDK and vercel-workflow, durably runs each workflow body as a task
on a small loop of its own rather than on the application's loop:

* ``time()`` is the run's durable clock: the time of the event being replayed, so it is
  the same on every replay;
* ``call_at`` / ``call_later`` become durable timers recorded in the log, which is why
  ``asyncio.sleep``, ``asyncio.wait_for``, ``asyncio.timeout`` and ``asyncio.wait`` are
  durable inside a body and a replay picks the same winner;
* the loop only runs ready callbacks until none is left (:meth:`run_until_quiet`); what
  happens next is decided by the next event fed into the run.

Anything that would let a body observe the real world (threads, executors, sockets,
subprocesses, signals) raises :class:`~durably.errors.SandboxError`.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import inspect
import logging
import sys
import weakref
from asyncio import events
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

from ..errors import SandboxError
from . import guards

__all__ = ["TimerHost", "WorkflowLoop"]

_log = logging.getLogger("durably.runtime")

#: Callbacks one turn may run before the body is judged to spin.
MAX_CALLBACKS_PER_TURN = 1_000_000
_T = TypeVar("_T")


class TimerHost(Protocol):
    """What the loop asks of the run that owns it."""

    def new_timer(self, when: float, name: str) -> int:
        """Record a durable timer due at ``when``; return its call number."""

    def cancel_timer(self, call: int) -> None:
        """Record that timer ``call`` was cancelled."""


async def _await(aw: Awaitable[_T]) -> _T:
    return await aw


class WorkflowLoop(asyncio.AbstractEventLoop):
    """A deterministic, manually driven event loop for one run."""

    def __init__(self, host: TimerHost, clock: float) -> None:
        self._host = host
        self._time = clock
        self._ready: collections.deque[asyncio.Handle] = collections.deque()
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._timer_calls: dict[int, int] = {}  # id(handle) -> call
        self._running = False
        self._budget = MAX_CALLBACKS_PER_TURN
        self._closed = False
        self.timer_name = "timer"
        self.unhandled: list[dict[str, Any]] = []
        self._asyncgens: weakref.WeakSet[Any] = weakref.WeakSet()

    @property
    def host(self) -> TimerHost:
        """The run that owns this loop."""
        return self._host

    # -- the durable clock -------------------------------------------------------------

    def time(self) -> float:
        return self._time

    def advance_to(self, when: float) -> None:
        """Move the clock forward (never back) to an event's time."""
        if when > self._time:
            self._time = when

    # -- scheduling --------------------------------------------------------------------

    def call_soon(
        self,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.Handle:
        handle = asyncio.Handle(callback, args, self, context)
        self._ready.append(handle)
        return handle

    def call_later(
        self,
        delay: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        return self.call_at(self._time + delay, callback, *args, context=context)

    def call_at(
        self,
        when: float,
        callback: Callable[..., object],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> asyncio.TimerHandle:
        handle = asyncio.TimerHandle(when, callback, args, self, context)
        if when <= self._time:
            self._ready.append(handle)
            return handle
        name, self.timer_name = self.timer_name, "timer"
        call = self._host.new_timer(when, name)
        handle._scheduled = True
        self._timers[call] = handle
        self._timer_calls[id(handle)] = call
        return handle

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        call = self._timer_calls.pop(id(handle), None)
        if call is not None:
            self._timers.pop(call, None)
            self._host.cancel_timer(call)

    def fire_timer(self, call: int) -> bool:
        """Run timer ``call`` (its ``wait_completed`` was delivered); false if unknown."""
        handle = self._timers.pop(call, None)
        if handle is None:
            return False
        self._timer_calls.pop(id(handle), None)
        handle._scheduled = False
        if not handle.cancelled():
            self._ready.append(handle)
        return True

    def pending_timers(self) -> dict[int, float]:
        """Live timers by call number, with their due times."""
        return {call: h.when() for call, h in self._timers.items()}

    def run_until_quiet(self) -> None:
        """Run ready callbacks until none is left.

        Raises:
            SandboxError: the body keeps itself busy without ever waiting on anything
                durable (an endless ``await asyncio.sleep(0)`` loop).
        """
        prev = events._get_running_loop()
        prev_hooks = sys.get_asyncgen_hooks()
        events._set_running_loop(self)
        # Async generators a body leaves open are finalized on this loop (inside the
        # body's sandbox), not on the worker's.
        sys.set_asyncgen_hooks(
            firstiter=self._asyncgen_firstiter, finalizer=self._asyncgen_finalizer
        )
        self._running = True
        self._budget = MAX_CALLBACKS_PER_TURN
        try:
            ready = self._ready
            while ready:
                handle = ready.popleft()
                if handle._cancelled:
                    continue
                self._budget -= 1
                if self._budget < 0:
                    raise SandboxError(
                        f"the workflow body ran {MAX_CALLBACKS_PER_TURN:,} callbacks without "
                        "waiting on anything durable; a body must not spin (await a step, a "
                        "sleep or a hook instead of looping on asyncio.sleep(0))"
                    )
                try:
                    handle._run()
                except (SystemExit, KeyboardInterrupt):
                    # Raised in the body: the task holds it as its exception and the run
                    # fails with it; it must not take the worker's loop down.
                    continue
        finally:
            self._running = False
            events._set_running_loop(prev)
            sys.set_asyncgen_hooks(*prev_hooks)

    def has_ready(self) -> bool:
        """Whether a callback waits to run (another task could go on first)."""
        return bool(self._ready)

    def new_turn(self) -> None:
        """A fact was delivered inside a pass (a step settled in the log, see
        :meth:`RunInstance.feed_log`): the body's budget of callbacks starts afresh, as
        it does at each pass of :meth:`run_until_quiet`."""
        self._budget = MAX_CALLBACKS_PER_TURN

    def _asyncgen_firstiter(self, agen: Any) -> None:
        self._asyncgens.add(agen)

    def _asyncgen_finalizer(self, agen: Any) -> None:
        self._asyncgens.discard(agen)
        if not self._closed:
            self.call_soon(self.create_task, agen.aclose())

    # -- futures and tasks -------------------------------------------------------------

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)

    def create_task(
        self,
        coro: Coroutine[Any, Any, _T] | Awaitable[_T],
        *,
        name: str | None = None,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[_T]:
        if not asyncio.iscoroutine(coro):
            if not inspect.isawaitable(coro):
                raise TypeError(f"a coroutine or awaitable was expected, got {coro!r}")
            coro = _await(coro)
        return asyncio.Task(coro, loop=self, name=name, context=context)

    def set_task_factory(self, factory: Any) -> None:
        raise SandboxError("a workflow body cannot replace its loop's task factory")

    def get_task_factory(self) -> None:
        return None

    # -- state -------------------------------------------------------------------------

    def is_running(self) -> bool:
        return self._running

    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True
        self._ready.clear()
        self._timers.clear()

    def get_debug(self) -> bool:
        return False

    def set_debug(self, enabled: bool) -> None:
        return None

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        self.unhandled.append(context)
        _log.debug("unhandled in workflow body: %s", context.get("message"))

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        self.call_exception_handler(context)

    def get_exception_handler(self) -> None:
        return None

    def set_exception_handler(self, handler: Any) -> None:
        raise SandboxError("a workflow body cannot set its loop's exception handler")

    # -- what a body may not do --------------------------------------------------------

    def _forbidden(self, what: str) -> SandboxError:
        return SandboxError(
            f"{what} is not available inside a workflow body: the body must replay "
            "identically from the log. Move this work into a step (@wf.step), which runs "
            "on the worker's real event loop."
        )

    def call_soon_threadsafe(self, *args: Any, **kwargs: Any) -> asyncio.Handle:
        raise self._forbidden("call_soon_threadsafe (threads)")

    def run_in_executor(self, *args: Any, **kwargs: Any) -> Any:
        raise self._forbidden("run_in_executor / asyncio.to_thread")

    def run_forever(self) -> None:
        raise self._forbidden("run_forever")

    def run_until_complete(self, future: Any) -> Any:
        raise self._forbidden("run_until_complete")

    def stop(self) -> None:
        raise self._forbidden("loop.stop()")

    async def shutdown_asyncgens(self) -> None:
        return None

    async def shutdown_default_executor(self, timeout: float | None = None) -> None:
        return None


def _forbid_the_rest() -> None:
    """Every other loop method (sockets, subprocesses, signals, ...) raises at once."""
    for name, attr in vars(asyncio.AbstractEventLoop).items():
        if name.startswith("_") or name in vars(WorkflowLoop) or not callable(attr):
            continue

        def forbidden(self: WorkflowLoop, *args: Any, _name: str = name, **kwargs: Any) -> Any:
            raise self._forbidden(f"loop.{_name}()")

        forbidden.__name__ = name
        setattr(WorkflowLoop, name, forbidden)


_forbid_the_rest()
guards.install(WorkflowLoop)
