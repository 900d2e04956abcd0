"""A script that only starts a run and exits must not stall it.

``asyncio.run(start(...))`` in a short script, with a separate ``durably worker`` serving
the world: the script's embedded worker begins the run in-process, and the script exits
in the middle of its first step. The leases it held are handed back when its event loop
shuts down, so the separate worker finishes the run at once, not after the lease expires.
With ``DURABLY_WORKER=0`` the script begins nothing itself.

The lease is long (60 s) so that a run stalled on a dead process's lease cannot finish
within the test's bound: finishing at all within it shows the lease was handed back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

MODULE = """
import asyncio, os
from durably import Workflows

wf = Workflows(world=os.environ["DURABLY_WORLD"])
LOG = os.environ["STARTER_LOG"]


def note(line: str) -> None:
    with open(LOG, "a") as f:
        f.write(line + "\\n")


@wf.step
async def first(x: int) -> int:
    note(f"start {os.getpid()}")
    await asyncio.sleep(1.0)
    note(f"end {os.getpid()}")
    return x + 1


@wf.workflow
async def job(x: int) -> int:
    return await first(x) * 2
"""

STARTER = """
import asyncio, os, time
from durably import start
from startmod import wf, job, LOG


async def main() -> None:
    run = await start(job, 20)
    print(run.run_id, wf.embedded_worker, os.getpid(), flush=True)
    # Wait until the first step began somewhere (here, when this process begins it),
    # so that the process exits in the middle of it.
    end = time.monotonic() + (20 if os.environ.get("STARTER_WAIT") else 0)
    while time.monotonic() < end and not open(LOG).read():
        await asyncio.sleep(0.02)


asyncio.run(main())
"""

#: Functional bound, far below the 60 s lease: a run stuck on a lease cannot finish in it.
BOUND = 25.0


class Env:
    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        self.log = tmp_path / "steps.log"
        self.log.touch()
        (tmp_path / "startmod.py").write_text(MODULE)
        (tmp_path / "starter.py").write_text(STARTER)
        self.world = f"sqlite:///{tmp_path / 'start.db'}"
        self.env = {
            **os.environ,
            "DURABLY_WORLD": self.world,
            "DURABLY_LEASE_SECONDS": "60",
            "STARTER_LOG": str(self.log),
            "PYTHONPATH": str(tmp_path),
        }
        self.env.pop("DURABLY_WORKER", None)
        self.procs: list[subprocess.Popen[bytes]] = []

    def worker(self) -> subprocess.Popen[bytes]:
        out = open(self.dir / "worker.out", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "durably", "worker", "startmod:wf"],
            cwd=self.dir,
            env={**self.env, "DURABLY_WORKER": "0"},  # `durably worker` serves anyway
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        end = time.monotonic() + 30
        while b"serving" not in (self.dir / "worker.out").read_bytes():
            assert time.monotonic() < end, (self.dir / "worker.out").read_bytes()
            time.sleep(0.05)
        return proc

    def start(self, **extra: str) -> tuple[str, str, int]:
        """Run the starter script to its end: (run id, its embedded_worker flag, pid)."""
        proc = subprocess.run(
            [sys.executable, "starter.py"],
            cwd=self.dir,
            env={**self.env, **extra},
            capture_output=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr.decode()
        run_id, flag, pid = proc.stdout.decode().split()
        return run_id, flag, int(pid)

    def result(self, run_id: str) -> tuple[str, int | None]:
        """The run's status and result once it ends (or its status at the bound)."""
        import asyncio

        from durably import Workflows

        async def poll() -> tuple[str, int | None]:
            wf = Workflows(world=self.world, worker=False)
            try:
                run = await wf.get_run(run_id)
                end = time.monotonic() + BOUND
                while time.monotonic() < end:
                    status = await run.status()
                    if status == "completed":
                        return status, await run.return_value()
                    if status in ("failed", "cancelled"):
                        return status, None
                    await asyncio.sleep(0.1)
                return await run.status(), None
            finally:
                await wf.aclose()

        return asyncio.run(poll())

    def step_pids(self) -> list[str]:
        return self.log.read_text().split()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    yield e
    for p in e.procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_a_script_that_starts_and_exits_hands_its_run_back(env: Env) -> None:
    worker = env.worker()
    run_id, flag, starter = env.start(STARTER_WAIT="1")
    assert flag == "True"
    assert env.result(run_id) == ("completed", 42)
    lines = env.log.read_text().splitlines()
    # The script began the step and exited in the middle of it; the worker ran it again.
    assert lines[0] == f"start {starter}", lines
    assert f"end {worker.pid}" in lines and f"end {starter}" not in lines, lines


def test_a_script_that_exits_right_after_start_hands_its_run_back(env: Env) -> None:
    worker = env.worker()
    run_id, _, _ = env.start()
    assert env.result(run_id) == ("completed", 42)
    assert f"end {worker.pid}" in env.log.read_text().splitlines()


def test_durably_worker_0_begins_nothing_in_process(env: Env) -> None:
    worker = env.worker()
    run_id, flag, _ = env.start(DURABLY_WORKER="0", STARTER_WAIT="1")
    assert flag == "False"
    assert env.result(run_id) == ("completed", 42)
    assert env.log.read_text().splitlines() == [f"start {worker.pid}", f"end {worker.pid}"]
