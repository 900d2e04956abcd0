"""The future a step call returns inside a workflow body, which reports being dropped.

``charge(order)`` without ``await`` records the step and runs it, but its result (and
any error) goes nowhere, and the body goes on as if it had waited: almost always a
forgotten ``await``. A coroutine warns of that itself ("never awaited"); a step call's
future does the same: when it is collected without the body ever having awaited it,
passed it to ``asyncio.gather``/``wait``/``shield`` (which add a callback) or asked for
its result, a :class:`~durably.errors.DurablyWarning` names the step and the line of
the call.
"""

from __future__ import annotations

import asyncio
import contextvars
import warnings
from collections.abc import Callable, Generator
from typing import Any, Self

from ..errors import DurablyWarning

__all__ = ["StepFuture"]

#: The once-per-line registry of these warnings (a replay makes the call again).
_REPORTED: dict[Any, Any] = {}


class StepFuture(asyncio.Future[Any]):
    """The result of a step call in a body; warns if collected never observed."""

    # Set by the caller: the step's name, and the (file, line) of the call.
    name: str = ""
    site: tuple[str, int] | None = None
    call: int | None = None
    #: Set by a replay when the log holds the step's end: called when the body awaits
    #: the future still pending, it may resolve it from the log at once (see
    #: :meth:`durably.runtime.instance.RunInstance.feed_log`).
    settle: Callable[[StepFuture], None] | None = None
    _observed: bool = False

    def __await__(self) -> Generator[Any, None, Any]:
        self._observed = True
        settle = self.settle
        if settle is not None:
            self.settle = None
            if not self.done():
                settle(self)
        return super().__await__()

    __iter__ = __await__

    def add_done_callback(
        self,
        fn: Callable[[Self], object],
        /,
        *,
        context: contextvars.Context | None = None,
    ) -> None:
        """Add a callback (``gather``, ``wait``, ``shield`` do: the result is used)."""
        self._observed = True
        super().add_done_callback(fn, context=context)

    def result(self) -> Any:
        """The step's result (it is being used)."""
        self._observed = True
        return super().result()

    def exception(self) -> BaseException | None:  # type: ignore[override]
        """The step's error, if any (it is being used)."""
        self._observed = True
        return super().exception()

    def __del__(self) -> None:
        if not self._observed and self.site is not None:
            filename, lineno = self.site
            warnings.warn_explicit(
                f"the call of step {self.name!r} was never awaited: the step runs but its "
                "result and any error are dropped, and the body does not wait for it. "
                f"Write `await {self.name}(...)` (or gather it with asyncio.gather).",
                DurablyWarning,
                filename,
                lineno,
                registry=_REPORTED,
            )
        if self.done() and not self.cancelled():
            self._observed = True
            super().exception()  # retrieved: no "exception never retrieved" log too
