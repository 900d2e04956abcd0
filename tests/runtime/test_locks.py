"""``durably.lock`` and concurrency limits from workflow bodies, on every world, with the
sticky cache and without it (each test is then a replay test too)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

import durably
from durably import BaseHook, ConfigurationError, Run, Workflows, start
from durably.errors import RunCancelledError, WorkflowRunFailedError


@dataclass
class Go(BaseHook):
    """Lets a run that waits for it go on."""

    ok: bool = True


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 60) -> None:
    """Wait for a condition (a generous bound: only a broken build reaches it)."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def holders(wf: Workflows, key: str) -> list[tuple[str, bool]]:
    world = await wf.open()
    return [(e.run_id, e.holding) for e in await world.list_locks(key=key)]


async def waits_for(run: Run, kind: str) -> bool:
    return (await run.waiting()).kind == kind


def gated(wf: Workflows, key: str = "acct:1", limit: int = 1):  # type: ignore[no-untyped-def]
    """A workflow that holds lock ``key`` until its hook ``go:<name>`` is resumed."""

    @wf.workflow(name=f"gated_{limit}")
    async def gated_body(name: str) -> str:
        async with durably.lock(key, limit=limit), Go.wait(token=f"go:{name}") as hook:
            await hook
        return name

    return gated_body


async def test_runs_take_a_lock_in_turn_fifo(wf: Workflows) -> None:
    body = gated(wf)
    a = await start(body, "a")
    await until(lambda: _held_by(wf, a), "a to hold the lock")
    b = await start(body, "b")
    await until(lambda: waits_for(b, "lock"), "b to wait")
    c = await start(body, "c")
    await until(lambda: waits_for(c, "lock"), "c to wait")
    w = await b.waiting()
    assert (w.name, w.summary()) == ("acct:1", "lock acct:1")
    assert await holders(wf, "acct:1") == [(a.run_id, True), (b.run_id, False), (c.run_id, False)]

    await Go().resume("go:a")
    assert await a.return_value(timeout=60) == "a"
    await until(lambda: _held_by(wf, b), "b to hold the lock")
    assert await c.waiting() is not None and (await c.waiting()).kind == "lock"
    await Go().resume("go:b")
    await until(lambda: _held_by(wf, c), "c to hold the lock")
    await Go().resume("go:c")
    assert [await r.return_value(timeout=60) for r in (b, c)] == ["b", "c"]
    assert await holders(wf, "acct:1") == []
    # Replays (every turn of a run without the sticky cache) never asked again.
    for run in (a, b, c):
        types = [str(e.type) for e in await run.events()]
        assert (types.count("lock_requested"), types.count("lock_acquired")) == (1, 1)
        assert types.count("lock_released") == 1


async def _held_by(wf: Workflows, run: Run) -> bool:
    """The run holds the lock and its body waits on its hook (so it can be resumed)."""
    held = any(rid == run.run_id and h for rid, h in await holders(wf, "acct:1"))
    return held and await waits_for(run, "hook")


async def test_a_semaphore_lets_limit_runs_in(wf: Workflows) -> None:
    body = gated(wf, limit=2)
    runs = {n: await start(body, n) for n in ("a", "b", "c")}

    async def two_in_one_out() -> bool:
        return sorted(h for _, h in await holders(wf, "acct:1")) == [False, True, True]

    await until(two_in_one_out, "two runs to hold the lock and one to wait")
    held = {rid for rid, h in await holders(wf, "acct:1") if h}
    inside = [n for n, r in runs.items() if r.run_id in held]
    [outside] = [n for n in runs if n not in inside]
    for n in inside:
        await until(lambda n=n: waits_for(runs[n], "hook"), f"{n} to wait on its hook")  # type: ignore[misc]
    await Go().resume(f"go:{inside[0]}")
    await until(lambda: waits_for(runs[outside], "hook"), "the third run to get a permit")
    await Go().resume(f"go:{inside[1]}")
    await Go().resume(f"go:{outside}")
    assert [await r.return_value(timeout=60) for r in runs.values()] == ["a", "b", "c"]


async def test_wait_for_an_acquire_is_a_durable_timeout(wf: Workflows) -> None:
    body = gated(wf)

    @wf.workflow
    async def impatient() -> str:
        lk = durably.lock("acct:1")
        try:
            await asyncio.wait_for(lk.acquire(), timeout=0.3)
        except TimeoutError:
            return "gave up"
        lk.release()
        return "got it"

    a = await start(body, "a")
    await until(lambda: _held_by(wf, a), "a to hold the lock")
    b = await start(impatient)
    assert await b.return_value(timeout=60) == "gave up"
    assert await holders(wf, "acct:1") == [(a.run_id, True)]  # b left the queue
    await Go().resume("go:a")
    assert await a.return_value(timeout=60) == "a"
    assert await (await start(impatient)).return_value(timeout=60) == "got it"


async def test_a_run_that_fails_or_is_cancelled_releases_its_permit(wf: Workflows) -> None:
    @wf.workflow
    async def breaks() -> None:
        async with durably.lock("acct:1"):
            async with Go.wait(token="go:x") as hook:
                await hook
            raise RuntimeError("boom")

    body = gated(wf)
    x = await start(breaks)
    await until(lambda: _held_by(wf, x), "x to hold the lock")
    a = await start(body, "a")
    await until(lambda: waits_for(a, "lock"), "a to wait")
    await Go().resume("go:x")
    with pytest.raises(WorkflowRunFailedError):
        await x.return_value(timeout=60)
    await until(lambda: _held_by(wf, a), "a to hold the lock after x failed")
    b = await start(body, "b")
    await until(lambda: waits_for(b, "lock"), "b to wait")
    await a.cancel()
    with pytest.raises(RunCancelledError):
        await a.return_value(timeout=60)
    await until(lambda: _held_by(wf, b), "b to hold the lock after a was cancelled")
    await Go().resume("go:b")
    assert await b.return_value(timeout=60) == "b"


async def test_a_waiting_run_that_is_cancelled_leaves_the_queue(wf: Workflows) -> None:
    body = gated(wf)
    a = await start(body, "a")
    await until(lambda: _held_by(wf, a), "a to hold the lock")
    b = await start(body, "b")
    await until(lambda: waits_for(b, "lock"), "b to wait")
    await b.cancel()
    with pytest.raises(RunCancelledError):
        await b.return_value(timeout=60)
    assert await holders(wf, "acct:1") == [(a.run_id, True)]
    await Go().resume("go:a")
    assert await a.return_value(timeout=60) == "a"


# -- concurrency limits ------------------------------------------------------------------


async def test_concurrency_keeps_runs_over_the_limit_pending(wf: Workflows) -> None:
    @wf.workflow(concurrency=1)
    async def one_at_a_time(name: str) -> str:
        async with Go.wait(token=f"go:{name}") as hook:
            await hook
        return name

    a = await start(one_at_a_time, "a")
    await until(lambda: waits_for(a, "hook"), "a to start")
    b = await start(one_at_a_time, "b")
    low = await start(one_at_a_time, "low", priority=-1)
    high = await start(one_at_a_time, "high", priority=3)
    for r in (b, low, high):
        await until(lambda r=r: waits_for(r, "concurrency"), "runs over the limit to wait")  # type: ignore[misc]
        assert await r.status() == "pending"
    assert "concurrency limit" in (await b.waiting()).describe()
    order = []
    for name, run in (("a", a), ("high", high), ("b", b), ("low", low)):
        await until(lambda run=run: waits_for(run, "hook"), f"{name} to start")  # type: ignore[misc]
        order.append(name)
        await Go().resume(f"go:{name}")
        assert await run.return_value(timeout=60) == name
    assert order == ["a", "high", "b", "low"]


async def test_concurrency_key_limits_each_key_alone(wf: Workflows) -> None:
    @wf.workflow(concurrency=1, concurrency_key=lambda account, n: account)
    async def per_account(account: str, n: int) -> str:
        async with Go.wait(token=f"go:{account}:{n}") as hook:
            await hook
        return f"{account}{n}"

    a1 = await start(per_account, "a", 1)
    a2 = await start(per_account, "a", 2)
    b1 = await start(per_account, "b", 1)
    await until(lambda: waits_for(b1, "hook"), "b1 to start while a2 waits")
    await until(lambda: waits_for(a1, "hook"), "a1 to start")
    assert (await a2.waiting()).kind == "concurrency"
    await Go().resume("go:a:1")
    await until(lambda: waits_for(a2, "hook"), "a2 to start when a1 ends")
    await Go().resume("go:a:2")
    await Go().resume("go:b:1")
    assert [await r.return_value(timeout=60) for r in (a1, a2, b1)] == ["a1", "a2", "b1"]


# -- bad input ---------------------------------------------------------------------------


async def test_bad_lock_and_limit_arguments_are_refused_where_they_are_made(
    wf: Workflows,
) -> None:
    with pytest.raises(ConfigurationError, match="lock key must be a string"):
        durably.lock(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="at least 1"):
        durably.lock("k", limit=-1)
    with pytest.raises(ConfigurationError, match="whole number"):
        durably.lock("k", limit=1.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="concurrency of workflow 'neg'"):

        @wf.workflow(concurrency=-2)
        async def neg() -> None: ...

    with pytest.raises(ConfigurationError, match="no concurrency limit"):

        @wf.workflow(concurrency_key=lambda: "k")
        async def keyless() -> None: ...

    @wf.workflow(concurrency=2, concurrency_key=lambda n: n)
    async def keyed(n: int) -> None: ...

    with pytest.raises(ConfigurationError, match="must return a string"):
        await start(keyed, 3)
    with pytest.raises(ConfigurationError, match="priority must be a whole number"):
        await start(keyed, 3, priority="high")  # type: ignore[arg-type]

    @wf.workflow
    async def bad_key() -> None:
        async with durably.lock(["not", "a", "string"]):  # type: ignore[arg-type]
            pass

    run = await start(bad_key)
    with pytest.raises(WorkflowRunFailedError, match="lock key must be a string"):
        await run.return_value(timeout=60)


async def test_child_runs_count_against_their_workflows_limit(wf: Workflows) -> None:
    @wf.workflow(concurrency=1)
    async def child(name: str) -> str:
        async with Go.wait(token=f"child:{name}") as hook:
            await hook
        return name

    @wf.workflow
    async def parent() -> list[str]:
        return list(await asyncio.gather(child("x"), child("y")))

    run = await start(parent)
    world = await wf.open()

    async def one_in_one_out() -> bool:
        entries = await world.list_locks()
        return sorted(e.holding for e in entries) == [False, True]

    await until(one_in_one_out, "one child to run and the other to wait")
    [first] = [e.run_id for e in await world.list_locks() if e.holding]
    name = "x" if first.endswith("-0") else "y"
    await until(lambda: waits_for(await_run(wf, first), "hook"), "the first child's hook")
    await Go().resume(f"child:{name}")
    other = "y" if name == "x" else "x"
    [second] = [e.run_id for e in await world.list_locks() if e.run_id != first] or [""]
    await until(lambda: waits_for(await_run(wf, second), "hook"), "the second child to start")
    await Go().resume(f"child:{other}")
    assert await run.return_value(timeout=60) == ["x", "y"]


def await_run(wf: Workflows, run_id: str) -> Run:
    return Run(wf, run_id, "child")
