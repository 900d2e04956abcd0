"""Regressions found by review: each test failed before its fix."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import durably
from durably import BaseHook, WorkflowRunFailedError, Workflows, get_writable, sleep, start


@dataclass
class RegressionApproval(BaseHook):
    ok: bool


async def test_run_step_retry_gets_its_arguments_from_the_log(wf: Workflows) -> None:
    seen: list[str] = []

    def send(token: str) -> None:
        seen.append(token)
        if len(seen) == 1:
            raise ConnectionError("mail server down")

    @wf.workflow
    async def flow() -> bool:
        hook = RegressionApproval.wait()  # a generated, unguessable token
        await durably.run_step("send", send, (hook.token,), retry_after=0.01)
        return True

    run = await start(flow)
    assert await run.return_value(timeout=30) is True
    assert len(seen) == 2 and seen[0] == seen[1]


async def test_attribute_limit_counts_only_what_the_body_set_on_replay(wf: Workflows) -> None:
    @wf.step
    async def tick() -> None:
        return None

    @wf.workflow
    async def churn() -> int:
        await durably.set_attributes(**{f"a{i}": "x" for i in range(40)})
        await tick()
        await durably.remove_attributes(*[f"a{i}" for i in range(40)])
        await durably.set_attributes(**{f"b{i}": "y" for i in range(40)})
        await tick()
        return len(await asyncio.sleep(0, result=[1]))

    run = await start(churn)
    assert await run.return_value(timeout=30) == 1
    assert len(await run.attributes()) == 40


async def test_system_exit_in_a_body_fails_the_run_not_the_worker(wf: Workflows) -> None:
    @wf.workflow
    async def quitter() -> None:
        raise SystemExit(3)

    @wf.workflow
    async def fine() -> str:
        return "still serving"

    run = await start(quitter)
    with pytest.raises(WorkflowRunFailedError, match="SystemExit"):
        await run.return_value(timeout=30)
    assert await (await start(fine)).return_value(timeout=30) == "still serving"


async def test_async_generator_cleanup_stays_in_the_sandbox(wf: Workflows) -> None:
    outside: list[bool] = []

    @wf.step
    async def cleanup() -> None:
        outside.append(not durably.in_step())

    async def numbers() -> AsyncIterator[int]:
        try:
            for i in range(10):
                yield i
        finally:
            await cleanup()

    @wf.workflow
    async def flow() -> int:
        async for n in numbers():
            if n == 2:
                break  # the generator is left open; it is finalized later
        await sleep(0.01)
        return n

    run = await start(flow)
    assert await run.return_value(timeout=30) == 2
    await asyncio.sleep(0.1)
    assert True not in outside  # never ran as a plain, unrecorded call


async def test_a_spinning_body_fails_with_a_clear_error(wf: Workflows) -> None:
    from durably.runtime import loop as loop_mod

    old = loop_mod.MAX_CALLBACKS_PER_TURN
    loop_mod.MAX_CALLBACKS_PER_TURN = 10_000
    try:

        @wf.workflow
        async def spin() -> None:
            while True:
                await asyncio.sleep(0)

        @wf.workflow
        async def fine() -> str:
            return "ok"

        run = await start(spin)
        with pytest.raises(WorkflowRunFailedError, match="without waiting on anything durable"):
            await run.return_value(timeout=30)
        assert await (await start(fine)).return_value(timeout=30) == "ok"
    finally:
        loop_mod.MAX_CALLBACKS_PER_TURN = old


async def test_one_runs_stream_error_does_not_cost_another_its_chunks(wf: Workflows) -> None:
    @wf.step
    async def closes_then_writes() -> str:
        out = get_writable(namespace="bad")
        await out.close()
        try:
            await out.write("after close")
            await out.close()
        except ValueError as e:
            return "refused: " + str(e)[:20]
        return "accepted"

    @wf.step
    async def writes(n: int) -> int:
        out = get_writable()
        for i in range(n):
            await out.write(i)
        await out.close()
        return n

    @wf.workflow
    async def bad() -> str:
        return str(await closes_then_writes())

    @wf.workflow
    async def good(n: int) -> int:
        return int(await writes(n))

    runs = await asyncio.gather(start(bad), start(good, 300), start(good, 300))
    results = await asyncio.gather(*[r.return_value(timeout=30) for r in runs])
    assert results[0].startswith("refused: stream 'bad'")
    for r in runs[1:]:
        assert [c async for c in r.readable()] == list(range(300))


async def test_a_child_that_diverges_fails_its_parent_instead_of_hanging(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nd.db'}"

    def registry(version: int) -> Workflows:
        wf = Workflows(world=url)

        @wf.step
        async def one() -> None: ...

        @wf.step
        async def two() -> None: ...

        @wf.workflow
        async def child() -> None:
            await (one() if version == 1 else two())
            await sleep("1h")

        @wf.workflow
        async def parent() -> str:
            try:
                await child()
            except durably.NonDeterminismError:
                return "child diverged"
            return "child finished"

        return wf

    v1 = registry(1)
    run = await v1.start("parent")
    for _ in range(500):
        steps = await run.steps()
        if steps and steps[0].child_run_id:
            kid = await v1.get_run(str(steps[0].child_run_id))
            if any(s.status == "waiting" for s in await kid.steps()):
                break
        await asyncio.sleep(0.01)
    await v1.aclose()
    v2 = registry(2)
    try:
        kid = await v2.get_run(str((await (await v2.get_run(run.run_id)).steps())[0].child_run_id))
        await kid.wake()
        assert await (await v2.get_run(run.run_id)).return_value(timeout=30) == "child diverged"
    finally:
        await v2.aclose()
