"""Durable sleep, timers under asyncio, deterministic time and randomness."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import durably
from durably import Workflows, sleep, start


async def test_sleep_in_every_form(wf: Workflows) -> None:
    @wf.workflow
    async def sleeper() -> float:
        t0 = durably.now()
        await sleep(0.05)
        await sleep("50ms")
        await sleep(timedelta(milliseconds=50))
        await sleep(durably.now() + timedelta(milliseconds=50))
        return (durably.now() - t0).total_seconds()

    run = await start(sleeper)
    assert await run.return_value(timeout=30) >= 0.2
    waits = [s for s in await run.steps() if s.kind == "wait"]
    assert len(waits) == 4 and all(s.status == "completed" and s.name == "sleep" for s in waits)


async def test_asyncio_sleep_is_durable(wf: Workflows) -> None:
    @wf.workflow
    async def napper() -> str:
        await asyncio.sleep(0.05)
        return "rested"

    run = await start(napper)
    assert await run.return_value(timeout=30) == "rested"
    assert [s.kind for s in await run.steps()] == ["wait"]


async def test_wait_for_step_wins_over_timer(wf: Workflows) -> None:
    @wf.step
    async def quick() -> str:
        return "step"

    @wf.workflow
    async def race() -> str:
        return str(await asyncio.wait_for(quick(), timeout=30))

    run = await start(race)
    assert await run.return_value(timeout=30) == "step"
    waits = [s for s in await run.steps() if s.kind == "wait"]
    assert len(waits) == 1 and waits[0].status == "cancelled"


async def test_wait_for_timer_wins_over_slow_step(wf: Workflows) -> None:
    release = asyncio.Event()

    @wf.step
    async def slow() -> str:
        await release.wait()
        return "step"

    @wf.workflow
    async def race() -> str:
        try:
            return str(await asyncio.wait_for(slow(), timeout=0.05))
        except TimeoutError:
            return "timeout"

    run = await start(race)
    assert await run.return_value(timeout=30) == "timeout"
    release.set()


async def test_asyncio_timeout_and_wait_first_completed(wf: Workflows) -> None:
    gate = asyncio.Event()

    @wf.step
    async def never() -> str:
        await gate.wait()
        return "never"

    @wf.step
    async def soon() -> str:
        return "soon"

    @wf.workflow
    async def races() -> list[str]:
        out = []
        try:
            async with asyncio.timeout(0.05):
                await never()
        except TimeoutError:
            out.append("timed out")
        a = asyncio.ensure_future(soon())
        b = asyncio.ensure_future(sleep("1h"))
        done, pending = await asyncio.wait({a, b}, return_when=asyncio.FIRST_COMPLETED)
        out.append(str(a.result()) if a in done else "sleep won")
        for p in pending:
            p.cancel()
        return out

    run = await start(races)
    assert await run.return_value(timeout=30) == ["timed out", "soon"]
    gate.set()


async def test_now_random_uuid_are_deterministic_across_replays(wf: Workflows) -> None:
    @wf.step
    async def tick() -> None:
        return None

    @wf.workflow
    async def det() -> list[str]:
        vals = []
        for _ in range(3):
            vals.append(
                f"{durably.now().isoformat()}|{durably.random().random()}|"
                f"{durably.uuid4()}|{durably.time_ns()}"
            )
            await tick()
        return vals

    run = await start(det)
    vals = await run.return_value(timeout=30)
    assert len(set(vals)) == 3
    for v in vals:
        iso, _, u, ns = v.split("|")
        assert datetime.fromisoformat(iso).tzinfo == UTC
        assert durably.uuid4().version == 4 and len(u) == 36
        assert int(ns) > 0


async def test_timers_survive_closing_every_process(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    url = f"sqlite:///{tmp_path / 't.db'}"

    def registry() -> Workflows:
        wf = Workflows(world=url)

        @wf.workflow
        async def later() -> str:
            await sleep("300ms")
            return "woke"

        return wf

    first = registry()
    run = await first.start("later")
    await asyncio.sleep(0.1)
    assert [s.status for s in await run.steps()] == ["waiting"]
    await first.aclose()
    await asyncio.sleep(0.4)
    second = registry()
    try:
        again = await second.get_run(run.run_id)
        assert await again.return_value(timeout=30) == "woke"
    finally:
        await second.aclose()


def test_the_library_reads_the_wall_clock_past_the_body_guard() -> None:
    # runtime.guards wraps time.time to warn workflow bodies; the worker and the worlds
    # read the time several times per step through durably.clock.wall_time, the
    # function underneath, whichever module was imported first.
    import time

    import durably.runtime.loop  # noqa: F401  (installs the guard)
    from durably.clock import WallClock, wall_time

    assert getattr(time.time, "__wrapped__", None) is not None, "the guard is installed"
    assert wall_time is time.time.__wrapped__  # type: ignore[attr-defined]
    before = time.time()
    assert before <= WallClock().now() <= time.time()
