"""A stream closed by a step attempt that does not complete is not closed for the step's
retry: the retry writes and closes it again, and a committed reader reads exactly the
retry's chunks and ends (issue 11: a killed attempt's close left every retry failing)."""

from __future__ import annotations

import asyncio

import pytest

from durably import RetryableError, Workflows, get_step_metadata, get_writable, start


def _closing_retrier(wf: Workflows, gate: asyncio.Event | None = None):  # type: ignore[no-untyped-def]
    """A step that writes k0,k1, closes and fails (after the gate, if given); its retry
    writes k0,k1,k2 and closes."""

    @wf.step(max_retries=3)
    async def produce() -> int:
        attempt = get_step_metadata().attempt
        out = get_writable()
        for i in range(2 if attempt == 1 else 3):
            await out.write(f"k{i}")
        await out.close()
        if attempt == 1:
            if gate is not None:
                await gate.wait()
            raise RetryableError("flaky after close", retry_after=0)
        return attempt

    @wf.workflow
    async def flow() -> int:
        return int(await produce())

    return flow


async def test_a_retry_writes_and_closes_the_stream_its_attempt_closed(wf: Workflows) -> None:
    run = await start(_closing_retrier(wf))
    assert await run.return_value(timeout=30) == 2
    assert [x async for x in run.readable(committed=True)] == ["k0", "k1", "k2"]
    chunks = [c async for c in run.chunks()]
    assert [(c.index, c.attempt) for c in chunks] == [(0, 1), (1, 1), (2, 2), (3, 2), (4, 2)]
    [info] = await run.stream_info()
    assert info.closed


async def test_readers_meet_the_close_of_an_attempt_that_does_not_complete(
    wf: Workflows,
) -> None:
    gate = asyncio.Event()
    run = await start(_closing_retrier(wf, gate))
    # Attempt 1 has closed the stream and waits: a live reader ends at its close ...
    live = [x async for x in run.readable()]
    assert live == ["k0", "k1"]
    # ... a committed reader waits for the attempt and its close to be decided.
    committed = asyncio.ensure_future(_collect(run.readable(committed=True)))
    done, _ = await asyncio.wait({committed}, timeout=0.3)
    assert not done
    gate.set()
    assert await asyncio.wait_for(committed, 30) == ["k0", "k1", "k2"]
    assert await run.return_value(timeout=30) == 2


async def test_the_closing_attempt_itself_cannot_write_after_its_close(wf: Workflows) -> None:
    @wf.step(max_retries=0)
    async def produce() -> None:
        out = get_writable()
        await out.write("a")
        await out.close()
        await out.write("b")
        await out.close()

    @wf.workflow
    async def flow() -> None:
        await produce()

    run = await start(flow)
    with pytest.raises(Exception, match="is closed"):
        await run.return_value(timeout=30)
    assert [x async for x in run.readable()] == ["a"]


async def _collect(it):  # type: ignore[no-untyped-def]
    return [x async for x in it]
