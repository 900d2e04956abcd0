"""Durable streams, run attributes and cancellation."""

from __future__ import annotations

import asyncio

import pytest

import durably
from durably import Workflows, Writable, get_writable, start


async def test_step_streams_chunks_a_reader_tails(wf: Workflows) -> None:
    @wf.step
    async def produce(n: int) -> int:
        out = get_writable()
        for i in range(n):
            await out.write({"i": i})
        await out.close()
        return n

    @wf.workflow
    async def streamer(n: int) -> int:
        return int(await produce(n))

    run = await start(streamer, 50)
    got = [chunk["i"] async for chunk in run.readable()]
    assert got == list(range(50))
    assert await run.return_value(timeout=30) == 50
    info = await run.stream_info()
    assert [(i.namespace, i.count, i.closed) for i in info] == [("", 50, True)]


async def test_resume_from_an_index_exactly(wf: Workflows) -> None:
    @wf.step
    async def produce() -> None:
        w = get_writable(namespace="tokens", type=str)
        for word in ["the", "quick", "brown", "fox", "jumps"]:
            await w.write(word)
        await w.close()

    @wf.workflow
    async def speak() -> None:
        await produce()

    run = await start(speak)
    first: list[str] = []
    async for word in run.readable(namespace="tokens"):
        first.append(word)
        if len(first) == 2:
            break  # the client drops
    rest = [w async for w in run.readable(start_index=len(first), namespace="tokens")]
    assert first + rest == ["the", "quick", "brown", "fox", "jumps"]
    indexes = [c.index async for c in run.chunks(namespace="tokens")]
    assert indexes == [0, 1, 2, 3, 4]


async def test_body_passes_a_writable_to_steps(wf: Workflows) -> None:
    @wf.step
    async def part(out: Writable, text: str) -> None:
        await out.write(text)

    @wf.step
    async def finish(out: Writable) -> None:
        await out.close()

    @wf.workflow
    async def story() -> None:
        out = get_writable(namespace="story")
        for t in ("a", "b", "c"):
            await part(out, t)
        await finish(out)

    run = await start(story)
    assert [x async for x in run.readable(namespace="story")] == ["a", "b", "c"]


async def test_chunks_readable_before_the_step_completes(wf: Workflows) -> None:
    gate = asyncio.Event()

    @wf.step
    async def slow_writer() -> None:
        out = get_writable()
        await out.write("early")
        await gate.wait()
        await out.write("late")

    @wf.workflow
    async def flow() -> None:
        await slow_writer()

    run = await start(flow)
    reader = run.readable()
    assert await asyncio.wait_for(reader.__anext__(), 30) == "early"
    assert (await run.steps())[0].status == "running"
    gate.set()
    assert [x async for x in reader] == ["late"]  # ended by the run's end
    await run.return_value(timeout=30)


async def test_writing_from_a_body_is_an_error(wf: Workflows) -> None:
    @wf.workflow
    async def flow() -> str:
        try:
            await get_writable().write("x")
        except RuntimeError as e:
            return str(e)
        return "wrote"

    run = await start(flow)
    assert "write from a step" in await run.return_value(timeout=30)


async def test_attributes_from_body_and_step(wf: Workflows) -> None:
    @wf.step
    async def charge() -> None:
        await durably.set_attributes(phase="charging", attempt=1)

    @wf.workflow
    async def order() -> None:
        await durably.set_attributes(customer="c1", phase="start")
        await charge()
        await durably.remove_attributes("attempt")
        await durably.set_attributes(phase="done")

    run = await start(order)
    await run.return_value(timeout=30)
    assert await run.attributes() == {"customer": "c1", "phase": "done"}
    world = await wf.open()
    from durably.worlds.base import RunFilter

    found = await world.list_runs(RunFilter(attributes={"customer": "c1"}))
    assert [r.run_id for r in found] == [run.run_id]
    assert await world.list_runs(RunFilter(attributes={"customer": "c2"})) == []


async def test_attribute_limits(wf: Workflows) -> None:
    @wf.workflow
    async def flow() -> list[str]:
        errors = []
        for bad in ({"k" * 257: "v"}, {"k": "v" * 257}):
            try:
                await durably.set_attributes(**bad)
            except durably.ConfigurationError as e:
                errors.append(str(e)[:20])
        try:
            await durably.set_attributes(**{f"k{i}": "v" for i in range(65)})
        except durably.ConfigurationError as e:
            errors.append("count" if "at most 64" in str(e) else str(e))
        return errors

    run = await start(flow)
    errors = await run.return_value(timeout=30)
    assert len(errors) == 3 and errors[-1] == "count"
    assert await run.attributes() == {}


async def test_cancel_a_sleeping_run_runs_cleanup(wf: Workflows) -> None:
    done: list[str] = []

    @wf.step
    async def release_resources() -> None:
        done.append("released")

    @wf.workflow
    async def sleeper() -> str:
        try:
            await durably.sleep("30d")
            return "woke"
        finally:
            await release_resources()

    run = await start(sleeper)
    for _ in range(500):
        if any(s.status == "waiting" for s in await run.steps()):
            break
        await asyncio.sleep(0.01)
    await run.cancel()
    with pytest.raises(durably.RunCancelledError):
        await run.return_value(timeout=30)
    assert done == ["released"]
    kinds = {s.kind: s.status for s in await run.steps()}
    assert kinds["wait"] == "cancelled"


async def test_cancel_a_pending_run_never_starts_it(make_wf: object) -> None:
    from collections.abc import Callable

    assert callable(make_wf)
    maker: Callable[..., Workflows] = make_wf
    starter = maker(worker=False)
    ran: list[int] = []

    @starter.workflow
    async def never() -> None:
        ran.append(1)

    run = await start(never)
    await run.cancel()
    executor = maker(world=starter.world_url)
    executor.workflows.update(starter.workflows)
    await executor.open()
    with pytest.raises(durably.RunCancelledError):
        await (await executor.get_run(run.run_id)).return_value(timeout=30)
    assert ran == []


async def test_cancel_reaches_child_runs(wf: Workflows) -> None:
    @wf.workflow
    async def child() -> None:
        await durably.sleep("30d")

    @wf.workflow
    async def parent() -> None:
        await child()

    run = await start(parent)
    for _ in range(500):
        steps = await run.steps()
        if steps and steps[0].child_run_id:
            break
        await asyncio.sleep(0.01)
    child_run = await wf.get_run(str((await run.steps())[0].child_run_id))
    for _ in range(500):
        if await child_run.status() == "running":
            break
        await asyncio.sleep(0.01)
    await run.cancel()
    with pytest.raises(durably.RunCancelledError):
        await run.return_value(timeout=30)
    with pytest.raises(durably.RunCancelledError):
        await child_run.return_value(timeout=30)
