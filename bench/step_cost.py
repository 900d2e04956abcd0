"""What one sequential step costs, against the commit floor of the same database, in one run.

    python bench/step_cost.py --world postgres [--steps 1000] [--rounds 3] [--rtt-ms 0,2]
    python bench/step_cost.py --world sqlite            # synchronous=NORMAL
    python bench/step_cost.py --world sqlite-fsync      # synchronous=FULL

Alternates, round by round, in one process:

* **floor**: a loop of single-row commits on the same database (Postgres: an autocommit
  ``INSERT`` of one row with asyncpg, one round trip each; SQLite: ``INSERT`` + commit in
  WAL mode at the world's ``synchronous`` setting). Nothing can commit a step for less.
* **durably**: a run of ``--steps`` sequential no-op steps (the ``seq`` workload of
  ``bench/run.py``), timed from ``start()`` to its result, with the client's CPU time.
* **memory**: the same run on the memory world: durably's runtime, ledger and encryption
  with no database. Added to the floor it makes a lower bound no world can beat on this
  machine, printed at the end.
* **statements** (SQLite): the statements the SQLite world ran for the durably run,
  recorded with their parameters and replayed in the same order from Python's sqlite3 on a
  copy of the database as it was before the run: what storing a step costs with this
  schema, with no ledger, runtime or Python of durably's. With the memory world's step it
  bounds what durably can reach without storing less per step.

For Postgres, the run also goes through :mod:`delay_proxy` (at each ``--rtt-ms``; 0 is the
proxy with no delay), which counts the bytes the client sends and receives per step and
the statements it runs (protocol ``Bind``/``Query`` messages); NOTIFYs per step are
counted in the client. Prints medians over rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from delay_proxy import DelayProxy

from durably import Workflows

PG = os.environ.get("DURABLY_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def registry(url: str) -> Workflows:
    """The seq workload."""
    wf = Workflows(world=url, concurrency=64)

    @wf.step
    async def noop() -> None:
        return None

    @wf.workflow
    async def seq(n: int) -> int:
        for _ in range(n):
            await noop()
        return n

    return wf


class NotifyCounter:
    """Counts the NOTIFYs the Postgres world's commits send (a patch of its hub)."""

    def __init__(self) -> None:
        self.count = 0
        from durably.worlds.postgres import hub

        original = hub.Hub.notifications

        def counted(hub_self: Any, *a: Any, **k: Any) -> list[list[str]]:
            out = original(hub_self, *a, **k)
            # A note with a third item is sent only to a run someone follows (nobody
            # here): count what the server is asked to send.
            self.count += sum(1 for n in out if len(n) == 2)
            return out

        hub.Hub.notifications = counted  # type: ignore[method-assign]


async def durably_seq(url: str, n: int) -> dict[str, float]:
    """us per step and client CPU us per step of one seq run (after a warm-up run)."""
    wf = registry(url)
    async with wf:
        warm = await wf.start("seq", 10)
        await warm.return_value()
        cpu, t = time.process_time(), time.perf_counter()
        run = await wf.start("seq", n)
        await run.return_value()
        wall = time.perf_counter() - t
        cpu = time.process_time() - cpu
    return {"us_per_step": wall * 1e6 / n, "cpu_us_per_step": cpu * 1e6 / n}


async def pg_floor(n: int) -> dict[str, float]:
    """us per single-row autocommit INSERT (one round trip, one synchronous commit), and
    the client's CPU us for each (asyncpg, asyncio and the kernel's share of the round
    trip: what any step's commit costs the client at least)."""
    import asyncpg

    conn = await asyncpg.connect(PG)
    table = f"floor_{uuid.uuid4().hex[:8]}"
    try:
        await conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, v text)")
        stmt = await conn.prepare(f"INSERT INTO {table} VALUES ($1, $2)")
        for i in range(20):
            await stmt.fetch(-i - 1, "x")
        cpu, t = time.process_time(), time.perf_counter()
        for i in range(n):
            await stmt.fetch(i, "x")
        wall = time.perf_counter() - t
        return {
            "us_per_commit": wall * 1e6 / n,
            "cpu_us_per_commit": (time.process_time() - cpu) * 1e6 / n,
        }
    finally:
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
        await conn.close()


def sqlite_floor(n: int, synchronous: str) -> float:
    """us per single-row INSERT + commit in WAL mode."""
    folder = Path(tempfile.mkdtemp(prefix="durably-floor-"))
    db = sqlite3.connect(folder / "floor.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    t = time.perf_counter()
    for i in range(n):
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t VALUES (?, ?)", (i, "x"))
        db.execute("COMMIT")
    out = (time.perf_counter() - t) * 1e6 / n
    db.close()
    return out


class _Recording(sqlite3.Connection):
    """A connection that notes the statements it runs while ``logs`` is a dict (a log per
    connection: the world's readers and checkpointer have their own)."""

    logs: dict[int, list[tuple[str, str, Any]]] | None = None

    def _log(self) -> list[tuple[str, str, Any]] | None:
        logs = _Recording.logs
        return None if logs is None else logs.setdefault(id(self), [])

    def execute(self, sql: str, params: Any = (), /) -> sqlite3.Cursor:  # type: ignore[override]
        log = self._log()
        if log is not None:
            log.append(("x", sql, params))
        return super().execute(sql, params)

    def executemany(self, sql: str, rows: Any, /) -> sqlite3.Cursor:  # type: ignore[override]
        log = self._log()
        if log is not None:
            rows = list(rows)
            log.append(("m", sql, rows))
        return super().executemany(sql, rows)


async def sqlite_recorded(url: str, n: int) -> tuple[Path, list[tuple[str, str, Any]]]:
    """Run the seq workload on the SQLite world at ``url`` with a writer that records its
    statements; returns a copy of the database taken before the measured run, and them."""
    from durably.worlds.sqlite import connections

    real = connections.sqlite3.connect

    def recording(*a: Any, **k: Any) -> sqlite3.Connection:
        return real(*a, factory=_Recording, **k)

    connections.sqlite3.connect = recording  # type: ignore[assignment]
    try:
        wf = registry(url)
        async with wf:
            warm = await wf.start("seq", 10)
            await warm.return_value()
            path = Path(url.split("sqlite:///", 1)[1].split("?", 1)[0])
            before = path.with_name("before.db")
            with sqlite3.connect(path) as src, sqlite3.connect(before) as dst:
                src.backup(dst)
            _Recording.logs = {}
            run = await wf.start("seq", n)
            await run.return_value()
            logs, _Recording.logs = _Recording.logs, None
            # The writer's: the one that begins transactions.
            log = max(
                logs.values(), key=lambda lg: sum(sql.startswith("BEGIN") for _, sql, _ in lg)
            )
    finally:
        connections.sqlite3.connect = real  # type: ignore[assignment]
    return before, log


def sqlite_replay(before: Path, log: list[tuple[str, str, Any]], synchronous: str, n: int) -> float:
    """us per step to run the recorded statements again, in order, on a copy of ``before``."""
    copy = before.with_name(f"replay-{uuid.uuid4().hex[:6]}.db")
    with sqlite3.connect(before) as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    db = sqlite3.connect(copy, isolation_level=None, cached_statements=256)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    t = time.perf_counter()
    for kind, sql, params in log:
        if kind == "x":
            db.execute(sql, params).fetchall()
        else:
            db.executemany(sql, params)
    out = (time.perf_counter() - t) * 1e6 / n
    db.close()
    return out


async def pg_proxied(n: int, rtt_ms: float, notes: NotifyCounter) -> dict[str, float]:
    """The seq run through the delay proxy: time, bytes, statements and NOTIFYs per step."""
    host_port = PG.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    proxy = DelayProxy(host, int(port), rtt_ms / 2000)
    bound = await proxy.start()
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    url = PG.replace(host_port, f"127.0.0.1:{bound}") + f"?schema={schema}"
    wf = registry(url)
    try:
        async with wf:
            warm = await wf.start("seq", 10)
            await warm.return_value()
            up, down = proxy.counts.snapshot()
            msgs = dict(proxy.counts.messages)
            sent = notes.count
            t = time.perf_counter()
            run = await wf.start("seq", n)
            await run.return_value()
            wall = time.perf_counter() - t
            up2, down2 = proxy.counts.snapshot()
            binds = proxy.counts.messages.get("B", 0) - msgs.get("B", 0)
            queries = proxy.counts.messages.get("Q", 0) - msgs.get("Q", 0)
            return {
                "us_per_step": wall * 1e6 / n,
                "bytes_up_per_step": (up2 - up) / n,
                "bytes_down_per_step": (down2 - down) / n,
                "statements_per_step": (binds + queries) / n,
                "notifies_per_step": (notes.count - sent) / n,
            }
    finally:
        await proxy.close()
        await drop_schema(schema)


async def drop_schema(schema: str) -> None:
    """Drop a benchmark's schema."""
    import asyncpg

    conn = await asyncpg.connect(PG)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def main() -> None:
    """Parse the options, alternate floor and durably, print medians."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--world", default="postgres", choices=["postgres", "sqlite", "sqlite-fsync"])
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--rtt-ms", default="0", help="Postgres: delays of the proxied runs")
    a = p.parse_args()
    samples: dict[str, list[float]] = {}

    def add(prefix: str, figures: dict[str, float]) -> None:
        for k, v in figures.items():
            samples.setdefault(f"{prefix}.{k}", []).append(v)

    notes = NotifyCounter() if a.world == "postgres" else None
    if a.world == "postgres":
        from durably.crypto import new_key

        os.environ.setdefault("DURABLY_ENCRYPTION_KEY", new_key("bench"))
    recorded: tuple[Path, list[tuple[str, str, Any]]] | None = None
    if a.world != "postgres":
        folder = Path(tempfile.mkdtemp(prefix="durably-rec-"))
        sync = "?synchronous=full" if a.world == "sqlite-fsync" else ""
        recorded = await sqlite_recorded(f"sqlite:///{folder / 'r.db'}{sync}", a.steps)
    for r in range(a.rounds):
        order = ["floor", "memory", "durably"] + (["statements"] if recorded else [])
        if r % 2:
            order.reverse()
        for side in order:
            if side == "floor":
                if a.world == "postgres":
                    add("floor", await pg_floor(a.steps))
                else:
                    sync = "FULL" if a.world == "sqlite-fsync" else "NORMAL"
                    add("floor", {"us_per_commit": sqlite_floor(a.steps, sync)})
            elif side == "memory":
                add("memory", await durably_seq("memory://", a.steps))
            elif side == "statements":
                assert recorded is not None
                sync = "FULL" if a.world == "sqlite-fsync" else "NORMAL"
                us = sqlite_replay(recorded[0], recorded[1], sync, a.steps)
                add("statements", {"us_per_step": us})
            elif a.world == "postgres":
                schema = f"bench_{uuid.uuid4().hex[:10]}"
                try:
                    add("durably", await durably_seq(f"{PG}?schema={schema}", a.steps))
                finally:
                    await drop_schema(schema)
                assert notes is not None
                for rtt in (float(x) for x in a.rtt_ms.split(",") if x):
                    add(f"proxy rtt+{rtt:g}ms", await pg_proxied(a.steps, rtt, notes))
            else:
                folder = Path(tempfile.mkdtemp(prefix="durably-step-"))
                sync = "?synchronous=full" if a.world == "sqlite-fsync" else ""
                add("durably", await durably_seq(f"sqlite:///{folder / 'b.db'}{sync}", a.steps))
        print(f"round {r + 1}/{a.rounds} done", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in samples.items()}
    print(f"{a.world}: {a.steps} steps, median of {a.rounds} rounds ({os.cpu_count()} CPUs)")
    for k, v in med.items():
        print(f"  {k:45} {v:12.1f}")
    floor = med["floor.us_per_commit"]
    ratio = med["durably.us_per_step"] / floor
    print(f"  {'durably us/step over floor us/commit':45} {ratio:12.2f}")
    # What a step cannot cost less than: one commit (its wall time holds the client's
    # share of the round trip) and durably's runtime with nothing to store (the memory
    # world: the body, the ledger, encryption). The rest is the world's own work.
    bound = floor + med["memory.us_per_step"]
    print(f"  {'lower bound: floor + memory world step':45} {bound:12.1f}")
    print(f"  {'durably us/step over that bound':45} {med['durably.us_per_step'] / bound:12.2f}")
    if "statements.us_per_step" in med:
        # The step's statements as durably's schema has them, run bare, and the runtime.
        stored = med["statements.us_per_step"] + med["memory.us_per_step"]
        print(f"  {'bound with this schema: statements + memory':45} {stored:12.1f}")


if __name__ == "__main__":
    asyncio.run(main())
