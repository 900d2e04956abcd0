"""Absurd's side of the benchmark: the same workloads as durably_bench.py.

Absurd is a set of PostgreSQL functions (its schema SQL ships inside the ``absurdctl``
package) and a thin SDK: a task is a handler, a step is ``ctx.step(name, fn)`` whose result
is checkpointed as JSON. ``--world postgres`` makes a fresh database on the local server,
loads the schema, creates one queue and runs the SDK's async workers in this process.

Workers: WORKERS ``AsyncAbsurd`` instances (one connection each) with CONCURRENCY tasks
each, polling every POLL seconds when idle (the SDK default is 0.25 s).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import time
from importlib.metadata import version
from typing import Any

from common import (
    PG_ADMIN_URL,
    WORKLOADS,
    Sizes,
    at_exit,
    drop_pg_database,
    emit,
    emit_settings,
    fresh_pg_database,
    median,
    pg_setting,
    rss_kb,
    run_and_exit,
    skip,
)

WORKERS = 4
CONCURRENCY = 16
POLL = 0.05
QUEUE = "bench"
DB = "absurd_bench"

marks: list[float] = []
started: dict[str, float] = {}
asleep = [0]


async def noop() -> None:
    return None


async def mark() -> None:
    marks.append(time.perf_counter())


def register(app: Any) -> None:
    """The benchmark's tasks, on one worker."""

    @app.register_task("seq")
    async def seq(params: dict[str, Any], ctx: Any) -> int:
        for _ in range(params["n"]):
            await ctx.step("noop", noop)
        return int(params["n"])

    @app.register_task("seq_marked")
    async def seq_marked(params: dict[str, Any], ctx: Any) -> int:
        for _ in range(params["n"]):
            await ctx.step("mark", mark)
        return int(params["n"])

    @app.register_task("parallel")
    async def parallel(params: dict[str, Any], ctx: Any) -> int:
        await asyncio.gather(*[ctx.step("noop", noop) for _ in range(params["n"])])
        return int(params["n"])

    @app.register_task("first_step")
    async def first_step(params: dict[str, Any], ctx: Any) -> None:
        key = params["key"]

        async def first() -> None:
            started.setdefault(key, time.perf_counter())

        await ctx.step("first", first)

    @app.register_task("payload")
    async def payload(params: dict[str, Any], ctx: Any) -> int:
        size = params["size"]

        async def blob() -> str:  # checkpoints are JSON: a str of `size` characters
            return os.urandom(8).hex() + "x" * (size - 16)

        total = 0
        for _ in range(params["n"]):
            total += len(await ctx.step("blob", blob))
        return total

    @app.register_task("sleeper")
    async def sleeper(params: dict[str, Any], ctx: Any) -> None:
        asleep[0] += 1
        await ctx.sleep_for("nap", 30 * 86400)


class Bench:
    def __init__(self, url: str) -> None:
        import psycopg
        from absurd_sdk import AsyncAbsurd

        self.url = url
        self.client = AsyncAbsurd(url, queue_name=QUEUE)
        self.workers = [AsyncAbsurd(url, queue_name=QUEUE) for _ in range(WORKERS)]
        for w in self.workers:
            register(w)
        self.tasks: list[asyncio.Task[None]] = []
        self._psycopg = psycopg
        self.poll: Any = None

    async def open(self) -> None:
        await self.client.create_queue(QUEUE)
        self.poll = await self._psycopg.AsyncConnection.connect(self.url, autocommit=True)
        for i, w in enumerate(self.workers):
            self.tasks.append(
                asyncio.create_task(
                    w.start_worker(
                        worker_id=f"bench-{i}", concurrency=CONCURRENCY, poll_interval=POLL
                    )
                )
            )

    async def spawn(self, name: str, params: dict[str, Any]) -> str:
        res = await self.client.spawn(name, params, queue=QUEUE)
        return str(res["task_id"])

    async def wait(self, task_ids: list[str], state: str = "completed") -> None:
        """Until every task is in ``state`` (one query for all, every 2 ms)."""
        want = {"completed": ("completed", "failed", "cancelled"), "sleeping": ("sleeping",)}
        while True:
            cur = await self.poll.execute(
                f"SELECT state, count(*) FROM absurd.t_{QUEUE} "
                "WHERE task_id = ANY(%s::uuid[]) GROUP BY state",
                (task_ids,),
            )
            counts = dict(await cur.fetchall())
            if sum(counts.get(s, 0) for s in want[state]) >= len(task_ids):
                if counts.get("failed") or counts.get("cancelled"):
                    raise RuntimeError(f"tasks did not complete: {counts}")
                return
            await asyncio.sleep(0.002)

    async def run(self, name: str, params: dict[str, Any]) -> None:
        await self.wait([await self.spawn(name, params)])


async def main(quick: bool, only: set[str]) -> None:
    s = Sizes.pick(quick)

    def want(name: str) -> bool:
        return not only or name in only

    try:
        url = fresh_pg_database(DB)
        at_exit(lambda: drop_pg_database(DB))
    except Exception as e:
        for w in WORKLOADS:
            if want(w):
                skip(w, f"PostgreSQL not reachable at {PG_ADMIN_URL}: {type(e).__name__}")
        return
    import absurdctl
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(absurdctl.BUNDLED_SCHEMA_SQL)  # what `absurdctl init` loads
    emit_settings(
        f"Absurd {version('absurd-sdk')} on PostgreSQL "
        f"{pg_setting(url, 'server_version').split()[0]}, "
        f"synchronous_commit={pg_setting(url, 'synchronous_commit')}, "
        f"fsync={pg_setting(url, 'fsync')} (server settings); a commit per checkpoint; "
        f"{WORKERS} workers x {CONCURRENCY}, idle poll {POLL * 1000:.0f} ms"
    )
    b = Bench(url)
    await b.open()

    if want("seq"):
        await b.run("seq", {"n": 10})
        t = time.perf_counter()
        await b.run("seq", {"n": s.seq})
        emit({"workload": "seq", "us_per_step": (time.perf_counter() - t) * 1e6 / s.seq})
    if want("seq-long"):
        marks.clear()
        await b.run("seq_marked", {"n": s.seq_long})
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
        ids = [await b.spawn("seq", {"n": s.fanout_steps}) for _ in range(s.fanout_runs)]
        await b.wait(ids)
        dt = time.perf_counter() - t
        emit({"workload": "fanout", "steps_per_s": s.fanout_runs * s.fanout_steps / dt})
    if want("parallel"):
        await b.run("parallel", {"n": 5})
        t = time.perf_counter()
        await b.run("parallel", {"n": s.parallel})
        emit({"workload": "parallel", "ms": (time.perf_counter() - t) * 1e3})
    if want("start"):
        lat = []
        for i in range(s.starts + 3):
            key = f"k{i}"
            t = time.perf_counter()
            await b.run("first_step", {"key": key})
            if i >= 3:
                lat.append((started[key] - t) * 1e3)
        emit({"workload": "start", "ms_median": median(lat)})
    if want("payload"):
        t = time.perf_counter()
        await b.run("payload", {"n": s.payload_steps, "size": s.payload_bytes})
        emit(
            {
                "workload": "payload",
                "us_per_step": (time.perf_counter() - t) * 1e6 / s.payload_steps,
                "note": "Absurd checkpoints are JSON: the 100 KB payload is a str, not bytes",
            }
        )
    if want("sleepers"):
        gc.collect()
        idle = rss_kb()
        ids = [await b.spawn("sleeper", {}) for _ in range(s.sleepers)]
        await b.wait(ids, "sleeping")
        await asyncio.sleep(0.5)
        gc.collect()
        busy = rss_kb()
        emit({"workload": "sleepers", "bytes_per_run": (busy - idle) * 1024 / s.sleepers})


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--world", required=True, choices=["postgres"])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", default="")
    a = p.parse_args()
    run_and_exit(main(a.quick, {x for x in a.only.split(",") if x}))
