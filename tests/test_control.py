"""The control plane (``durably.control``): the one writer of log records outside the
worker, and the worker of this process it wakes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import pytest_asyncio

from durably import BaseHook, HookNotFoundError, RunNotFoundError, Workflows, resume_hook, sleep
from durably.control import Control, LocalWorker
from durably.events import EventType
from durably.registry import default_registry, set_default_registry
from durably.worlds import World, open_world
from durably.worlds.base import RunFilter, RunWrite, WriteResult


@dataclass
class FakeWorker:
    """A local worker that records what the control plane asks of it."""

    room: bool = True
    owner: str = "fake-owner"
    lease_seconds: float = 30.0
    kicks: int = 0
    begun: list[str] = field(default_factory=list)

    def can_begin(self) -> bool:
        return self.room

    def begin(self, run_id: str) -> None:
        self.begun.append(run_id)

    async def begin_created(self, create: RunWrite) -> WriteResult | None:
        return None  # as a worker that cannot: the control plane creates the run

    def kick(self) -> None:
        self.kicks += 1


@dataclass
class Go(BaseHook):
    n: int


@pytest_asyncio.fixture
async def world() -> AsyncIterator[World]:
    w = open_world(f"memory://control-{uuid.uuid4().hex}")
    await w.open()
    yield w
    await w.close()


def test_fake_worker_is_a_local_worker() -> None:
    # The protocol is what the registry's Worker must offer; mypy checks the real one.
    worker: LocalWorker = FakeWorker()
    assert worker.owner == "fake-owner"


async def test_create_with_idempotency_key_returns_the_same_run(world: World) -> None:
    control = Control(world)
    first = await control.create_run("wf", b"1", namespace="ns", idempotency_key="k")
    again = await control.create_run("wf", b"2", namespace="ns", idempotency_key="k")
    other = await control.create_run("wf", b"3", namespace="ns", idempotency_key="k2")
    assert again == first
    assert other != first
    runs = await world.list_runs(RunFilter(namespace="ns"))
    assert sorted(r.run_id for r in runs) == sorted([first, other])
    created = (await world.read_events(first))[0]
    assert created.type is EventType.RUN_CREATED and created.payload == b"1"


async def test_create_pins_the_deployment_and_resolves_latest(world: World) -> None:
    control = Control(world, deployment="home")
    # No deployment seen yet: "latest" falls back to this control's.
    nothing_seen = await control.create_run("wf", None, namespace="ns", deployment="latest")
    await world.touch_deployment("ns", "v1")
    await asyncio.sleep(0.01)
    await world.touch_deployment("ns", "v2")
    latest = await control.create_run("wf", None, namespace="ns", deployment="latest")
    literal = await control.create_run(
        "wf", None, namespace="ns", deployment="latest", resolve_latest=False
    )
    default = await control.create_run("wf", None, namespace="ns")
    deps = {}
    for run_id in (nothing_seen, latest, literal, default):
        rec = await world.get_run(run_id)
        assert rec is not None
        deps[run_id] = rec.deployment
    assert [deps[r] for r in (nothing_seen, latest, literal, default)] == [
        "home",
        "v2",
        "latest",
        "home",
    ]


async def test_create_begins_the_run_on_a_local_worker_with_room(world: World) -> None:
    worker = FakeWorker()
    control = Control(world, worker=worker, deployment="home")
    run_id = await control.create_run("wf", None, namespace="ns", idempotency_key="k")
    assert worker.begun == [run_id] and worker.kicks == 0
    # The same key again: the run exists, so it is not begun a second time.
    assert await control.create_run("wf", None, namespace="ns", idempotency_key="k") == run_id
    assert worker.begun == [run_id]


@pytest.mark.parametrize(
    ("room", "deployment", "begin_here"),
    [(False, None, True), (True, "elsewhere", True), (True, None, False)],
)
async def test_create_queues_and_wakes_otherwise(
    world: World, room: bool, deployment: str | None, begin_here: bool
) -> None:
    worker = FakeWorker(room=room)
    control = Control(world, worker=worker, deployment="home")
    await control.create_run(
        "wf", None, namespace="ns", deployment=deployment, begin_here=begin_here
    )
    assert worker.begun == [] and worker.kicks == 1


async def test_rerun_records_what_it_copies(world: World) -> None:
    control = Control(world)
    original = await control.create_run("wf", b"input", namespace="ns")
    copy = await control.create_run("wf", b"input", namespace="ns", rerun_of=original)
    first = (await world.read_events(copy))[0]
    assert first.data["rerun_of"] == original and first.payload == b"input"
    assert "rerun_of" not in (await world.read_events(original))[0].data


async def test_cancel_records_the_reason_and_wakes_the_worker(world: World) -> None:
    worker = FakeWorker(room=False)
    control = Control(world, worker=worker)
    run_id = await control.create_run("wf", None, namespace="ns")
    kicks = worker.kicks
    assert await control.cancel(run_id, "enough") is None
    assert worker.kicks == kicks + 1
    last = (await world.read_events(run_id))[-1]
    assert last.type is EventType.RUN_CANCEL_REQUESTED and last.data == {"reason": "enough"}
    rec = await world.get_run(run_id)
    assert rec is not None and rec.cancel_requested


async def test_cancel_of_an_unknown_run_names_the_world(world: World) -> None:
    control = Control(world, world_url="memory://somewhere")
    with pytest.raises(RunNotFoundError, match="somewhere"):
        await control.cancel("run_nope")


async def test_cancel_of_an_ended_run_is_a_no_op() -> None:
    wf = Workflows(world=f"memory://control-{uuid.uuid4().hex}", encryption_key=False)

    @wf.workflow
    async def quick() -> int:
        return 1

    try:
        run = await wf.start(quick)
        assert await run.return_value(timeout=10) == 1
        world = await wf.open()
        before = await world.read_events(run.run_id)
        worker = FakeWorker()
        control = Control(world, worker=worker)
        assert await control.cancel(run.run_id, "too late") == "completed"
        await run.cancel("too late")  # the public call: no error, nothing recorded
        assert await world.read_events(run.run_id) == before
        assert worker.kicks == 0
        assert await run.status() == "completed"
    finally:
        await wf.aclose()


async def test_wake_with_no_timer_records_nothing(world: World) -> None:
    worker = FakeWorker(room=False)
    control = Control(world, worker=worker)
    run_id = await control.create_run("wf", None, namespace="ns")
    kicks, before = worker.kicks, await world.read_events(run_id)
    assert await control.wake(run_id) == 0
    assert worker.kicks == kicks
    assert await world.read_events(run_id) == before


async def test_resume_of_an_unknown_token_raises(world: World) -> None:
    worker = FakeWorker()
    control = Control(world, worker=worker)
    with pytest.raises(HookNotFoundError, match="no live hook has token 'nope'"):
        await control.resume_hook("nope", b"null")
    with pytest.raises(HookNotFoundError, match="run run_x has no live hook"):
        await control.live_hook("nope", run_id="run_x")
    assert worker.kicks == 0


async def test_set_attributes_records_the_change_without_waking(world: World) -> None:
    worker = FakeWorker(room=False)
    control = Control(world, worker=worker)
    run_id = await control.create_run("wf", None, namespace="ns")
    kicks = worker.kicks
    await control.set_attributes(run_id, {"phase": "one", "k": "v"}, [])
    await control.set_attributes(run_id, {}, ["k"])
    rec = await world.get_run(run_id)
    assert rec is not None and rec.attributes == {"phase": "one"}
    last = (await world.read_events(run_id))[-1]
    assert last.type is EventType.ATTRIBUTES_SET and last.data == {"remove": ["k"]}
    assert worker.kicks == kicks


async def test_hook_resume_and_timer_wake_reach_the_embedded_worker() -> None:
    """End to end through the registry: the writer wakes the real embedded worker."""
    wf = Workflows(world=f"memory://control-{uuid.uuid4().hex}", encryption_key=False)

    @wf.workflow
    async def waits() -> int:
        async with Go.wait(token="control-test") as hook:
            got = await hook
        await sleep("1h")
        return got.n

    try:
        run = await wf.start(waits)
        control = await wf.control()
        assert control.worker is wf.worker and control.worker is not None
        for _ in range(200):
            try:
                await control.live_hook("control-test")
                break
            except HookNotFoundError:
                await asyncio.sleep(0.02)
        assert await resume_hook("control-test", {"n": 7}, registry=wf) == run.run_id
        for _ in range(200):
            if await run.wake():
                break
            await asyncio.sleep(0.02)
        assert await run.return_value(timeout=10) == 7
    finally:
        await wf.aclose()


def test_default_registry_is_an_explicit_slot() -> None:
    made = Workflows(world="memory://")
    assert default_registry() is made
    other = Workflows(world="memory://")
    assert default_registry() is other
    set_default_registry(made)
    assert default_registry() is made
    set_default_registry(None)
    with pytest.raises(Exception, match="no Workflows registry exists"):
        default_registry()
    set_default_registry(other)
