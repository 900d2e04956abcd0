"""Two apps on one world (same namespace and deployment): each worker takes only the work
of its own workflows and steps, so neither fails the other's steps.

The defect this guards against: app A's idle worker claimed the queued steps of app B's
runs (B's worker had fewer free slots than B had ready steps) and failed them with
``StepNotRegisteredError``, or with a false "the worker running it was lost".
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import durably
from durably import Workflows


def _ad_hoc(x: int) -> int:
    return x * 10


async def test_each_app_takes_only_its_own_work(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/shared.db"
    app_a = Workflows(world=url, encryption_key=False, concurrency=4)
    app_b = Workflows(world=url, encryption_key=False, concurrency=1)

    @app_a.step
    async def a_step(x: int) -> int:
        return x + 1

    @app_a.workflow
    async def a_flow(n: int) -> list[int]:
        return list(await asyncio.gather(*(a_step(i) for i in range(n))))

    @app_b.step
    async def b_step(x: int) -> int:
        await asyncio.sleep(0.01)
        return x * 2

    @app_b.workflow
    async def b_flow(n: int) -> list[int]:
        # More ready steps than B's one slot: the rest wait in the queue, where A's
        # idle worker must leave them. Ad-hoc steps, registered nowhere, are B's too
        # (their run's workflow is), and are claimed from the queue by B's worker.
        doubled = await asyncio.gather(*(b_step(i) for i in range(n)))
        tenfold = await asyncio.gather(
            *(durably.run_step("b_ad_hoc", _ad_hoc, (i,)) for i in range(3))
        )
        return [*doubled, *tenfold]

    try:
        # A's worker runs (and idles) before B queues anything.
        first_a = await a_flow.start(2)
        assert await first_a.return_value(timeout=30) == [1, 2]

        b_runs = [await b_flow.start(6) for _ in range(3)]
        a_runs = [await a_flow.start(3) for _ in range(3)]
        # Before the fix, B's runs failed steps or hung on leases A held (30 s each).
        results = await asyncio.gather(*(run.return_value(timeout=30) for run in b_runs))
        assert results == [[0, 2, 4, 6, 8, 10, 0, 10, 20]] * 3
        results = await asyncio.gather(*(run.return_value(timeout=30) for run in a_runs))
        assert results == [[1, 2, 3]] * 3

        for run in [first_a, *a_runs, *b_runs]:
            steps = await run.steps()
            assert [s.error_type for s in steps if s.error_type] == []
            assert {s.status for s in steps} == {"completed"}
            assert all(s.attempts == 1 for s in steps)
    finally:
        await app_a.aclose()
        await app_b.aclose()
