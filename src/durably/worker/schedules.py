"""The schedule driver: starts one run per tick of the registry's scheduled workflows.

Every worker runs one (embedded or ``durably worker``); they coordinate only through the
world, so any number of them, in any number of processes, start each tick exactly once:

1. **Registering.** When the worker starts (and when a schedule is registered later),
   the driver writes its registry's schedules to the world (``sync_schedules``): a new
   schedule, or one whose expression, zone or catch-up changed, is anchored at that
   moment, so its next tick is computed from the new definition; a workflow of the
   registry that has no schedule any more has its row dropped, and no driver fires it.
2. **Deciding.** On each pass, for each of its schedules whose row has the same
   definition as its code, the driver computes the ticks due since the row's last tick
   (:mod:`durably.schedules`: cron, time zone, daylight saving), picks those that run
   per ``catch_up``, and decides them one by one with ``advance_schedule``: a compare and
   set of the row's ``last_tick``. Two drivers that read the same row race there, and
   only one moves it; the other reads again on its next pass.
3. **Starting.** A decided tick is *pending* until its run exists: the driver creates
   the run with the tick's idempotency key (:func:`durably.schedules.tick_key`) and
   records it (``schedule_ran``). A driver that dies in between leaves the row pending,
   and the next pass of any driver creates the run with the same key, which returns the
   run if it was created already. So each tick is at least decided once, and becomes at
   most one run: exactly one.

Where "now" comes from: :attr:`ScheduleDriver.clock`, read once per pass (the worker
sets it to its registry's clock: the real time, or a test's virtual one). The driver
sleeps until the earliest next tick of its schedules (:attr:`ScheduleDriver.next_tick`,
at most :data:`POLL_INTERVAL` away), or until woken (:meth:`ScheduleDriver.wake`); while
it sleeps it reads the clock every :data:`CLOCK_CHECK` seconds, so a clock that jumps
ahead (time skipping) reaches the tick at once. The worker's idle claim loop counts
``next_tick`` among its due times, so a skipping clock skips to the next tick too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import WorldUnavailableError
from ..schedules import MAX_CATCH_UP, SKIP_GRACE, Schedule, tick_key
from ..worlds.base import World
from ..worlds.schedules import ScheduleRecord, TickDecision

if TYPE_CHECKING:
    from ..registry import Workflows

__all__ = ["POLL_INTERVAL", "ScheduleDriver"]

_log = logging.getLogger("durably.worker")

#: The longest the driver sleeps between two passes (it also wakes at each next tick):
#: how soon it sees a schedule changed or dropped by another worker.
POLL_INTERVAL = 30.0
#: How soon a driver that lost a race for a tick passes again.
RACE_RETRY = 0.05
#: While the driver sleeps, how often it reads its clock (cheap: no I/O), so a clock that
#: jumps ahead (a test's virtual clock) is noticed.
CLOCK_CHECK = 0.25


class ScheduleDriver:
    """Starts the runs of one registry's schedules (see the module's docstring).

    Args:
        registry: whose schedules (``registry.schedules``, read live).
        world: where the schedule rows and the runs are.
        stopping: whether the worker is stopping.
    """

    def __init__(self, registry: Workflows, world: World, *, stopping: Callable[[], bool]) -> None:
        self.registry = registry
        self.world = world
        self.namespace = registry.namespace
        self._stopping = stopping
        #: Where the driver reads "now" (once per pass).
        self.clock: Callable[[], float] = time.time
        #: The earliest upcoming tick of this registry's schedules, as of the last pass.
        self.next_tick: float | None = None
        self._wake = asyncio.Event()
        self._synced: dict[str, Schedule] | None = None

    def upcoming(self) -> float | None:
        """The next tick, if it is still ahead (a tick already due is the driver's to
        start: the claim loop need not wait for it)."""
        tick = self.next_tick
        return tick if tick is not None and tick > self.clock() else None

    def wake(self) -> None:
        """Pass now (a virtual clock moved, a schedule was registered)."""
        self._wake.set()

    async def loop(self) -> None:
        """Register the registry's schedules and start their ticks until stopped."""
        failures = 0
        while not self._stopping():
            self._wake.clear()
            try:
                due = await self.run_once()
                failures = 0
            except asyncio.CancelledError:
                raise
            except WorldUnavailableError:
                failures += 1
                due = self.clock() + min(2.0**failures, POLL_INTERVAL)
            except Exception:
                failures += 1
                _log.exception("durably worker: the schedule driver failed; trying again")
                due = self.clock() + min(2.0**failures, POLL_INTERVAL)
            await self._sleep_until(min(due, self.clock() + POLL_INTERVAL))

    async def _sleep_until(self, due: float) -> None:
        """Until the clock reaches ``due`` or the driver is woken."""
        while not self._wake.is_set() and not self._stopping():
            left = due - self.clock()
            if left <= 0:
                await asyncio.sleep(0)
                return
            try:
                await asyncio.wait_for(self._wake.wait(), min(left, CLOCK_CHECK))
            except TimeoutError:
                pass

    async def run_once(self) -> float:
        """One pass: register what changed, decide and start what is due. Returns when
        the next pass is needed (the earliest next tick)."""
        now = self.clock()
        schedules = dict(self.registry.schedules)
        if schedules != self._synced:
            await self._register(schedules, now)
            self._synced = schedules
        if not schedules:
            self.next_tick = None
            return now + POLL_INTERVAL
        rows = {
            r.workflow_name: r
            for r in await self.world.list_schedules(self.namespace)
            if r.workflow_name in schedules
        }
        due = now + POLL_INTERVAL
        ticks: list[float] = []
        for name, sched in schedules.items():
            row = rows.get(name)
            if row is None or not _defines(row, sched):
                continue  # dropped, or redefined by another deployment: not ours to run
            tick = await self._drive(name, sched, row, now)
            ticks.append(tick)
            due = min(due, tick)
        self.next_tick = min(ticks) if ticks else None
        return due

    async def _register(self, schedules: dict[str, Schedule], now: float) -> None:
        put = [
            ScheduleRecord(
                namespace=self.namespace,
                workflow_name=name,
                cron=s.cron,
                timezone=s.timezone,
                catch_up=s.catch_up,
                anchor=now,
                next_tick=s.next_after(now),
                updated_at=now,
            )
            for name, s in sorted(schedules.items())
        ]
        # A workflow of this code without a schedule: its schedule was removed.
        drop = sorted(n for n in self.registry.workflows if n not in schedules)
        await self.world.sync_schedules(self.namespace, put, drop, now)

    async def _drive(self, name: str, sched: Schedule, row: ScheduleRecord, now: float) -> float:
        """Start the due ticks of one schedule; returns when it is next due."""
        if row.pending and row.last_tick is not None:
            await self._start(name, sched, row.last_tick)  # a driver died before its run
        last = row.last_tick
        after = row.anchor if last is None else max(last, row.anchor)
        for tick, run in _decide(sched, after, now):
            decision = TickDecision(
                cron=sched.cron,
                timezone=sched.timezone,
                last_tick=last,
                tick=tick,
                pending=run,
                next_tick=sched.next_after(tick),
                now=now,
            )
            moved = await self.world.advance_schedule(self.namespace, name, decision)
            if not moved:
                return now + RACE_RETRY  # another driver decided it: read the row again
            last = tick
            if run:
                await self._start(name, sched, tick)
        nxt = sched.next_after(after if last is None else max(last, after))
        return nxt if nxt > now else now  # more ticks due (catch_up="all"): pass again

    async def _start(self, name: str, sched: Schedule, tick: float) -> None:
        """Create the tick's run (its idempotency key makes a second creation return
        the first) and record it on the schedule."""
        wfobj = self.registry.workflows[name]
        payload = wfobj.spec.shape.encode_args((sched.as_datetime(tick),), {})
        control = await self.registry.control()
        run_id = await control.create_run(
            name, payload, namespace=self.namespace, idempotency_key=tick_key(tick)
        )
        await self.world.schedule_ran(self.namespace, name, tick=tick, run_id=run_id)


def _defines(row: ScheduleRecord, sched: Schedule) -> bool:
    return (row.cron, row.timezone, row.catch_up) == (sched.cron, sched.timezone, sched.catch_up)


def _decide(sched: Schedule, after: float, now: float) -> list[tuple[float, bool]]:
    """The ticks in ``(after, now]`` to decide, oldest first, and whether each runs."""
    if sched.catch_up == "all":
        return [(t, True) for t in sched.ticks(after, now, MAX_CATCH_UP)]
    latest = sched.latest(after, now)
    if latest is None:
        return []
    if sched.catch_up == "skip":
        return [(latest, now - latest <= SKIP_GRACE)]
    return [(latest, True)]
