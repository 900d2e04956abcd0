"""A Postgres schema from before chunks recorded their attempt (version 1) keeps
working: migrations 002 and 003 add the columns, its chunks read as written by no known
attempt (call None, attempt 0), which committed readers yield, and its closed streams as
closed by no attempt (for good)."""

from __future__ import annotations

import asyncpg

from durably.events import EventType as E
from durably.events import NewEvent
from durably.streams import read_stream
from durably.worlds.base import ChunkBatch, Commit, RunMeta, RunWrite
from durably.worlds.postgres import PostgresWorld, parse_postgres_url

from . import support as pg


async def test_chunks_of_a_version_1_schema_read_as_committed(pg_url: str) -> None:
    world = PostgresWorld(pg_url)
    await world.open()
    meta = RunMeta("wf", "ns", "dep")
    await world.commit(Commit([RunWrite("r", create=meta, facts=[NewEvent(E.RUN_CREATED)])]))
    await world.append_chunks([ChunkBatch("r", "", [b"a", b"b"], close=True)])
    await world.close()

    # Make it the schema an older durably left: no attempt columns, version 1.
    schema = parse_postgres_url(pg_url).schema
    conn = await asyncpg.connect(pg.PG_URL)
    try:
        await conn.execute(f'ALTER TABLE "{schema}".chunks DROP COLUMN call, DROP COLUMN attempt')
        await conn.execute(
            f'ALTER TABLE "{schema}".streams DROP COLUMN closer_call, DROP COLUMN closer_attempt'
        )
        await conn.execute(f'DELETE FROM "{schema}".schema_migrations WHERE version > 1')
    finally:
        await conn.close()
    PostgresWorld._migrated.clear()

    world = PostgresWorld(pg_url)
    await world.open()
    try:
        chunks, done = await world.read_chunks("r", "")
        assert [(c.payload, c.call, c.attempt) for c in chunks] == [
            (b"a", None, 0),
            (b"b", None, 0),
        ]
        assert done
        committed = [c async for c in read_stream(world, "r", committed=True)]
        assert [(c.index, c.committed) for c in committed] == [(0, True), (1, True)]
        # Its closed stream reads as closed by nobody's attempt: for good.
        [info] = await world.stream_info("r")
        assert (info.closed, info.closer_call, info.closer_attempt) == (True, None, 0)
    finally:
        await world.close()
