"""Schedules at run time: exactly one run per tick however many workers drive them (on
every world), catch-up after downtime, a changed expression, a removed schedule, and the
tick given to the run. The drivers read a virtual clock, so no test waits for a minute."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from durably import Workflows
from durably.schedules import MAX_CATCH_UP, tick_key
from durably.worker.schedules import ScheduleDriver
from durably.worlds.base import RunFilter, TickDecision

#: A minute boundary (plus a second), so tick arithmetic is easy to read.
BASE = datetime(2026, 3, 2, 12, 0, 1, tzinfo=UTC).timestamp()
MINUTE = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = BASE

    def __call__(self) -> float:
        return self.now


def scheduled(wf: Workflows, cron: str = "* * * * *", **options: Any) -> Any:
    @wf.workflow(name="report", schedule=cron, **options)
    async def report(tick: datetime) -> str:
        return tick.isoformat()

    return report


async def driver(wf: Workflows, clock: Clock) -> ScheduleDriver:
    await wf.open()
    assert wf.worker is not None
    d = wf.worker.schedules
    d.clock = clock
    return d


async def runs_of(wf: Workflows) -> list[Any]:
    world = await wf.open()
    return await world.list_runs(RunFilter(workflow_name="report", limit=1000))


async def test_two_workers_start_each_tick_once(make_wf: Callable[..., Workflows]) -> None:
    clock = Clock()
    apps = [make_wf(), make_wf()]
    for app in apps:
        scheduled(app)
    drivers = [await driver(app, clock) for app in apps]
    await asyncio.gather(*(d.run_once() for d in drivers))  # register
    for k in range(1, 4):
        clock.now = BASE + k * MINUTE
        # Both drivers race for the tick, twice each.
        await asyncio.gather(*(d.run_once() for d in drivers + drivers))
    runs = await runs_of(apps[0])
    ticks = [BASE - 1 + k * MINUTE for k in range(1, 4)]
    assert sorted(r.idempotency_key for r in runs) == [tick_key(t) for t in ticks]
    for r in runs:
        handle = await apps[0].get_run(r.run_id)
        value = await handle.return_value()
        assert tick_key(datetime.fromisoformat(value).timestamp()) == r.idempotency_key
    (row,) = await (await apps[0].open()).list_schedules(apps[0].namespace)
    assert row.last_tick == ticks[-1] and not row.pending
    assert row.last_run_id in {r.run_id for r in runs}


def memory_app() -> Workflows:
    return Workflows(world=f"memory://{uuid.uuid4().hex}", encryption_key=False)


@pytest.mark.parametrize(
    ("catch_up", "expected"),
    [("latest", [5]), ("all", [1, 2, 3, 4, 5]), ("skip", [])],
)
async def test_after_downtime_catch_up_decides_what_runs(
    catch_up: str, expected: list[int]
) -> None:
    clock = Clock()
    async with memory_app() as wf:
        scheduled(wf, catch_up=catch_up)
        d = await driver(wf, clock)
        await d.run_once()
        clock.now = BASE + 5 * MINUTE + 2 * MINUTE / 3  # five ticks missed, 40 s late
        await d.run_once()
        keys = sorted(r.idempotency_key for r in await runs_of(wf))
        assert keys == [tick_key(BASE - 1 + k * MINUTE) for k in expected]
        # The next tick on time runs whatever the catch-up.
        clock.now = BASE + 6 * MINUTE
        await d.run_once()
        assert len(await runs_of(wf)) == len(expected) + 1


async def test_a_changed_expression_moves_the_next_tick_and_the_old_code_stops() -> None:
    clock = Clock()
    name = f"memory://{uuid.uuid4().hex}"
    async with (
        Workflows(world=name, encryption_key=False) as old,
        Workflows(world=name, encryption_key=False) as new,
    ):
        scheduled(old, "0 * * * *")  # hourly
        d_old = await driver(old, clock)
        await d_old.run_once()
        (row,) = await (await old.open()).list_schedules("default")
        assert row.next_tick == BASE - 1 + 60 * MINUTE
        scheduled(new, "*/5 * * * *")
        d_new = await driver(new, clock)
        await d_new.run_once()
        (row,) = await (await new.open()).list_schedules("default")
        assert (row.cron, row.next_tick) == ("*/5 * * * *", BASE - 1 + 5 * MINUTE)
        clock.now = BASE + 60 * MINUTE
        await d_old.run_once()  # its definition is not the world's any more
        assert await runs_of(old) == []
        await d_new.run_once()
        assert [r.idempotency_key for r in await runs_of(new)] == [tick_key(BASE - 1 + 60 * MINUTE)]


async def test_a_schedule_removed_from_the_code_stops() -> None:
    clock = Clock()
    name = f"memory://{uuid.uuid4().hex}"
    async with (
        Workflows(world=name, encryption_key=False) as before,
        Workflows(world=name, encryption_key=False) as after,
    ):
        scheduled(before)
        d_before = await driver(before, clock)
        await d_before.run_once()

        @after.workflow(name="report")
        async def report(tick: datetime) -> str:
            return "no schedule any more"

        d_after = await driver(after, clock)
        await d_after.run_once()
        assert await (await after.open()).list_schedules() == []
        clock.now = BASE + 3 * MINUTE
        await d_before.run_once()
        await d_after.run_once()
        assert await runs_of(after) == []


async def test_the_tick_is_an_aware_datetime_in_the_schedules_zone() -> None:
    clock = Clock()
    async with memory_app() as wf:
        scheduled(wf, "0 14 * * *", timezone="Europe/Paris")
        d = await driver(wf, clock)
        await d.run_once()
        clock.now = BASE + 2 * 60 * MINUTE  # 14:00 UTC: the tick of 14:00 in Paris (13:00 UTC) ran
        await d.run_once()
        (run,) = await runs_of(wf)
        value = await (await wf.get_run(run.run_id)).return_value()
        assert value == "2026-03-02T14:00:00+01:00"


async def test_the_driver_follows_the_registrys_clock_when_it_jumps() -> None:
    # A registry's clock (durably.clock: a test's virtual one skips ahead) is where the
    # driver reads "now": a jump past a tick starts its run without waiting for it.
    clock = Clock()
    async with memory_app() as wf:
        wf.clock = type("C", (), {"now": staticmethod(clock)})()  # type: ignore[attr-defined]
        scheduled(wf)
        await wf.open()
        assert wf.worker is not None and wf.worker.schedules.clock() == BASE
        for _ in range(100):  # the driver registers the schedule at start
            if await (await wf.open()).list_schedules():
                break
            await asyncio.sleep(0.05)
        assert wf.worker.schedules.upcoming() == BASE - 1 + MINUTE
        clock.now = BASE + MINUTE
        for _ in range(200):
            if await runs_of(wf):
                break
            await asyncio.sleep(0.05)
        assert [r.idempotency_key for r in await runs_of(wf)] == [tick_key(BASE - 1 + MINUTE)]


async def test_a_tick_decided_by_a_driver_that_died_is_started_by_the_next() -> None:
    clock = Clock()
    async with memory_app() as wf:
        scheduled(wf)
        d = await driver(wf, clock)
        await d.run_once()
        world = await wf.open()
        tick = BASE - 1 + MINUTE
        # Another driver decided the tick, then died before creating its run.
        decision = TickDecision(
            cron="* * * * *", timezone="UTC", last_tick=None,
            tick=tick, pending=True, next_tick=tick + MINUTE, now=tick,
        )  # fmt: skip
        assert await world.advance_schedule("default", "report", decision)
        clock.now = BASE + MINUTE
        await d.run_once()
        await d.run_once()
        (run,) = await runs_of(wf)
        assert run.idempotency_key == tick_key(tick)
        (row,) = await world.list_schedules()
        assert (row.last_tick, row.pending, row.last_run_id) == (tick, False, run.run_id)


async def test_catching_up_on_many_ticks_goes_on_at_once() -> None:
    clock = Clock()
    async with memory_app() as wf:
        scheduled(wf, catch_up="all")
        d = await driver(wf, clock)
        await d.run_once()
        clock.now = BASE + (MAX_CATCH_UP + 20) * MINUTE
        assert await d.run_once() == clock.now  # more are due: pass again at once
        assert len(await runs_of(wf)) == MAX_CATCH_UP
        assert await d.run_once() > clock.now
        assert len(await runs_of(wf)) == MAX_CATCH_UP + 20
