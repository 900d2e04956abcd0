"""A `durably worker` SIGKILLed in the middle of a step that streams: the retry writes
its chunks again; a committed reader, started before the kill, yields exactly the
retry's chunks, while a live reader shows both attempts. Killed after the step closed its
stream (before its completion was recorded), the retry reopens, writes and closes it."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from durably import serde
from durably.worlds.base import StreamChunk
from tests.test_crash import MODULE, Env

STREAMING = """
from durably import get_writable


@wf.step(retry_after=0.05)
async def stream_out() -> int:
    out = get_writable()
    for i in range(3):
        await out.write(f"k{i}")
        if i == 1 and os.path.exists(BLOCK):
            await asyncio.sleep(3600)  # hangs here until the worker is killed
    await out.close()
    return 3


@wf.workflow
async def streamer() -> int:
    return await stream_out()


@wf.step(retry_after=0.05)
async def stream_and_close() -> int:
    out = get_writable()
    n = 2 if os.path.exists(BLOCK) else 3
    for i in range(n):
        await out.write(f"k{i}")
    await out.close()
    if os.path.exists(BLOCK):
        await asyncio.sleep(3600)  # closed, not completed: hangs until the worker is killed
    return n


@wf.workflow
async def closer() -> int:
    return await stream_and_close()
"""


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    (tmp_path / "crashmod.py").write_text(MODULE + STREAMING)
    saved = dict(os.environ)
    yield e
    for p in e.procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    os.environ.clear()
    os.environ.update(saved)


async def test_sigkill_mid_stream_committed_reader_is_exact(env: Env) -> None:
    mod = env.module()
    env.block.touch()
    first = env.worker("w1")
    run = await mod.wf.start("streamer")
    try:
        live = run.chunks()
        seen = [await asyncio.wait_for(live.__anext__(), 60) for _ in range(2)]
        assert [(c.index, c.attempt) for c in seen] == [(0, 1), (1, 1)]
        committed = asyncio.ensure_future(
            _collect(run.chunks(committed=True))
        )  # started before the kill: it waits for an attempt to complete
        first.send_signal(signal.SIGKILL)
        first.wait()
        env.block.unlink()
        second = env.worker("w2")
        await env.ready("w2")
        assert await run.return_value(timeout=60) == 3
        got = await asyncio.wait_for(committed, 60)
        assert [(c.index, _value(c.payload), c.attempt) for c in got] == [
            (2, "k0", 2),
            (3, "k1", 2),
            (4, "k2", 2),
        ]
        rest = [c async for c in live]
        assert [c.attempt for c in seen + rest] == [1, 1, 2, 2, 2]
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0
    finally:
        await mod.wf.aclose()


async def test_sigkill_after_close_the_retry_reopens_the_stream(env: Env) -> None:
    mod = env.module()
    env.block.touch()
    first = env.worker("w1")
    run = await mod.wf.start("closer")
    try:
        # A live reader ends at attempt 1's close, as soon as it is stored.
        live = await asyncio.wait_for(_collect(run.chunks()), 60)
        assert [(c.index, _value(c.payload), c.attempt) for c in live] == [
            (0, "k0", 1),
            (1, "k1", 1),
        ]
        committed = asyncio.ensure_future(_collect(run.chunks(committed=True)))
        first.send_signal(signal.SIGKILL)  # closed, its completion not recorded
        first.wait()
        env.block.unlink()
        second = env.worker("w2")
        await env.ready("w2")
        assert await run.return_value(timeout=60) == 3
        got = await asyncio.wait_for(committed, 60)
        assert [(c.index, _value(c.payload), c.attempt) for c in got] == [
            (2, "k0", 2),
            (3, "k1", 2),
            (4, "k2", 2),
        ]
        steps = await run.steps()
        assert [(s.status, s.attempts) for s in steps] == [("completed", 2)]
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0
    finally:
        await mod.wf.aclose()


async def _collect(chunks: AsyncIterator[StreamChunk]) -> list[StreamChunk]:
    return [c async for c in chunks]


def _value(payload: bytes) -> object:
    return serde.decode(payload, where="a test chunk")
