"""The claim loop when the worker stops: no lease is lost with a claim in flight.

The defect this guards against: ``Worker.stop`` cancelled the claim loop while a claim
was in flight. The claim had leased a run in the world already, but its answer never
reached the worker, which therefore neither held nor handed back that lease: every other
worker waited for it to expire (``lease_seconds``, 30 s by default) before the run moved
again. Seen as a 30 s stall of a test that closes one registry and resumes a hook
through another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from durably import Workflows
from durably.worlds.base import Claim


async def test_a_run_claimed_while_the_worker_stops_is_handed_back(
    make_wf: Callable[..., Workflows], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Leases that outlive the test: the run moves on only if its lease is handed back.
    monkeypatch.setenv("DURABLY_LEASE_SECONDS", "3600")

    def register(wf: Workflows) -> Any:
        @wf.workflow
        async def quick() -> str:
            return "done"

        return quick

    stopping = make_wf()
    register(stopping)
    world = await stopping.open()
    worker = stopping.worker
    assert worker is not None
    claimed = asyncio.Event()
    answer = asyncio.Event()
    real_claim = world.claim

    async def slow_answer(**kwargs: Any) -> Claim:
        # The world leases the run, and its answer is still on its way when the
        # worker is told to stop.
        got = await real_claim(**kwargs)
        if got.runs:
            claimed.set()
            await answer.wait()
        return got

    monkeypatch.setattr(world, "claim", slow_answer)

    starter = make_wf(worker=False)
    quick = register(starter)
    run = await starter.start(quick)
    await claimed.wait()
    closing = asyncio.ensure_future(stopping.aclose())
    while not worker._stopping:  # stop() began: the claim loop was cancelled
        await asyncio.sleep(0.01)
    answer.set()
    await closing

    other = make_wf()
    register(other)
    await other.open()
    assert await (await other.get_run(run.run_id)).return_value(timeout=60) == "done"
