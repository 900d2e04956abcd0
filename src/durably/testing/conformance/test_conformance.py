"""The world conformance suite: what every world must do, run unchanged against each.

A world passes this suite or it is not a world (``pytest --pyargs
durably.testing.conformance --world URL``; see :mod:`durably.testing.conformance`). Tests
drive only the public ``World`` protocol (``durably.worlds.base``) and the event
vocabulary (``durably.events``). Lease expiry is tested with real time and short leases;
no assertion depends on how fast the machine is, except generous upper bounds on waits
that should end early.
"""

from __future__ import annotations

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
