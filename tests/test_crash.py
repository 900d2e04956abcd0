"""Crash recovery with real processes: `durably worker` subprocesses are SIGKILLed in the
middle of a step and in the middle of a sleep; another worker finishes the run.

Leases are short here (DURABLY_LEASE_SECONDS) so that a killed worker's work is taken
over within seconds.
"""

from __future__ import annotations

import asyncio
import collections
import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from durably import RunCancelledError

MODULE = """
import asyncio, os
from durably import Workflows, sleep

wf = Workflows(world=os.environ["DURABLY_WORLD"], worker=bool(os.environ.get("CRASH_EMBED")))
LOG = os.environ["CRASH_LOG"]
BLOCK = os.environ["CRASH_BLOCK"]


def note(line: str) -> None:
    with open(LOG, "a") as f:
        f.write(line + "\\n")


@wf.step(retry_after=0.05)
async def work(i: int) -> int:
    note(f"start {i}")
    if i == 2 and os.path.exists(BLOCK):
        await asyncio.sleep(3600)  # hangs here until the worker is killed
    note(f"end {i}")
    return i


@wf.workflow
async def job(n: int) -> int:
    total = 0
    for i in range(n):
        total += await work(i)
    return total


@wf.step
async def linger() -> None:
    note("linger start")
    try:
        await asyncio.sleep(3600)  # until its run is cancelled
    except asyncio.CancelledError:
        note("linger cancelled")
        raise


@wf.workflow
async def lingering() -> None:
    try:
        await linger()
    finally:
        await work(20)  # cleanup after the cancel runs


@wf.workflow
async def napper() -> str:
    await work(10)
    await sleep("2s")
    await work(11)
    return "rested"
"""


class Env:
    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        self.log = tmp_path / "steps.log"
        self.block = tmp_path / "block"
        self.log.touch()
        (tmp_path / "crashmod.py").write_text(MODULE)
        self.env = {
            **os.environ,
            "DURABLY_WORLD": f"sqlite:///{tmp_path / 'crash.db'}",
            "DURABLY_LEASE_SECONDS": "1.5",
            "CRASH_LOG": str(self.log),
            "CRASH_BLOCK": str(self.block),
            "PYTHONPATH": str(tmp_path),
        }
        self.procs: list[subprocess.Popen[bytes]] = []

    def module(self) -> ModuleType:
        os.environ.update({k: self.env[k] for k in ("DURABLY_WORLD", "CRASH_LOG", "CRASH_BLOCK")})
        os.environ.pop("CRASH_EMBED", None)
        spec = importlib.util.spec_from_file_location(
            f"crashmod_{id(self)}", self.dir / "crashmod.py"
        )
        assert spec and spec.loader
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    def worker(self, name: str) -> subprocess.Popen[bytes]:
        out = open(self.dir / f"{name}.out", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "durably", "worker", "crashmod:wf", "--concurrency", "4"],
            cwd=self.dir,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    async def ready(self, name: str, timeout: float = 30) -> None:
        """Wait until worker ``name`` handles signals (it says so once it serves)."""
        out = self.dir / f"{name}.out"
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if out.exists() and b"serving" in out.read_bytes():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"worker {name} never started: {out.read_bytes()!r}")

    def lines(self) -> collections.Counter[str]:
        return collections.Counter(self.log.read_text().splitlines())

    async def wait_for_line(self, line: str, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if line in self.lines():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{line!r} never appeared; log: {self.log.read_text()!r}")


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    saved = dict(os.environ)
    yield e
    for p in e.procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    os.environ.clear()
    os.environ.update(saved)


async def test_sigkill_in_the_middle_of_a_step(env: Env) -> None:
    mod = env.module()
    env.block.touch()
    first = env.worker("w1")
    run = await mod.wf.start("job", 4)
    await env.wait_for_line("start 2")
    first.send_signal(signal.SIGKILL)
    first.wait()
    env.block.unlink()
    second = env.worker("w2")
    await env.ready("w2")
    try:
        assert await run.return_value(timeout=60) == 0 + 1 + 2 + 3
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0
        await mod.wf.aclose()
    lines = env.lines()
    # Steps whose completion was recorded never ran again.
    for i in (0, 1, 3):
        assert lines[f"start {i}"] == 1 and lines[f"end {i}"] == 1, lines
    # The step in flight at the kill ran again, and finished once.
    assert lines["start 2"] == 2 and lines["end 2"] == 1, lines
    step = (await run.steps())[2]
    assert step.status == "completed" and step.attempts == 2


async def test_sigkill_in_the_middle_of_a_sleep(env: Env) -> None:
    mod = env.module()
    first = env.worker("w1")
    run = await mod.wf.start("napper")
    for _ in range(600):
        if any(s.kind == "wait" and s.status == "waiting" for s in await run.steps()):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the run never went to sleep")
    first.send_signal(signal.SIGKILL)
    first.wait()
    second = env.worker("w2")
    await env.ready("w2")
    try:
        assert await run.return_value(timeout=60) == "rested"
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
        await mod.wf.aclose()
    lines = env.lines()
    assert lines["start 10"] == 1 and lines["end 10"] == 1
    assert lines["start 11"] == 1 and lines["end 11"] == 1


async def test_two_worker_processes_share_one_sqlite_file(env: Env) -> None:
    mod = env.module()
    # Nothing is killed here, so no lease needs to expire: a long one keeps a loaded
    # machine's late heartbeat from handing a running step to the other worker.
    env.env["DURABLY_LEASE_SECONDS"] = "30"
    workers = [env.worker("a"), env.worker("b")]
    await env.ready("a")
    await env.ready("b")
    runs = [await mod.wf.start("job", 5) for _ in range(12)]
    try:
        results = await asyncio.gather(*[r.return_value(timeout=90) for r in runs])
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            assert w.wait(timeout=30) == 0
        await mod.wf.aclose()
    assert results == [10] * 12
    lines = env.lines()
    for i in range(5):
        assert lines[f"end {i}"] == 12, lines  # every step ran exactly once per run


async def test_a_cancel_from_another_process_interrupts_a_running_step(env: Env) -> None:
    mod = env.module()
    worker = env.worker("w1")
    await env.ready("w1")
    run = await mod.wf.start("lingering")
    try:
        await env.wait_for_line("linger start")
        await run.cancel(reason="from another process")
        await env.wait_for_line("linger cancelled")
        with pytest.raises(RunCancelledError):
            await run.return_value(timeout=60)
        steps = {s.name: s for s in await run.steps()}
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        await mod.wf.aclose()
    lines = env.lines()
    assert lines["linger start"] == 1 and lines["linger cancelled"] == 1, lines
    assert lines["end 20"] == 1, lines
    assert steps["linger"].status == "failed" and steps["linger"].attempts == 1
