"""Workflows and steps: results, parallelism, plain calls, child runs."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import durably
from durably import Workflows, start


async def test_sequential_steps_return_results(wf: Workflows) -> None:
    @wf.step
    async def add(a: int, b: int) -> int:
        return a + b

    @wf.workflow
    async def total(n: int) -> int:
        s = 0
        for i in range(n):
            s = await add(s, i)
        return s

    run = await start(total, 20)
    assert await run.return_value(timeout=30) == sum(range(20))
    assert await run.status() == "completed"
    steps = await run.steps()
    assert [s.name for s in steps] == ["add"] * 20
    assert all(s.status == "completed" and s.attempts == 1 for s in steps)


async def test_gather_returns_results_in_call_order(wf: Workflows) -> None:
    @wf.step
    async def slow_echo(x: int) -> int:
        await asyncio.sleep(0.001 * (10 - x))  # finish in reverse order
        return x

    @wf.workflow
    async def fan() -> list[int]:
        return list(await asyncio.gather(*[slow_echo(i) for i in range(10)]))

    run = await start(fan)
    assert await run.return_value(timeout=30) == list(range(10))


async def test_taskgroup_of_steps(wf: Workflows) -> None:
    @wf.step
    async def double(x: int) -> int:
        return 2 * x

    @wf.workflow
    async def grouped() -> list[int]:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(double(i)) for i in range(5)]
        return [t.result() for t in tasks]

    run = await start(grouped)
    assert await run.return_value(timeout=30) == [0, 2, 4, 6, 8]


async def test_plain_def_step_runs_in_a_thread(wf: Workflows) -> None:
    main_thread = threading.get_ident()

    @wf.step
    def where() -> bool:
        return threading.get_ident() != main_thread

    @wf.workflow
    async def flow() -> bool:
        return bool(await where())

    run = await start(flow)
    assert await run.return_value(timeout=30) is True


async def test_step_outside_a_workflow_is_a_plain_call(wf: Workflows) -> None:
    calls: list[int] = []

    @wf.step
    async def record(x: int) -> int:
        calls.append(x)
        assert not durably.in_step()
        assert not durably.in_workflow()
        return x + 1

    @wf.step
    def sync_record(x: int) -> int:
        return x * 10

    assert await record(1) == 2
    assert sync_record(3) == 30
    assert calls == [1]


async def test_in_workflow_and_in_step(wf: Workflows) -> None:
    @wf.step
    async def probe() -> list[bool]:
        return [durably.in_workflow(), durably.in_step()]

    @wf.workflow
    async def flow() -> dict[str, Any]:
        inside = [durably.in_workflow(), durably.in_step()]
        return {"body": inside, "step": await probe()}

    run = await start(flow)
    assert await run.return_value(timeout=30) == {"body": [True, False], "step": [False, True]}


async def test_run_step_records_any_callable(wf: Workflows) -> None:
    seen: list[str] = []

    def tool(query: str) -> str:
        seen.append(query)
        return query.upper()

    async def async_tool(x: int) -> int:
        return x + 1

    @wf.workflow
    async def agent() -> list[Any]:
        a = await durably.run_step("search", tool, ("hello",))
        b = await durably.run_step("inc", async_tool, kwargs={"x": 41})
        return [a, b]

    run = await start(agent)
    assert await run.return_value(timeout=30) == ["HELLO", 42]
    assert [s.name for s in await run.steps()] == ["search", "inc"]
    assert seen == ["hello"]


async def test_child_workflow(wf: Workflows) -> None:
    @wf.step
    async def square(x: int) -> int:
        return x * x

    @wf.workflow
    async def child(x: int) -> int:
        return await square(x)

    @wf.workflow
    async def parent(n: int) -> list[int]:
        return list(await asyncio.gather(*[child(i) for i in range(n)]))

    run = await start(parent, 4)
    assert await run.return_value(timeout=30) == [0, 1, 4, 9]
    steps = await run.steps()
    assert [s.kind for s in steps] == ["child"] * 4
    child_run = await wf.get_run(str(steps[2].child_run_id))
    assert await child_run.return_value(timeout=5) == 4
    assert (await child_run.record()).parent_run_id == run.run_id


async def test_child_failure_raises_in_parent(wf: Workflows) -> None:
    @wf.workflow
    async def broken() -> None:
        raise KeyError("missing")

    @wf.workflow
    async def parent() -> str:
        try:
            await broken()
        except KeyError as e:
            return f"caught {e}"
        return "not raised"

    run = await start(parent)
    assert await run.return_value(timeout=30) == "caught 'missing'"


async def test_recursion_across_child_runs(wf: Workflows) -> None:
    @wf.workflow
    async def fib(n: int) -> int:
        if n < 2:
            return n
        a, b = await asyncio.gather(fib(n - 1), fib(n - 2))
        return int(a) + int(b)

    run = await start(fib, 6)
    assert await run.return_value(timeout=60) == 8


async def test_idempotency_key_returns_the_existing_run(wf: Workflows) -> None:
    @wf.workflow
    async def once(x: int) -> int:
        return x

    a = await start(once, 1, idempotency_key="k1")
    b = await start(once, 2, idempotency_key="k1")
    c = await start(once, 3, idempotency_key="k2")
    assert a.run_id == b.run_id != c.run_id
    assert await b.return_value(timeout=30) == 1
    assert await c.return_value(timeout=30) == 3


async def test_get_run_and_unknown_run(wf: Workflows) -> None:
    @wf.workflow
    async def one() -> int:
        return 1

    run = await start(one)
    again = await durably.get_run(run.run_id)
    assert await again.return_value(timeout=30) == 1
    with pytest.raises(durably.RunNotFoundError, match="run_nope"):
        await wf.get_run("run_nope")
