"""A replay's fast path for settled steps gives what feeding the log event by event gives.

``RunInstance.feed_log`` lets a body that awaits a step whose creation and end come next
in the log take the result at once (``_settle_from_log``); ``feed`` one event at a time
never does. Each test records real runs, then replays every prefix of their logs both
ways and compares everything a replay produces: the commands it would commit, the body's
observations (results, errors, clock readings), the clock, ``seen_seq``, the payload
budget, the steps in flight, the timers, and any ``NonDeterminismError``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

import durably
from durably import NonDeterminismError, Workflows, sleep
from durably.crypto import DecryptionError
from durably.events import DATA_UNREAD_BY_REPLAY, Event, EventType
from durably.runtime import loop as loop_mod
from durably.runtime.instance import RunInstance
from durably.runtime.recorded import PayloadOpener
from durably.worlds.base import RunRecord

#: What the bodies saw, in order (cleared before each replay).
SEEN: list[Any] = []


class Boom(Exception):
    """A step's error."""


def _register(wf: Workflows, *, rename_at: int | None = None, cancel_self: bool = False) -> None:
    """The workflows replayed below; ``rename_at`` calls another step at that index of
    ``sequential``, ``cancel_self`` makes ``tangled`` cancel its own task (bodies
    changed since their logs were written)."""
    attempts: dict[str, int] = {}

    @wf.step
    async def tick(i: int) -> int:
        return i

    @wf.step
    async def tock(i: int) -> int:
        return -i

    @wf.step(max_retries=3, retry_after=0.01)
    async def flaky(key: str) -> str:
        attempts[key] = attempts.get(key, 0) + 1
        if attempts[key] < 3:
            raise Boom(f"attempt {attempts[key]}")
        return key

    @wf.step(max_retries=0)
    async def broken(i: int) -> int:
        raise Boom(f"broken {i}")

    def see(what: Any) -> None:
        SEEN.append((durably.now().timestamp(), what))

    @wf.workflow
    async def sequential(n: int) -> int:
        total = 0
        for i in range(n):
            step = tock if i == rename_at else tick
            total += await step(i)
            see(total)
        return total

    @wf.workflow
    async def gathered() -> list[int]:
        first = await asyncio.gather(*(tick(i) for i in range(3)))
        see(first)
        see(await tick(10))

        async def two(i: int) -> int:
            return await tick(i) + await tick(i + 1)

        pairs = await asyncio.gather(two(20), two(30))
        see(pairs)
        see(await tick(11))
        return [*first, *pairs]

    @wf.workflow
    async def timed() -> int:
        see(await tick(1))
        await sleep(0.01)
        see(await tick(2))
        see(await asyncio.wait_for(tick(3), timeout=30))
        async with asyncio.timeout(60):
            for i in range(3):
                see(await tick(10 + i))
        await asyncio.sleep(0.01)
        see(await tick(4))
        return 4

    @wf.workflow
    async def failing() -> str:
        see(await flaky("a"))
        try:
            await broken(1)
        except Boom as e:
            see(f"caught {e}")
        see(await tick(5))
        await broken(2)  # the run fails with it
        return "never"

    @wf.workflow
    async def tangled() -> int:
        pending = tick(1)
        see("between")  # the clock read between the call and its await
        see(await pending)
        ready = asyncio.Event()

        async def helper() -> None:
            see("helper ran")
            ready.set()

        pending = tick(2)
        task = asyncio.create_task(helper())
        see(await pending)  # another task is ready: the body must let it run first
        await ready.wait()
        await task
        await durably.set_attributes(phase="late")
        see(await tick(3))
        me = asyncio.current_task()
        assert me is not None
        if cancel_self:
            me.cancel()  # delivered where the body awaits next
        try:
            see(await tick(4))
        except asyncio.CancelledError:
            me.uncancel()
            see("cancelled")
        shielded = asyncio.shield(pending := tick(5))  # a callback waits on the step
        see(await pending)
        see(shielded.done())
        see(await tick(6))
        for i in range(3):
            for _ in range(8):  # callbacks, each counted against the loop's budget
                await asyncio.sleep(0)
            see(await tick(7 + i))
        return 6


async def _record(wf: Workflows, name: str, *args: Any) -> tuple[list[Event], PayloadOpener | None]:
    run = await wf.start(name, *args)
    try:
        await run.return_value(timeout=60)
    except Exception:
        pass  # a body that fails records its failure
    world: Any = await wf.open()
    sealed = getattr(world, "read_sealed_events", None)
    if sealed is not None:
        events, opener = await sealed(run.run_id)
        return list(events), opener
    return await world.read_events(run.run_id), None


def _replay(
    wf: Workflows, events: list[Event], opener: PayloadOpener | None, *, fast: bool
) -> dict[str, Any]:
    """Everything a replay of ``events`` produces."""
    first = events[0]
    rec = RunRecord(
        run_id=first.run_id,
        workflow_name=str(first.data.get("workflow")),
        namespace="default",
        deployment="default",
        status="running",
        created_at=first.created_at,
        started_at=None,
        completed_at=None,
        last_seq=0,
    )
    inst = RunInstance(rec, wf.workflows[rec.workflow_name].spec, wf.limits)
    SEEN.clear()
    error: str | None = None
    try:
        inst.index(events, opener)
        if fast:
            inst.feed_log(events, opener)
        else:
            for ev in events:
                inst.feed(ev, opener)
    except (NonDeterminismError, DecryptionError) as e:
        error = f"{type(e).__name__}: {e}"
    out = {
        "error": error,
        "divergence": inst.divergence,
        "commands": [(c.type, c.call, c.data, c.payload) for c in inst.new_commands()],
        "done": inst.done,
        "seen_seq": inst.seen_seq,
        "payload_bytes": inst.payload_bytes,
        "time": inst.loop.time(),
        "steps": sorted(inst.steps),
        "timers": inst.loop.pending_timers(),
        "calls": inst.calls_made,
        "attributes": dict(inst.attributes),
        "seen": list(SEEN),
    }
    inst.close()
    return out


def _assert_same_every_prefix(
    wf: Workflows, events: list[Event], opener: PayloadOpener | None
) -> None:
    for k in range(1, len(events) + 1):
        slow = _replay(wf, events[:k], opener, fast=False)
        fast = _replay(wf, events[:k], opener, fast=True)
        assert fast == slow, f"the replays of the first {k} events differ"


@pytest_asyncio.fixture(params=["memory", "sqlite"])
async def recorder(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable[..., Workflows]]:
    made: list[Workflows] = []

    def make(**kwargs: Any) -> Workflows:
        url = f"memory://{tmp_path.name}" if request.param == "memory" else None
        url = url or f"sqlite:///{tmp_path / 'settled.db'}"
        wf = Workflows(world=url, worker=kwargs.pop("worker", True))
        _register(wf, **kwargs)
        made.append(wf)
        return wf

    yield make
    for wf in made:
        await wf.aclose()


@pytest.mark.parametrize(
    ("name", "args"),
    [("sequential", (6,)), ("gathered", ()), ("timed", ()), ("failing", ()), ("tangled", ())],
)
async def test_settled_steps_replay_as_the_log_is_fed(
    recorder: Callable[..., Workflows], name: str, args: tuple[Any, ...]
) -> None:
    wf = recorder()
    events, opener = await _record(wf, name, *args)
    assert events[-1].type in (EventType.RUN_COMPLETED, EventType.RUN_FAILED)
    _assert_same_every_prefix(wf, events, opener)
    full = _replay(wf, events, opener, fast=True)
    assert full["error"] is None and full["done"]


@pytest.mark.parametrize("name", ["failing", "tangled"])
async def test_a_log_read_without_the_data_a_replay_never_reads_replays_alike(
    tmp_path: Path, name: str
) -> None:
    wf = Workflows(world=f"sqlite:///{tmp_path / 'lean.db'}")
    _register(wf)
    try:
        lean, opener = await _record(wf, name)
        world: Any = await wf.open()
        full = await world.inner.read_events(lean[0].run_id)
        assert [ev.data for ev in lean if ev.type in DATA_UNREAD_BY_REPLAY] == [
            {} for ev in full if ev.type in DATA_UNREAD_BY_REPLAY
        ]
        assert any(ev.data for ev in full if ev.type in DATA_UNREAD_BY_REPLAY)
        for k in range(1, len(full) + 1):
            got = _replay(wf, lean[:k], opener, fast=True)
            assert got == _replay(wf, full[:k], opener, fast=False)
    finally:
        await wf.aclose()


async def test_a_body_changed_at_step_k_of_a_long_log_diverges_alike(
    recorder: Callable[..., Workflows],
) -> None:
    events, opener = await _record(recorder(), "sequential", 40)
    changed = recorder(rename_at=27, worker=False)
    slow = _replay(changed, events, opener, fast=False)
    assert slow["error"] is not None and "call #27" in slow["error"]
    assert _replay(changed, events, opener, fast=True) == slow
    _assert_same_every_prefix(changed, events[:70], opener)


async def test_a_body_that_cancels_itself_is_cancelled_where_it_awaits(
    recorder: Callable[..., Workflows],
) -> None:
    events, opener = await _record(recorder(), "tangled")
    changed = recorder(cancel_self=True, worker=False)
    slow = _replay(changed, events, opener, fast=False)
    assert "cancelled" in [what for _, what in slow["seen"]]
    _assert_same_every_prefix(changed, events, opener)


async def test_the_budget_of_callbacks_starts_afresh_at_each_settled_step(
    recorder: Callable[..., Workflows], monkeypatch: pytest.MonkeyPatch
) -> None:
    wf = recorder()
    events, opener = await _record(wf, "tangled")
    monkeypatch.setattr(loop_mod, "MAX_CALLBACKS_PER_TURN", 12)
    slow = _replay(wf, events, opener, fast=False)
    assert slow["seen"][-1][1] == 9  # the body got to its end, not spun out
    assert _replay(wf, events, opener, fast=True) == slow


def _insert(events: list[Event], at: int, t: EventType, data: dict[str, Any]) -> list[Event]:
    """The log with one more event before ``events[at]``, the rest renumbered."""
    extra = Event(events[0].run_id, events[at].seq, t, None, data, None, events[at].created_at)
    later = [dataclasses.replace(ev, seq=ev.seq + 1) for ev in events[at:]]
    return [*events[:at], extra, *later]


async def test_a_cancellation_between_a_step_and_its_end_is_fed_as_always(
    recorder: Callable[..., Workflows],
) -> None:
    wf = recorder()
    events, opener = await _record(wf, "sequential", 5)
    created = [i for i, ev in enumerate(events) if ev.type is EventType.STEP_CREATED]
    cancelled = _insert(events, created[2] + 1, EventType.RUN_CANCEL_REQUESTED, {"reason": "stop"})
    if opener is not None:
        return  # a sealed payload is bound to its seq: renumbered, it does not open
    _assert_same_every_prefix(wf, cancelled, opener)
    assert _replay(wf, cancelled, opener, fast=True)["commands"][0][0] is (EventType.RUN_CANCELLED)


async def test_a_payload_that_does_not_open_fails_the_replay_alike(
    recorder: Callable[..., Workflows],
) -> None:
    wf = recorder()
    events, opener = await _record(wf, "sequential", 5)
    ends = [ev.seq for ev in events if ev.type is EventType.STEP_COMPLETED]

    def damaged(ev: Event) -> bytes | None:
        if ev.seq == ends[3]:
            raise DecryptionError(f"event {ev.seq} does not decrypt")
        return opener(ev) if opener is not None else ev.payload

    slow = _replay(wf, events, damaged, fast=False)
    assert slow["error"] == f"DecryptionError: event {ends[3]} does not decrypt"
    assert _replay(wf, events, damaged, fast=True) == slow
