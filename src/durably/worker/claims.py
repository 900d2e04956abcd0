"""Claiming: the loop that takes work from the world, and the heartbeat behind it.

The claim loop asks the world for runs that need a turn and for step and timer tasks that
are due, as many as this worker has room for (see :class:`~.slots.Slots`), and hands each
to the worker. With nothing to claim it waits for news: this process recording work
(``wake``), the world's notice of new work, or the next due task, whichever comes first;
a worker whose peers keep taking that work first backs off (see ``BACKOFF``).
The heartbeat extends the leases of everything held, so that only a worker that is gone
loses its work to another, and looks for cancellations of the runs of long-running steps
(see :mod:`.cancels`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection

from ..clock import Clock
from ..errors import WorldUnavailableError
from ..worlds.base import Claim, Task, World
from .outage import Outage
from .slots import Slots

__all__ = ["BACKOFF", "MAX_BACKOFF", "Claims"]

_log = logging.getLogger("durably.worker")

#: A worker woken by the world's news of work (another process's commit) whose claim
#: then found nothing (a peer took the work first) waits this long before its next claim,
#: doubling with each such miss up to ``MAX_BACKOFF``: news that arrives meanwhile is
#: claimed in one go. So with many idle workers on one queue, each start wakes them all
#: but only the quickest ones claim at once, and the number of claims does not grow
#: with the number of workers. News of this process (``wake``) ends the wait at once; a
#: claim that finds work, or an idle wait that ends on its timeout, ends the backoff.
BACKOFF = 0.005
MAX_BACKOFF = 0.1


class Claims:
    """The claim loop and heartbeat of one worker.

    Args:
        world: where the work is queued.
        slots: what the worker holds (how much more it may claim).
        owner: the worker's lease owner name.
        namespace, deployment: the work this worker serves.
        workflows, steps: the names its registry has: it claims only runs of these
            workflows and tasks of these steps or of runs of these workflows, so work of
            another app sharing the world waits for that app's workers.
        lease_seconds: how long a lease lasts without a heartbeat.
        poll_interval: the longest idle wait between two claims.
        wake: set when there may be work to claim now.
        stopping: whether the worker is stopping (it claims no more).
        on_run: given each claimed run (holds it and starts its turn).
        on_step: given each claimed step task (its slot and lease already taken).
        on_timer: given each claimed timer task (its lease already held).
        on_beat: called at each heartbeat, after the leases are extended.
        clock: the registry's clock, asked at each claim (a test may swap it): work is
            due by its time, and a virtual clock skips to the next due work when the
            worker is ``quiet``.
        quiet: whether nothing of this worker is in flight (no step, no turn).
        also_due: when work outside the queue is next due, if ahead (the schedule
            driver's next tick), counted among the due times the idle wait ends at.
    """

    def __init__(
        self,
        world: World,
        slots: Slots,
        *,
        owner: str,
        namespace: str,
        deployment: str,
        workflows: Collection[str],
        steps: Collection[str],
        lease_seconds: float,
        poll_interval: float,
        wake: asyncio.Event,
        stopping: Callable[[], bool],
        on_run: Callable[[str], None],
        on_step: Callable[[Task], None],
        on_timer: Callable[[Task], None],
        on_beat: Callable[[], Awaitable[None]],
        clock: Callable[[], Clock] = Clock,
        quiet: Callable[[], bool] = lambda: False,
        also_due: Callable[[], float | None] = lambda: None,
    ) -> None:
        self.world = world
        self.slots = slots
        self.owner = owner
        self.namespace = namespace
        self.deployment = deployment
        self.workflows = workflows
        self.steps = steps
        self.lease_seconds = lease_seconds
        self.poll_interval = poll_interval
        self.wake = wake
        self._stopping = stopping
        self._on_run = on_run
        self._on_step = on_step
        self._on_timer = on_timer
        self._on_beat = on_beat
        self._clock = clock
        self._quiet = quiet
        self._also_due = also_due
        self._claiming = Outage("claiming")
        self._beating = Outage("extending leases")
        #: Claims in a row that found nothing after news of work woke this worker.
        self.misses = 0
        self._woken = False  # the last idle wait ended on the world's news

    async def loop(self) -> None:
        """Claim work until stopped (or cancelled)."""
        world, slots = self.world, self.slots
        while not self._stopping():
            try:
                if self.misses and not self.wake.is_set() and self._clock().due_by() is None:
                    await self._back_off()
                # Cleared before the claim, so news that arrives while it runs (a commit
                # of this worker that queued work) is not lost before the idle wait.
                self.wake.clear()
                free = slots.free
                due_by = self._clock().due_by()
                # Passed only when set: a world written before ``due_by`` still serves
                # workers on the real time.
                extra = {} if due_by is None else {"due_by": due_by}
                claim = await self._claim(
                    world.claim(
                        owner=self.owner,
                        namespace=self.namespace,
                        deployment=self.deployment,
                        max_runs=slots.turns_free,
                        max_tasks=max(free, 0),
                        lease_seconds=self.lease_seconds,
                        workflows=self.workflows,
                        steps=self.steps,
                        **extra,
                    )
                )
                for run_id in claim.runs:
                    self._on_run(run_id)
                for task in claim.tasks:
                    slots.hold_task(task.run_id, task.call)
                    if task.kind == "step":
                        slots.take()
                        self._on_step(task)
                    else:
                        self._on_timer(task)
                self._claiming.recovered()
                if claim.runs or claim.tasks:
                    self.misses, self._woken = 0, False
                    await asyncio.sleep(0)
                    continue
                if self._woken:
                    self.misses += 1
                await self._idle(free > 0)
            except asyncio.CancelledError:
                raise
            except WorldUnavailableError as e:
                # Disk full, or the write lock held elsewhere: wait it out, quietly.
                await asyncio.sleep(self._claiming.failed(e))
            except Exception:
                _log.exception("durably worker: claiming failed; retrying in 1s")
                await asyncio.sleep(1.0)

    async def _claim(self, claiming: Awaitable[Claim]) -> Claim:
        """One claim, run to its end even if the loop is cancelled meanwhile (the
        worker stops, or its event loop ends).

        A claim cancelled halfway may already have leased work in the world, which this
        worker would then never hold nor hand back: it would wait for its lease to
        expire (``lease_seconds``), although nobody works on it. So the claim is
        shielded from the cancellation, and what it leased is handed back at once
        before the cancellation goes on.
        """
        claim = asyncio.ensure_future(claiming)
        try:
            return await asyncio.shield(claim)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                got = await claim
                if got.runs or got.tasks:
                    await self.world.release(
                        owner=self.owner,
                        run_ids=list(got.runs),
                        tasks=[(t.run_id, t.call) for t in got.tasks],
                    )
            raise

    async def _back_off(self) -> None:
        """Wait before claiming again after news of work that peers took first (see
        ``BACKOFF``), unless this process has news meanwhile."""
        delay = min(BACKOFF * 2 ** (self.misses - 1), MAX_BACKOFF)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), delay)

    async def _idle(self, can_take_tasks: bool) -> None:
        self._woken = False
        self.slots.starved = not can_take_tasks
        timeout = self.poll_interval
        due = await self.world.next_due(
            namespace=self.namespace,
            deployment=self.deployment,
            workflows=self.workflows,
            steps=self.steps,
        )
        clock = self._clock()
        also = self._also_due()
        if also is not None and (due is None or also < due):
            due = also  # a schedule's next tick
        if due is not None and can_take_tasks:
            if clock.skipping and not self.wake.is_set() and self._quiet() and clock.skip_to(due):
                return  # a virtual clock moved to the next due work: claim it
            timeout = min(timeout, max(due - clock.now(), 0.0))
        if timeout <= 0:
            if clock.due_by() is None:
                await asyncio.sleep(0.001)
                return
            # Ahead of the real time, work "due" but not claimed is behind a lease, which
            # expires on the real time (often this worker's own, on a turn in flight):
            # wait for news rather than spin.
            timeout = 0.05
        if self.wake.is_set():
            return  # news since this round's claim began: claim again
        waker = asyncio.ensure_future(self.wake.wait())
        watcher = asyncio.ensure_future(
            self.world.wait_for_work(namespace=self.namespace, timeout=timeout)
        )
        monotonic = asyncio.get_running_loop().time
        began = monotonic()
        try:
            done, _ = await asyncio.wait({waker, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waker.cancel()
            watcher.cancel()
        if waker in done:
            return  # this process's news: not a miss if nothing is there
        if monotonic() - began < 0.9 * timeout:
            self._woken = True  # the world's news (a peer may take it first)
        else:
            self.misses = 0  # a quiet spell: the next news is claimed at once

    async def heartbeat(self) -> None:
        """Record that this deployment is served, extend the held leases and look for
        cancelled runs of steps running here, every third of a lease, until cancelled."""
        while True:
            try:
                # The world keeps when each deployment's workers were last alive, so
                # runs pinned to a deployment nobody serves any more are visible.
                await self.world.touch_deployment(self.namespace, self.deployment)
                self._beating.recovered()
            except WorldUnavailableError as e:
                self._beating.failed(e)  # logged once per outage; the next beat retries
            except Exception:
                _log.exception("durably worker: recording the deployment failed")
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                runs, tasks = self.slots.held()
                if runs or tasks:
                    await self.world.extend_leases(
                        owner=self.owner,
                        run_ids=runs,
                        tasks=tasks,
                        lease_seconds=self.lease_seconds,
                    )
                    self._beating.recovered()
            except WorldUnavailableError as e:
                self._beating.failed(e)
            except Exception:
                _log.exception("durably worker: extending leases failed")
            try:
                await self._on_beat()
            except Exception:
                _log.exception("durably worker: looking for cancelled runs failed")
