"""What only the SQLite world promises: a file that outlives the process and is shared by
several worlds, threads and processes; URLs; schema migrations."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from durably.errors import WorldError
from durably.events import EventType as E
from durably.events import NewEvent
from durably.worlds import open_world
from durably.worlds.base import Commit, RunFilter, RunMeta, RunWrite
from durably.worlds.sqlite import SqliteWorld, parse_sqlite_url
from durably.worlds.sqlite.schema import load_migrations

NS = "ns"
DEP = "dep"
PROMPT = 5.0

#: Run in a child process: open the world at argv[1] and do argv[2] to run argv[3].
CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from durably.events import EventType, NewEvent
    from durably.worlds.base import Commit, RunMeta, RunWrite
    from durably.worlds.sqlite import SqliteWorld

    async def main(url, action, run_id, n):
        world = SqliteWorld(url)
        await world.open()
        try:
            if action == "create":
                meta = RunMeta("wf", "ns", "dep")
                created = NewEvent(EventType.RUN_CREATED)
                await world.commit(Commit([RunWrite(run_id, create=meta, facts=[created])]))
            elif action == "facts":
                for i in range(n):
                    fact = NewEvent(EventType.DATA_DECRYPTED, None, {"i": i, "pid": action})
                    await world.commit(Commit([RunWrite(run_id, facts=[fact])]))
        finally:
            await world.close()

    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
    """
)


def url_for(path: Path, query: str = "") -> str:
    return f"sqlite:///{path}" + (f"?{query}" if query else "")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "w.db"


@pytest.fixture
async def world(db: Path) -> AsyncIterator[SqliteWorld]:
    w = SqliteWorld(url_for(db))
    await w.open()
    try:
        yield w
    finally:
        await w.close()


async def create(world: SqliteWorld, run_id: str) -> None:
    res = await world.commit(
        Commit([RunWrite(run_id, create=RunMeta("wf", NS, DEP), facts=[NewEvent(E.RUN_CREATED)])])
    )
    assert res.results[0].created


async def run_child(db: Path, action: str, run_id: str, n: int = 0) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, url_for(db), action, run_id, str(n)
    )


# -- URLs ------------------------------------------------------------------------------


def test_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rel = parse_sqlite_url("sqlite:///data/app.db")
    assert rel.path == str(tmp_path / "data" / "app.db")
    assert (rel.synchronous, rel.busy_timeout_ms) == ("normal", 5000)
    absolute = parse_sqlite_url(
        "sqlite:////var/app/durably.db?synchronous=FULL&busy_timeout_ms=250"
    )
    assert absolute.path == "/var/app/durably.db"
    assert (absolute.synchronous, absolute.busy_timeout_ms) == ("full", 250)
    assert parse_sqlite_url("sqlite:///x.db?synchronous=off").synchronous == "off"


async def test_relative_path_and_parent_folders_are_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    world = open_world("sqlite:///.durably/deep/er/durably.db?synchronous=full")
    assert isinstance(world, SqliteWorld)
    await world.open()
    try:
        await create(world, "r")
    finally:
        await world.close()
    assert (tmp_path / ".durably" / "deep" / "er" / "durably.db").is_file()


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("sqlite://host/x.db", "three slashes"),
        ("sqlite:///", "names no database file"),
        ("sqlite:///some/dir/", "names no database file"),
        ("sqlite:///x.db?synchronous=maybe", "full, normal, off"),
        ("sqlite:///x.db?busy_timeout_ms=soon", "whole number"),
        ("sqlite:///x.db?busy_timeout_ms=-5", "whole number"),
        ("sqlite:///x.db?journal=delete", "unknown parameter 'journal'"),
        ("sqlite:///:memory:", "memory://"),
        ("postgres:///x.db", "not a sqlite world URL"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, hint: str) -> None:
    with pytest.raises(WorldError) as info:
        SqliteWorld(url)
    assert hint in str(info.value)
    assert repr(url) in str(info.value) or "memory://" in str(info.value)


async def test_a_path_that_cannot_be_created_is_a_world_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    world = SqliteWorld(url_for(tmp_path / "file" / "w.db"))
    with pytest.raises(WorldError, match="file"):
        await world.open()
    await world.close()


# -- schema ----------------------------------------------------------------------------


async def test_migrations_are_applied_once_and_reopening_is_a_no_op(db: Path) -> None:
    latest = load_migrations()[-1].version
    for _ in range(2):
        world = SqliteWorld(url_for(db))
        await world.open()
        await world.open()  # idempotent too
        await create(world, f"r{_}")
        await world.close()
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == latest
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"runs", "events", "steps", "tasks"} <= tables
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 2
    finally:
        conn.close()


def test_migration_files_split_into_statements() -> None:
    [first, *_] = load_migrations()
    statements = first.statements()
    assert any(s.startswith("CREATE TABLE runs") for s in statements)
    assert all(s.endswith(";") for s in statements)


async def test_a_database_from_a_newer_durably_is_refused(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    world = SqliteWorld(url_for(db))
    with pytest.raises(WorldError, match="upgrade durably"):
        await world.open()
    await world.close()


async def test_processes_opening_a_new_database_at_once_all_succeed(db: Path) -> None:
    procs = [await run_child(db, "create", f"r{i}") for i in range(4)]
    codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), 60)
    assert codes == [0, 0, 0, 0]
    world = SqliteWorld(url_for(db))
    try:
        runs = await world.list_runs(RunFilter())
        assert sorted(r.run_id for r in runs) == ["r0", "r1", "r2", "r3"]
    finally:
        await world.close()


# -- lifecycle -------------------------------------------------------------------------


async def test_data_survives_close_and_reopen(db: Path) -> None:
    world = SqliteWorld(url_for(db))
    await world.open()
    await create(world, "r")
    await world.commit(
        Commit(
            [
                RunWrite(
                    "r",
                    facts=[NewEvent(E.RUN_STARTED)],
                    expected_seq=1,
                    commands=[NewEvent(E.STEP_CREATED, 0, {"name": "s"}, b"args")],
                )
            ],
            owner="a",
        )
    )
    await world.close()
    await world.close()  # idempotent

    again = SqliteWorld(url_for(db))
    await again.open()
    try:
        rec = await again.get_run("r")
        assert rec is not None and (rec.status, rec.last_seq) == ("running", 3)
        assert [e.type for e in await again.read_events("r")] == [
            E.RUN_CREATED,
            E.RUN_STARTED,
            E.STEP_CREATED,
        ]
        assert (await again.read_command("r", 0)).payload == b"args"  # type: ignore[union-attr]
        claim = await again.claim(
            owner="b", namespace=NS, deployment=DEP, max_runs=5, max_tasks=5, lease_seconds=30
        )
        assert [(t.run_id, t.call, t.attempt) for t in claim.tasks] == [("r", 0, 1)]
    finally:
        await again.close()


async def test_a_closed_world_refuses_work_until_reopened(world: SqliteWorld) -> None:
    await create(world, "r")
    await world.close()
    with pytest.raises(WorldError, match="closed"):
        await world.get_run("r")
    with pytest.raises(WorldError, match="closed"):
        await create(world, "r2")
    await world.open()
    assert (await world.get_run("r")) is not None


async def test_a_commit_that_cannot_be_stored_is_rolled_back(world: SqliteWorld) -> None:
    await create(world, "r")
    bad = Commit(
        [
            RunWrite("r", facts=[NewEvent(E.RUN_STARTED)]),
            RunWrite("r", facts=[NewEvent(E.DATA_DECRYPTED, None, {"x": object()})]),
        ]
    )
    with pytest.raises(TypeError):
        await world.commit(bad)
    rec = await world.get_run("r")
    assert rec is not None and (rec.status, rec.last_seq) == ("pending", 1)
    assert len(await world.read_events("r")) == 1


# -- sharing one file ------------------------------------------------------------------


async def test_two_worlds_on_one_file_see_and_wake_each_other(world: SqliteWorld, db: Path) -> None:
    other = SqliteWorld(url_for(db))
    await other.open()
    try:
        await create(world, "r")
        assert (await other.get_run("r")) is not None

        async def later() -> None:
            await asyncio.sleep(0.05)
            await other.commit(Commit([RunWrite("r", facts=[NewEvent(E.RUN_STARTED)])]))

        task = asyncio.create_task(later())
        t0 = time.monotonic()
        await world.wait_for_run("r", after_seq=1, timeout=30)
        assert time.monotonic() - t0 < PROMPT
        await task
        assert (await world.get_run("r")).status == "running"  # type: ignore[union-attr]

        task = asyncio.create_task(create(other, "r2"))
        t0 = time.monotonic()
        await world.wait_for_work(namespace=NS, timeout=30)
        assert time.monotonic() - t0 < PROMPT
        await task
    finally:
        await other.close()


async def test_a_commit_from_another_process_wakes_wait_for_run(
    world: SqliteWorld, db: Path
) -> None:
    await create(world, "r")
    proc = await run_child(db, "facts", "r", 1)
    t0 = time.monotonic()
    await world.wait_for_run("r", after_seq=1, timeout=60)
    waited = time.monotonic() - t0
    assert await asyncio.wait_for(proc.wait(), 60) == 0
    assert waited < 30  # the child's import takes a moment; the timeout is 60 s
    events = await world.read_events("r", after_seq=1)
    assert [e.type for e in events] == [E.DATA_DECRYPTED]


async def test_work_from_another_process_wakes_wait_for_work(world: SqliteWorld, db: Path) -> None:
    proc = await run_child(db, "create", "r")
    t0 = time.monotonic()
    await world.wait_for_work(namespace=NS, timeout=60)
    waited = time.monotonic() - t0
    assert await asyncio.wait_for(proc.wait(), 60) == 0
    assert waited < 30
    claim = await world.claim(
        owner="a", namespace=NS, deployment=DEP, max_runs=5, max_tasks=0, lease_seconds=30
    )
    assert claim.runs == ["r"]


async def test_processes_appending_to_one_run_at_once_keep_the_log_dense(
    world: SqliteWorld, db: Path
) -> None:
    await create(world, "r")
    procs = [await run_child(db, "facts", "r", 150) for _ in range(3)]
    # Meanwhile this process writes too.
    for i in range(150):
        fact = NewEvent(E.DATA_DECRYPTED, None, {"i": i})
        await world.commit(Commit([RunWrite("r", facts=[fact])]))
    codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), 120)
    assert codes == [0, 0, 0]
    events = await world.read_events("r")
    assert [e.seq for e in events] == list(range(1, 602))
    assert (await world.get_run("r")).last_seq == 601  # type: ignore[union-attr]
