"""Rate limits at run time, on every world: a limiter shared by two workers never lets
more step bodies begin than its window allows, and a step over it waits (its attempt
not counted) instead of failing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from durably import Workflows, start

LIMIT, PER = 4, 1.0


def register(wf: Workflows) -> Any:
    @wf.step(name="call_model", rate_limit=f"model:{LIMIT}/s")
    async def call_model(i: int) -> int:
        return i * 2

    @wf.workflow(name="fan_out")
    async def fan_out(n: int) -> list[int]:
        return list(await asyncio.gather(*(call_model(i) for i in range(n))))

    return fan_out


async def spy(wf: Workflows, log: list[tuple[float, bool]]) -> None:
    """Record every start the world decides (its time and whether it was granted)."""
    world = await wf.open()
    inner: Any = getattr(world, "inner", world)
    take = inner.take_rate

    async def take_rate(**kw: Any) -> Any:
        decision = await take(**kw)
        log.append((kw["now"], decision.granted))
        return decision

    inner.take_rate = take_rate
    worker = wf.worker
    assert worker is not None
    # Decide with times we know (the world's clock otherwise): the same rule applies.
    worker.steps.rate_clock = time.time


async def test_two_workers_share_one_sliding_window(make_wf: Callable[..., Workflows]) -> None:
    apps = [make_wf(), make_wf()]
    flows = [register(app) for app in apps]
    log: list[tuple[float, bool]] = []
    for app in apps:
        await spy(app, log)
    runs = [await start(flows[i % 2], 3) for i in range(4)]  # 12 starts, limit 4 per second
    results = [await r.return_value() for r in runs]
    assert results == [[0, 2, 4]] * 4
    granted = sorted(at for at, ok in log if ok)
    assert len(granted) == 12
    # No window of PER seconds holds more than LIMIT starts...
    assert all(granted[i + LIMIT] - granted[i] >= PER for i in range(len(granted) - LIMIT))
    # ...so some waited, and none failed or used up an attempt for it.
    assert any(not ok for _, ok in log)
    world = await apps[0].open()
    for r in runs:
        steps = await world.list_steps(r.run_id)
        assert [(s.status, s.attempts) for s in steps] == [("completed", 1)] * 3
