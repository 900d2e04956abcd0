"""Faults with real processes: the database restarts under running workers, and a
worker is SIGKILLed in the middle of a batch while others share the database.

Steps append ``start``/``end`` lines (with the run, the step and the worker's pid) to a
file, as tests/test_crash.py does, so the tests can tell which bodies ran twice.
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

import asyncpg
import pytest

from durably.events import EventType
from durably.worlds.postgres import parse_postgres_url

from . import support as pg

MODULE = """
import asyncio, os
from durably import Workflows, get_step_metadata, sleep

wf = Workflows(world=os.environ["DURABLY_WORLD"], worker=False)
LOG = os.environ["FAULT_LOG"]
STEP_SECONDS = float(os.environ.get("FAULT_STEP_SECONDS", "0.05"))


def note(line: str) -> None:
    with open(LOG, "a") as f:
        f.write(line + "\\n")


@wf.step(retry_after=0.05)
async def work(i: int) -> int:
    meta = get_step_metadata()
    note(f"start {meta.run_id} {i} {os.getpid()}")
    await asyncio.sleep(STEP_SECONDS)
    note(f"end {meta.run_id} {i} {os.getpid()}")
    return i


@wf.workflow
async def job(n: int) -> int:
    total = 0
    for i in range(n):
        total += await work(i)
        if i == n // 2:
            await sleep(0.05)
    return total
"""


class Fleet:
    """`durably worker` processes on one world, and a registry here that starts runs."""

    def __init__(self, tmp_path: Path, url: str, **env: str) -> None:
        self.dir = tmp_path
        self.log = tmp_path / "steps.log"
        self.log.touch()
        (tmp_path / "faultmod.py").write_text(MODULE)
        self.env = {
            **os.environ,
            "DURABLY_WORLD": url,
            "DURABLY_ENCRYPTION_KEY": pg.TEST_KEY,
            "FAULT_LOG": str(self.log),
            "PYTHONPATH": str(tmp_path),
            **env,
        }
        self.procs: list[subprocess.Popen[bytes]] = []
        self._saved = dict(os.environ)

    def module(self) -> ModuleType:
        keys = ("DURABLY_WORLD", "DURABLY_ENCRYPTION_KEY", "FAULT_LOG")
        os.environ.update({k: self.env[k] for k in keys})
        spec = importlib.util.spec_from_file_location(
            f"faultmod_{id(self)}", self.dir / "faultmod.py"
        )
        assert spec and spec.loader
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    def worker(self, name: str, **env: str) -> subprocess.Popen[bytes]:
        out = open(self.dir / f"{name}.out", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "durably", "worker", "faultmod:wf", "--concurrency", "8"],
            cwd=self.dir,
            env={**self.env, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    async def ready(self, name: str, timeout: float = 30) -> None:
        out = self.dir / f"{name}.out"
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if out.exists() and b"serving" in out.read_bytes():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"worker {name} never started: {out.read_bytes()!r}")

    def lines(self) -> list[list[str]]:
        return [line.split() for line in self.log.read_text().splitlines()]

    async def wait_for_starts(self, pid: int, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(w[0] == "start" and w[3] == str(pid) for w in self.lines()):
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"no step started in worker {pid}: {self.log.read_text()!r}")

    async def wait_for_ends(self, n: int, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if sum(1 for w in self.lines() if w[0] == "end") >= n:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"fewer than {n} steps ended: {self.log.read_text()!r}")

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        os.environ.clear()
        os.environ.update(self._saved)


@pytest.fixture
def fleet_dir(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "fleet").mkdir()
    yield tmp_path / "fleet"


async def _check_logs(mod: ModuleType, runs: list[object], steps: int) -> None:
    """Every run's log is dense and records each step's completion exactly once."""
    for run in runs:
        events = await run.events()  # type: ignore[attr-defined]
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        done = collections.Counter(e.call for e in events if e.type is EventType.STEP_COMPLETED)
        assert len(done) == steps and set(done.values()) == {1}, done


async def test_workers_ride_out_a_database_restart(cluster: pg.Cluster, fleet_dir: Path) -> None:
    url = cluster.url + "?schema=faults"
    fleet = Fleet(fleet_dir, url, DURABLY_LEASE_SECONDS="3", FAULT_STEP_SECONDS="0.05")
    mod = fleet.module()
    try:
        await mod.wf.open()  # creates the schema before the workers race for it
        for name in ("a", "b"):
            fleet.worker(name)
        for name in ("a", "b"):
            await fleet.ready(name)
        runs = [await mod.wf.start("job", 6) for _ in range(16)]
        await fleet.wait_for_ends(20)
        # Restart under load: every connection (pools, listeners) is cut.
        await asyncio.to_thread(cluster.restart)
        more = [await mod.wf.start("job", 6) for _ in range(4)]  # started after it
        results = await asyncio.wait_for(
            asyncio.gather(*[r.return_value(timeout=90) for r in runs + more]), 120
        )
        assert results == [15] * 20
        await _check_logs(mod, runs + more, 6)
        # Nothing lost: every step of every run ended at least once.
        ends = {(w[1], w[2]) for w in fleet.lines() if w[0] == "end"}
        assert len(ends) == 20 * 6
    finally:
        fleet.stop()
        await mod.wf.aclose()
    for p in fleet.procs:
        assert p.returncode == 0, (fleet.dir / "a.out").read_text()


async def test_sigkill_one_of_three_workers_mid_batch(pg_url: str, fleet_dir: Path) -> None:
    # Leases far longer than the test: no live worker loses its work to a late heartbeat,
    # however loaded the machine, so a step runs twice only because its worker was
    # killed. The victim's steps never end on their own, so the kill surely lands in
    # the middle of them; its leases are then expired by hand (the time passing that a
    # dead worker's leases need) rather than waited for.
    fleet = Fleet(fleet_dir, pg_url, DURABLY_LEASE_SECONDS="600", FAULT_STEP_SECONDS="0.15")
    mod = fleet.module()
    try:
        await mod.wf.open()
        victim = fleet.worker("a", FAULT_STEP_SECONDS="3600")
        await fleet.ready("a")
        runs = [await mod.wf.start("job", 5) for _ in range(30)]
        await fleet.wait_for_starts(victim.pid)  # alone, it takes work first
        for name in ("b", "c"):
            fleet.worker(name)
        for name in ("b", "c"):
            await fleet.ready(name)
        await fleet.wait_for_ends(40)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        schema = parse_postgres_url(pg_url).schema
        conn = await asyncpg.connect(pg.PG_URL)
        try:
            # What the database had recorded at the kill: completed steps never run again.
            rows = await conn.fetch(
                f'SELECT run_id, call FROM "{schema}".steps'
                " WHERE kind = 'step' AND status = 'completed'"
            )
            dead = f"%:{victim.pid}:%"
            for table in ("runs", "tasks"):
                await conn.execute(
                    f'UPDATE "{schema}".{table} SET lease_until = 0 WHERE lease_owner LIKE $1',
                    dead,
                )
        finally:
            await conn.close()
        recorded = {(r[0], str(r[1])) for r in rows}
        results = await asyncio.wait_for(
            asyncio.gather(*[r.return_value(timeout=60) for r in runs]), 90
        )
        assert results == [10] * 30
        await _check_logs(mod, runs, 5)
    finally:
        fleet.stop()
        await mod.wf.aclose()
    starts = collections.Counter((w[1], w[2]) for w in fleet.lines() if w[0] == "start")
    killed = {(w[1], w[2]) for w in fleet.lines() if w[0] == "start" and w[3] == str(victim.pid)}
    twice = {k for k, n in starts.items() if n > 1}
    assert killed, "the victim ran no step"
    assert not killed & recorded, "a step of the victim ended, which it never does"
    assert len(starts) == 30 * 5
    assert max(starts.values()) <= 2
    # Exactly the steps in flight in the killed worker ran twice: each once more.
    assert twice == killed, (twice, killed)
