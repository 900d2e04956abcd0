"""durably's side of the benchmark: every workload, on one world, in this process."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from common import Sizes, emit, median, rss_kb

from durably import Workflows, sleep


def registry(world: str) -> Workflows:
    wf = Workflows(world=world, concurrency=64)
    marks: list[float] = []
    wf.marks = marks  # type: ignore[attr-defined]
    started: dict[str, float] = {}
    wf.started = started  # type: ignore[attr-defined]

    @wf.step
    async def noop() -> None:
        return None

    @wf.step
    async def mark() -> None:
        marks.append(time.perf_counter())

    @wf.step
    async def first(key: str) -> None:
        started.setdefault(key, time.perf_counter())

    @wf.step
    async def blob(n: int) -> bytes:
        return os.urandom(16) + b"x" * (n - 16)

    @wf.workflow
    async def seq(n: int) -> int:
        for _ in range(n):
            await noop()
        return n

    @wf.workflow
    async def seq_marked(n: int) -> int:
        for _ in range(n):
            await mark()
        return n

    @wf.workflow
    async def parallel(n: int) -> int:
        await asyncio.gather(*[noop() for _ in range(n)])
        return n

    @wf.workflow
    async def first_step(key: str) -> None:
        await first(key)

    @wf.workflow
    async def payload(n: int, size: int) -> int:
        total = 0
        for _ in range(n):
            total += len(await blob(size))
        return total

    @wf.workflow
    async def sleeper() -> None:
        await sleep("30d")

    return wf


async def seq_bench(wf: Workflows, n: int) -> float:
    warm = await wf.start("seq", 10)
    await warm.return_value()
    t = time.perf_counter()
    run = await wf.start("seq", n)
    await run.return_value()
    return (time.perf_counter() - t) * 1e6 / n


async def main(world: str, quick: bool, only: set[str]) -> None:
    s = Sizes.pick(quick)
    wf = registry(world)

    def want(name: str) -> bool:
        return not only or name in only

    async with wf:
        if want("seq"):
            emit({"workload": "seq", "us_per_step": await seq_bench(wf, s.seq)})
        if want("seq-long"):
            marks: list[float] = wf.marks  # type: ignore[attr-defined]
            marks.clear()
            run = await wf.start("seq_marked", s.seq_long)
            await run.return_value()
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
            runs = [await wf.start("seq", s.fanout_steps) for _ in range(s.fanout_runs)]
            await asyncio.gather(*[r.return_value() for r in runs])
            dt = time.perf_counter() - t
            emit({"workload": "fanout", "steps_per_s": s.fanout_runs * s.fanout_steps / dt})
        if want("parallel"):
            warm = await wf.start("parallel", 5)
            await warm.return_value()
            t = time.perf_counter()
            run = await wf.start("parallel", s.parallel)
            await run.return_value()
            emit({"workload": "parallel", "ms": (time.perf_counter() - t) * 1e3})
        if want("start"):
            lat = []
            started: dict[str, float] = wf.started  # type: ignore[attr-defined]
            for i in range(s.starts + 3):
                key = f"k{i}"
                t = time.perf_counter()
                run = await wf.start("first_step", key)
                await run.return_value()
                if i >= 3:
                    lat.append((started[key] - t) * 1e3)
            emit({"workload": "start", "ms_median": median(lat)})
        if want("payload"):
            t = time.perf_counter()
            run = await wf.start("payload", s.payload_steps, s.payload_bytes)
            await run.return_value()
            emit(
                {
                    "workload": "payload",
                    "us_per_step": (time.perf_counter() - t) * 1e6 / s.payload_steps,
                }
            )
        if want("sleepers"):
            gc.collect()
            idle = rss_kb()
            runs = [await wf.start("sleeper") for _ in range(s.sleepers)]
            last = runs[-1]
            while True:  # until every run is asleep
                steps = await last.steps()
                if steps and steps[-1].status == "waiting":
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            gc.collect()
            busy = rss_kb()
            emit({"workload": "sleepers", "bytes_per_run": (busy - idle) * 1024 / s.sleepers})


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
    p.add_argument(
        "--world", required=True, choices=["sqlite", "sqlite-fsync", "memory", "postgres"]
    )
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", default="")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="durably-bench-"))
    url = {
        "sqlite": f"sqlite:///{tmp / 'bench.db'}",
        "sqlite-fsync": f"sqlite:///{tmp / 'bench.db'}?synchronous=full",
        "memory": "memory://",
        # A schema of its own on the local server ($DURABLY_BENCH_POSTGRES to change it).
        "postgres": _with_schema(
            os.environ.get("DURABLY_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"),
            f"bench_{tmp.name.replace('-', '_')}",
        ),
    }[a.world]
    if a.world == "postgres":
        from durably.crypto import new_key

        os.environ.setdefault("DURABLY_ENCRYPTION_KEY", new_key("bench"))
    only = {x for x in a.only.split(",") if x}
    try:
        asyncio.run(main(url, a.quick, only))
    finally:
        if a.world == "postgres":
            asyncio.run(drop_schema(url))
    _: Any = None
