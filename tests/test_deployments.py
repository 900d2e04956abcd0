"""Runs pinned to deployments: old runs finish on old code, new runs take new code."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from durably import Workflows, sleep

MODULE = """
import os
from durably import Workflows, sleep

wf = Workflows(world=os.environ["DURABLY_WORLD"], worker=bool(os.environ.get("EMBED")))
VERSION = os.environ["DURABLY_DEPLOYMENT"]


@wf.step
async def which() -> str:
    return VERSION


@wf.workflow
async def job() -> str:
    await sleep("100ms")
    return await which()
"""


def _worker(tmp_path: Path, version: str, url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DURABLY_WORLD": url,
        "DURABLY_DEPLOYMENT": version,
        "PYTHONPATH": str(tmp_path),
    }
    env.pop("EMBED", None)
    return subprocess.Popen(
        [sys.executable, "-m", "durably", "worker", "depmod:wf"],
        cwd=tmp_path,
        env=env,
        stdout=open(tmp_path / f"{version}.out", "wb"),
        stderr=subprocess.STDOUT,
    )


async def _ready(tmp_path: Path, version: str) -> None:
    end = time.monotonic() + 30
    while time.monotonic() < end:
        out = tmp_path / f"{version}.out"
        if out.exists() and b"serving" in out.read_bytes():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"worker {version} never started")


async def _announced(wf: Workflows, version: str) -> None:
    world = await wf.open()
    for _ in range(600):
        if any(d.name == version and d.first_seen for d in await world.list_deployments()):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"deployment {version} never announced itself")


def _starter(url: str) -> Workflows:
    wf = Workflows(world=url, worker=False)

    @wf.workflow
    async def job() -> str:  # the same name; this process only starts runs
        await sleep("100ms")
        return "never run here"

    return wf


async def test_two_worker_processes_each_run_their_own_deployment(tmp_path: Path) -> None:
    (tmp_path / "depmod.py").write_text(MODULE)
    url = f"sqlite:///{tmp_path / 'd.db'}"
    starter = _starter(url)
    v1 = _worker(tmp_path, "v1", url)
    v2: subprocess.Popen[bytes] | None = None
    try:
        await _ready(tmp_path, "v1")
        await _announced(starter, "v1")
        v2 = _worker(tmp_path, "v2", url)  # a later release
        await _ready(tmp_path, "v2")
        await _announced(starter, "v2")
        runs = [await starter.start("job", deployment=d) for d in ("v1", "v2", "v1", "v2", "v2")]
        results = [await r.return_value(timeout=60) for r in runs]
        assert results == ["v1", "v2", "v1", "v2", "v2"]
        latest = await starter.start("job", deployment="latest")
        assert (await latest.record()).deployment == "v2"  # v2's worker announced itself last
        assert await latest.return_value(timeout=60) == "v2"
    finally:
        procs = [p for p in (v1, v2) if p is not None]
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=30)
        await starter.aclose()


async def test_stranded_runs_are_flagged_and_can_be_moved(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    starter = _starter(url)
    try:
        run = await starter.start("job", deployment="gone")  # no worker will ever serve it
        await asyncio.sleep(0.05)
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "durably",
                "inspect",
                "deployments",
                "--world",
                url,
                "--stale-after",
                "0",
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        rows = {d["deployment"]: d for d in json.loads(out.stdout)}
        assert rows["gone"]["in_flight"] == 1 and rows["gone"]["stranded"] is True
        moved = subprocess.run(
            [
                sys.executable,
                "-m",
                "durably",
                "runs",
                "move",
                "--from",
                "gone",
                "--to",
                "v9",
                "--world",
                url,
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        assert json.loads(moved.stdout)["moved"] == 1
        assert (await run.record()).deployment == "v9"
        executor = Workflows(world=url, deployment="v9")

        @executor.workflow
        async def job() -> str:
            await sleep("100ms")
            return "finished on v9"

        try:
            assert await (await executor.get_run(run.run_id)).return_value(timeout=30) == (
                "finished on v9"
            )
        finally:
            await executor.aclose()
    finally:
        await starter.aclose()


async def test_a_worker_ignores_other_deployments(tmp_path: Path) -> None:
    url = f"memory://{tmp_path.name}"
    ran: list[str] = []
    a = Workflows(world=url, deployment="a")
    b = Workflows(world=url, deployment="b", worker=False)

    @a.workflow
    async def job() -> str:
        ran.append("a")
        return "a"

    try:
        await a.open()
        mine = await a.start("job")
        other = await a.start("job", deployment="b")
        assert await mine.return_value(timeout=30) == "a"
        await asyncio.sleep(0.3)
        assert await other.status() == "pending" and ran == ["a"]
    finally:
        await a.aclose()
        await b.aclose()
