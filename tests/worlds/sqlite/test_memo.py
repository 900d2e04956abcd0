"""The writer's memo of the rows it committed last (durably.worlds.sqlite.memo): a commit
starts from them only while nobody else has written, and never from rows a failed
transaction changed."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from durably.events import EventType as E
from durably.events import NewEvent
from durably.worlds.base import Commit, RunMeta, RunWrite
from durably.worlds.sqlite import SqliteWorld

NS = "ns"
DEP = "dep"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[SqliteWorld]:
    w = SqliteWorld(f"sqlite:///{tmp_path / 'w.db'}")
    await w.open()
    try:
        yield w
    finally:
        await w.close()


async def create(world: SqliteWorld, run_id: str) -> None:
    meta = RunMeta("wf", NS, DEP)
    res = await world.commit(
        Commit([RunWrite(run_id, create=meta, facts=[NewEvent(E.RUN_CREATED)])])
    )
    assert res.results[0].created


def fact(i: int) -> NewEvent:
    return NewEvent(E.DATA_DECRYPTED, None, {"i": i})


async def append(world: SqliteWorld, run_id: str, i: int) -> int:
    res = await world.commit(Commit([RunWrite(run_id, facts=[fact(i)])]))
    assert res.results[0].ok
    return res.results[0].own_seq


async def test_the_memo_holds_the_rows_of_the_last_commit(world: SqliteWorld) -> None:
    await create(world, "r")
    await append(world, "r", 0)
    assert "r" in world.db.rows.runs
    assert world.db.rows.runs["r"][0].record.last_seq == 2


async def test_two_worlds_on_one_file_take_turns_on_one_run(world: SqliteWorld) -> None:
    other = SqliteWorld(world.url)
    await other.open()
    try:
        await create(world, "r")
        seqs = []
        for i in range(6):
            seqs.append(await append(world if i % 2 == 0 else other, "r", i))
        assert seqs == list(range(2, 8))
        events = await world.read_events("r")
        assert [e.seq for e in events] == list(range(1, 8))
        assert [e.data.get("i") for e in events[1:]] == list(range(6))
    finally:
        await other.close()


async def test_a_row_changed_by_another_connection_is_read_again(world: SqliteWorld) -> None:
    await create(world, "r")
    await append(world, "r", 0)
    # Another writer (any process) leases the run: the memo's row is stale.
    conn = sqlite3.connect(world.config.path, isolation_level=None)
    try:
        conn.execute("UPDATE runs SET lease_owner = 'a', lease_until = 1e12 WHERE run_id = 'r'")
    finally:
        conn.close()
    cmd = NewEvent(E.STEP_CREATED, 1, {"name": "s"})
    res = await world.commit(Commit([RunWrite("r", expected_seq=2, commands=[cmd])], owner="b"))
    assert not res.results[0].ok  # "a" holds the lease
    rec = await world.get_run("r")
    assert rec is not None and rec.last_seq == 2


async def test_a_claim_by_this_world_is_not_hidden_by_the_memo(world: SqliteWorld) -> None:
    await create(world, "r")
    claim = await world.claim(
        owner="a", namespace=NS, deployment=DEP, max_runs=1, max_tasks=0, lease_seconds=60
    )
    assert claim.runs == ["r"]
    cmd = NewEvent(E.STEP_CREATED, 1, {"name": "s"})
    res = await world.commit(Commit([RunWrite("r", expected_seq=1, commands=[cmd])], owner="b"))
    assert not res.results[0].ok
    res = await world.commit(Commit([RunWrite("r", expected_seq=1, commands=[cmd])], owner="a"))
    assert res.results[0].ok


async def test_a_failed_commit_leaves_no_changed_row_behind(world: SqliteWorld) -> None:
    await create(world, "r")
    bad = Commit(
        [
            RunWrite("r", facts=[NewEvent(E.RUN_STARTED)]),
            RunWrite("r", facts=[NewEvent(E.DATA_DECRYPTED, None, {"x": object()})]),
        ]
    )
    with pytest.raises(TypeError):
        await world.commit(bad)
    assert await append(world, "r", 0) == 2
    rec = await world.get_run("r")
    assert rec is not None and (rec.status, rec.last_seq) == ("pending", 2)
    assert [e.seq for e in await world.read_events("r")] == [1, 2]


async def test_only_changed_columns_are_written(world: SqliteWorld) -> None:
    await create(world, "r")
    await world.commit(Commit([RunWrite("r", facts=[NewEvent(E.RUN_STARTED)])]))
    seen: list[str] = []
    writer, _ = world.db.live()
    writer.set_trace_callback(seen.append)
    try:
        await append(world, "r", 0)
    finally:
        writer.set_trace_callback(None)
    updates = [s for s in seen if s.startswith("UPDATE runs")]
    assert updates == ["UPDATE runs SET last_seq = 3 WHERE run_id = 'r'"]
    assert not [s for s in seen if s.startswith("SELECT")]
