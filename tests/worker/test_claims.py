"""The claim loop: no lease is lost with a claim in flight when the worker stops, and a
worker that peers beat to the work backs off.

The first guards against this defect: ``Worker.stop`` cancelled the claim loop while a claim
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


class _Peers:
    """A world whose every news of work was taken by a peer first (claims find nothing),
    until ``found`` says the next claim gets a run; records ``misses`` at each claim."""

    def __init__(self, claims: int, news: bool) -> None:
        self.left = claims
        self.news = news
        self.found: set[int] = set()
        self.misses: list[int] = []
        self.loop: Any = None

    async def claim(self, **kwargs: Any) -> Claim:
        self.misses.append(self.loop.misses)
        self.left -= 1
        if self.left <= 0:
            self.loop.stopped = True
        return Claim(runs=["r"]) if len(self.misses) in self.found else Claim()

    async def next_due(self, **kwargs: Any) -> float | None:
        return None

    async def wait_for_work(self, *, namespace: str, timeout: float) -> None:
        if not self.news:
            await asyncio.sleep(timeout)  # nothing happened: the wait times out


def _claims(world: _Peers) -> Any:
    from durably.worker.claims import Claims
    from durably.worker.slots import Slots

    async def beat() -> None:
        return None

    claims = Claims(
        world,  # type: ignore[arg-type]
        Slots(4, lambda: None),
        owner="me",
        namespace="ns",
        deployment="d",
        workflows=(),
        steps=(),
        lease_seconds=30,
        poll_interval=0.02,
        wake=asyncio.Event(),
        stopping=lambda: getattr(claims, "stopped", False),
        on_run=lambda run_id: None,
        on_step=lambda task: None,
        on_timer=lambda task: None,
        on_beat=beat,
    )
    world.loop = claims
    return claims


async def test_a_worker_that_peers_beat_to_the_work_backs_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Issue 16, item 5: every start wakes every idle worker; one that keeps finding the
    # work taken waits longer and longer (up to MAX_BACKOFF) before claiming again,
    # so the claims do not grow with the number of workers.
    from durably.worker import claims as claims_module

    monkeypatch.setattr(claims_module, "BACKOFF", 0.001)
    monkeypatch.setattr(claims_module, "MAX_BACKOFF", 0.004)
    world = _Peers(claims=8, news=True)
    world.found = {5}  # the fifth claim gets a run: the backoff ends
    await _claims(world).loop()
    # The claim after news counts its miss; the one right after a found run does not.
    assert world.misses == [0, 0, 1, 2, 3, 0, 0, 1]


async def test_a_quiet_spell_ends_the_backoff() -> None:
    # Waits that end on their timeout (nobody's news) are no misses: the first news
    # after a quiet spell is claimed at once.
    world = _Peers(claims=4, news=False)
    await _claims(world).loop()
    assert world.misses == [0, 0, 0, 0]
