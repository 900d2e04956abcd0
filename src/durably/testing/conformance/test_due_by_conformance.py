"""Conformance, claims ahead of time: ``claim(due_by=T)`` hands out the timers, retries
and run turns due by ``T`` (a worker on a virtual clock, ``durably.testing.time_skipping``),
while leases still expire on the real time: a live worker's lease is never taken."""

from __future__ import annotations

import time

from durably.events import EventType as E
from durably.worlds import World
from durably.worlds.base import Claim

from .test_conformance import (
    DEP,
    NS,
    A,
    B,
    ev,
    pytestmark,  # noqa: F401  (strict asyncio mode)
    run_with_calls,
    write,
)

DAY = 86_400.0


async def claim_by(world: World, due_by: float, owner: str = B) -> Claim:
    return await world.claim(
        owner=owner,
        namespace=NS,
        deployment=DEP,
        max_runs=10,
        max_tasks=10,
        lease_seconds=30.0,
        due_by=due_by,
    )


async def test_due_by_hands_out_timers_and_retries_due_by_then(world: World) -> None:
    now = time.time()
    napping = await run_with_calls(world, ev(E.WAIT_CREATED, 0, due_at=now + DAY, name="nap"))
    retrying = await run_with_calls(world, ev(E.STEP_CREATED, 0, name="s"), claim_calls=[0])
    facts = [ev(E.STEP_RETRYING, 0, attempt=1, retry_at=now + 2 * DAY, error_type="Boom")]
    assert (await write(world, retrying, facts=facts)).ok

    assert (await claim_by(world, time.time())).tasks == []
    assert (await claim_by(world, now + DAY / 2)).tasks == []
    got = await claim_by(world, now + DAY + 1)
    assert [(t.run_id, t.call, t.kind) for t in got.tasks] == [(napping, 0, "timer")]
    got = await claim_by(world, now + 3 * DAY)
    assert [(t.run_id, t.call, t.kind, t.attempt) for t in got.tasks] == [(retrying, 0, "step", 2)]


async def test_due_by_never_takes_a_live_lease(world: World) -> None:
    # Worker A holds the step it just claimed inline (a 30 s lease on the real time).
    await run_with_calls(world, ev(E.STEP_CREATED, 0, name="s"), claim_calls=[0])
    got = await claim_by(world, time.time() + 365 * DAY)
    assert got.tasks == [] and got.runs == []


async def test_due_by_in_the_past_is_now(world: World) -> None:
    run_id = await run_with_calls(world, ev(E.WAIT_CREATED, 0, due_at=time.time() - 1, name="n"))
    got = await claim_by(world, 0.0, owner=A)
    assert [(t.run_id, t.kind) for t in got.tasks] == [(run_id, "timer")]
