"""A SQLite database from before chunks recorded their attempt (schema version 3) keeps
working: migrations 004 and 005 add the columns, its chunks read as written by no known
attempt (call None, attempt 0), which committed readers yield, and its closed streams as
closed by no attempt (for good)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from durably.events import EventType as E
from durably.events import NewEvent
from durably.streams import read_stream
from durably.worlds.base import ChunkBatch, Commit, RunMeta, RunWrite
from durably.worlds.sqlite import SqliteWorld
from durably.worlds.sqlite.schema import load_migrations


async def test_chunks_of_a_version_3_database_read_as_committed(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    url = f"sqlite:///{db}"
    world = SqliteWorld(url)
    await world.open()
    meta = RunMeta("wf", "ns", "dep")
    await world.commit(Commit([RunWrite("r", create=meta, facts=[NewEvent(E.RUN_CREATED)])]))
    await world.append_chunks([ChunkBatch("r", "", [b"a", b"b"], close=True)])
    await world.close()

    # Make it the database an older durably left: no attempt columns, version 3.
    conn = sqlite3.connect(db)
    conn.execute("ALTER TABLE chunks DROP COLUMN call")
    conn.execute("ALTER TABLE chunks DROP COLUMN attempt")
    conn.execute("ALTER TABLE streams DROP COLUMN closer_call")  # (and no stream closers)
    conn.execute("ALTER TABLE streams DROP COLUMN closer_attempt")
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()

    world = SqliteWorld(url)
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
    conn = sqlite3.connect(db)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        assert version == load_migrations()[-1].version
    finally:
        conn.close()
