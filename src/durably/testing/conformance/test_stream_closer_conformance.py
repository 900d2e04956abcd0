"""Conformance, streams: a close records the step attempt that made it; a later attempt
of that step (its retry, after the closing attempt failed or was killed before its
completion was recorded) reopens the stream, nobody else does; the run's end closes
for good; a committed reader ends only at a final close, on every world."""

from __future__ import annotations

import asyncio

import pytest

from durably.events import EventType as E
from durably.events import NewEvent
from durably.streams import read_stream
from durably.worlds import World
from durably.worlds.base import ChunkBatch

from .test_conformance import (
    ev,
    pytestmark,  # noqa: F401  (strict asyncio mode)
    run_with_calls,
    write,
)


def _batch(run_id: str, n: int, who: tuple[int | None, int], *, close: bool) -> ChunkBatch:
    payloads = [f"k{i}".encode() for i in range(n)]
    return ChunkBatch(run_id, "", payloads, close, [who] * n, who)


async def _info(world: World, run_id: str) -> tuple[int, bool, int | None, int]:
    [info] = await world.stream_info(run_id)
    return info.count, info.closed, info.closer_call, info.closer_attempt


async def _read(world: World, run_id: str, **kw: object) -> list[tuple[int, bytes, int]]:
    return [(c.index, c.payload, c.attempt) async for c in read_stream(world, run_id, **kw)]  # type: ignore[arg-type]


async def test_a_retry_of_the_closing_step_reopens_the_stream(world: World) -> None:
    run_id = await run_with_calls(
        world, ev(E.STEP_CREATED, 0, name="s"), ev(E.STEP_CREATED, 1, name="t"), claim_calls=[0]
    )
    await world.append_chunks([_batch(run_id, 2, (0, 1), close=True)])
    assert await _info(world, run_id) == (2, True, 0, 1)
    closed = [e for e in await world.read_events(run_id) if e.type == E.STREAM_CLOSED]
    assert [e.data for e in closed] == [{"namespace": "", "count": 2, "step_call": 0, "attempt": 1}]

    # Refused: the closing attempt itself, an earlier one, another step, nobody's.
    for who in [(0, 1), (0, 0), (1, 2), (None, 0)]:
        with pytest.raises(ValueError, match="is closed"):
            await world.append_chunks([_batch(run_id, 1, who, close=False)])
    # A batch that mixes the retry's chunks with another step's is refused whole.
    mixed = ChunkBatch(run_id, "", [b"x", b"y"], writers=[(0, 2), (1, 1)])
    with pytest.raises(ValueError, match="is closed"):
        await world.append_chunks([mixed])
    assert await _info(world, run_id) == (2, True, 0, 1)

    # The retry's writes reopen it; its close closes it again, naming the retry.
    await world.append_chunks([_batch(run_id, 3, (0, 2), close=False)])
    assert await _info(world, run_id) == (5, False, None, 0)
    await world.append_chunks([ChunkBatch(run_id, "", [], True, closer=(0, 2))])
    assert await _info(world, run_id) == (5, True, 0, 2)
    # A close alone by a later attempt moves the closer on; the superseded attempt is out.
    await world.append_chunks([ChunkBatch(run_id, "", [], True, closer=(0, 3))])
    assert await _info(world, run_id) == (5, True, 0, 3)
    with pytest.raises(ValueError, match="is closed"):
        await world.append_chunks([_batch(run_id, 1, (0, 2), close=True)])
    chunks, done = await world.read_chunks(run_id, "")
    assert [(c.payload, c.attempt) for c in chunks] == [
        (b"k0", 1),
        (b"k1", 1),
        (b"k0", 2),
        (b"k1", 2),
        (b"k2", 2),
    ]
    assert done


async def test_the_runs_end_closes_for_good(world: World) -> None:
    run_id = await run_with_calls(world, ev(E.STEP_CREATED, 0, name="s"), claim_calls=[0])
    await world.append_chunks([_batch(run_id, 1, (0, 1), close=True)])
    rec = await world.get_run(run_id)
    assert rec is not None
    end = NewEvent(E.RUN_COMPLETED, None, {})
    assert (await write(world, run_id, expected_seq=rec.last_seq, commands=[end])).ok
    assert await _info(world, run_id) == (1, True, None, 0)
    with pytest.raises(ValueError, match="is closed"):
        await world.append_chunks([_batch(run_id, 1, (0, 2), close=True)])


async def test_a_committed_reader_reads_past_a_close_the_retry_reopens(world: World) -> None:
    run_id = await run_with_calls(world, ev(E.STEP_CREATED, 0, name="s"), claim_calls=[0])
    await world.append_chunks([_batch(run_id, 2, (0, 1), close=True)])
    # A live reader ends at the close (it may be an attempt's that will not complete).
    assert [(i, a) for i, _, a in await _read(world, run_id)] == [(0, 1), (1, 1)]
    # A committed reader waits: attempt 1 is undecided, and so is its close.
    assert await _read(world, run_id, committed=True, follow=False) == []
    reader = asyncio.ensure_future(_read(world, run_id, committed=True))
    await asyncio.sleep(0.2)
    assert not reader.done()

    retrying = ev(E.STEP_RETRYING, 0, attempt=1, retry_at=0.0)
    assert (await write(world, run_id, facts=[retrying])).ok
    await asyncio.sleep(0.2)
    assert not reader.done()  # attempt 1's close is not final: its retry may reopen it
    await world.append_chunks([_batch(run_id, 3, (0, 2), close=True)])
    await asyncio.sleep(0.2)
    assert not reader.done()  # attempt 2 has not completed
    assert (await write(world, run_id, facts=[ev(E.STEP_COMPLETED, 0, attempt=2)])).ok
    assert await asyncio.wait_for(reader, 10) == [(2, b"k0", 2), (3, b"k1", 2), (4, b"k2", 2)]


async def test_a_close_is_final_once_the_closing_step_ended(world: World) -> None:
    run_id = await run_with_calls(world, ev(E.STEP_CREATED, 0, name="s"), claim_calls=[0])
    await world.append_chunks([_batch(run_id, 2, (0, 1), close=True)])
    reader = asyncio.ensure_future(_read(world, run_id, committed=True))
    await asyncio.sleep(0.2)
    assert not reader.done()
    assert (await write(world, run_id, facts=[ev(E.STEP_COMPLETED, 0, attempt=1)])).ok
    assert await asyncio.wait_for(reader, 10) == [(0, b"k0", 1), (1, b"k1", 1)]
