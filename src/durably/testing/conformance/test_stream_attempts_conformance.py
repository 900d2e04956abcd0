"""Conformance, streams: each chunk keeps the step attempt that wrote it, and a
committed reader (``durably.streams.read_stream``) keeps to attempts whose completion
the world recorded, on every world (the killed attempt is a lease that expired)."""

from __future__ import annotations

import asyncio

import pytest

from durably import streams
from durably.events import EventType as E
from durably.streams import read_stream, resolve_start
from durably.worlds import World
from durably.worlds.base import ChunkBatch

from .test_conformance import (
    PAST_LEASE,
    SHORT_LEASE,
    A,
    B,
    claim,
    ev,
    pytestmark,  # noqa: F401  (strict asyncio mode)
    run_with_calls,
    write,
)


async def _read(world: World, run_id: str, **kw: object) -> list[tuple[int, bytes, int]]:
    return [(c.index, c.payload, c.attempt) async for c in read_stream(world, run_id, **kw)]  # type: ignore[arg-type]


async def test_chunks_keep_the_attempt_that_wrote_them(world: World) -> None:
    run_id = await run_with_calls(world, ev(E.STEP_CREATED, 0, name="s"))
    await world.append_chunks([ChunkBatch(run_id, "", [b"a", b"b"], writers=[(0, 1), (0, 2)])])
    await world.append_chunks([ChunkBatch(run_id, "", [b"c"])])  # no writer given
    chunks, done = await world.read_chunks(run_id, "")
    assert [(c.index, c.payload, c.call, c.attempt) for c in chunks] == [
        (0, b"a", 0, 1),
        (1, b"b", 0, 2),
        (2, b"c", None, 0),
    ]
    assert not done and all(c.committed is None for c in chunks)
    [(rid, ns, scanned)] = (await world.scan_chunk_payloads(after=None, limit=10))[:1]
    assert (rid, ns, scanned.call, scanned.attempt) == (run_id, "", 0, 1)


async def test_a_committed_reader_skips_a_killed_attempt(world: World) -> None:
    run_id = await run_with_calls(world, ev(E.STEP_CREATED, 0, name="s"))
    # Attempt 1 writes two chunks, and its worker dies: its lease expires.
    got = await claim(world, A, runs=0, lease_seconds=SHORT_LEASE)
    assert [(t.call, t.attempt) for t in got.tasks] == [(0, 1)]
    await world.append_chunks([ChunkBatch(run_id, "", [b"k0", b"k1"], writers=[(0, 1)] * 2)])
    assert await _read(world, run_id, committed=True, follow=False) == []  # undecided

    await asyncio.sleep(PAST_LEASE)
    got = await claim(world, B, runs=0)
    assert [(t.call, t.attempt) for t in got.tasks] == [(0, 2)]
    await world.append_chunks([ChunkBatch(run_id, "", [b"k0", b"k1", b"k2"], writers=[(0, 2)] * 3)])
    # A committed reader waiting now yields once attempt 2's completion is recorded.
    reader = asyncio.ensure_future(_read(world, run_id, committed=True))
    await asyncio.sleep(0.2)
    assert not reader.done()
    facts = [ev(E.STEP_COMPLETED, 0, attempt=2)]
    assert (await write(world, run_id, facts=facts, owner=B)).ok
    await world.append_chunks([ChunkBatch(run_id, "", [], close=True)])
    assert await asyncio.wait_for(reader, 10) == [(2, b"k0", 2), (3, b"k1", 2), (4, b"k2", 2)]
    live = await _read(world, run_id)
    assert [(i, a) for i, _, a in live] == [(0, 1), (1, 1), (2, 2), (3, 2), (4, 2)]


async def test_a_committed_reader_skips_retried_and_failed_attempts(world: World) -> None:
    run_id = await run_with_calls(
        world, ev(E.STEP_CREATED, 0, name="s"), ev(E.STEP_CREATED, 1, name="t"), claim_calls=[0, 1]
    )
    await world.append_chunks(
        [ChunkBatch(run_id, "", [b"r1", b"f1", b"body"], writers=[(0, 1), (1, 1)])]
    )
    retrying = ev(E.STEP_RETRYING, 0, attempt=1, retry_at=0.0)
    assert (await write(world, run_id, facts=[retrying])).ok
    failed = ev(E.STEP_FAILED, 1, attempt=1, error_type="Boom")
    assert (await write(world, run_id, facts=[failed])).ok
    # Decided without waiting: neither attempt will ever commit; the chunk without a
    # writer (one stored before attempts were recorded) counts as committed.
    assert await _read(world, run_id, committed=True, follow=False) == [(2, b"body", 0)]


async def test_a_negative_start_index_counts_from_the_end(world: World) -> None:
    run_id = await run_with_calls(world)
    assert await resolve_start(world, run_id, "", -1) == 0  # no stream yet
    await world.append_chunks([ChunkBatch(run_id, "", [bytes([i]) for i in range(10)])])
    assert await resolve_start(world, run_id, "", -3) == 7
    assert await resolve_start(world, run_id, "", -10) == 0
    assert await resolve_start(world, run_id, "", -11) == 0
    assert await resolve_start(world, run_id, "other", -1) == 0
    assert await resolve_start(world, run_id, "", 4) == 4
    assert [i for i, _, _ in await _read(world, run_id, start_index=-2, follow=False)] == [8, 9]


async def test_a_committed_reader_holding_its_fill_still_reads_on(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streams, "MAX_HELD", 2)
    run_id = await run_with_calls(world, ev(E.STEP_CREATED, 0, name="s"), claim_calls=[0])
    payloads = [bytes([i]) for i in range(5)]
    await world.append_chunks([ChunkBatch(run_id, "", payloads, writers=[(0, 1)] * 5)])
    reader = asyncio.ensure_future(_read(world, run_id, committed=True))
    await asyncio.sleep(0.1)
    assert not reader.done()
    assert (await write(world, run_id, facts=[ev(E.STEP_COMPLETED, 0, attempt=1)])).ok
    await world.append_chunks([ChunkBatch(run_id, "", [], close=True)])
    assert [i for i, _, _ in await asyncio.wait_for(reader, 10)] == [0, 1, 2, 3, 4]
