"""Forking a run: the calls before the fork point keep their results, the rest runs again
(on every world, with and without the sticky cache)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import pytest

import durably
from durably import BaseHook, FatalError, ForkError, Workflows, start
from durably.errors import WorkflowRunFailedError


async def test_fork_reuses_steps_before_n_and_runs_the_rest(wf: Workflows) -> None:
    calls: list[str] = []
    broken = {"c": True}

    @wf.step
    async def a(x: int) -> int:
        calls.append("a")
        return x + 1

    @wf.step
    async def b(x: int) -> int:
        calls.append("b")
        return x * 10

    @wf.step
    async def c(x: int) -> int:
        calls.append("c")
        if broken["c"]:
            raise FatalError("c is broken")
        return x + 5

    @wf.workflow
    async def pipeline(x: int) -> int:
        return await c(await b(await a(x)))

    run = await start(pipeline, 1)
    with pytest.raises(WorkflowRunFailedError):
        await run.return_value(timeout=30)
    assert calls == ["a", "b", "c"]

    broken["c"] = False  # the fix is deployed
    fork = await run.fork(from_step=2)
    assert fork.run_id != run.run_id
    assert await fork.return_value(timeout=30) == 25
    assert calls == ["a", "b", "c", "c"]  # a and b were not run again
    assert await run.status() == "failed"  # the source is unchanged
    first = (await fork.events())[0]
    assert first.data["fork_of"] == run.run_id and first.data["from_step"] == 2
    assert [s.name for s in await fork.steps()] == ["a", "b", "c"]

    fork0 = await run.fork(from_step=0)
    assert await fork0.return_value(timeout=30) == 25
    assert calls == ["a", "b", "c", "c", "a", "b", "c"]


async def test_fork_from_the_end_reuses_every_call(wf: Workflows) -> None:
    count = {"n": 0}

    @wf.step
    async def once() -> int:
        count["n"] += 1
        return 7

    @wf.workflow
    async def body() -> int:
        return await once() * 2

    run = await start(body)
    assert await run.return_value(timeout=30) == 14
    fork = await run.fork(from_step=1)
    assert await fork.return_value(timeout=30) == 14
    assert count["n"] == 1


async def test_fork_of_parallel_steps_and_a_sleep(wf: Workflows) -> None:
    seen: list[int] = []

    @wf.step
    async def echo(i: int) -> int:
        seen.append(i)
        return i

    @wf.workflow
    async def fan() -> list[int]:
        first = list(await asyncio.gather(echo(0), echo(1), echo(2)))
        await durably.sleep(0.01)
        return [*first, await echo(3)]

    run = await start(fan)
    assert await run.return_value(timeout=30) == [0, 1, 2, 3]
    seen.clear()
    fork = await run.fork(from_step=1)  # call 0 reused; 1 and 2 (same gather) run again
    assert await fork.return_value(timeout=30) == [0, 1, 2, 3]
    assert sorted(seen) == [1, 2, 3]
    seen.clear()
    fork = await run.fork(from_step=4)  # everything before echo(3), the sleep included
    assert await fork.return_value(timeout=30) == [0, 1, 2, 3]
    assert seen == [3]


async def test_fork_to_another_deployment_and_bad_step_numbers(wf: Workflows) -> None:
    @wf.step
    async def one() -> int:
        return 1

    @wf.workflow
    async def body() -> int:
        return await one()

    run = await start(body)
    await run.return_value(timeout=30)
    with pytest.raises(ForkError, match="between 0 and 1"):
        await run.fork(from_step=2)
    with pytest.raises(ForkError):
        await run.fork(from_step=-1)
    other = await run.fork(from_step=0, deployment="v2")
    assert (await other.record()).deployment == "v2"
    assert await other.status() in ("pending", "running")  # no worker of v2 here


@dataclass
class Go(BaseHook):
    ok: bool


async def test_fork_refuses_a_live_hook_before_n_and_copies_a_received_one(
    wf: Workflows,
) -> None:
    @wf.step
    async def after(ok: bool) -> str:
        return f"after {ok}"

    @wf.workflow
    async def gated(token: str) -> str:
        async with Go.wait(token=token) as hook:
            got = await hook
        first = await after(got.ok)
        async with Go.wait(token=token + "-2") as hook2:
            await hook2
        return first

    run = await start(gated, "fork-hook")
    await wait_for_hook(wf, "fork-hook")
    await Go(ok=True).resume("fork-hook")
    await wait_for_hook(wf, "fork-hook-2")
    with pytest.raises(ForkError, match="still live"):
        await run.fork(from_step=3)  # the second hook (call 2) is live
    await Go(ok=True).resume("fork-hook-2")
    assert await run.return_value(timeout=30) == "after True"
    fork = await run.fork(from_step=1)  # the first hook's resume is reused
    await wait_for_hook(wf, "fork-hook-2")  # the fork got to its own second hook
    await Go(ok=False).resume("fork-hook-2")
    assert await fork.return_value(timeout=30) == "after True"


async def wait_for_hook(wf: Workflows, token: str) -> None:
    """Until a live hook holds ``token``."""
    for _ in range(3000):
        try:
            await durably.get_hook_by_token(token)
            return
        except durably.HookNotFoundError:
            await asyncio.sleep(0.01)
    raise AssertionError(f"no hook {token!r}")


async def test_fork_reuses_a_finished_child_run_before_n(wf: Workflows) -> None:
    runs: list[str] = []

    @wf.step
    async def note(what: str) -> str:
        runs.append(what)
        return what

    @wf.workflow
    async def child(x: int) -> int:
        await note(f"child {x}")
        return x * 2

    @wf.workflow
    async def parent() -> list[int]:
        a = await child(1)
        b = await note("after")
        return [a, len(b)]

    run = await start(parent)
    assert await run.return_value(timeout=30) == [2, 5]
    assert runs == ["child 1", "after"]
    fork = await run.fork(from_step=1)
    assert await fork.return_value(timeout=30) == [2, 5]
    assert runs == ["child 1", "after", "after"]  # the child run was not started again
    [step0, _] = await fork.steps()
    assert step0.kind == "child" and step0.child_run_id == f"{run.run_id}-0"


async def test_fork_of_a_live_run_reruns_an_unfinished_step_and_refuses_a_live_child(
    wf: Workflows,
) -> None:
    gate = asyncio.Event()
    started: list[int] = []

    @wf.step
    async def slow() -> int:
        started.append(1)
        await gate.wait()
        return 1

    @wf.step
    async def after(x: int) -> int:
        return x + 1

    @wf.workflow
    async def body() -> int:
        return await after(await slow())

    @wf.workflow
    async def napping_child() -> None:
        await durably.sleep("1h")

    @wf.workflow
    async def parent() -> None:
        await napping_child()

    run = await start(body)
    await until(lambda: len(started) == 1)
    fork = await run.fork(from_step=1)  # step 0 has not finished: the fork runs it too
    await until(lambda: len(started) == 2)
    gate.set()
    assert await run.return_value(timeout=30) == 2
    assert await fork.return_value(timeout=30) == 2

    waiting = await start(parent)
    for _ in range(3000):
        if any(s.kind == "child" for s in await waiting.steps()):
            break
        await asyncio.sleep(0.01)
    with pytest.raises(ForkError, match="has not ended"):
        await waiting.fork(from_step=1)
    await waiting.cancel()


async def until(check: Callable[[], bool]) -> None:
    for _ in range(3000):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never")
