"""World conformance for flow control across runs: rate limiters and schedules.

Every world must grant a rate-limited step start only within its limiter's sliding
window, in one transaction with the step's task (moving the task when over, never
failing it), and must decide each schedule tick once (compare and set on the row's last
tick), however many workers race. Times passed as ``now`` are explicit, so no assertion
depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import time

from durably.events import EventType as E
from durably.waiting import waiting_of
from durably.worlds import World
from durably.worlds.schedules import ScheduleRecord, TickDecision

from .test_conformance import (
    NS,
    A,
    B,
    claim,
    ev,
    pytestmark,  # noqa: F401  (strict asyncio mode)
    run_with_calls,
)

STEP = "call_model"


async def leased_steps(world: World, n: int, owner_of: object = None) -> list[tuple[str, int]]:
    """A run with ``n`` step calls, each claimed by worker A (or by ``owner_of(i)``)."""
    cmds = [ev(E.STEP_CREATED, i, name=STEP) for i in range(n)]
    run_id = await run_with_calls(world, *cmds)
    got: list[tuple[str, int]] = []
    for i in range(n):
        owner = owner_of(i) if callable(owner_of) else A
        c = await claim(world, owner, runs=0, tasks=1)
        assert len(c.tasks) == 1
        got.append((c.tasks[0].run_id, c.tasks[0].call))
        assert c.tasks[0].run_id == run_id
    return got


async def take(
    world: World, task: tuple[str, int], now: float, *, owner: str = A, limit: int = 2
) -> object:
    return await world.take_rate(
        limiter="openai",
        limit=limit,
        per=10.0,
        owner=owner,
        run_id=task[0],
        call=task[1],
        now=now,
    )


# -- rate limiters -------------------------------------------------------------------------


async def test_starts_within_the_limit_are_granted_and_the_next_waits(world: World) -> None:
    t0 = time.time()
    tasks = await leased_steps(world, 3)
    assert (await take(world, tasks[0], t0)).granted  # type: ignore[attr-defined]
    assert (await take(world, tasks[1], t0 + 1)).granted  # type: ignore[attr-defined]
    third = await take(world, tasks[2], t0 + 2)
    assert not third.granted and not third.lost  # type: ignore[attr-defined]
    assert third.retry_at == t0 + 10  # type: ignore[attr-defined]  # the first start leaves
    # The task waits durably: due then, held by nobody, the attempt not counted.
    queue = await world.run_queue(tasks[2][0])
    assert queue is not None
    moved = next(t for t in queue.tasks if t.call == tasks[2][1])
    assert moved.visible_at == t0 + 10
    assert moved.lease_owner is None and moved.attempt == 0
    steps = {s.call: s for s in await world.list_steps(tasks[2][0])}
    assert steps[tasks[2][1]].status == "rate_limited"
    assert (await claim(world, B, runs=0, tasks=10)).tasks == []  # not due yet
    # What the run waits for says so.
    rec = await world.get_run(tasks[2][0])
    assert rec is not None
    waits = await waiting_of(world, rec, now=t0 + 3)
    limited = [w for w in (waits, *waits.also) if w.kind == "rate_limit"]
    assert [(w.call, w.name, w.until) for w in limited] == [(tasks[2][1], STEP, t0 + 10)]
    assert "waits for its rate limit" in limited[0].describe(t0 + 3)
    # Its former holder may not start it any more.
    assert (await take(world, tasks[2], t0 + 3)).lost  # type: ignore[attr-defined]


async def test_the_window_slides(world: World) -> None:
    t0 = time.time()
    tasks = await leased_steps(world, 4)
    assert (await take(world, tasks[0], t0)).granted  # type: ignore[attr-defined]
    assert (await take(world, tasks[1], t0 + 6)).granted  # type: ignore[attr-defined]
    over = await take(world, tasks[2], t0 + 9)
    assert over.retry_at == t0 + 10  # type: ignore[attr-defined]
    # At t0 + 10 the first start has left the window; the second has not.
    assert (await take(world, tasks[3], t0 + 10)).granted  # type: ignore[attr-defined]
    rates = {r.name: r for r in await world.list_rates()}
    assert rates["openai"].starts == [t0 + 6, t0 + 10]


async def test_a_worker_whose_clock_lags_counts_at_the_latest_start(world: World) -> None:
    # Two processes: one read its clock (t0 + 9) before the other's start at t0 + 11.5 was
    # committed, which pruned the starts at t0 and t0 + 1. Judged at its own clock, the
    # lagging worker's start would be a third within ten seconds of t0 (limit 2); the
    # limiter's clock never runs backwards, so it counts at t0 + 11.5 instead.
    t0 = time.time()
    tasks = await leased_steps(world, 4)
    for task, at in zip(tasks[:3], (t0, t0 + 1, t0 + 11.5), strict=True):
        first = await take(world, task, at)
        assert first.granted and first.at == at  # type: ignore[attr-defined]
    late = await take(world, tasks[3], t0 + 9)
    assert late.granted and late.at == t0 + 11.5  # type: ignore[attr-defined]
    rates = {r.name: r for r in await world.list_rates()}
    assert rates["openai"].starts == [t0 + 11.5, t0 + 11.5]


async def test_a_task_leased_to_another_worker_is_not_started(world: World) -> None:
    t0 = time.time()
    (task,) = await leased_steps(world, 1)
    assert (await take(world, task, t0, owner=B)).lost  # type: ignore[attr-defined]
    assert all(not r.starts for r in await world.list_rates())


async def test_workers_racing_for_one_limiter_get_exactly_its_limit(world: World) -> None:
    t0 = time.time()
    tasks = await leased_steps(world, 10, owner_of=lambda i: A if i % 2 else B)
    owners = [A if i % 2 else B for i in range(10)]
    decisions = await asyncio.gather(
        *(take(world, t, t0, owner=o, limit=3) for t, o in zip(tasks, owners, strict=True))
    )
    assert sum(d.granted for d in decisions) == 3  # type: ignore[attr-defined]
    assert all(d.retry_at == t0 + 10 for d in decisions if not d.granted)  # type: ignore[attr-defined]


# -- schedules -----------------------------------------------------------------------------


def sched(
    name: str = "report", cron: str = "*/5 * * * *", catch_up: str = "latest"
) -> ScheduleRecord:
    return ScheduleRecord(NS, name, cron, "UTC", catch_up, anchor=0.0, next_tick=300.0)


async def test_schedules_are_registered_redefined_and_dropped(world: World) -> None:
    await world.sync_schedules(NS, [sched(), sched("digest", "0 9 * * *")], [], 100.0)
    rows = {r.workflow_name: r for r in await world.list_schedules(NS)}
    assert set(rows) == {"report", "digest"}
    assert rows["report"].anchor == 100.0 and rows["report"].next_tick == 300.0
    assert await world.list_schedules("other") == []
    # The same definition again changes nothing; a new expression re-anchors it.
    await world.sync_schedules(NS, [sched()], [], 200.0)
    assert (await world.list_schedules(NS))[1].anchor == 100.0
    assert await world.advance_schedule(
        NS, "report", TickDecision("*/5 * * * *", "UTC", None, 300.0, True, 600.0, 301.0)
    )
    await world.schedule_ran(NS, "report", tick=300.0, run_id="r1")
    await world.sync_schedules(NS, [sched(cron="*/10 * * * *")], ["digest"], 400.0)
    (row,) = await world.list_schedules(NS)
    assert (row.cron, row.anchor, row.last_tick, row.last_run_id) == (
        "*/10 * * * *",
        400.0,
        300.0,
        "r1",
    )
    assert not row.pending


async def test_one_driver_decides_a_tick(world: World) -> None:
    await world.sync_schedules(NS, [sched()], [], 100.0)

    async def advance(last: float | None, tick: float, cron: str = "*/5 * * * *") -> bool:
        decision = TickDecision(
            cron=cron, timezone="UTC", last_tick=last, tick=tick,
            pending=True, next_tick=tick + 300, now=tick,
        )  # fmt: skip
        return await world.advance_schedule(NS, "report", decision)

    results = await asyncio.gather(*(advance(None, 300.0) for _ in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    assert not await advance(None, 600.0)  # stale: the row's last tick moved
    assert not await advance(300.0, 600.0, cron="0 * * * *")  # another definition
    assert await advance(300.0, 600.0)
    (row,) = await world.list_schedules(NS)
    assert row.last_tick == 600.0 and row.pending and row.next_tick == 900.0
