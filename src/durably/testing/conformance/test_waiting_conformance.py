"""Conformance: waiting for a run, for its end and for work, on every world.

Part of the suite of :mod:`durably.testing.conformance.test_conformance` (its helpers are
shared from there): a waiter wakes promptly when another task or thread commits, and
returns after its timeout otherwise.
"""

from __future__ import annotations

import asyncio
import threading
import time

from durably.events import EventType as E
from durably.events import NewEvent
from durably.worlds import World
from durably.worlds.base import Commit, CommitResult, RunFilter, RunMeta, RunWrite

from .test_conformance import (
    DEP,
    NS,
    PROMPT,
    A,
    B,
    claim,
    create_run,
    ev,
    pytestmark,  # noqa: F401  (strict asyncio mode)
    run_with_calls,
    write,
)

# -- waiting ---------------------------------------------------------------------------


async def test_wait_for_run_returns_when_another_task_commits(world: World) -> None:
    await create_run(world, "r")

    async def later() -> None:
        await asyncio.sleep(0.05)
        await write(world, "r", facts=[ev(E.RUN_STARTED)], owner=B)

    task = asyncio.create_task(later())
    t0 = time.monotonic()
    await world.wait_for_run("r", after_seq=1, timeout=30)
    assert time.monotonic() - t0 < PROMPT
    await task
    assert (await world.get_run("r")).last_seq == 2  # type: ignore[union-attr]


async def test_wait_for_run_wakes_for_a_commit_from_another_thread(world: World) -> None:
    await create_run(world, "r")

    def other_thread() -> None:
        time.sleep(0.05)
        asyncio.run(write(world, "r", facts=[ev(E.RUN_STARTED)], owner=B))

    thread = threading.Thread(target=other_thread)
    t0 = time.monotonic()
    thread.start()
    try:
        await world.wait_for_run("r", after_seq=1, timeout=30)
        assert time.monotonic() - t0 < PROMPT
    finally:
        thread.join()
    assert (await world.get_run("r")).last_seq == 2  # type: ignore[union-attr]


async def test_wait_for_run_returns_at_once_or_after_the_timeout(world: World) -> None:
    await create_run(world, "r")
    t0 = time.monotonic()
    await world.wait_for_run("r", after_seq=0, timeout=30)  # already past
    assert time.monotonic() - t0 < PROMPT

    t0 = time.monotonic()
    await world.wait_for_run("r", after_seq=1, timeout=0.2)
    assert 0.15 <= time.monotonic() - t0 < PROMPT


async def test_wait_for_run_end_returns_the_ended_record(world: World) -> None:
    assert await world.wait_for_run_end("nope", timeout=30) is None
    run_id = await run_with_calls(world, ev(E.STEP_CREATED, 0, name="s"), claim_calls=[0])

    async def later() -> None:
        await asyncio.sleep(0.05)
        await write(world, run_id, facts=[ev(E.STEP_COMPLETED, 0)])  # a step: not the end
        await asyncio.sleep(0.05)
        await write(world, run_id, expected_seq=4, commands=[ev(E.RUN_COMPLETED)])

    task = asyncio.create_task(later())
    t0 = time.monotonic()
    rec = await world.wait_for_run_end(run_id, timeout=30)
    assert time.monotonic() - t0 < PROMPT
    await task
    assert rec is not None
    assert (rec.status, rec.last_seq) == ("completed", 5)


async def test_wait_for_run_end_gives_the_record_as_it_is_after_the_timeout(
    world: World,
) -> None:
    run_id = await run_with_calls(world, ev(E.STEP_CREATED, 0, name="s"), claim_calls=[0])
    await write(world, run_id, facts=[ev(E.STEP_COMPLETED, 0)])
    t0 = time.monotonic()
    rec = await world.wait_for_run_end(run_id, timeout=0.2)
    assert 0.15 <= time.monotonic() - t0 < PROMPT
    assert rec is not None
    assert (rec.status, rec.last_seq) == ("running", 4)


async def test_wait_for_work_returns_when_work_arrives(world: World) -> None:
    async def later() -> None:
        await asyncio.sleep(0.05)
        await create_run(world, "r")

    task = asyncio.create_task(later())
    t0 = time.monotonic()
    await world.wait_for_work(namespace=NS, timeout=30)
    assert time.monotonic() - t0 < PROMPT
    await task
    assert (await claim(world)).runs == ["r"]


async def test_wait_for_work_returns_when_a_lease_is_handed_back(world: World) -> None:
    await create_run(world, "r")
    await claim(world, A)

    async def later() -> None:
        await asyncio.sleep(0.05)
        await world.release(owner=A, run_ids=["r"], tasks=[])

    task = asyncio.create_task(later())
    t0 = time.monotonic()
    await world.wait_for_work(namespace=NS, timeout=30)
    assert time.monotonic() - t0 < PROMPT
    await task
    assert (await claim(world, B)).runs == ["r"]


async def test_wait_for_work_times_out_when_nothing_happens(world: World) -> None:
    t0 = time.monotonic()
    await world.wait_for_work(namespace=NS, timeout=0.2)
    assert 0.15 <= time.monotonic() - t0 < PROMPT


async def test_commit_reports_new_work(world: World) -> None:
    created: CommitResult = await world.commit(
        Commit([RunWrite("r", create=RunMeta("wf", NS, DEP), facts=[ev(E.RUN_CREATED)])])
    )
    assert created.new_work
    await claim(world, A)
    inline = await world.commit(
        Commit(
            [
                RunWrite(
                    "r",
                    facts=[ev(E.RUN_STARTED)],
                    expected_seq=1,
                    commands=[ev(E.STEP_CREATED, 0)],
                    claim_calls=[0],
                )
            ],
            owner=A,
        )
    )
    assert inline.results[0].ok and not inline.new_work
    queued = await world.commit(
        Commit([RunWrite("r", expected_seq=3, commands=[ev(E.STEP_CREATED, 1)])], owner=A)
    )
    assert queued.results[0].ok and queued.new_work


async def test_list_runs_by_deployment_prefix_and_pages(world: World) -> None:
    from durably.events import EventType, NewEvent
    from durably.worlds.base import Commit, RunMeta, RunWrite

    ids = []
    for i in range(5):
        rid = f"run_page{i}"
        ids.append(rid)
        meta = RunMeta(workflow_name="w", namespace="ns", deployment="a" if i % 2 else "b")
        await world.commit(
            Commit([RunWrite(rid, create=meta, facts=[NewEvent(EventType.RUN_CREATED)])])
        )
    newest_first = [r.run_id for r in await world.list_runs(RunFilter(limit=10))]
    assert sorted(newest_first) == sorted(ids)
    page1 = [r.run_id for r in await world.list_runs(RunFilter(limit=2))]
    page2 = [r.run_id for r in await world.list_runs(RunFilter(limit=2, offset=2))]
    assert page1 + page2 == newest_first[:4]
    only_a = await world.list_runs(RunFilter(deployment="a"))
    assert sorted(r.run_id for r in only_a) == ["run_page1", "run_page3"]
    assert [r.run_id for r in await world.list_runs(RunFilter(run_id_prefix="run_page4"))] == [
        "run_page4"
    ]


async def test_a_run_created_leased_is_not_claimable_by_others(world: World) -> None:
    from durably.events import EventType
    from durably.worlds.base import Commit, RunMeta, RunWrite

    meta = RunMeta(workflow_name="w", namespace=NS, deployment=DEP)
    write = RunWrite("run_leased", create=meta, facts=[NewEvent(EventType.RUN_CREATED)], lease=True)
    created = await world.commit(Commit([write], owner=A, lease_seconds=0.2))
    assert not created.new_work  # nobody else need wake: A begins it
    assert (await claim(world, B)).runs == []  # A advances it itself
    await asyncio.sleep(0.3)  # A died: its lease expires
    assert (await claim(world, B)).runs == ["run_leased"]
