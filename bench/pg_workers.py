"""Steps per second on PostgreSQL with 1, 2 and 4 `durably worker` processes.

    python bench/pg_workers.py [--url postgresql://postgres@127.0.0.1:5432/test]
                               [--workers 1,2,4] [--runs 1000] [--steps 10]

For each worker count: a fresh schema, that many `durably worker` processes (each
``--concurrency 32``), then ``--runs`` runs of ``--steps`` sequential no-op steps started
at once from a ``worker=False`` registry in this process; the clock runs from the first
start to the last result. Payloads are encrypted (a key is made for the run), as by
default. Prints one row per worker count, with where the time went: the CPU the worker
processes and the PostgreSQL server (every ``postgres`` process on this machine) used
per step, read from ``/proc``, and their share of the machine's cores over the window.
When the two together use every core, the ceiling is this machine's CPU, not the
database's locks or the workers' concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

from durably import Workflows
from durably.crypto import new_key

MODULE = """
import os
from durably import Workflows

wf = Workflows(world=os.environ["DURABLY_WORLD"], worker=False)


@wf.step
async def noop(i: int) -> int:
    return i


@wf.workflow
async def job(n: int) -> int:
    total = 0
    for i in range(n):
        total += await noop(i)
    return total
"""


def starter(url: str) -> Workflows:
    """A registry that only starts runs (the workers execute them)."""
    wf = Workflows(world=url, worker=False)

    @wf.step
    async def noop(i: int) -> int:
        return i

    @wf.workflow
    async def job(n: int) -> int:
        total = 0
        for i in range(n):
            total += await noop(i)
        return total

    return wf


async def drop_schema(base: str, schema: str) -> None:
    conn = await asyncpg.connect(base)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / tick


def postgres_pids() -> list[int]:
    """The PostgreSQL server's processes on this machine."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() in ("postgres", "postmaster"):
                    out.append(int(entry.name))
    return out


async def measure(
    base: str, workers: int, runs: int, steps: int, folder: Path
) -> tuple[float, dict[str, float]]:
    """Steps per second for one worker count, and where the CPU went."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    url = f"{base}?schema={schema}"
    # An outer PYTHONPATH stays (a copy of an earlier tree, to compare before and after).
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "DURABLY_WORLD": url, "PYTHONPATH": path}
    wf = starter(url)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        await wf.open()  # creates the schema before the workers start
        for i in range(workers):
            out = open(folder / f"w{workers}-{i}.out", "wb")  # noqa: SIM115
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "durably", "worker", "pgflow:wf", "--concurrency", "32"],
                    cwd=folder,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
        for i in range(workers):
            out = folder / f"w{workers}-{i}.out"
            while b"serving" not in (out.read_bytes() if out.exists() else b""):
                if procs[i].poll() is not None:
                    raise RuntimeError(f"worker {i} exited: {out.read_text()}")
                await asyncio.sleep(0.05)
        warm = await wf.start("job", 2)
        await warm.return_value(timeout=60)
        pids = [p.pid for p in procs]
        server = postgres_pids()
        cpu_w, cpu_s, cpu_me = cpu_seconds(pids), cpu_seconds(server), time.process_time()
        t0 = time.perf_counter()
        started = [await wf.start("job", steps) for _ in range(runs)]
        results = await asyncio.gather(*[r.return_value(timeout=600) for r in started])
        dt = time.perf_counter() - t0
        cpu_w = cpu_seconds(pids) - cpu_w
        cpu_s = cpu_seconds(server) - cpu_s
        cpu_me = time.process_time() - cpu_me
        assert results == [steps * (steps - 1) // 2] * runs
        n = runs * steps
        cores = os.cpu_count() or 1
        return n / dt, {
            "worker_us_per_step": cpu_w * 1e6 / n,
            "server_us_per_step": cpu_s * 1e6 / n,
            "starter_us_per_step": cpu_me * 1e6 / n,
            "busy_share": (cpu_w + cpu_s + cpu_me) / (dt * cores),
        }
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=30)
        await wf.aclose()
        await drop_schema(base, schema)


async def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument("--workers", default="1,2,4")
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--steps", type=int, default=10)
    a = p.parse_args()
    os.environ.setdefault("DURABLY_ENCRYPTION_KEY", new_key("bench"))
    folder = Path(tempfile.mkdtemp(prefix="durably-pg-workers-"))
    (folder / "pgflow.py").write_text(MODULE)
    print(f"{a.runs} runs x {a.steps} steps on {a.url} ({os.cpu_count()} CPUs)")
    print(
        f"{'workers':>8} {'steps/s':>10} {'worker CPU':>11} {'server CPU':>11}"
        f" {'starter CPU':>12} {'cores busy':>11}"
    )
    print(f"{'':>8} {'':>10} {'us/step':>11} {'us/step':>11} {'us/step':>12}")
    for n in (int(x) for x in a.workers.split(",")):
        rate, cpu = await measure(a.url, n, a.runs, a.steps, folder)
        print(
            f"{n:>8} {rate:>10.0f} {cpu['worker_us_per_step']:>11.0f}"
            f" {cpu['server_us_per_step']:>11.0f} {cpu['starter_us_per_step']:>12.0f}"
            f" {cpu['busy_share']:>10.0%}",
            flush=True,
        )


if __name__ == "__main__":
    asyncio.run(main())
