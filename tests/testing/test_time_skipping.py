"""durably.testing.time_skipping: durable timers fire as soon as the registry is idle,
and bodies read the virtual time, on every world."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import durably
from durably import BaseHook, RetryableError, Workflows, sleep, start
from durably.testing import read_stream, resume_when_waiting, time_skipping

DAY = 86_400.0


def drip_registry(make_wf: Callable[..., Workflows]) -> tuple[Workflows, list[str]]:
    wf = make_wf()
    sent: list[str] = []

    @wf.step
    async def send_email(to: str, template: str) -> str:
        sent.append(template)
        return f"{template}->{to}"

    @wf.workflow
    async def drip_campaign(to: str) -> dict:
        began = durably.now()
        await send_email(to, "welcome")
        for day, template in ((3, "tips"), (10, "case-study"), (30, "upgrade-offer")):
            await sleep(began + timedelta(days=day))
            await send_email(to, template)
        return {"emails": len(sent), "days": (durably.now() - began) / timedelta(days=1)}

    return wf, sent


async def test_a_30_day_drip_campaign_runs_at_once(make_wf: Callable[..., Workflows]) -> None:
    wf, sent = drip_registry(make_wf)
    t0 = time.monotonic()
    async with time_skipping(wf) as clock:
        run = await start(wf.workflows["drip_campaign"], "ada@example.com")
        out = await run.return_value(timeout=60)
    wall = time.monotonic() - t0
    assert sent == ["welcome", "tips", "case-study", "upgrade-offer"]
    assert out["emails"] == 4
    assert 30 <= out["days"] < 31  # the body's clock moved 30 days
    assert clock.offset >= 30 * DAY - 60
    print(f"30-day drip campaign under time skipping: {wall * 1000:.0f} ms wall")


async def test_retry_backoff_is_skipped(make_wf: Callable[..., Workflows]) -> None:
    wf = make_wf()
    attempts: list[float] = []

    @wf.step(max_retries=2)
    async def flaky() -> int:
        attempts.append(time.time())
        if len(attempts) < 3:
            raise RetryableError("not yet", retry_after="6h")
        return len(attempts)

    @wf.workflow
    async def uses_flaky() -> int:
        return await flaky()

    async with time_skipping(wf) as clock:
        run = await start(uses_flaky)
        assert await run.return_value(timeout=60) == 3
    assert clock.offset >= 2 * 6 * 3600 - 60


@dataclass
class Approval(BaseHook):
    ok: bool


async def test_a_wait_for_timeout_on_a_hook_fires_when_idle(
    make_wf: Callable[..., Workflows],
) -> None:
    wf = make_wf()

    @wf.workflow
    async def approve(order: str) -> str:
        async with Approval.wait(token=f"approve:{order}") as hook:
            try:
                got = await asyncio.wait_for(hook, timeout=2 * DAY)
            except TimeoutError:
                return "timed out"
            return "approved" if got.ok else "refused"

    async with time_skipping(wf) as clock:
        run = await start(approve, "o1")
        assert await run.return_value(timeout=60) == "timed out"
        assert clock.offset >= 2 * DAY - 60
        # Paused, the timer waits for the hook's resume.
        with clock.paused():
            run2 = await start(approve, "o2")
            await resume_when_waiting(Approval(ok=True), "approve:o2", registry=wf)
            assert await run2.return_value(timeout=60) == "approved"


async def test_advance_moves_a_clock_that_does_not_skip_by_itself(
    make_wf: Callable[..., Workflows],
) -> None:
    wf = make_wf()

    @wf.workflow
    async def nap() -> float:
        began = durably.now()
        await sleep("1h")
        return (durably.now() - began).total_seconds()

    async with time_skipping(wf, auto=False) as clock:
        run = await start(nap)
        while not [s for s in await run.steps() if s.kind == "wait"]:
            await asyncio.sleep(0.005)
        assert await run.status() == "running"
        clock.advance("1h")
        assert await run.return_value(timeout=60) >= 3600


async def test_read_stream_helper(make_wf: Callable[..., Workflows]) -> None:
    wf = make_wf()

    @wf.step
    async def produce(n: int) -> None:
        w = durably.get_writable()
        for i in range(n):
            await w.write(i)
        await w.close()

    @wf.workflow
    async def producer(n: int) -> None:
        await sleep("1d")
        await produce(n)

    async with time_skipping(wf):
        run = await start(producer, 3)
        assert await read_stream(run) == [0, 1, 2]


async def test_no_skip_while_a_step_runs(make_wf: Callable[..., Workflows]) -> None:
    wf = make_wf()
    running = asyncio.Event()
    release = asyncio.Event()

    @wf.step
    async def slow() -> str:
        running.set()
        await release.wait()
        return "done"

    @wf.workflow
    async def busy() -> str:
        return await slow()

    @wf.workflow
    async def napper() -> str:
        await sleep("1d")
        return "woke"

    async with time_skipping(wf) as clock:
        busy_run = await start(busy)
        await asyncio.wait_for(running.wait(), 30)
        nap_run = await start(napper)
        while not [s for s in await nap_run.steps() if s.kind == "wait"]:
            await asyncio.sleep(0.005)
        for _ in range(20):  # many claim rounds: none may skip while slow() runs
            await asyncio.sleep(0.01)
        assert clock.offset == 0
        assert await nap_run.status() == "running"
        release.set()
        assert await busy_run.return_value(timeout=30) == "done"
        assert await nap_run.return_value(timeout=30) == "woke"
        assert clock.offset >= DAY - 60


async def test_a_child_run_sleeps_in_virtual_time(make_wf: Callable[..., Workflows]) -> None:
    wf = make_wf()

    @wf.workflow
    async def child(days: int) -> float:
        began = durably.now()
        await sleep(timedelta(days=days))
        return (durably.now() - began) / timedelta(days=1)

    @wf.workflow
    async def parent() -> list[float]:
        return list(await asyncio.gather(child(2), child(5)))

    async with time_skipping(wf):
        got = await (await start(parent)).return_value(timeout=60)
    assert [round(d) for d in got] == [2, 5]
