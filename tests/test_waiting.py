"""``Run.waiting()``: what a ``running`` run waits for, on every world."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import durably
from durably import BaseHook, RetryableError, Waiting, Workflows
from durably.waiting import STALLED_AFTER, waiting_of
from tests.support import live_hook_token


@dataclass
class Approval(BaseHook):
    ok: bool


async def _until(run: durably.Run, kind: str | None, timeout: float = 30.0) -> Waiting:
    """Poll until the run waits for ``kind`` (a bounded wait, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        w = await run.waiting()
        if w.kind == kind:
            return w
        if loop.time() > end:
            raise AssertionError(f"run still waits for {w.kind}: {w}")
        await asyncio.sleep(0.02)


def _define(wf: Workflows, gate: asyncio.Event) -> Any:
    @wf.step
    async def hold() -> str:
        await gate.wait()
        return "ok"

    @wf.workflow
    async def kid() -> str:
        await durably.sleep("1h")
        return "kid"

    @wf.workflow
    async def flow() -> str:
        await hold()
        await durably.sleep("1h")
        async with Approval.wait(webhook=True) as h:
            await h
        return await kid()

    return flow


async def test_waiting_walks_through_every_kind(make_wf: Callable[..., Workflows]) -> None:
    gate = asyncio.Event()
    starter = make_wf(worker=False)
    flow = _define(starter, gate)
    run = await starter.start(flow)

    # No worker anywhere: the run's start waits for one (status stays "pending").
    w = await run.waiting()
    assert (w.kind, w.work, w.stalled) == ("worker", "start", False)
    assert w.since is not None and await run.status() == "pending"
    later = await waiting_of(
        await starter.open(), await run.record(), now=w.since + STALLED_AFTER + 1
    )
    assert later.stalled and "worker" in later.describe()

    runner = make_wf()
    _define(runner, gate)
    await runner.open()
    w = await _until(run, "step")
    assert w.name == "hold" and w.attempt == 1 and w.call == 0
    assert w.worker and w.until is not None and w.since is not None
    assert await run.status() == "running"  # the five statuses are unchanged
    assert w.to_json()["kind"] == "step" and "hold" in w.describe()

    gate.set()
    w = await _until(run, "sleep")
    assert w.name and w.until is not None and w.since is not None
    assert w.until - w.since > 3000

    assert await run.wake() == 1
    w = await _until(run, "hook")
    assert w.webhook is True and w.hook_type and "Approval" in w.hook_type
    token = await live_hook_token(runner, run.run_id)
    assert token not in repr(w) and token not in str(w.to_json())

    await Approval(ok=True).resume(token, registry=runner)
    w = await _until(run, "child")
    assert w.child_run_id
    child = await runner.get_run(w.child_run_id)
    cw = await _until(child, "sleep")
    assert cw.until is not None

    await child.wake()
    assert await run.return_value(timeout=30) == "kid"
    w = await run.waiting()
    assert w.kind is None and w.since is not None
    assert w.describe() == "nothing (ended)"


async def test_waiting_for_a_retry(wf: Workflows) -> None:
    @wf.step(max_retries=3)
    async def flaky() -> None:
        raise RetryableError("busy", retry_after="1h")

    @wf.workflow
    async def retries() -> None:
        await flaky()

    run = await wf.start(retries)
    w = await _until(run, "retry")
    assert w.name == "flaky" and w.error_type == "RetryableError" and w.attempt == 1
    assert w.until is not None and "retry" in w.describe()
    await run.cancel("enough")
    await run.wait(timeout=30)
    assert (await run.waiting()).kind is None


async def test_parallel_waits_are_listed_in_also(wf: Workflows) -> None:
    @wf.workflow
    async def both() -> None:
        async with Approval.wait() as h:
            await asyncio.gather(h, durably.sleep("1h"))

    run = await wf.start(both)
    w = await _until(run, "hook")
    assert [a.kind for a in w.also] == ["sleep"]
    assert "(and 1 more)" in w.describe()
    await run.cancel()
    await run.wait(timeout=30)


class _Log:
    """A world that has only a log, and counts the events it hands out."""

    def __init__(self, types: list[str]) -> None:
        from durably.events import Event, EventType

        self.events = [
            Event("r", i + 1, EventType(t), None, {}, None, 0.0) for i, t in enumerate(types)
        ]
        self.read = 0

    async def read_events(self, run_id: str, *, after_seq: int = 0) -> list[Any]:
        out = [e for e in self.events if e.seq > after_seq]
        self.read += len(out)
        return out


async def test_the_end_of_a_run_is_found_reading_its_last_events_first() -> None:
    from durably.waiting import end_event
    from durably.worlds.base import RunRecord

    def record(log: _Log) -> RunRecord:
        return RunRecord("r", "wf", "ns", "d", "completed", 0.0, 0.0, 0.0, len(log.events))

    steps = ["step_created", "step_completed"] * 20
    # The usual case: the end is the last event; two are read (and opened), not the log.
    log = _Log(["run_created", "run_started", *steps, "run_completed"])
    end = await end_event(log, record(log))  # type: ignore[arg-type]
    assert end is not None and end.type.value == "run_completed" and log.read == 2
    # Facts recorded after the end: found further back, then in the whole log.
    for late in (5, 30):
        log = _Log(["run_created", "run_started", "run_completed", *steps[:late]])
        end = await end_event(log, record(log))  # type: ignore[arg-type]
        assert end is not None and end.seq == 3
    # A log without an end (a record that says otherwise): None after reading it all.
    log = _Log(["run_created", "run_started", *steps])
    assert await end_event(log, record(log)) is None  # type: ignore[arg-type]
