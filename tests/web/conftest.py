"""A world with a few runs in telling states, and the dashboard served by a real uvicorn.

``scenario`` starts, on an SQLite world, runs that end up: completed (with a retried step,
a child run, a stream and attributes), failed (after retries), sleeping, and waiting on a
hook; its registry keeps running a worker, so actions taken in the dashboard take effect.
``secret_run`` is one completed run like the first, on a world whose payloads are
encrypted with the key file beside the database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from durably import (
    BaseHook,
    FatalError,
    RetryableError,
    Run,
    Workflows,
    get_writable,
    set_attributes,
    sleep,
    start,
)
from durably.web import create_app
from tests.browser import page, shots  # noqa: F401 (test_browser.py's fixtures)
from tests.support import serve


@dataclass
class RefundApproval(BaseHook):
    approved: bool
    note: str = ""


@dataclass
class Scenario:
    """The runs made for a test, by what they show."""

    world_url: str
    registry: Workflows
    completed: Run
    failed: Run
    sleeping: Run
    waiting: Run

    async def wait_for(
        self, run: Run, predicate: Callable[[str], bool], timeout: float = 15.0
    ) -> str:
        until = time.monotonic() + timeout
        while True:
            status = await run.status()
            if predicate(status) or time.monotonic() > until:
                return status
            await asyncio.sleep(0.05)


def make_registry(world_url: str, *, encrypt: bool = False) -> Workflows:
    # Plaintext payloads by default, so the pages show decoded arguments and results.
    wf = Workflows(world=world_url, encryption_key=None if encrypt else False)
    tries: dict[str, int] = {}

    @wf.step
    async def fetch_order(order_id: str) -> dict[str, Any]:
        await asyncio.sleep(0.03)
        return {"order": order_id, "items": ["book", "lamp"], "total": 42.5}

    @wf.step(retry_after=0.05)
    async def charge_card(amount: float) -> str:
        tries["charge"] = tries.get("charge", 0) + 1
        await asyncio.sleep(0.02)
        if tries["charge"] < 3:
            raise RetryableError("card processor timed out", retry_after=0.05)
        return "ch_123"

    @wf.step
    async def pack(items: list[str]) -> int:
        out = get_writable()
        for item in items:
            await out.write({"packed": item})
            await asyncio.sleep(0.01)
        await out.close()
        return len(items)

    @wf.workflow
    async def ship(order_id: str) -> str:
        await set_attributes(stage="shipping")
        return f"tracking-{order_id}"

    @wf.workflow
    async def place_order(order_id: str) -> dict[str, Any]:
        await set_attributes(customer="c-7", stage="charging")
        order = await fetch_order(order_id)
        charge = await charge_card(order["total"])
        packed = await pack(order["items"])
        await sleep(0.15)  # a durable timer, drawn in the timeline
        tracking = await ship(order_id)
        return {"charge": charge, "packed": packed, "tracking": tracking}

    @wf.step(max_retries=1, retry_after=0.05)
    async def reserve_stock(sku: str) -> None:
        raise RuntimeError(f"warehouse has no {sku}")

    @wf.step
    async def refund(sku: str) -> None:
        raise FatalError("refunds are closed on Sundays <script>alert(1)</script>")

    @wf.workflow
    async def restock(sku: str) -> None:
        try:
            await reserve_stock(sku)
        except RuntimeError:
            await refund(sku)

    @wf.workflow
    async def nightly_report(day: str) -> str:
        await fetch_order(day)
        await sleep("1h")
        return "sent"

    @wf.workflow
    async def restock_for(order_id: str) -> None:
        await restock(f"sku-of-{order_id}")  # a child run that fails

    @wf.step
    async def slow_export(rows: int) -> int:
        await asyncio.sleep(120)  # held by the worker until the test cancels the run
        return rows

    @wf.workflow
    async def export(rows: int) -> int:
        await set_attributes(kind="export")
        return await slow_export(rows)

    @wf.workflow
    async def refund_request(order_id: str) -> bool:
        async with RefundApproval.wait(token=f"refund:{order_id}") as hook:
            approval = await hook
            return approval.approved

    return wf


@pytest_asyncio.fixture
async def scenario(tmp_path: Path) -> AsyncIterator[Scenario]:
    url = f"sqlite:///{tmp_path / 'web.db'}"
    wf = make_registry(url)
    async with wf:
        s = Scenario(
            url,
            wf,
            completed=await start(wf.workflows["place_order"], "o-1"),
            failed=await start(wf.workflows["restock"], "sku-9"),
            sleeping=await start(wf.workflows["nightly_report"], "2025-01-01"),
            waiting=await start(wf.workflows["refund_request"], "o-2"),
        )
        assert await s.wait_for(s.completed, lambda st: st == "completed") == "completed"
        assert await s.wait_for(s.failed, lambda st: st == "failed") == "failed"
        await _wait_steps(s.sleeping, lambda steps: any(x.kind == "wait" for x in steps))
        await _wait_steps(s.waiting, lambda steps: any(x.status == "waiting" for x in steps))
        yield s


async def _wait_steps(run: Run, predicate: Callable[[list[Any]], bool]) -> None:
    until = time.monotonic() + 15
    while not predicate(await run.steps()):
        assert time.monotonic() < until, f"run {run.run_id} did not get there"
        await asyncio.sleep(0.05)


@pytest_asyncio.fixture
async def dashboard_url(scenario: Scenario) -> AsyncIterator[str]:
    async with serve(create_app(world=scenario.world_url)) as url:
        yield url


@dataclass
class SecretRun:
    """A completed ``place_order("o-secret")`` whose payloads are encrypted."""

    world_url: str
    registry: Workflows
    run: Run


@pytest_asyncio.fixture
async def secret_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[SecretRun]:
    monkeypatch.delenv("DURABLY_ENCRYPTION_KEY", raising=False)
    url = f"sqlite:///{tmp_path / 'secret.db'}"
    wf = make_registry(url, encrypt=True)  # the key file is made beside the database
    async with wf:
        run = await start(wf.workflows["place_order"], "o-secret")
        await run.return_value(timeout=15)
        yield SecretRun(url, wf, run)


async def long_gap_run(name: str) -> tuple[str, str]:
    """A completed run of ``digest`` on ``memory://NAME`` whose log says: a 2 s step, a
    one-hour sleep, a 1 s step (written with a clock of the test's own, so no test waits
    an hour); returns the world's URL and the run's id."""
    import types

    from durably.events import NewEvent
    from durably.worlds import memory as memory_world
    from durably.worlds import open_world
    from durably.worlds.base import Commit, RunMeta, RunWrite

    t0 = time.time() - 7200
    clock = {"now": t0}
    url = f"memory://{name}"
    world = open_world(url)
    await world.open()
    run_id = "run_LONGGAP" + name.upper().replace("-", "")[:10]

    async def at(offset: float, *events: NewEvent, create: bool = False) -> None:
        clock["now"] = t0 + offset
        if any(e.type.value == "step_completed" for e in events):  # its attempt is claimed
            await world.claim(
                owner="w", namespace="default", deployment="default", max_runs=0,
                max_tasks=1, lease_seconds=30,
            )  # fmt: skip
        meta = RunMeta("digest", "default", "default") if create else None
        facts = [e for e in events if not e.type.value.endswith("_created") or create]
        commands = [e for e in events if e not in facts]
        last = (await world.get_run(run_id)).last_seq if not create else 0  # type: ignore[union-attr]
        write = RunWrite(
            run_id,
            create=meta,
            facts=facts,
            commands=commands,
            expected_seq=last + len(facts) if commands else None,
        )
        res = await world.commit(Commit([write]))
        assert res.results[0].ok, events

    fake = types.SimpleNamespace(time=lambda: clock["now"])
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(memory_world, "time", fake)
        await _write_long_gap(at, t0)
    return url, run_id


async def _write_long_gap(at: Any, t0: float) -> None:
    from durably.events import EventType as E
    from durably.events import NewEvent

    await at(0, NewEvent(E.RUN_CREATED), create=True)
    await at(0.1, NewEvent(E.RUN_STARTED), NewEvent(E.STEP_CREATED, 0, {"name": "fetch_feed"}))
    await at(2.2, NewEvent(E.STEP_COMPLETED, 0, {"attempt": 1, "started_at": t0 + 0.2}))
    await at(2.3, NewEvent(E.WAIT_CREATED, 1, {"name": "sleep", "due_at": t0 + 3602.3}))
    await at(3602.3, NewEvent(E.WAIT_COMPLETED, 1))
    await at(3602.4, NewEvent(E.STEP_CREATED, 2, {"name": "send_digest"}))
    await at(3603.5, NewEvent(E.STEP_COMPLETED, 2, {"attempt": 1, "started_at": t0 + 3602.5}))
    await at(3603.6, NewEvent(E.RUN_COMPLETED))
