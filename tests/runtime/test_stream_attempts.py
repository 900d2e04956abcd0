"""Stream chunks carry the step attempt that wrote them; committed readers see only the
chunks of attempts whose completion is recorded; negative start indexes count from the
end."""

from __future__ import annotations

import asyncio

from durably import RetryableError, Workflows, get_step_metadata, get_writable, start


def _retrying_writer(wf: Workflows, gate: asyncio.Event | None = None):  # type: ignore[no-untyped-def]
    """A step that writes k0,k1 and fails; its retry writes k0,k1,k2 (and, with a
    gate, waits on it before completing)."""

    @wf.step(max_retries=3)
    async def produce() -> int:
        attempt = get_step_metadata().attempt
        out = get_writable()
        n = 2 if attempt == 1 else 3
        for i in range(n):
            await out.write(f"k{i}")
        if attempt == 1:
            raise RetryableError("flaky", retry_after=0)
        if gate is not None:
            await gate.wait()
        return attempt

    @wf.workflow
    async def flow() -> int:
        return int(await produce())

    return flow


async def test_live_readers_see_every_attempt_with_its_number(wf: Workflows) -> None:
    flow = _retrying_writer(wf)
    run = await start(flow)
    assert await run.return_value(timeout=30) == 2
    chunks = [c async for c in run.chunks()]
    assert [c.attempt for c in chunks] == [1, 1, 2, 2, 2]
    assert [c.index for c in chunks] == [0, 1, 2, 3, 4]
    assert {c.call for c in chunks} == {0}
    assert [x async for x in run.readable()] == ["k0", "k1", "k0", "k1", "k2"]


async def test_a_committed_reader_sees_exactly_the_completed_attempt(wf: Workflows) -> None:
    flow = _retrying_writer(wf)
    run = await start(flow)
    await run.return_value(timeout=30)
    chunks = [c async for c in run.chunks(committed=True)]
    assert [(c.index, c.attempt, c.committed) for c in chunks] == [
        (2, 2, True),
        (3, 2, True),
        (4, 2, True),
    ]
    assert [x async for x in run.readable(committed=True)] == ["k0", "k1", "k2"]
    # Resuming after the last seen index gives exactly the rest.
    assert [x async for x in run.readable(start_index=4, committed=True)] == ["k2"]


async def test_a_committed_reader_waits_for_the_attempt_to_commit(wf: Workflows) -> None:
    gate = asyncio.Event()
    flow = _retrying_writer(wf, gate)
    run = await start(flow)
    live = run.readable()
    # The live reader sees the second attempt's chunks while it is still running ...
    seen = [await asyncio.wait_for(live.__anext__(), 30) for _ in range(5)]
    assert seen == ["k0", "k1", "k0", "k1", "k2"]
    assert (await run.steps())[0].status == "running"
    # ... a committed reader started now yields nothing until the attempt completes.
    committed = run.readable(committed=True)
    first = asyncio.ensure_future(committed.__anext__())
    done, _ = await asyncio.wait({first}, timeout=0.3)
    assert not done
    assert (await run.steps())[0].status == "running"
    gate.set()
    assert await asyncio.wait_for(first, 30) == "k0"
    assert [x async for x in committed] == ["k1", "k2"]
    assert await run.return_value(timeout=30) == 2
    await live.aclose()


async def test_a_failed_steps_chunks_are_never_committed(wf: Workflows) -> None:
    @wf.step(max_retries=0)
    async def doomed() -> None:
        out = get_writable()
        await out.write("lost")
        raise ValueError("no")

    @wf.step
    async def after() -> None:
        await get_writable().write("kept")

    @wf.workflow
    async def flow() -> None:
        try:
            await doomed()
        except ValueError:
            pass
        await after()

    run = await start(flow)
    await run.return_value(timeout=30)
    assert [x async for x in run.readable()] == ["lost", "kept"]
    assert [x async for x in run.readable(committed=True)] == ["kept"]


async def test_a_negative_start_index_counts_from_the_end(wf: Workflows) -> None:
    @wf.step
    async def produce() -> None:
        out = get_writable()
        for i in range(10):
            await out.write(i)
        await out.close()

    @wf.workflow
    async def flow() -> None:
        await produce()

    run = await start(flow)
    await run.return_value(timeout=30)
    assert [x async for x in run.readable(start_index=-3)] == [7, 8, 9]
    assert [x async for x in run.readable(start_index=-1)] == [9]
    assert [x async for x in run.readable(start_index=-50)] == list(range(10))
    assert [c.index async for c in run.chunks(start_index=-2, committed=True)] == [8, 9]


async def test_a_negative_start_index_on_an_empty_stream_starts_at_zero(wf: Workflows) -> None:
    @wf.workflow
    async def flow() -> None:
        return None

    run = await start(flow)
    await run.return_value(timeout=30)
    assert [x async for x in run.readable(start_index=-1)] == []
