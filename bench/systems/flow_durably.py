"""durably's side of the flow-control benchmark (bench/flow.py), on one world.

Workloads (sizes: ``FlowSizes``):

* ``handoff``: runs contending for one lock (limit 1); each holds it for one step. The
  hand-off latency is the time from the end of one holder's step (its body returning) to
  the start of the next holder's step: the step's result committed, the block left (a
  ``lock_released`` that grants the next waiter in the same commit), the waiter's turn
  claimed and its step begun. Median and p99, ms.
* ``contend-1`` / ``contend-10``: N runs started at once, contending for one key with
  limit 1 / 10, each one no-op step inside; runs per second from the first ``start()`` to
  the last step's end.

Each as ``lock`` (``async with durably.lock(key, limit=L)``) and as ``concurrency``
(``@wf.workflow(concurrency=L)``, the analog of a queue with a concurrency limit).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from common import emit, emit_settings
from flow_common import FlowSizes, done_waiter, handoff_gaps, percentile

import durably
from durably import Workflows


def registry(world: str, ctx: dict[str, Any]) -> Workflows:
    wf = Workflows(world=world, concurrency=64)

    @wf.step
    async def hold(i: int) -> None:
        ctx["enter"][i] = time.perf_counter()
        ctx["exit"][i] = time.perf_counter()

    @wf.step
    async def noop() -> None:
        ctx["done"]()

    @wf.workflow
    async def locked_hold(i: int) -> None:
        async with durably.lock("handoff"):
            await hold(i)

    @wf.workflow(concurrency=1)
    async def limited_hold(i: int) -> None:
        await hold(i)

    @wf.workflow
    async def locked_noop(limit: int) -> None:
        async with durably.lock(f"contend-{limit}", limit=limit):
            await noop()

    @wf.workflow(concurrency=1)
    async def limited_noop_1() -> None:
        await noop()

    @wf.workflow(concurrency=10)
    async def limited_noop_10() -> None:
        await noop()

    return wf


async def main(world: str, quick: bool, only: set[str], contend: int = 0) -> None:
    s = FlowSizes.pick(quick, contend)
    ctx: dict[str, Any] = {"enter": {}, "exit": {}, "done": lambda: None}
    wf = registry(world, ctx)
    emit_settings(f"durably on {world.split(':', 1)[0]}")

    def want(name: str) -> bool:
        return not only or name in only

    async with wf:
        for variant, workflow in (("lock", "locked_hold"), ("concurrency", "limited_hold")):
            if not want("handoff"):
                break
            ctx["enter"], ctx["exit"] = {}, {}
            runs = [await wf.start(workflow, i) for i in range(s.handoff)]
            for r in runs:
                await r.return_value()
            gaps = handoff_gaps(ctx["enter"], ctx["exit"])
            emit(
                {
                    "workload": "handoff",
                    "variant": variant,
                    "ms_median": percentile(gaps, 50) * 1e3,
                    "ms_p99": percentile(gaps, 99) * 1e3,
                    "n": len(gaps),
                }
            )
        for limit in (1, 10):
            name = f"contend-{limit}"
            if not want(name):
                continue
            for variant in ("lock", "concurrency"):
                finished, ctx["done"] = done_waiter(s.contend)
                t = time.perf_counter()
                if variant == "lock":
                    for _ in range(s.contend):
                        await wf.start("locked_noop", limit)
                else:
                    for _ in range(s.contend):
                        await wf.start(f"limited_noop_{limit}")
                await finished.wait()
                dt = time.perf_counter() - t
                emit(
                    {
                        "workload": name,
                        "variant": variant,
                        "runs_per_s": s.contend / dt,
                        "n": s.contend,
                    }
                )
                await asyncio.sleep(0.5)  # the last runs' completions land


def _with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}schema={schema}"


async def drop_schema(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.split("?")[0])
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{url.rsplit("schema=", 1)[1]}" CASCADE')
    finally:
        await conn.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--world", required=True, choices=["sqlite", "sqlite-fsync", "postgres"])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", default="")
    p.add_argument("--contend", type=int, default=0, help="runs contending (default: sizes)")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="durably-flow-"))
    url = {
        "sqlite": f"sqlite:///{tmp / 'flow.db'}",
        "sqlite-fsync": f"sqlite:///{tmp / 'flow.db'}?synchronous=full",
        "postgres": _with_schema(
            os.environ.get("DURABLY_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"),
            f"flow_{tmp.name.replace('-', '_')}",
        ),
    }[a.world]
    if a.world == "postgres":
        from durably.crypto import new_key

        os.environ.setdefault("DURABLY_ENCRYPTION_KEY", new_key("bench"))
    try:
        asyncio.run(main(url, a.quick, {x for x in a.only.split(",") if x}, a.contend))
    finally:
        if a.world == "postgres":
            asyncio.run(drop_schema(url))
