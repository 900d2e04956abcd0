"""DBOS Transact's side of the benchmark: the same workloads as durably_bench.py.

One process, one DBOS system database: ``--world sqlite`` (a fresh SQLite file, DBOS's own
connection settings) or ``--world postgres`` (a fresh database on the local server).
Workflows and steps are ``async def`` started with ``DBOS.start_workflow_async``, which
runs them in this process's event loop, as durably's embedded worker does.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from common import (
    PG_ADMIN_URL,
    WORKLOADS,
    Sizes,
    at_exit,
    drop_pg_database,
    emit,
    emit_settings,
    median,
    pg_setting,
    rss_kb,
    run_and_exit,
    scratch_dir,
    skip,
)
from dbos import DBOS

marks: list[float] = []
started: dict[str, float] = {}
asleep = [0]


@DBOS.step()
async def noop() -> None:
    return None


@DBOS.step()
async def mark() -> None:
    marks.append(time.perf_counter())


@DBOS.step()
async def first(key: str) -> None:
    started.setdefault(key, time.perf_counter())


@DBOS.step()
async def blob(n: int) -> bytes:
    return os.urandom(16) + b"x" * (n - 16)


@DBOS.workflow()
async def seq(n: int) -> int:
    for _ in range(n):
        await noop()
    return n


@DBOS.workflow()
async def seq_marked(n: int) -> int:
    for _ in range(n):
        await mark()
    return n


@DBOS.workflow()
async def parallel(n: int) -> int:
    await asyncio.gather(*[noop() for _ in range(n)])
    return n


@DBOS.workflow()
async def first_step(key: str) -> None:
    await first(key)


@DBOS.workflow()
async def payload(n: int, size: int) -> int:
    total = 0
    for _ in range(n):
        total += len(await blob(size))
    return total


@DBOS.workflow()
async def sleeper() -> None:
    asleep[0] += 1
    await DBOS.sleep_async(30 * 86400)


def sqlite_settings() -> str:
    """journal_mode and synchronous as DBOS's own engine sets up its connections."""
    from dbos._dbos import _get_dbos_instance

    engine = _get_dbos_instance()._sys_db.engine
    with engine.connect() as conn:
        raw: Any = conn.connection.dbapi_connection
        assert isinstance(raw, sqlite3.Connection)
        journal = raw.execute("PRAGMA journal_mode").fetchone()[0]
        sync = raw.execute("PRAGMA synchronous").fetchone()[0]
    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    fsync = "fsync per commit" if sync >= 2 else "no fsync per commit"
    return (
        f"DBOS {version()} on SQLite, journal_mode={journal}, "
        f"synchronous={names.get(sync, sync)} ({fsync}; DBOS's own settings)"
    )


def version() -> str:
    from importlib.metadata import version as v

    return v("dbos")


async def main(world: str, quick: bool, only: set[str]) -> None:
    s = Sizes.pick(quick)

    def want(name: str) -> bool:
        return not only or name in only

    tmp = Path(scratch_dir("dbos-bench-"))
    if world == "sqlite":
        url = f"sqlite:///{tmp / 'dbos.sqlite'}"
    else:
        if pg_setting(PG_ADMIN_URL, "server_version") == "?":
            for w in WORKLOADS:
                if want(w):
                    skip(w, f"PostgreSQL not reachable at {PG_ADMIN_URL}")
            return
        drop_pg_database("dbos_bench")  # DBOS creates its system database itself
        at_exit(lambda: drop_pg_database("dbos_bench"))
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/dbos_bench"
    DBOS(config={"name": "bench", "system_database_url": url, "log_level": "WARNING"})
    DBOS.launch()
    if world == "sqlite":
        emit_settings(sqlite_settings())
    else:
        emit_settings(
            f"DBOS {version()} on PostgreSQL {pg_setting(url, 'server_version').split()[0]}, "
            f"synchronous_commit={pg_setting(url, 'synchronous_commit')}, "
            f"fsync={pg_setting(url, 'fsync')} (server settings)"
        )

    if want("seq"):
        warm = await DBOS.start_workflow_async(seq, 10)
        await warm.get_result()
        t = time.perf_counter()
        h = await DBOS.start_workflow_async(seq, s.seq)
        await h.get_result()
        emit({"workload": "seq", "us_per_step": (time.perf_counter() - t) * 1e6 / s.seq})
    if want("seq-long"):
        marks.clear()
        h = await DBOS.start_workflow_async(seq_marked, s.seq_long)
        await h.get_result()
        w = s.window
        head = (marks[w] - marks[0]) * 1e6 / w
        tail = (marks[-1] - marks[-1 - w]) * 1e6 / w
        emit(
            {
                "workload": "seq-long",
                "us_per_step_head": head,
                "us_per_step_tail": tail,
                "tail_over_head": tail / head,
            }
        )
    if want("fanout"):
        t = time.perf_counter()
        hs = [await DBOS.start_workflow_async(seq, s.fanout_steps) for _ in range(s.fanout_runs)]
        await asyncio.gather(*[h.get_result() for h in hs])
        dt = time.perf_counter() - t
        emit({"workload": "fanout", "steps_per_s": s.fanout_runs * s.fanout_steps / dt})
    if want("parallel"):
        warm = await DBOS.start_workflow_async(parallel, 5)
        await warm.get_result()
        t = time.perf_counter()
        h = await DBOS.start_workflow_async(parallel, s.parallel)
        await h.get_result()
        emit({"workload": "parallel", "ms": (time.perf_counter() - t) * 1e3})
    if want("start"):
        lat = []
        for i in range(s.starts + 3):
            key = f"k{i}"
            t = time.perf_counter()
            h = await DBOS.start_workflow_async(first_step, key)
            await h.get_result()
            if i >= 3:
                lat.append((started[key] - t) * 1e3)
        emit({"workload": "start", "ms_median": median(lat)})
    if want("payload"):
        t = time.perf_counter()
        h = await DBOS.start_workflow_async(payload, s.payload_steps, s.payload_bytes)
        await h.get_result()
        emit(
            {
                "workload": "payload",
                "us_per_step": (time.perf_counter() - t) * 1e6 / s.payload_steps,
            }
        )
    if want("sleepers"):
        gc.collect()
        idle = rss_kb()
        hs = [await DBOS.start_workflow_async(sleeper) for _ in range(s.sleepers)]
        last = hs[-1].get_workflow_id()
        while True:  # until every run is asleep, its sleep recorded
            steps = await DBOS.list_workflow_steps_async(last) if asleep[0] >= s.sleepers else []
            if steps:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        gc.collect()
        busy = rss_kb()
        emit({"workload": "sleepers", "bytes_per_run": (busy - idle) * 1024 / s.sleepers})


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--world", required=True, choices=["sqlite", "postgres"])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", default="")
    a = p.parse_args()
    run_and_exit(main(a.world, a.quick, {x for x in a.only.split(",") if x}))
