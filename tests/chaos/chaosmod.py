"""The workflows the chaos suite runs: one of every shape, in a module that
``durably worker chaosmod:wf`` imports (the suite puts this folder on ``PYTHONPATH``).

Every step body appends ``RUN STEP_ID ATTEMPT start|end TIME PID`` to the file
``$CHAOS_LOG`` with one ``O_APPEND`` write per line, so the checker can tell which
bodies ran, when, and how often. Results are simple arithmetic that the driver
recomputes (``expected`` in shapes.py).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass

from durably import BaseHook, Workflows, get_step_metadata, get_writable, sleep

wf = Workflows(world=os.environ.get("DURABLY_WORLD"), worker=False)
LOG = os.environ.get("CHAOS_LOG", os.devnull)
#: Seconds a workflow sleeps durably (short, so that kills land in and after sleeps).
NAP = float(os.environ.get("CHAOS_NAP", "0.4"))
#: A worker killed under a step costs the step an attempt; with hundreds of kills a short
#: budget would fail steps that did nothing wrong, so the chaos steps get a large one.
RETRIES = 50


def note(what: str) -> None:
    """Append one line about the running step attempt (atomic: one small O_APPEND write)."""
    meta = get_step_metadata()
    line = f"{meta.run_id} {meta.step_id} {meta.attempt} {what} {time.time():.6f} {os.getpid()}\n"
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@dataclass
class Nudge(BaseHook):
    """What the driver sends to a waiting run."""

    value: int


@wf.step(max_retries=RETRIES, retry_after=0.05)
async def work(x: int, ms: int) -> int:
    """An async step that takes ``ms`` milliseconds."""
    note("start")
    await asyncio.sleep(ms / 1000)
    note("end")
    return 2 * x + 1


@wf.step(max_retries=RETRIES, retry_after=0.05)
def square(x: int, ms: int) -> int:
    """A plain ``def`` step: it runs in a thread."""
    note("start")
    time.sleep(ms / 1000)
    note("end")
    return x * x


@wf.step(max_retries=RETRIES, retry_after=0.05)
async def emit(n: int, ms: int) -> int:
    """Write ``n`` chunks to the run's stream (each tagged with its attempt), then close it."""
    note("start")
    attempt = get_step_metadata().attempt
    out = get_writable()
    for i in range(n):
        await out.write({"i": i, "attempt": attempt})
        await asyncio.sleep(ms / 1000)
    await out.close()
    note("end")
    return n


@wf.workflow
async def sequence(n: int, ms: int) -> int:
    """Sequential steps."""
    total = 0
    for i in range(n):
        total += await work(i, ms)
    return total


@wf.workflow
async def fanout(n: int, ms: int) -> int:
    """Parallel steps (gather), results in call order."""
    results = await asyncio.gather(*(work(i, ms) for i in range(n)))
    return sum((i + 1) * r for i, r in enumerate(results))


@wf.workflow
async def napper(ms: int) -> int:
    """A step, a durable sleep, a step."""
    a = await work(1, ms)
    await sleep(NAP)
    b = await square(3, ms)
    return a + b


@wf.workflow
async def approval(token: str, ms: int) -> int:
    """A step, then a hook the driver resumes, then a step on its payload."""
    a = await work(1, ms)
    async with Nudge.wait(token=token) as hook:
        nudge = await hook
    b = await work(nudge.value, ms)
    return a + b


@wf.workflow
async def streamer(n: int, ms: int) -> int:
    """A step that streams ``n`` chunks."""
    return await emit(n, ms)


@wf.workflow
async def kid(n: int, ms: int) -> int:
    """A child run: a sequence of ``def`` steps."""
    total = 0
    for i in range(n):
        total += await square(i, ms)
    return total


@wf.workflow
async def family(n: int, ms: int) -> int:
    """A step and two child runs, one after the other."""
    a = await work(n, ms)
    b = await kid(n, ms)
    c = await kid(n + 1, ms)
    return a + b + c


@wf.workflow
async def medley(token: str, n: int, ms: int) -> int:
    """Everything in one run: parallel steps, a sleep, a hook, a stream, a child."""
    first = await asyncio.gather(work(1, ms), square(2, ms))
    await sleep(NAP)
    async with Nudge.wait(token=token) as hook:
        nudge = await hook
    streamed = await emit(n, ms)
    child = await kid(2, ms)
    return sum(first) + nudge.value + streamed + child
