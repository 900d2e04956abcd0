"""Conformance: ``World.prune_runs`` and ``RunWrite.turn``, on every world.

``prune_runs`` deletes a bounded batch of ended runs with everything they own, oldest end
first, and never a run that has not ended; ``turn`` gives a run a turn after a write.
"""

from __future__ import annotations

import time
import uuid

from durably.events import EventType as E
from durably.events import NewEvent
from durably.worlds import World
from durably.worlds.base import ChunkBatch, Commit, RunFilter, RunMeta, RunWrite

from .test_conformance import (
    DEP,
    NS,
    pytestmark,  # noqa: F401  (strict asyncio mode)
)


async def _run(world: World, *, status: str, namespace: str = NS, key: str | None = None) -> str:
    """A run that ended with ``status`` (or is still ``running``), with a step, a live
    hook (if running), a stream chunk and an idempotency key."""
    run_id = uuid.uuid4().hex
    meta = RunMeta("wf", namespace, DEP, idempotency_key=key)
    created = NewEvent(E.RUN_CREATED, None, {})
    await world.commit(Commit([RunWrite(run_id, create=meta, facts=[created])]))
    cmds = [
        NewEvent(E.STEP_CREATED, 0, {"name": "s"}),
        NewEvent(E.HOOK_CREATED, 1, {"name": "h", "type": "h", "token": f"tok-{run_id}"}),
    ]
    res = await world.commit(
        Commit(
            [
                RunWrite(
                    run_id,
                    facts=[NewEvent(E.RUN_STARTED)],
                    expected_seq=1,
                    commands=cmds,
                )
            ]
        )
    )
    assert res.results[0].ok
    await world.append_chunks([ChunkBatch(run_id, "", [b'"x"'])])
    end = {
        "completed": NewEvent(E.RUN_COMPLETED, None, {}, b"1"),
        "failed": NewEvent(E.RUN_FAILED, None, {"error_type": "X"}, b"{}"),
        "cancelled": NewEvent(E.RUN_CANCELLED, None, {}),
    }.get(status)
    if end is not None:
        rec = await world.get_run(run_id)
        assert rec is not None
        w = RunWrite(run_id, expected_seq=rec.last_seq, commands=[end])
        assert (await world.commit(Commit([w]))).results[0].ok
    return run_id


async def test_prune_deletes_ended_runs_with_all_they_own(world: World) -> None:
    done = await _run(world, status="completed", key="k1")
    failed = await _run(world, status="failed")
    live = await _run(world, status="running")
    cutoff = time.time() + 1
    assert sorted(await world.prune_runs(ended_before=cutoff, dry_run=True)) == sorted(
        [done, failed]
    )
    assert await world.get_run(done) is not None  # a dry run deletes nothing

    assert sorted(await world.prune_runs(ended_before=cutoff)) == sorted([done, failed])
    for rid in (done, failed):
        assert await world.get_run(rid) is None
        assert await world.read_events(rid) == []
        assert await world.list_steps(rid) == []
        assert await world.stream_info(rid) == []
        assert await world.list_hooks(run_id=rid) == []
        chunks, _ = await world.read_chunks(rid, "")
        assert chunks == []
    rec = await world.get_run(live)
    assert rec is not None and rec.status == "running"  # never a run that has not ended
    assert len(await world.list_hooks(run_id=live)) == 1
    assert await world.prune_runs(ended_before=cutoff) == []

    # The idempotency key is free again: a new run takes it.
    meta = RunMeta("wf", NS, DEP, idempotency_key="k1")
    again = RunWrite("again", create=meta, facts=[NewEvent(E.RUN_CREATED)])
    assert (await world.commit(Commit([again]))).results[0].created


async def test_prune_filters_by_age_status_namespace_and_limit(world: World) -> None:
    ids = [await _run(world, status="completed") for _ in range(3)]
    other_ns = await _run(world, status="completed", namespace="other")
    cancelled = await _run(world, status="cancelled")
    assert await world.prune_runs(ended_before=time.time() - 3600) == []  # too recent
    later = time.time() + 1
    only = await world.prune_runs(ended_before=later, statuses=["cancelled"])
    assert only == [cancelled]
    first = await world.prune_runs(ended_before=later, namespace=NS, limit=2)
    assert len(first) == 2 and set(first) <= set(ids)
    rest = await world.prune_runs(ended_before=later, namespace=NS, limit=2)
    assert set(first + rest) == set(ids)
    left = await world.list_runs(RunFilter())
    assert [r.run_id for r in left] == [other_ns]


async def test_a_write_with_turn_gives_the_run_a_turn(world: World) -> None:
    run_id = uuid.uuid4().hex
    meta = RunMeta("wf", NS, DEP)
    await world.commit(Commit([RunWrite(run_id, create=meta, facts=[NewEvent(E.RUN_CREATED)])]))
    claim = await world.claim(
        owner="a", namespace=NS, deployment=DEP, max_runs=5, max_tasks=0, lease_seconds=30
    )
    assert claim.runs == [run_id]
    w = RunWrite(
        run_id,
        facts=[NewEvent(E.RUN_STARTED)],
        expected_seq=1,
        commands=[NewEvent(E.WAIT_CREATED, 0, {"due_at": time.time() + 3600})],
        release=True,
    )
    assert (await world.commit(Commit([w], owner="a"))).results[0].ok
    again = await world.claim(
        owner="a", namespace=NS, deployment=DEP, max_runs=5, max_tasks=0, lease_seconds=30
    )
    assert again.runs == []  # the commands took its turn
    await world.commit(Commit([RunWrite(run_id, turn=True)]))
    turned = await world.claim(
        owner="a", namespace=NS, deployment=DEP, max_runs=5, max_tasks=0, lease_seconds=30
    )
    assert turned.runs == [run_id]
