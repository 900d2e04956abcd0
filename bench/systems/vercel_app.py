"""vercel-workflow's benchmark workflows, in a module of their own.

vercel-workflow replays a workflow body in a sandbox that imports the body's module by
name, so the workflows cannot live in ``__main__`` (vercel_bench.py). Step bodies run in
the ordinary module: the lists below are the ones the driver reads.
"""

from __future__ import annotations

import asyncio
import os
import time

from vercel.workflow import Workflows, sleep

wf = Workflows()

marks: list[float] = []
started: dict[str, float] = {}


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
