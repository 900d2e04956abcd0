"""Cancels: stopping the step attempts of a run that was cancelled.

A run's cancellation is a fact in its log (``run_cancel_requested``, written by
:mod:`durably.control`, in any process). The worker running one of the run's steps learns
of it two ways:

* its own turn of the run reads the fact (the common case: the cancel makes the run need
  a turn, and a worker of the process that cancelled is woken at once). The run's live
  body then says which steps it had called and not seen end when it was cancelled
  (:attr:`~durably.runtime.instance.RunInstance.steps_at_cancel`), at no extra query;
* otherwise (another worker took that turn), its heartbeat: for the runs of attempts
  running longer than :data:`CHECK_AFTER`, it reads the run's record, and only for a run
  with a cancel request, where that request stands in the log. A step of a few
  milliseconds never costs a query.

Only steps the body called before the cancel are stopped: the cleanup steps its
``except``/``finally`` calls afterwards run as usual. Stopping an ``async`` attempt
cancels its task, so the step gets ``asyncio.CancelledError`` at its current await; a
``def`` step's thread cannot be interrupted, so its attempt is abandoned (see
:mod:`.steps`), and :func:`durably.step_cancelled` tells it to return early.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from ..events import EventType
from ..runtime.context import StepAttempt
from ..worlds.base import World

__all__ = ["CHECK_AFTER", "Attempt", "Cancels"]

_log = logging.getLogger("durably.worker")

#: The heartbeat asks about a run's cancellation once one of its attempts has run this long.
CHECK_AFTER = 1.0

#: How many events the heartbeat reads at a time, looking for a run's cancel request.
_PAGE = 500


class Attempt:
    """A step attempt running in this worker: what stopping it needs.

    Args:
        run_id: the run of the step.
        call: the step's call in the run.
        task: the task the attempt's code runs in (cancelled to stop it).
    """

    __slots__ = ("call", "created_seq", "kept", "run_id", "since", "state", "task")

    def __init__(self, run_id: str, call: int, task: asyncio.Task[Any] | None) -> None:
        self.run_id = run_id
        self.call = call
        self.task = task
        self.state = StepAttempt()
        self.since = time.monotonic()
        #: The seq of the step's ``step_created`` event, once the heartbeat needed it.
        self.created_seq: int | None = None
        #: The heartbeat found that the step was called after its run's cancel (cleanup).
        self.kept = False

    def stop(self) -> None:
        """Stop the attempt: an async step gets CancelledError at its current await."""
        if self.state.cancelled or self.state.over:
            return
        self.state.cancelled = True
        if self.task is not None:
            self.task.cancel("the run was cancelled")


class Cancels:
    """The step attempts running in one worker, by run, and the stopping of them.

    Args:
        world: where the runs' logs are (read by the heartbeat's check only).
    """

    def __init__(self, world: World) -> None:
        self.world = world
        self._running: dict[str, dict[int, Attempt]] = {}
        #: Where the heartbeat found a run's cancel request in its log.
        self._cancel_seq: dict[str, int] = {}

    def begin(self, run_id: str, call: int) -> Attempt:
        """Note an attempt that starts in the current task."""
        attempt = Attempt(run_id, call, asyncio.current_task())
        self._running.setdefault(run_id, {})[call] = attempt
        return attempt

    def end(self, attempt: Attempt) -> None:
        """Note the end of an attempt: from now on nothing stops it, and what its code
        still does (a thread that outlives it) is discarded."""
        attempt.state.over = True
        calls = self._running.get(attempt.run_id)
        if calls is not None and calls.get(attempt.call) is attempt:
            del calls[attempt.call]
            if not calls:
                del self._running[attempt.run_id]
                self._cancel_seq.pop(attempt.run_id, None)

    def stop(self, run_id: str, calls: frozenset[int]) -> None:
        """Stop the attempts running here of steps ``calls`` of run ``run_id`` (those
        its body had called when it was cancelled)."""
        running = self._running.get(run_id)
        if not running or not calls:
            return
        for call, attempt in list(running.items()):
            if call in calls:
                attempt.stop()

    async def check(self) -> None:
        """The heartbeat's check: stop the attempts, running here for a while, whose run
        was cancelled (by a turn another worker took) before they were called."""
        now = time.monotonic()
        runs = [
            run_id
            for run_id, calls in self._running.items()
            if any(_undecided(a) and now - a.since >= CHECK_AFTER for a in calls.values())
        ]
        for run_id in runs:
            try:
                rec = await self.world.get_run(run_id)
                if rec is not None and rec.cancel_requested:
                    await self._stop_called_before_cancel(run_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                _log.exception("durably worker: checking whether run %s was cancelled", run_id)

    async def _stop_called_before_cancel(self, run_id: str) -> None:
        """Stop the attempts of run ``run_id`` whose step was created before its cancel
        request in the log; note the others (cleanup steps) so they are not asked again."""
        pending = [a for a in self._running.get(run_id, {}).values() if _undecided(a)]
        for a in pending:
            if a.created_seq is None:
                ev = await self.world.read_command(run_id, a.call)
                a.created_seq = ev.seq if ev is not None else 0
        if not pending:
            return
        cancel_seq = self._cancel_seq.get(run_id)
        if cancel_seq is None:
            first = min(a.created_seq or 0 for a in pending)
            cancel_seq = await self._find_cancel(run_id, first)
            if cancel_seq is not None:
                self._cancel_seq[run_id] = cancel_seq
        for a in pending:
            if cancel_seq is not None and (a.created_seq or 0) < cancel_seq:
                a.stop()
            else:
                a.kept = True

    async def _find_cancel(self, run_id: str, after: int) -> int | None:
        """The seq of the run's cancel request if it comes after ``after``, else None."""
        while True:
            events = await self.world.read_events(run_id, after_seq=after, limit=_PAGE)
            for ev in events:
                if ev.type is EventType.RUN_CANCEL_REQUESTED:
                    return ev.seq
            if len(events) < _PAGE:
                return None
            after = events[-1].seq


def _undecided(a: Attempt) -> bool:
    return not (a.kept or a.state.cancelled or a.state.over)
