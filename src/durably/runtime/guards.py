"""Guards on the process-wide clock and random functions, active only in a body's turn.

A workflow body must replay identically, so the wall clock and the global ``random``
functions are mistakes there: ``time.sleep()`` would block the worker's loop (it raises
:class:`~durably.errors.SandboxError`), and ``time.time()`` or ``random.random()``
would give another value on replay (a :class:`~durably.errors.DurablyWarning` names the
line and the durable replacement).

The functions of the ``time`` and ``random`` modules are wrapped once, when this module
is installed. A wrapper costs one check everywhere else: whether the running loop of
this thread is a body's loop, which is only the case while a body's turn runs
(:meth:`~durably.runtime.loop.WorkflowLoop.run_until_quiet` sets it, on the thread that
runs the turn). Code that imported a function before durably was imported
(``from time import time``) keeps the unwrapped one.

Warnings are given only for calls from the user's code: the standard library, installed
packages and durably itself read the clock for their own reasons (``logging`` stamps
its records), which do not steer the body.
"""

from __future__ import annotations

import functools
import random
import sys
import sysconfig
import time
import warnings
from asyncio import events
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import DurablyWarning, SandboxError

__all__ = ["install"]

_RANDOM_FUNCTIONS = (
    "random",
    "randint",
    "randrange",
    "choice",
    "choices",
    "shuffle",
    "sample",
    "uniform",
    "gauss",
    "getrandbits",
    "randbytes",
)


def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths["stdlib"], paths["purelib"], paths["platlib"], str(Path(__file__).parent.parent)}
    return tuple(dirs | {str(Path(d).resolve()) for d in dirs})


#: Where code that is not the user's lives: the standard library, installed packages,
#: durably itself.
_NOT_USER_CODE = _library_dirs()

_installed = False


def install(body_loop: type) -> None:
    """Wrap ``time.sleep``, ``time.time``, ``time.time_ns`` and the global ``random``
    functions (once per process); ``body_loop`` is the class of a body's loop."""
    global _installed
    if _installed:
        return
    _installed = True

    def in_body() -> bool:
        return type(events._get_running_loop()) is body_loop

    time.sleep = _refusing(time.sleep, in_body)  # type: ignore[assignment]
    for name in ("time", "time_ns"):
        setattr(
            time,
            name,
            _warning(
                getattr(time, name),
                body_loop,
                f"time.{name}() in a workflow body reads the wall clock, which differs on "
                "replay; use durably.now() (or durably.time_ns()), the run's durable clock",
            ),
        )
    for name in _RANDOM_FUNCTIONS:
        setattr(
            random,
            name,
            _warning(
                getattr(random, name),
                body_loop,
                f"random.{name}() in a workflow body draws another value on replay; use "
                f"durably.random().{name}(), seeded by the run, or durably.uuid4()",
            ),
        )


def _refusing(fn: Callable[..., Any], in_body: Callable[[], bool]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def sleep(secs: float) -> None:
        if in_body():
            raise SandboxError(
                "time.sleep() in a workflow body would block the worker's event loop and "
                "is not durable; use `await durably.sleep(...)` (a durable timer) or "
                "`await asyncio.sleep(...)`"
            )
        fn(secs)

    return sleep


def _warning(fn: Callable[..., Any], body_loop: type, message: str) -> Callable[..., Any]:
    running_loop = events._get_running_loop

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        # The check is inlined: the worker itself reads the time a few times per step.
        if type(running_loop()) is body_loop and _from_user_code():
            warnings.warn(message, DurablyWarning, stacklevel=2)
        return fn(*args, **kwargs)

    return guarded


def _from_user_code() -> bool:
    """Whether the caller of the guarded function is the user's code (frame 0 is this
    function, 1 the wrapper, 2 its caller)."""
    return not sys._getframe(2).f_code.co_filename.startswith(_NOT_USER_CODE)
