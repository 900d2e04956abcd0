"""What the Postgres world does beyond the conformance suite: URLs, migrations, errors
that say what to check, commits whose connection drops, and an idle worker that leaves
the database alone."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from durably import Workflows, start
from durably.errors import WorldError
from durably.events import EventType as E
from durably.events import NewEvent
from durably.worlds import open_world
from durably.worlds.base import Commit, RunMeta, RunWrite
from durably.worlds.postgres import PostgresWorld, parse_postgres_url
from durably.worlds.postgres import world as pg_world
from durably.worlds.postgres.hub import Hub
from durably.worlds.postgres.schema import latest_version

from . import support as pg


def test_url_parameters_and_redaction() -> None:
    cfg = parse_postgres_url(
        "postgres://app:s3cret@db:5433/app?schema=jobs&pool_size=4&sslmode=disable"
    )
    assert (cfg.schema, cfg.pool_size) == ("jobs", 4)
    assert cfg.dsn == "postgresql://app:s3cret@db:5433/app?sslmode=disable"
    assert "s3cret" not in cfg.display and cfg.display.startswith("postgres://app:***@db:5433/app")
    assert parse_postgres_url("postgresql://db/app").schema == "durably"
    for bad, says in [
        ("postgresql://db/app?schema=", "schema"),
        ("postgresql://db/app?pool_size=zero", "pool_size"),
        ("postgresql://db:99999/app", "malformed"),
        ("postgresql://", "names no host"),
    ]:
        with pytest.raises(WorldError, match=says):
            parse_postgres_url(bad)


def test_both_schemes_open_the_postgres_world() -> None:
    for url in ("postgresql://h/db", "postgres://h/db"):
        assert isinstance(open_world(url), PostgresWorld)


async def test_an_unreachable_server_is_a_clear_error() -> None:
    world = open_world(f"postgresql://app:hunter2@127.0.0.1:{pg.free_port()}/app")
    with pytest.raises(WorldError) as info:
        await world.open()
    text = str(info.value)
    assert "postgresql://app:***@127.0.0.1" in text and "hunter2" not in text
    assert "check that PostgreSQL is running" in text


async def test_migrations_are_applied_once_by_concurrent_starters(pg_url: str) -> None:
    worlds = [PostgresWorld(pg_url) for _ in range(5)]
    versions = await asyncio.gather(*[w.migrate() for w in worlds])
    assert versions == [latest_version()] * 5
    schema = parse_postgres_url(pg_url).schema
    conn = await asyncpg.connect(pg.PG_URL)
    try:
        rows = await conn.fetch(f'SELECT version FROM "{schema}".schema_migrations')
        assert [r[0] for r in rows] == list(range(1, latest_version() + 1))
        # A schema written by a newer durably is refused, not misread.
        await conn.execute(f"INSERT INTO \"{schema}\".schema_migrations VALUES (999, 'x')")
    finally:
        await conn.close()
    PostgresWorld._migrated.clear()
    with pytest.raises(WorldError, match="newer than this durably knows"):
        await PostgresWorld(pg_url).open()


async def test_schemas_isolate_worlds_on_one_database(pg_url: str) -> None:
    other = pg.fresh_url()
    a, b = PostgresWorld(pg_url), PostgresWorld(other)
    try:
        await a.commit(Commit([RunWrite("r", create=RunMeta("wf", "ns", "d"), facts=[_ev()])]))
        assert await a.get_run("r") is not None
        assert await b.get_run("r") is None
    finally:
        await a.close()
        await b.close()
        pg.drop_schema(other)


def _ev(t: E = E.RUN_CREATED) -> NewEvent:
    return NewEvent(t, None, {})


@pytest.mark.parametrize("lands", [True, False])
async def test_a_commit_whose_connection_drops_is_settled_without_duplicates(
    pg_url: str, monkeypatch: pytest.MonkeyPatch, lands: bool
) -> None:
    world = PostgresWorld(pg_url)
    await world.open()
    try:
        await world.commit(Commit([RunWrite("r", create=RunMeta("wf", "ns", "d"), facts=[_ev()])]))
        real = world._commit_once
        calls = 0

        async def flaky(*args: Any) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                if lands:
                    await real(*args)  # written, but the answer is lost
                else:
                    args[4].sent = True  # sent, never written
                raise asyncpg.ConnectionDoesNotExistError("connection was closed")
            await real(*args)

        monkeypatch.setattr(world, "_commit_once", flaky)
        res = await world.commit(Commit([RunWrite("r", facts=[_ev(E.RUN_STARTED)])]))
        assert res.results[0].ok and res.results[0].last_seq == 2
        assert calls == (1 if lands else 2)
        assert [e.type for e in await world.read_events("r")] == [E.RUN_CREATED, E.RUN_STARTED]
    finally:
        await world.close()


async def test_a_fresh_run_is_created_in_one_round_trip_and_an_existing_id_is_refused(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = PostgresWorld(pg_url)
    await world.open()
    other = PostgresWorld(pg_url)
    await other.open()
    try:
        statements: list[str] = []
        real_fetch = asyncpg.Connection.fetch

        async def counted(conn: asyncpg.Connection, sql: str, *args: Any, **kw: Any) -> Any:
            statements.append(sql)
            return await real_fetch(conn, sql, *args, **kw)

        monkeypatch.setattr(asyncpg.Connection, "fetch", counted)
        # A run created under an id of its own (no key, no parent) has no row to read.
        res = await world.commit(
            Commit([RunWrite("r", create=RunMeta("wf", "ns", "d"), facts=[_ev()])])
        )
        assert res.results[0].ok and res.results[0].created
        assert len(statements) == 1, [x[:60] for x in statements]
        # Were the id taken after all (here by another process), the write meets the
        # row, and the commit is tried again reading it: refused, nothing written.
        res = await other.commit(
            Commit([RunWrite("r", create=RunMeta("wf", "ns", "d"), facts=[_ev()])])
        )
        assert not res.results[0].created and res.results[0].last_seq == 1
        assert [e.type for e in await world.read_events("r")] == [E.RUN_CREATED]
    finally:
        await other.close()
        await world.close()


async def test_commits_share_the_committer_connection_and_the_pool(pg_url: str) -> None:
    world = PostgresWorld(pg_url)
    await world.open()
    try:
        # Concurrent commits: one holds the committer connection, the others take
        # pooled ones; all land.
        writes = [
            RunWrite(f"r{i}", create=RunMeta("wf", "ns", "d"), facts=[_ev()]) for i in range(8)
        ]
        results = await asyncio.gather(*[world.commit(Commit([w])) for w in writes])
        assert all(r.results[0].ok for r in results)
        committer = world.db._committers[asyncio.get_running_loop()]
        first = committer.conn
        assert first is not None and not committer.busy
        # A committer connection that dropped is replaced by the next commit.
        first.terminate()
        res = await world.commit(Commit([RunWrite("r0", facts=[_ev(E.RUN_STARTED)])]))
        assert res.results[0].ok and committer.conn is not None and committer.conn is not first
    finally:
        await world.close()
    assert committer.closed and committer.conn is None
    # Reopened, the world commits on a new committer.
    await world.open()
    try:
        res = await world.commit(Commit([RunWrite("r1", facts=[_ev(E.RUN_STARTED)])]))
        assert res.results[0].ok
    finally:
        await world.close()


async def test_a_commit_the_server_leaves_waiting_loses_its_connection_and_lands_later(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The committer connection has no per-statement timeout (a timer per commit); its
    # watch drops the connection of a commit that waits too long, as the timeout did.
    from durably.worlds.postgres import connections

    monkeypatch.setattr(connections, "COMMIT_TIMEOUT", 0.3)
    monkeypatch.setattr(connections, "WATCH_EVERY", 0.05)
    world = PostgresWorld(pg_url)
    await world.open()
    blocker = await asyncpg.connect(pg_url.split("?")[0])
    try:
        res = await world.commit(
            Commit([RunWrite("r", create=RunMeta("wf", "ns", "d"), facts=[_ev()])])
        )
        assert res.results[0].ok
        committer = world.db._committers[asyncio.get_running_loop()]
        first = committer.conn
        assert first is not None and committer.watch is not None
        # Another session holds the run's row: the next commit waits on the server.
        lock = blocker.transaction()
        await lock.start()
        schema = world.db.config.quoted_schema
        await blocker.execute(f"SELECT 1 FROM {schema}.runs WHERE run_id = 'r' FOR UPDATE")
        pending = asyncio.ensure_future(
            world.commit(Commit([RunWrite("r", facts=[_ev(E.RUN_STARTED)])]))
        )
        deadline = time.monotonic() + 20
        while not first.is_closed() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert first.is_closed(), "the watch did not drop the connection of a stuck commit"
        assert not pending.done()  # it waits for the server again, on a new connection
        await lock.rollback()
        res = await asyncio.wait_for(pending, 20)
        assert res.results[0].ok
        types = [e.type for e in await world.read_events("r")]
        assert types == [E.RUN_CREATED, E.RUN_STARTED]  # once, not twice
    finally:
        await blocker.close()
        await world.close()
    assert committer.watch is None


async def test_an_idle_worker_leaves_the_database_alone(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pg_world.PostgresWorld, "_touched", {})
    wf = Workflows(world=pg_url)

    @wf.step
    async def hello() -> str:
        return "hi"

    @wf.workflow
    async def greet() -> str:
        return await hello()

    async with wf:
        run = await start(greet)
        assert await run.return_value(timeout=30) == "hi"
        world = wf.worker.world if wf.worker else None  # type: ignore[union-attr]
        inner: Any = getattr(world, "inner", world)
        statements: list[str] = []
        real: Callable[..., Any] = inner.db.fetch

        async def counted(what: str, sql: str, *args: Any) -> Any:
            statements.append(what)
            return await real(what, sql, *args)

        monkeypatch.setattr(inner.db, "fetch", counted)
        await asyncio.sleep(6)
    # Two statements (a claim and next_due) per 5 s fallback, not one per poll.
    assert len(statements) <= 4, statements


async def test_a_timer_fires_within_a_second_of_its_due_time(pg_url: str) -> None:
    wf = Workflows(world=pg_url)

    @wf.workflow
    async def nap() -> float:
        import durably

        await durably.sleep(1.5)
        return durably.now().timestamp()

    async with wf:
        t0 = time.time()
        run = await start(nap)
        woke = await run.return_value(timeout=30)
        done = time.time()
    assert done - t0 < 1.5 + 1.0
    assert woke >= t0 + 1.5 - 0.01


async def test_a_cancelled_aclose_still_stops_the_listener(pg_url: str) -> None:
    schema = parse_postgres_url(pg_url).schema
    name = f"durably-listen-{schema}"

    def listeners() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == name and t.is_alive()]

    wf = Workflows(world=pg_url)
    entered = asyncio.Event()

    @wf.step
    async def slow() -> None:
        entered.set()
        await asyncio.sleep(3600)  # aclose() waits for it, and is cancelled meanwhile

    @wf.workflow
    async def job() -> None:
        await slow()

    run = await start(job)
    await asyncio.wait_for(entered.wait(), 30)
    await run.status()
    for _ in range(200):  # the idle worker's wait for work starts the listener
        if listeners():
            break
        await asyncio.sleep(0.05)
    assert listeners()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(wf.aclose(), 0.05)
    # Nothing of the registry outlives it: no listener (which would log reconnection
    # attempts forever once the database is gone), no hub holding the schema.
    assert not listeners()
    assert not [k for k in Hub._hubs if k[1] == schema]
    assert wf.worker is None


async def test_a_run_nobody_follows_is_notified_at_its_end_only(pg_url: str) -> None:
    """A commit NOTIFYs a run's channel for a step only while some process holds the
    run's watch lock (follows its steps); its end is always notified."""
    world = PostgresWorld(pg_url)
    await world.open()
    other = await asyncpg.connect(pg.PG_URL)  # another process's listener
    got: list[str] = []
    try:
        await world.commit(Commit([RunWrite("r", create=RunMeta("wf", "ns", "d"), facts=[_ev()])]))
        hub = await world._live()
        await other.add_listener(hub.run_channel("r"), lambda *a: got.append(a[3]))

        async def step(t: E) -> None:
            await world.commit(Commit([RunWrite("r", facts=[_ev(t)])]))
            await other.execute("SELECT 1")  # notifications are delivered by now

        await step(E.RUN_STARTED)
        assert got == []  # nobody follows: no NOTIFY for a step
        await other.execute("SELECT pg_advisory_lock_shared($1)", hub.watch_key("r"))
        await step(E.ATTRIBUTES_SET)
        assert len(got) == 1 and '"r",3]' in got[0]  # followed: notified
        await other.execute("SELECT pg_advisory_unlock_shared($1)", hub.watch_key("r"))
        await step(E.ATTRIBUTES_SET)
        assert len(got) == 1
        await world.commit(Commit([RunWrite("r", expected_seq=4, commands=[_ev(E.RUN_COMPLETED)])]))
        await other.execute("SELECT 1")
        assert len(got) == 2 and '"r",5]' in got[1]  # the end: always
    finally:
        await other.close()
        await world.close()


async def test_return_value_in_another_process_hears_the_end(pg_url: str) -> None:
    """A waiter for a run's end that another process advances (no watch lock) is woken
    by the NOTIFY of the end, not by the slow polling fallback."""
    world, other = PostgresWorld(pg_url), PostgresWorld(pg_url)
    await world.open()
    await other.open()
    shared = other._hub
    other._hub = Hub(other.config)  # another process's: its own token, no listener
    try:
        await world.commit(Commit([RunWrite("r", create=RunMeta("wf", "ns", "d"), facts=[_ev()])]))

        async def later() -> None:
            await asyncio.sleep(0.2)
            await other.commit(Commit([RunWrite("r", facts=[_ev(E.RUN_STARTED)])]))
            await other.commit(
                Commit([RunWrite("r", expected_seq=2, commands=[_ev(E.RUN_COMPLETED)])])
            )

        task = asyncio.create_task(later())
        t0 = time.monotonic()
        rec = await world.wait_for_run_end("r", timeout=30)
        await task
        assert rec is not None and rec.status == "completed"
        assert time.monotonic() - t0 < pg_world.POLL_FALLBACK - 1
    finally:
        other._hub = shared
        await other.close()
        await world.close()
