"""The worker's clock: what "now" is when it claims due work and stamps what it records.

A registry has one clock (``Workflows.clock``) and its worker asks it for the time
whenever a time decides something: which timers and retries are due (the claim's
``due_by``), when a step started or ended, when a timer fired. Those stamps are the
events a workflow body's durable clock (``durably.now()``) is made of, so a body follows
the clock of the worker that records its facts.

The :class:`WallClock` is the real time. :class:`VirtualClock` runs ahead of it by an
offset that only grows: when the worker has nothing to do now (no step of its registry
running here, nothing claimable), it *skips* to the next due time of its queue, so a
sleep of 30 days ends at once. ``durably.testing.time_skipping`` installs one for a test.
Leases stay on the real time (the world keeps them), so skipping never steals work.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

from .durations import parse_duration

__all__ = ["Clock", "VirtualClock", "WallClock", "wall_time"]

#: ``time.time`` itself. The library reads the wall clock through this, not through the
#: wrapper ``runtime.guards`` puts around ``time.time`` to warn workflow bodies (a frame
#: and a check per call, a few times per step), whichever of the two modules came first.
wall_time: Callable[[], float] = getattr(time.time, "__wrapped__", time.time)


class Clock:
    """What a worker asks for the time (the base is the real time, never skipping)."""

    def now(self) -> float:
        """The current time, in seconds since the epoch."""
        return wall_time()

    def due_by(self) -> float | None:
        """Claim work due at or before this time; ``None``: the world's own now."""
        return None

    def skip_to(self, due: float) -> bool:
        """The worker is idle and its next work is due at ``due``: move the time there
        if this clock skips (then the worker claims again at once). Returns whether it
        moved."""
        return False

    @property
    def skipping(self) -> bool:
        """Whether this clock may skip forward when the worker is idle."""
        return False


class WallClock(Clock):
    """The real time: the default clock of every registry."""


class VirtualClock(Clock):
    """A clock ahead of the real time by an offset that only grows.

    ``auto`` (the default): skip to the next due time whenever the worker is idle.
    :meth:`paused` suspends that for a block; :meth:`advance` moves the time by hand.
    """

    def __init__(self, *, auto: bool = True) -> None:
        self.offset = 0.0
        self.auto = auto
        self._paused = 0
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> float:
        """The virtual time: the real time plus everything skipped so far."""
        return wall_time() + self.offset

    def due_by(self) -> float | None:
        """Claim what is due by the virtual time."""
        return self.now()

    @property
    def skipping(self) -> bool:
        """Whether the clock skips on its own now (``auto`` and not paused)."""
        return self.auto and self._paused == 0

    def skip_to(self, due: float) -> bool:
        """Move to ``due`` when skipping on its own and ``due`` is ahead."""
        if not self.skipping:
            return False
        return self._move(due - self.now())

    def advance(self, duration: str | float | timedelta) -> None:
        """Move the time forward by ``duration`` (``"2d"``, seconds, a ``timedelta``),
        paused or not, and wake the worker: what falls due meanwhile runs."""
        seconds = parse_duration(duration)
        if seconds < 0:
            raise ValueError(f"a clock only moves forward; got {duration!r}")
        self._move(seconds)

    def pause(self) -> None:
        """Stop skipping on its own until :meth:`resume` (calls nest)."""
        self._paused += 1

    def resume(self) -> None:
        """Undo one :meth:`pause`; the worker looks for what is due at once."""
        self._paused = max(self._paused - 1, 0)
        self._notify()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """A block during which the clock does not skip on its own (the real time and
        :meth:`advance` still move it): to resume a hook before a timeout raced against
        it fires, for instance."""
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever the time moves or skipping resumes (the worker
        claims again then)."""
        self._listeners.append(listener)

    def _move(self, seconds: float) -> bool:
        if seconds <= 0:
            return False
        self.offset += seconds
        self._notify()
        return True

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()
