"""DBOS's side of the flow-control benchmark (bench/flow.py): its queue with the same
concurrency limit (``global_concurrency``) as durably's lock or concurrency limit.

DBOS has no lock primitive: a queue with a global concurrency limit is how its users
serialize work. Its queue thread polls each queue every ``polling_interval_sec`` (1 s by
default, which would cap a limit of 1 at one run a second); the benchmark sets
:data:`POLL` so that the poll is not what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from common import (
    PG_ADMIN_URL,
    at_exit,
    drop_pg_database,
    emit,
    emit_settings,
    pg_setting,
    run_and_exit,
    scratch_dir,
    skip,
)
from dbos import DBOS
from flow_common import FlowSizes, done_waiter, handoff_gaps, percentile

#: The queues' polling interval, seconds.
POLL = 0.01
#: Runs contending at full size: DBOS's queue admits about ten runs a second here, so
#: 10,000 would take a quarter of an hour per limit; the rate is measured on fewer.
DBOS_CONTEND = 1000

ctx: dict[str, Any] = {"enter": {}, "exit": {}, "done": lambda: None}


@DBOS.step()
async def hold(i: int) -> None:
    ctx["enter"][i] = time.perf_counter()
    ctx["exit"][i] = time.perf_counter()


@DBOS.step()
async def noop() -> None:
    ctx["done"]()


@DBOS.workflow()
async def queued_hold(i: int) -> None:
    await hold(i)


@DBOS.workflow()
async def queued_noop() -> None:
    await noop()


async def main(world: str, quick: bool, only: set[str], contend: int = 0) -> None:
    s = FlowSizes.pick(quick, contend)

    def want(name: str) -> bool:
        return not only or name in only

    tmp = Path(scratch_dir("dbos-flow-"))
    if world == "sqlite":
        url = f"sqlite:///{tmp / 'dbos.sqlite'}"
    else:
        if pg_setting(PG_ADMIN_URL, "server_version") == "?":
            for w in ("handoff", "contend-1", "contend-10"):
                skip(w, f"PostgreSQL not reachable at {PG_ADMIN_URL}")
            return
        drop_pg_database("dbos_flow")
        at_exit(lambda: drop_pg_database("dbos_flow"))
        url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/dbos_flow"
    DBOS(config={"name": "flow", "system_database_url": url, "log_level": "WARNING"})
    DBOS.launch()
    emit_settings(f"DBOS on {world}, queue polling_interval_sec={POLL}")
    queues = {
        n: await DBOS.register_queue_async(f"q{n}", global_concurrency=n, polling_interval_sec=POLL)
        for n in (1, 10)
    }
    if want("handoff"):
        ctx["enter"], ctx["exit"] = {}, {}
        hs = [await queues[1].enqueue_async(queued_hold, i) for i in range(s.handoff)]
        for h in hs:
            await h.get_result()
        gaps = handoff_gaps(ctx["enter"], ctx["exit"])
        emit(
            {
                "workload": "handoff",
                "variant": "queue",
                "ms_median": percentile(gaps, 50) * 1e3,
                "ms_p99": percentile(gaps, 99) * 1e3,
                "n": len(gaps),
            }
        )
    for limit in (1, 10):
        name = f"contend-{limit}"
        if not want(name):
            continue
        n = min(s.contend, DBOS_CONTEND)
        finished, ctx["done"] = done_waiter(n)
        t = time.perf_counter()
        for _ in range(n):
            await queues[limit].enqueue_async(queued_noop)
        await finished.wait()
        dt = time.perf_counter() - t
        result = {"workload": name, "variant": "queue", "runs_per_s": n / dt, "n": n}
        if n < s.contend:
            result["note"] = f"{n:,} runs, not {s.contend:,}: its queue admits ~10 runs/s"
        emit(result)
        await asyncio.sleep(0.5)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--world", required=True, choices=["sqlite", "postgres"])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", default="")
    p.add_argument("--contend", type=int, default=0, help="runs contending (default: sizes)")
    a = p.parse_args()
    run_and_exit(main(a.world, a.quick, {x for x in a.only.split(",") if x}, a.contend))
