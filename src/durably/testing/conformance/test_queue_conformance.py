"""Conformance: steps, timers and the task queue, and run leases, on every world.

Part of the suite of :mod:`durably.testing.conformance.test_conformance` (its helpers are
shared from there): a step's task is claimable once, due times are honoured, a lease keeps
a run or a task from other workers until it expires or is handed back.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from durably.events import EventType as E
from durably.worlds import World
from durably.worlds.base import Commit, RunWrite

from .test_conformance import (
    DEP,
    NS,
    PAST_LEASE,
    SHORT_LEASE,
    A,
    B,
    claim,
    create_run,
    ev,
    pytestmark,  # noqa: F401  (strict asyncio mode)
    run_with_calls,
    types,
    write,
)

# -- steps, timers and the task queue --------------------------------------------------


async def test_step_created_makes_a_step_row_and_a_claimable_task(world: World) -> None:
    run_id = await run_with_calls(world, ev(E.STEP_CREATED, 0, name="fetch"))
    [step] = await world.list_steps(run_id)
    assert (step.run_id, step.call, step.kind, step.name) == (run_id, 0, "step", "fetch")
    assert (step.status, step.attempts, step.started_at) == ("pending", 0, None)

    got = await claim(world, B, runs=0)
    assert [(t.run_id, t.call, t.kind, t.attempt) for t in got.tasks] == [(run_id, 0, "step", 1)]
    [step] = await world.list_steps(run_id)
    assert (step.status, step.attempts) == ("running", 1)
    assert step.started_at is not None
    assert (await claim(world, A, runs=0)).tasks == []  # leased to B


async def test_claim_calls_lease_the_step_to_the_committer(world: World) -> None:
    run_id = (await create_run(world)).run_id
    await claim(world, A, runs=1, tasks=0)
    res = await world.commit(
        Commit(
            [
                RunWrite(
                    run_id,
                    facts=[ev(E.RUN_STARTED)],
                    expected_seq=1,
                    commands=[ev(E.STEP_CREATED, 0, name="s")],
                    claim_calls=[0],
                    release=True,
                )
            ],
            owner=A,
            lease_seconds=SHORT_LEASE,
        )
    )
    assert res.results[0].ok
    [step] = await world.list_steps(run_id)
    assert (step.status, step.attempts) == ("running", 1)
    assert step.started_at is not None
    assert (await claim(world, B)).tasks == []

    await asyncio.sleep(PAST_LEASE)
    got = await claim(world, B)
    assert [(t.call, t.attempt) for t in got.tasks] == [(0, 2)]
    [step] = await world.list_steps(run_id)
    assert (step.status, step.attempts) == ("running", 2)


async def test_each_claim_of_a_step_is_a_new_attempt(world: World) -> None:
    run_id = await run_with_calls(world, ev(E.STEP_CREATED, 0, name="s"))
    for attempt in (1, 2, 3):
        got = await claim(world, A, runs=0, lease_seconds=0.05)
        assert [(t.call, t.attempt) for t in got.tasks] == [(0, attempt)]
        assert (await world.list_steps(run_id))[0].attempts == attempt
        await asyncio.sleep(0.1)  # the holder is lost: its lease expires


async def test_a_step_handed_back_is_not_an_attempt_lost(world: World) -> None:
    run_id = await run_with_calls(world, ev(E.STEP_CREATED, 0, name="s"))
    for _ in range(3):
        got = await claim(world, A, runs=0)
        assert [(t.call, t.attempt) for t in got.tasks] == [(0, 1)]
        await world.release(owner=A, run_ids=[], tasks=[(run_id, 0)])


async def test_step_retrying_reschedules_the_task_at_retry_at(world: World) -> None:
    run_id = await run_with_calls(world, ev(E.STEP_CREATED, 0, name="s"), claim_calls=[0])
    later = time.time() + 3600
    facts = [ev(E.STEP_RETRYING, 0, attempt=1, retry_at=later, error_type="Boom")]
    assert (await write(world, run_id, facts=facts)).ok
    [step] = await world.list_steps(run_id)
    assert (step.status, step.attempts, step.error_type) == ("retrying", 1, "Boom")
    assert (await claim(world, B)).tasks == []
    assert await world.next_due(namespace=NS, deployment=DEP) == later
    # The run needs no turn for a retry: nothing the body consumes happened.
    assert (await claim(world, B)).runs == []

    past = time.time() - 1
    facts = [ev(E.STEP_RETRYING, 0, attempt=2, retry_at=past)]
    assert (await write(world, run_id, facts=facts)).ok
    got = await claim(world, B)
    assert [(t.call, t.kind, t.attempt, t.visible_at) for t in got.tasks] == [(0, "step", 3, past)]


async def test_step_completed_removes_the_task_and_needs_a_turn(world: World) -> None:
    run_id = await run_with_calls(world, ev(E.STEP_CREATED, 0, name="s"), claim_calls=[0])
    started = time.time() - 10
    facts = [ev(E.STEP_COMPLETED, 0, attempt=1, started_at=started)]
    assert (await write(world, run_id, facts=facts)).ok
    [step] = await world.list_steps(run_id)
    assert (step.status, step.attempts, step.started_at) == ("completed", 1, started)
    assert step.completed_at is not None

    # The task is gone, even once A's lease is handed back.
    await world.release(owner=A, run_ids=[], tasks=[(run_id, 0)])
    got = await claim(world, B)
    assert got.tasks == []
    assert got.runs == [run_id]


async def test_step_failed_records_the_error(world: World) -> None:
    run_id = await run_with_calls(world, ev(E.STEP_CREATED, 0, name="s"), claim_calls=[0])
    facts = [ev(E.STEP_FAILED, 0, attempt=4, error_type="ValueError")]
    assert (await write(world, run_id, facts=facts)).ok
    [step] = await world.list_steps(run_id)
    assert (step.status, step.attempts, step.error_type) == ("failed", 4, "ValueError")
    await world.release(owner=A, run_ids=[], tasks=[(run_id, 0)])
    assert (await claim(world, B)).tasks == []


async def test_a_holder_continuing_inline_consumes_its_own_facts(world: World) -> None:
    # The hot path: one commit records a step's result and the body's next call.
    run_id = await run_with_calls(world, ev(E.STEP_CREATED, 0, name="s"), claim_calls=[0])
    for call in range(1, 4):
        res = await write(
            world,
            run_id,
            facts=[ev(E.STEP_COMPLETED, call - 1, attempt=1)],
            expected_seq=1 + 2 * call,
            commands=[ev(E.STEP_CREATED, call, name="s")],
            claim_calls=[call],
        )
        assert (res.ok, res.last_seq) == (True, 3 + 2 * call)
    # Nothing left for anyone else: no turn due, the newest step leased to A.
    got = await claim(world, B)
    assert (got.runs, got.tasks) == ([], [])
    steps = await world.list_steps(run_id)
    assert [s.status for s in steps] == ["completed"] * 3 + ["running"]


async def test_a_deliverable_fact_makes_a_turn_due(world: World) -> None:
    run_id = await run_with_calls(world, ev(E.STEP_CREATED, 0, name="s"))
    assert (await claim(world, B, tasks=0)).runs == []
    assert (await write(world, run_id, facts=[ev(E.STEP_COMPLETED, 0)], owner=B)).ok
    assert (await claim(world, A, tasks=0)).runs == [run_id]


async def test_wait_created_is_a_timer_due_at_its_time(world: World) -> None:
    due = time.time() + PAST_LEASE
    run_id = await run_with_calls(world, ev(E.WAIT_CREATED, 0, due_at=due, name="nap"))
    [step] = await world.list_steps(run_id)
    assert (step.kind, step.name, step.status, step.due_at) == ("wait", "nap", "waiting", due)
    assert await world.next_due(namespace=NS, deployment=DEP) == due
    assert (await claim(world, B)).tasks == []

    await asyncio.sleep(max(0.0, due - time.time()) + 0.05)
    got = await claim(world, B)
    assert [(t.run_id, t.call, t.kind, t.visible_at) for t in got.tasks] == [
        (run_id, 0, "timer", due)
    ]
    assert (await world.list_steps(run_id))[0].status == "waiting"


async def test_wait_completed_is_recorded_once_and_removes_the_timer(world: World) -> None:
    run_id = await run_with_calls(world, ev(E.WAIT_CREATED, 0, due_at=time.time() - 1))
    [task] = (await claim(world, B)).tasks
    assert (await write(world, run_id, facts=[ev(E.WAIT_COMPLETED, 0)], owner=B)).ok
    assert not (await write(world, run_id, facts=[ev(E.WAIT_COMPLETED, 0)], owner=A)).ok
    [step] = await world.list_steps(run_id)
    assert (step.status, step.completed_at is not None) == ("completed", True)
    await world.release(owner=B, run_ids=[], tasks=[(task.run_id, task.call)])
    got = await claim(world, A)
    assert got.tasks == []
    assert got.runs == [run_id]  # the body consumes a fired timer
    assert await types(world, run_id) == [
        "run_created",
        "run_started",
        "wait_created",
        "wait_completed",
    ]


async def test_wait_cancelled_removes_the_timer(world: World) -> None:
    run_id = await run_with_calls(world, ev(E.WAIT_CREATED, 0, due_at=time.time() - 1))
    res = await write(world, run_id, expected_seq=3, commands=[ev(E.WAIT_CANCELLED, 0)])
    assert res.ok
    [step] = await world.list_steps(run_id)
    assert step.status == "cancelled"
    assert (await claim(world, B)).tasks == []
    # A timer that fires after its cancellation is not recorded.
    assert not (await write(world, run_id, facts=[ev(E.WAIT_COMPLETED, 0)], owner=B)).ok


async def test_claims_take_the_oldest_first_and_respect_the_limits(world: World) -> None:
    for name in ("r1", "r2", "r3"):
        await create_run(world, name)
    assert (await claim(world, A, runs=1)).runs == ["r1"]
    assert (await claim(world, B, runs=2)).runs == ["r2", "r3"]

    now = time.time()
    run_id = await run_with_calls(
        world,
        ev(E.WAIT_CREATED, 0, due_at=now - 3),
        ev(E.WAIT_CREATED, 1, due_at=now - 1),
        ev(E.WAIT_CREATED, 2, due_at=now - 2),
    )
    assert [(t.run_id, t.call) for t in (await claim(world, A, tasks=2)).tasks] == [
        (run_id, 0),
        (run_id, 2),
    ]
    assert [t.call for t in (await claim(world, B, tasks=5)).tasks] == [1]


async def test_claims_stay_within_namespace_and_deployment(world: World) -> None:
    await create_run(world, "here")
    await create_run(world, "other-ns", namespace="ns2")
    await create_run(world, "other-dep", deployment="dep2")
    assert (await claim(world, A, namespace="ns3")).runs == []
    assert (await claim(world, A)).runs == ["here"]
    assert (await claim(world, A, namespace="ns2")).runs == ["other-ns"]
    assert (await claim(world, A, deployment="dep2")).runs == ["other-dep"]
    assert await world.next_due(namespace="ns3", deployment=DEP) is None


# Two apps on one world, same namespace and deployment: app A has workflow "wa" and step
# "sa", app B workflow "wb" and step "sb".
APP_A: dict[str, Any] = {"workflows": ["wa"], "steps": ["sa"]}
APP_B: dict[str, Any] = {"workflows": ["wb"], "steps": ["sb"]}


async def test_claims_hand_out_only_runs_of_known_workflows(world: World) -> None:
    await create_run(world, "b-run", workflow="wb")
    await create_run(world, "a-run", workflow="wa")
    assert (await claim(world, A, tasks=0, **APP_A)).runs == ["a-run"]
    assert (await claim(world, A, tasks=0, **APP_A)).runs == []
    assert (await claim(world, B, tasks=0, **APP_B)).runs == ["b-run"]
    # A step of the same name does not make a worker able to run a workflow's turn.
    await create_run(world, "b-run-2", workflow="wb")
    assert (await claim(world, A, tasks=0, workflows=[], steps=["sb"])).runs == []
    assert (await claim(world, A, tasks=0)).runs == ["b-run-2"]  # names not given: any


async def test_claims_hand_out_only_tasks_of_known_steps_and_workflows(world: World) -> None:
    past = time.time() - 1
    b_run = await run_with_calls(
        world,
        ev(E.STEP_CREATED, 0, name="sb"),
        ev(E.WAIT_CREATED, 1, due_at=past, name="nap"),
        workflow="wb",
    )
    a_run = await run_with_calls(world, ev(E.STEP_CREATED, 0, name="sa"), workflow="wa")
    nobody: dict[str, Any] = {"workflows": ["wc"], "steps": ["sc"]}
    assert await world.next_due(namespace=NS, deployment=DEP, **nobody) is None
    assert await world.next_due(namespace=NS, deployment=DEP, **APP_A) is not None
    assert (await claim(world, A, **nobody)).tasks == []

    got = await claim(world, A, **APP_A)
    assert [(t.run_id, t.call) for t in got.tasks] == [(a_run, 0)]
    assert (await claim(world, A, **APP_A)).tasks == []
    got = await claim(world, B, **APP_B)
    assert sorted((t.run_id, t.call, t.kind) for t in got.tasks) == [
        (b_run, 0, "step"),
        (b_run, 1, "timer"),
    ]


async def test_a_step_task_is_claimed_by_its_name_or_by_its_runs_workflow(world: World) -> None:
    # A step not registered anywhere (an ad-hoc step, durably.run_step) is run by
    # whoever runs its workflow; a registered step by whoever has it, even without the
    # workflow; a timer only by whoever has the workflow.
    past = time.time() - 1
    b_run = await run_with_calls(
        world,
        ev(E.STEP_CREATED, 0, name="adhoc"),
        ev(E.STEP_CREATED, 1, name="sb"),
        ev(E.WAIT_CREATED, 2, due_at=past),
        workflow="wb",
    )
    assert (await claim(world, A, **APP_A)).tasks == []
    got = await claim(world, A, workflows=["wa"], steps=["sa", "sb"])
    assert [(t.run_id, t.call) for t in got.tasks] == [(b_run, 1)]
    got = await claim(world, B, **APP_B)
    assert sorted(t.call for t in got.tasks) == [0, 2]


async def test_an_expired_lease_goes_only_to_a_worker_that_knows_the_work(world: World) -> None:
    b_run = await run_with_calls(world, ev(E.STEP_CREATED, 0, name="sb"), workflow="wb")
    await create_run(world, "b-turn", workflow="wb")
    got = await claim(world, B, lease_seconds=SHORT_LEASE, **APP_B)
    assert got.runs == ["b-turn"] and [t.attempt for t in got.tasks] == [1]
    await asyncio.sleep(PAST_LEASE)  # B is lost
    got = await claim(world, A, **APP_A)
    assert (got.runs, got.tasks) == ([], [])
    [step] = await world.list_steps(b_run)
    assert step.attempts == 1  # nobody else counted an attempt
    got = await claim(world, "worker-b2", **APP_B)
    assert got.runs == ["b-turn"]
    assert [(t.run_id, t.attempt) for t in got.tasks] == [(b_run, 2)]


# -- run leases ------------------------------------------------------------------------


async def test_a_run_lease_excludes_others_until_it_expires(world: World) -> None:
    await create_run(world, "r")
    assert (await claim(world, A, lease_seconds=SHORT_LEASE)).runs == ["r"]
    assert (await claim(world, B)).runs == []
    # B cannot decide for the run while A holds it; facts are fine.
    blocked = await write(
        world,
        "r",
        facts=[ev(E.RUN_STARTED)],
        expected_seq=1,
        commands=[ev(E.STEP_CREATED, 0)],
        owner=B,
    )
    assert (blocked.ok, blocked.last_seq) == (False, 2)
    assert await world.list_steps("r") == []

    await asyncio.sleep(PAST_LEASE)
    assert (await claim(world, B)).runs == ["r"]
    ok = await write(world, "r", expected_seq=2, commands=[ev(E.STEP_CREATED, 0)], owner=B)
    assert ok.ok
    late = await write(world, "r", expected_seq=3, commands=[ev(E.STEP_CREATED, 1)], owner=A)
    assert not late.ok


async def test_release_hands_leases_back_at_once(world: World) -> None:
    run_id = await run_with_calls(world, ev(E.STEP_CREATED, 0, name="s"))
    await write(world, run_id, facts=[ev(E.DATA_DECRYPTED)])
    await create_run(world, "r2")
    got = await claim(world, A)
    assert got.runs == ["r2"] and [t.call for t in got.tasks] == [0]

    # Only the holder can hand back.
    await world.release(owner=B, run_ids=["r2"], tasks=[(run_id, 0)])
    assert (await claim(world, B)).runs == []

    await world.release(owner=A, run_ids=["r2"], tasks=[(run_id, 0)])
    again = await claim(world, B)
    assert again.runs == ["r2"] and [t.call for t in again.tasks] == [0]


async def test_a_commit_can_release_the_run(world: World) -> None:
    await create_run(world, "r")
    await claim(world, A)
    # A records a fact that needs another turn and hands the run back.
    assert (await write(world, "r", facts=[ev(E.RUN_STARTED)], release=True)).ok
    assert (await claim(world, B)).runs == ["r"]


async def test_extend_leases_pushes_expiry_for_the_holder_only(world: World) -> None:
    run_id = await run_with_calls(world, ev(E.STEP_CREATED, 0, name="s"))
    await create_run(world, "r2")
    got = await claim(world, A, lease_seconds=SHORT_LEASE)
    assert got.runs == ["r2"] and len(got.tasks) == 1
    await create_run(world, "r3")
    assert (await claim(world, B, tasks=0, lease_seconds=SHORT_LEASE)).runs == ["r3"]

    await world.extend_leases(owner=A, run_ids=["r2"], tasks=[(run_id, 0)], lease_seconds=60)
    await world.extend_leases(owner=A, run_ids=["r3"], tasks=[], lease_seconds=60)
    await asyncio.sleep(PAST_LEASE)
    later = await claim(world, B)
    assert later.runs == ["r3"]  # A's extension of B's lease did nothing
    assert later.tasks == []
