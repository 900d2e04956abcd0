"""Conformance, readers of the dashboard: ``list_leases`` says which worker holds which
run turn and task until when (expired leases too), ``count_runs`` counts runs by status
under the same filters as ``list_runs``, on every world."""

from __future__ import annotations

import time

from durably.events import EventType as E
from durably.worlds import World
from durably.worlds.base import RunFilter

from .test_conformance import (
    DEP,
    NS,
    A,
    B,
    claim,
    create_run,
    ev,
    pytestmark,  # noqa: F401  (strict asyncio mode)
    run_with_calls,
    write,
)


async def test_list_leases_names_the_holder_of_each_turn_and_task(world: World) -> None:
    assert await world.list_leases() == []
    stepping = await run_with_calls(world, ev(E.STEP_CREATED, 0, name="charge"), workflow="shop")
    turning = (await create_run(world, workflow="mail")).run_id
    other_ns = (await create_run(world, namespace="elsewhere")).run_id
    before = time.time()
    got = await claim(world, A, runs=0, tasks=1)  # A takes the step
    assert [(t.run_id, t.call) for t in got.tasks] == [(stepping, 0)]
    assert (await claim(world, B, runs=1, tasks=0)).runs == [turning]  # B takes a turn
    assert (await claim(world, B, runs=1, tasks=0, namespace="elsewhere")).runs == [other_ns]

    leases = await world.list_leases(namespace=NS)
    assert [(x.owner, x.run_id, x.kind, x.call) for x in leases] == [
        (A, stepping, "step", 0),
        (B, turning, "turn", None),
    ]
    step, turn = leases
    assert (step.name, step.workflow_name, step.namespace, step.deployment) == (
        "charge",
        "shop",
        NS,
        DEP,
    )
    assert (turn.name, turn.workflow_name) == (None, "mail")
    assert all(x.lease_until >= before + 29 for x in leases)  # claimed for 30 s
    assert {x.run_id for x in await world.list_leases()} == {stepping, turning, other_ns}

    # Handed back or done: no longer held by anyone.
    await world.release(owner=B, run_ids=[turning], tasks=[])
    await write(world, stepping, facts=[ev(E.STEP_COMPLETED, 0, attempt=1)], owner=A)
    assert await world.list_leases(namespace=NS) == []


async def test_an_expired_lease_stays_listed_until_its_work_is_claimed(world: World) -> None:
    run_id = (await create_run(world)).run_id
    assert (await claim(world, A, runs=1, tasks=0, lease_seconds=0.05)).runs == [run_id]
    [lease] = await world.list_leases()
    assert lease.owner == A
    while time.time() <= lease.lease_until:
        time.sleep(0.01)
    [expired] = await world.list_leases()
    assert (expired.owner, expired.lease_until) == (A, lease.lease_until)
    assert (await claim(world, B, runs=1, tasks=0)).runs == [run_id]
    assert [x.owner for x in await world.list_leases()] == [B]


async def test_count_runs_by_status_under_the_list_filters(world: World) -> None:
    assert await world.count_runs(RunFilter()) == {}
    await create_run(world, "run_a1", workflow="w1")
    await create_run(world, "run_a2", workflow="w1")
    await create_run(world, "run_b1", workflow="w2", namespace="ns2")
    await write(world, "run_a2", facts=[ev(E.RUN_STARTED)])
    await write(world, "run_a1", facts=[ev(E.ATTRIBUTES_SET, set={"tier": "gold"})])
    await write(world, "run_b1", facts=[ev(E.RUN_STARTED), ev(E.RUN_COMPLETED)])

    assert await world.count_runs(RunFilter()) == {"pending": 1, "running": 1, "completed": 1}
    # The status filter is what the counts choose among: it is ignored.
    assert await world.count_runs(RunFilter(status="completed", limit=1)) == {
        "pending": 1,
        "running": 1,
        "completed": 1,
    }
    assert await world.count_runs(RunFilter(workflow_name="w1")) == {"pending": 1, "running": 1}
    assert await world.count_runs(RunFilter(namespace="ns2")) == {"completed": 1}
    assert await world.count_runs(RunFilter(deployment="nope")) == {}
    assert await world.count_runs(RunFilter(run_id_prefix="run_a")) == {
        "pending": 1,
        "running": 1,
    }
    assert await world.count_runs(RunFilter(run_id_prefix="run_a_")) == {}  # not a wildcard
    assert await world.count_runs(RunFilter(attributes={"tier": "gold"})) == {"pending": 1}
