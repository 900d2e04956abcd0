"""The world conformance suite: what every world must do, run unchanged against each.

A world passes this suite or it is not a world (``pytest --pyargs
durably.testing.conformance --world URL``; see :mod:`durably.testing.conformance`). Tests
drive only the public ``World`` protocol (``durably.worlds.base``) and the event
vocabulary (``durably.events``). Lease expiry is tested with real time and short leases;
no assertion depends on how fast the machine is, except generous upper bounds on waits
that should end early.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Collection, Sequence
from typing import Any

import pytest

from durably.events import EventType as E
from durably.events import NewEvent
from durably.worlds import World
from durably.worlds.base import (
    Claim,
    Commit,
    CommitResult,
    RunFilter,
    RunMeta,
    RunWrite,
    WriteResult,
)

NS = "ns"
DEP = "dep"
A = "worker-a"
B = "worker-b"
#: A lease short enough to wait out in a test, long enough not to expire by itself
#: between two consecutive calls on a loaded machine.
SHORT_LEASE = 0.5
PAST_LEASE = SHORT_LEASE + 0.3
#: An upper bound for waits that should end early (generous: the machine may be busy).
PROMPT = 5.0

# Marked for pytest-asyncio's strict mode too (a third party's project may use it).
pytestmark = pytest.mark.asyncio


def ev(type_: E, call: int | None = None, **data: Any) -> NewEvent:
    return NewEvent(type_, call, dict(data))


async def create_run(
    world: World,
    run_id: str | None = None,
    *,
    workflow: str = "wf",
    namespace: str = NS,
    deployment: str = DEP,
    key: str | None = None,
) -> WriteResult:
    meta = RunMeta(workflow, namespace, deployment, idempotency_key=key)
    run_id = run_id or uuid.uuid4().hex
    res = await world.commit(Commit([RunWrite(run_id, create=meta, facts=[ev(E.RUN_CREATED)])]))
    return res.results[0]


async def write(
    world: World,
    run_id: str,
    *,
    facts: Sequence[NewEvent] = (),
    expected_seq: int | None = None,
    commands: Sequence[NewEvent] = (),
    claim_calls: Sequence[int] = (),
    release: bool = False,
    owner: str = A,
    lease_seconds: float = 30.0,
) -> WriteResult:
    w = RunWrite(
        run_id,
        facts=list(facts),
        expected_seq=expected_seq,
        commands=list(commands),
        claim_calls=claim_calls,
        release=release,
    )
    res = await world.commit(Commit([w], owner=owner, lease_seconds=lease_seconds))
    return res.results[0]


async def claim(
    world: World,
    owner: str = A,
    *,
    runs: int = 10,
    tasks: int = 10,
    lease_seconds: float = 30.0,
    namespace: str = NS,
    deployment: str = DEP,
    workflows: Collection[str] | None = None,
    steps: Collection[str] | None = None,
) -> Claim:
    return await world.claim(
        owner=owner,
        namespace=namespace,
        deployment=deployment,
        max_runs=runs,
        max_tasks=tasks,
        lease_seconds=lease_seconds,
        workflows=workflows,
        steps=steps,
    )


async def run_with_calls(
    world: World, *commands: NewEvent, claim_calls: Sequence[int] = (), workflow: str = "wf"
) -> str:
    """A run whose first turn (by worker A, lease handed back) recorded ``commands``.

    Its log is then: 1 run_created, 2 run_started, 3.. the commands.
    """
    run_id = (await create_run(world, workflow=workflow)).run_id
    assert (await claim(world, runs=1, tasks=0)).runs == [run_id]
    res = await write(
        world,
        run_id,
        facts=[ev(E.RUN_STARTED)],
        expected_seq=1,
        commands=commands,
        claim_calls=claim_calls,
        release=True,
    )
    assert res.ok
    return run_id


async def types(world: World, run_id: str) -> list[str]:
    return [str(e.type) for e in await world.read_events(run_id)]


# -- creating runs ---------------------------------------------------------------------


async def test_create_run_records_run_created_and_needs_a_turn(world: World) -> None:
    before = time.time()
    res = await create_run(world, "run-1")
    assert (res.run_id, res.ok, res.created, res.last_seq) == ("run-1", True, True, 1)

    rec = await world.get_run("run-1")
    assert rec is not None
    assert rec.status == "pending"
    assert (rec.workflow_name, rec.namespace, rec.deployment) == ("wf", NS, DEP)
    assert rec.last_seq == 1
    assert rec.created_at >= before - 1
    assert rec.started_at is None and rec.completed_at is None

    events = await world.read_events("run-1")
    assert [(e.seq, e.type, e.run_id) for e in events] == [(1, E.RUN_CREATED, "run-1")]

    due = await world.next_due(namespace=NS, deployment=DEP)
    assert due is not None and due <= time.time()
    assert (await claim(world, runs=5)).runs == ["run-1"]


async def test_unknown_run_reads_as_absent(world: World) -> None:
    assert await world.get_run("nope") is None
    assert await world.read_events("nope") == []
    assert await world.list_steps("nope") == []
    assert await world.read_command("nope", 0) is None
    res = await write(world, "nope", facts=[ev(E.DATA_DECRYPTED)])
    assert (res.ok, res.last_seq) == (False, 0)
    assert await world.get_run("nope") is None


async def test_idempotency_key_returns_the_existing_run(world: World) -> None:
    first = await create_run(world, "run-1", key="order-7")
    again = await create_run(world, "run-2", key="order-7")
    assert first.created
    assert (again.run_id, again.created, again.last_seq) == ("run-1", False, 1)
    assert await world.get_run("run-2") is None
    assert [r.run_id for r in await world.list_runs(RunFilter())] == ["run-1"]
    assert (await world.get_run("run-1")).idempotency_key == "order-7"  # type: ignore[union-attr]

    # The key is scoped to (namespace, workflow): elsewhere it makes a new run.
    other_wf = await create_run(world, "run-3", workflow="other", key="order-7")
    other_ns = await create_run(world, "run-4", namespace="ns2", key="order-7")
    assert (other_wf.run_id, other_wf.created) == ("run-3", True)
    assert (other_ns.run_id, other_ns.created) == ("run-4", True)


async def test_duplicate_create_of_the_same_run_id_is_a_no_op(world: World) -> None:
    await create_run(world, "child-1")
    await write(world, "child-1", facts=[ev(E.RUN_STARTED)])
    again = await create_run(world, "child-1")
    assert (again.run_id, again.created, again.last_seq) == ("child-1", False, 2)
    assert await types(world, "child-1") == ["run_created", "run_started"]
    assert (await world.get_run("child-1")).status == "running"  # type: ignore[union-attr]


async def test_requires_applies_a_write_only_if_the_required_one_was_ok(world: World) -> None:
    parent = await run_with_calls(world)  # log: 1 created, 2 started
    meta = RunMeta("child", NS, DEP, parent_run_id=parent, parent_call=0)

    def child_commit(child: str, expected: int) -> Commit:
        return Commit(
            [
                RunWrite(
                    parent,
                    expected_seq=expected,
                    commands=[ev(E.CHILD_CREATED, 0, name="child", child_run_id=child)],
                ),
                RunWrite(child, create=meta, facts=[ev(E.RUN_CREATED)], requires=parent),
            ],
            owner=A,
        )

    await write(world, parent, facts=[ev(E.RUN_CANCEL_REQUESTED)])  # the log moved: seq 3
    stale = await world.commit(child_commit("child-a", expected=2))
    assert [r.ok for r in stale.results] == [False, False]
    assert await world.get_run("child-a") is None

    fresh = await world.commit(child_commit("child-b", expected=3))
    assert [r.ok for r in fresh.results] == [True, True]
    assert fresh.results[1].created
    child = await world.get_run("child-b")
    assert child is not None
    assert (child.parent_run_id, child.parent_call) == (parent, 0)
    steps = await world.list_steps(parent)
    assert [(s.kind, s.child_run_id, s.status) for s in steps] == [("child", "child-b", "running")]


# -- the log ---------------------------------------------------------------------------


async def test_facts_get_dense_sequence_numbers_and_round_trip(world: World) -> None:
    await create_run(world, "r")
    facts = [
        ev(E.RUN_STARTED),
        NewEvent(E.DATA_DECRYPTED, None, {"who": "ann", "n": [1, 2.5, None]}, b"\x00\xffpay"),
        NewEvent(E.DATA_DECRYPTED, None, {}, b""),
        NewEvent(E.DATA_DECRYPTED, None, {"nested": {"a": "é"}}, None, created_at=1234.5),
    ]
    res = await write(world, "r", facts=facts)
    assert (res.ok, res.last_seq) == (True, 5)

    events = await world.read_events("r")
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert [e.type for e in events] == [
        E.RUN_CREATED,
        E.RUN_STARTED,
        E.DATA_DECRYPTED,
        E.DATA_DECRYPTED,
        E.DATA_DECRYPTED,
    ]
    assert events[2].data == {"who": "ann", "n": [1, 2.5, None]}
    assert events[2].payload == b"\x00\xffpay"
    assert events[3].payload == b"" and events[3].data == {}
    assert events[4].payload is None and events[4].data == {"nested": {"a": "é"}}
    assert events[4].created_at == 1234.5
    assert all(e.run_id == "r" for e in events)
    assert (await world.get_run("r")).last_seq == 5  # type: ignore[union-attr]


async def test_read_events_after_seq_and_limit(world: World) -> None:
    await create_run(world, "r")
    await write(world, "r", facts=[ev(E.DATA_DECRYPTED, i=i) for i in range(6)])  # seqs 2..7
    assert [e.seq for e in await world.read_events("r", after_seq=4)] == [5, 6, 7]
    assert [e.seq for e in await world.read_events("r", after_seq=1, limit=2)] == [2, 3]
    assert [e.data["i"] for e in await world.read_events("r", after_seq=5, limit=1)] == [4]
    assert await world.read_events("r", after_seq=7) == []
    assert len(await world.read_events("r", limit=100)) == 7


async def test_read_command_returns_the_created_event_of_a_call(world: World) -> None:
    run_id = await run_with_calls(
        world,
        NewEvent(E.STEP_CREATED, 0, {"name": "fetch"}, b"args"),
        ev(E.WAIT_CREATED, 1, due_at=time.time() + 3600),
    )
    await write(world, run_id, facts=[ev(E.STEP_COMPLETED, 0, attempt=1)])
    cmd = await world.read_command(run_id, 0)
    assert cmd is not None
    assert (cmd.type, cmd.call, cmd.seq, cmd.data, cmd.payload) == (
        E.STEP_CREATED,
        0,
        3,
        {"name": "fetch"},
        b"args",
    )
    wait = await world.read_command(run_id, 1)
    assert wait is not None and (wait.type, wait.seq) == (E.WAIT_CREATED, 4)
    assert await world.read_command(run_id, 2) is None


# -- facts and conditional commands ----------------------------------------------------


async def test_commands_apply_when_expected_seq_matches(world: World) -> None:
    run_id = await run_with_calls(world)
    res = await write(world, run_id, expected_seq=2, commands=[ev(E.STEP_CREATED, 0, name="s")])
    assert (res.ok, res.last_seq) == (True, 3)
    assert await types(world, run_id) == ["run_created", "run_started", "step_created"]


async def test_commands_are_rejected_when_the_log_moved_but_facts_still_land(
    world: World,
) -> None:
    run_id = await run_with_calls(world, ev(E.STEP_CREATED, 0, name="s"))  # seq 3
    # Someone else records the step's result: the body's view at seq 3 is stale.
    assert (await write(world, run_id, facts=[ev(E.STEP_COMPLETED, 0)], owner=B)).ok

    res = await write(
        world,
        run_id,
        facts=[ev(E.DATA_DECRYPTED, who="x")],
        expected_seq=3,
        commands=[ev(E.STEP_CREATED, 1, name="next")],
    )
    assert (res.ok, res.last_seq) == (False, 5)
    assert await types(world, run_id) == [
        "run_created",
        "run_started",
        "step_created",
        "step_completed",
        "data_decrypted",
    ]
    assert [s.call for s in await world.list_steps(run_id)] == [0]

    # A command by another turn moves the log too.
    ok = await write(world, run_id, expected_seq=5, commands=[ev(E.STEP_CREATED, 1, name="n")])
    assert ok.ok
    stale = await write(world, run_id, expected_seq=5, commands=[ev(E.STEP_CREATED, 2)])
    assert not stale.ok
    assert [s.call for s in await world.list_steps(run_id)] == [0, 1]


async def test_informational_facts_do_not_make_a_turn_stale(world: World) -> None:
    run_id = await run_with_calls(world, ev(E.STEP_CREATED, 0, name="s"))  # seq 3
    # A retry recorded and an audit record: nothing the body consumes.
    await write(
        world,
        run_id,
        facts=[ev(E.STEP_RETRYING, 0, attempt=1, retry_at=time.time() + 3600)],
        owner=B,
    )
    await write(world, run_id, facts=[ev(E.DATA_DECRYPTED)], owner=B)
    res = await write(world, run_id, expected_seq=3, commands=[ev(E.STEP_CREATED, 1)])
    assert (res.ok, res.last_seq) == (True, 6)


async def test_a_duplicate_fact_is_dropped_and_blocks_the_commands(world: World) -> None:
    run_id = await run_with_calls(world, ev(E.STEP_CREATED, 0, name="s"))  # seq 3
    first = await write(world, run_id, facts=[ev(E.STEP_COMPLETED, 0, attempt=1)])
    assert (first.ok, first.last_seq) == (True, 4)

    dup = await write(
        world,
        run_id,
        facts=[ev(E.STEP_COMPLETED, 0, attempt=2)],
        expected_seq=4,
        commands=[ev(E.STEP_CREATED, 1)],
    )
    assert (dup.ok, dup.last_seq) == (False, 4)
    assert await types(world, run_id) == [
        "run_created",
        "run_started",
        "step_created",
        "step_completed",
    ]
    # A failure after a completion is a duplicate too; so is a fact for an unknown call.
    assert not (await write(world, run_id, facts=[ev(E.STEP_FAILED, 0)])).ok
    assert not (await write(world, run_id, facts=[ev(E.STEP_COMPLETED, 9)])).ok
    assert (await world.get_run(run_id)).last_seq == 4  # type: ignore[union-attr]


async def test_run_started_is_recorded_once(world: World) -> None:
    await create_run(world, "r")
    first = await write(world, "r", facts=[ev(E.RUN_STARTED)])
    rec = await world.get_run("r")
    assert rec is not None and rec.status == "running" and rec.started_at is not None
    second = await write(world, "r", facts=[ev(E.RUN_STARTED)], owner=B)
    assert (first.ok, second.ok) == (True, False)
    assert await types(world, "r") == ["run_created", "run_started"]
    assert (await world.get_run("r")).started_at == rec.started_at  # type: ignore[union-attr]


async def test_cancel_request_is_recorded_once_and_needs_a_turn(world: World) -> None:
    run_id = await run_with_calls(world)
    assert (await claim(world)).runs == []
    assert (await write(world, run_id, facts=[ev(E.RUN_CANCEL_REQUESTED)], owner=B)).ok
    assert (await world.get_run(run_id)).cancel_requested  # type: ignore[union-attr]
    assert not (await write(world, run_id, facts=[ev(E.RUN_CANCEL_REQUESTED)], owner=B)).ok
    assert (await claim(world)).runs == [run_id]


async def test_a_failed_commit_applies_nothing(world: World) -> None:
    await create_run(world, "old")
    bad = Commit(
        [
            RunWrite("new", create=RunMeta("wf", NS, DEP), facts=[ev(E.RUN_CREATED)]),
            RunWrite("old", facts=[ev(E.RUN_STARTED)]),
            # A wait without its due time cannot be projected: the world must raise.
            RunWrite("old", expected_seq=2, commands=[ev(E.WAIT_CREATED, 0)]),
        ],
        owner=A,
    )
    with pytest.raises(Exception):  # noqa: B017 - any error, as long as nothing lands
        await world.commit(bad)
    assert await world.get_run("new") is None
    assert await world.read_events("new") == []
    old = await world.get_run("old")
    assert old is not None and (old.status, old.last_seq) == ("pending", 1)
    assert await types(world, "old") == ["run_created"]
    assert await world.list_steps("old") == []
    # The world is still usable afterwards.
    assert (await write(world, "old", facts=[ev(E.RUN_STARTED)])).ok


async def test_one_commit_writes_several_runs(world: World) -> None:
    res = await world.commit(
        Commit(
            [
                RunWrite("x", create=RunMeta("wf", NS, DEP), facts=[ev(E.RUN_CREATED)]),
                RunWrite("y", create=RunMeta("wf", NS, DEP), facts=[ev(E.RUN_CREATED)]),
                RunWrite("x", facts=[ev(E.RUN_STARTED)]),
            ]
        )
    )
    assert [(r.run_id, r.ok, r.last_seq, r.created) for r in res.results] == [
        ("x", True, 1, True),
        ("y", True, 1, True),
        ("x", True, 2, False),
    ]
    assert await types(world, "x") == ["run_created", "run_started"]


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


# -- terminal runs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "status", "error_type"),
    [
        (E.RUN_COMPLETED, "completed", None),
        (E.RUN_FAILED, "failed", "ValueError"),
        (E.RUN_CANCELLED, "cancelled", None),
    ],
)
async def test_terminal_events_finish_the_run(
    world: World, event: E, status: str, error_type: str | None
) -> None:
    run_id = await run_with_calls(world, ev(E.STEP_CREATED, 0, name="s"), claim_calls=[0])
    data = {"error_type": error_type} if error_type else {}
    res = await write(world, run_id, expected_seq=3, commands=[NewEvent(event, None, data)])
    assert res.ok
    rec = await world.get_run(run_id)
    assert rec is not None
    assert (rec.status, rec.error_type, rec.last_seq) == (status, error_type, 4)
    assert rec.completed_at is not None

    # A late fact is recorded but asks for no turn of a finished run.
    assert (await write(world, run_id, facts=[ev(E.STEP_COMPLETED, 0)], owner=B)).ok
    assert (await claim(world, B, tasks=0)).runs == []
    assert not (await write(world, run_id, facts=[ev(E.RUN_CANCEL_REQUESTED)], owner=B)).ok


async def test_next_due(world: World) -> None:
    assert await world.next_due(namespace=NS, deployment=DEP) is None
    later = time.time() + 3600
    run_id = await run_with_calls(world, ev(E.WAIT_CREATED, 0, due_at=later))
    assert await world.next_due(namespace=NS, deployment=DEP) == later
    assert await world.next_due(namespace=NS, deployment="dep2") is None

    # A leased run turn is due when its lease expires.
    await write(world, run_id, facts=[ev(E.RUN_CANCEL_REQUESTED)], owner=B)
    before = time.time()
    assert (await claim(world, A, tasks=0, lease_seconds=60)).runs == [run_id]
    due = await world.next_due(namespace=NS, deployment=DEP)
    assert due is not None and before + 60 <= due <= time.time() + 60

    await create_run(world, "fresh")
    due = await world.next_due(namespace=NS, deployment=DEP)
    assert due is not None and due <= time.time()


# -- listing ---------------------------------------------------------------------------


async def test_list_runs_filters_and_orders_newest_first(world: World) -> None:
    await create_run(world, "r1", namespace="ns2")
    await create_run(world, "r2")
    await create_run(world, "r3", workflow="other")
    await create_run(world, "r4")
    await write(world, "r2", facts=[ev(E.RUN_STARTED)])

    async def ids(**kw: Any) -> list[str]:
        return [r.run_id for r in await world.list_runs(RunFilter(**kw))]

    assert await ids() == ["r4", "r3", "r2", "r1"]
    assert await ids(limit=2) == ["r4", "r3"]
    assert await ids(status="running") == ["r2"]
    assert await ids(status="pending") == ["r4", "r3", "r1"]
    assert await ids(workflow_name="other") == ["r3"]
    assert await ids(namespace=NS) == ["r4", "r3", "r2"]
    assert await ids(namespace=NS, workflow_name="wf", status="pending") == ["r4"]
    assert await ids(status="completed") == []
    [r2] = await world.list_runs(RunFilter(status="running"))
    assert (r2.workflow_name, r2.last_seq, r2.started_at is not None) == ("wf", 2, True)


async def test_list_runs_filters_by_attributes(world: World) -> None:
    for name in ("r1", "r2", "r3"):
        await create_run(world, name)
    await write(world, "r1", facts=[ev(E.ATTRIBUTES_SET, set={"phase": "charging", "t": "1"})])
    await write(world, "r2", facts=[ev(E.ATTRIBUTES_SET, set={"phase": "charging"})])
    await write(world, "r3", facts=[ev(E.ATTRIBUTES_SET, set={"phase": "done", "t": "1"})])
    await write(world, "r3", facts=[ev(E.ATTRIBUTES_SET, remove=["t"])])

    async def ids(**attrs: str) -> list[str]:
        return [r.run_id for r in await world.list_runs(RunFilter(attributes=attrs))]

    assert await ids(phase="charging") == ["r2", "r1"]
    assert await ids(phase="charging", t="1") == ["r1"]
    assert await ids(t="1") == ["r1"]
    assert await ids(phase="nope") == []
    assert (await world.get_run("r1")).attributes == {"phase": "charging", "t": "1"}  # type: ignore[union-attr]
    assert (await world.get_run("r3")).attributes == {"phase": "done"}  # type: ignore[union-attr]


async def test_list_steps_by_call(world: World) -> None:
    due = time.time() + 3600
    run_id = await run_with_calls(
        world,
        ev(E.WAIT_CREATED, 1, due_at=due),
        ev(E.STEP_CREATED, 0, name="fetch"),
        ev(E.CHILD_CREATED, 2, name="sub", child_run_id="child-1"),
    )
    steps = await world.list_steps(run_id)
    assert [(s.call, s.kind, s.name) for s in steps] == [
        (0, "step", "fetch"),
        (1, "wait", "sleep"),
        (2, "child", "sub"),
    ]
    assert steps[1].due_at == due
    assert steps[2].child_run_id == "child-1"
    res = await write(world, run_id, facts=[ev(E.CHILD_FAILED, 2, error_type="Oops")], owner=B)
    assert res.ok
    child = (await world.list_steps(run_id))[2]
    assert (child.status, child.error_type) == ("failed", "Oops")


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
    from durably.worlds.base import Commit, RunFilter, RunMeta, RunWrite

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
    await world.commit(Commit([write], owner=A, lease_seconds=0.2))
    assert (await claim(world, B)).runs == []  # A advances it itself
    await asyncio.sleep(0.3)  # A died: its lease expires
    assert (await claim(world, B)).runs == ["run_leased"]
