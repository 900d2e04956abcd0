"""Conformance, locks and concurrency limits (``durably.worlds.locks``): a permit is
granted at once or the run waits, FIFO by priority; releasing it (a command, or the run's
end) grants the next waiter in the same commit; a waiter that gives up leaves the queue;
a run created under a concurrency limit has no turn until it is admitted; two commits
racing for one permit never both get it. On every world."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from durably.events import EventType as E
from durably.events import NewEvent
from durably.worlds import World
from durably.worlds.base import Commit, RunMeta, RunWrite, WriteResult
from durably.worlds.locks import ADMISSION

from .test_conformance import (
    DEP,
    NS,
    A,
    claim,
    create_run,
    ev,
    pytestmark,  # noqa: F401  (strict asyncio mode)
    run_with_calls,
)


async def turn(
    world: World, run_id: str, *commands: NewEvent, locks: bool = False, owner: str = A
) -> WriteResult:
    """One turn of the run's body (by whoever, no lease held): append ``commands``."""
    rec = await world.get_run(run_id)
    assert rec is not None
    w = RunWrite(run_id, expected_seq=rec.last_seq, commands=list(commands), locks=locks)
    res = (await world.commit(Commit([w], owner=owner))).results[0]
    assert res.ok
    return res


def req(call: int, key: str = "k", limit: int = 1) -> NewEvent:
    return ev(E.LOCK_REQUESTED, call, name=key, key=key, limit=limit)


def rel(call: int, key: str = "k") -> NewEvent:
    return ev(E.LOCK_RELEASED, call, name=key, key=key)


async def acquired(world: World, run_id: str) -> list[int | None]:
    return [e.call for e in await world.read_events(run_id) if e.type == E.LOCK_ACQUIRED]


async def state(world: World, key: str = "k") -> list[tuple[str, str]]:
    return [
        (e.run_id, "holding" if e.holding else "waiting") for e in await world.list_locks(key=key)
    ]


async def test_a_free_permit_is_granted_in_the_commit_that_asks(world: World) -> None:
    a = await run_with_calls(world)
    res = await turn(world, a, req(0))
    assert await acquired(world, a) == [0]
    assert res.last_seq > res.own_seq  # the world appended the fact after the command
    assert await state(world) == [(a, "holding")]
    # The fact is delivered: the run has a turn due to read it.
    assert a in (await claim(world)).runs


async def test_a_waiter_is_granted_when_the_holder_releases(world: World) -> None:
    a, b = await run_with_calls(world), await run_with_calls(world)
    await turn(world, a, req(0))
    await turn(world, b, req(0))
    assert await acquired(world, b) == []
    assert await state(world) == [(a, "holding"), (b, "waiting")]
    await claim(world)  # a's turn (to read its grant) is taken; b has none
    assert (await claim(world)).runs == []
    await turn(world, a, rel(0))
    assert await acquired(world, b) == [0]
    assert await state(world) == [(b, "holding")]
    assert (await claim(world)).runs == [b]


async def test_the_end_of_a_run_releases_what_it_holds(world: World) -> None:
    a, b = await run_with_calls(world), await run_with_calls(world)
    await turn(world, a, req(0), req(1, "other"))
    await turn(world, b, req(0))
    await turn(world, a, ev(E.RUN_FAILED, error_type="Boom"), locks=True)
    assert await acquired(world, b) == [0]
    assert await state(world) == [(b, "holding")]
    assert await state(world, "other") == []


async def test_waiters_are_granted_in_order_up_to_the_limit(world: World) -> None:
    runs = [await run_with_calls(world) for _ in range(4)]
    for r in runs:
        await turn(world, r, req(0, limit=2))
    assert [len(await acquired(world, r)) for r in runs] == [1, 1, 0, 0]
    await turn(world, runs[1], rel(0))
    assert [len(await acquired(world, r)) for r in runs] == [1, 1, 1, 0]
    assert await state(world) == [(runs[0], "holding"), (runs[2], "holding"), (runs[3], "waiting")]


async def test_a_waiter_that_gives_up_leaves_the_queue(world: World) -> None:
    a, b, c = [await run_with_calls(world) for _ in range(3)]
    await turn(world, a, req(0))
    await turn(world, b, req(0))
    await turn(world, c, req(0))
    await turn(world, b, rel(0))  # b's acquire timed out
    assert await state(world) == [(a, "holding"), (c, "waiting")]
    await turn(world, a, rel(0))
    assert (await acquired(world, b), await acquired(world, c)) == ([], [0])


async def test_two_commits_racing_for_one_permit_never_both_get_it(
    two_worlds: tuple[World, World],
) -> None:
    # Two world objects (two connections, two pools): as two workers would be.
    w1, w2 = two_worlds
    for _ in range(5):
        key = uuid.uuid4().hex
        a, b = (await create_run(w1)).run_id, (await create_run(w1)).run_id
        await asyncio.gather(turn(w1, a, req(0, key)), turn(w2, b, req(0, key)))
        granted = [await acquired(w1, a), await acquired(w1, b)]
        assert sorted(map(len, granted)) == [0, 1]
        holder, waiter = (a, b) if granted[0] else (b, a)
        assert await state(w1, key) == [(holder, "holding"), (waiter, "waiting")]
        await turn(w2, holder, rel(0, key))
        assert await acquired(w1, waiter) == [0]


# -- concurrency limits: admission ------------------------------------------------------


async def create_limited(
    world: World, key: str = "c", limit: int = 1, priority: int = 0, **meta: Any
) -> str:
    run_id = uuid.uuid4().hex
    m = RunMeta("wf", NS, DEP, priority=priority, concurrency_key=key, concurrency_limit=limit)
    w = RunWrite(run_id, create=m, facts=[ev(E.RUN_CREATED)])
    assert (await world.commit(Commit([w]))).results[0].created
    return run_id


async def test_a_run_over_the_limit_has_no_turn_until_admitted(world: World) -> None:
    a = await create_limited(world)
    b = await create_limited(world)
    assert await state(world, "c") == [(a, "holding"), (b, "waiting")]
    assert [e.call for e in await world.list_locks(key="c")] == [ADMISSION, ADMISSION]
    assert (await claim(world)).runs == [a]
    assert (await claim(world)).runs == []
    rec = await world.get_run(b)
    assert rec is not None and rec.status == "pending"
    # a ends: b's first turn is due, in that commit.
    started = RunWrite(a, facts=[ev(E.RUN_STARTED)], expected_seq=1, locks=True)
    started.commands = [ev(E.RUN_COMPLETED)]
    assert (await world.commit(Commit([started], owner="worker-a"))).results[0].ok
    assert (await claim(world)).runs == [b]
    assert await state(world, "c") == [(b, "holding")]


async def test_admission_goes_by_priority_then_start_order(world: World) -> None:
    first = await create_limited(world)
    low = await create_limited(world, priority=0)
    high = await create_limited(world, priority=5)
    later_high = await create_limited(world, priority=5)
    waiting = [e.run_id for e in await world.list_locks(key="c") if not e.holding]
    assert waiting == [high, later_high, low]
    assert first in (await claim(world)).runs


async def test_keys_have_their_own_permits(world: World) -> None:
    # A backlog on one key holds up nobody else.
    busy = [await create_limited(world, key="busy") for _ in range(5)]
    quiet = await create_limited(world, key="quiet")
    assert sorted((await claim(world)).runs) == sorted([busy[0], quiet])


async def test_priority_orders_the_first_turns_of_pending_runs(world: World) -> None:
    ids = []
    for p in (0, 3, 1):
        run_id = uuid.uuid4().hex
        w = RunWrite(run_id, create=RunMeta("wf", NS, DEP, priority=p), facts=[ev(E.RUN_CREATED)])
        await world.commit(Commit([w]))
        ids.append(run_id)
        time.sleep(0.002)
    got = [(await claim(world, runs=1)).runs[0] for _ in range(3)]
    assert got == [ids[1], ids[2], ids[0]]
