"""``durably inspect run --follow``, ``durably inspect runs --watch``, ``durably skill``
and ``durably web``, as real subprocesses against a world a worker in this test advances."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import httpx
from rich.console import Console

from durably import Workflows, start
from durably.cli.live import render_run

DURABLY = [sys.executable, "-m", "durably"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DURABLY_WORLD", None)
    env.pop("DURABLY_WEB_TOKEN", None)
    return env


def _registry(url: str, gate: asyncio.Event | None = None) -> Workflows:
    """A three-step workflow; with ``gate``, its first step waits until the gate opens
    (so a follower that starts slowly on a loaded machine still sees the run in flight)."""
    wf = Workflows(world=url)

    @wf.step
    async def slow(i: int) -> int:
        if gate is not None and i == 0:
            await gate.wait()
        await asyncio.sleep(0.25)
        return i

    @wf.workflow
    async def three(n: int) -> int:
        total = 0
        for i in range(n):
            total += await slow(i)
        return total

    return wf


async def test_follow_json_prints_a_line_per_change_until_the_run_ends(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    gate = asyncio.Event()
    wf = _registry(url, gate)
    async with wf:
        gate.set()
        first = await start(wf.workflows["three"], 3)
        assert await first.return_value(timeout=15) == 3  # history: 3 calls
        gate.clear()
        run = await start(wf.workflows["three"], 3)
        proc = await asyncio.create_subprocess_exec(
            *DURABLY, "inspect", "run", run.run_id, "--follow", "--json", "--world", url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env(),
        )  # fmt: skip
        assert proc.stdout is not None
        head = await asyncio.wait_for(proc.stdout.readline(), 30)  # the run, in flight
        gate.set()
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    lines = [json.loads(x) for x in (head + out).decode().splitlines()]
    assert len(lines) >= 3
    assert all(line["run_id"] == run.run_id for line in lines)
    assert lines[-1]["status"] == "completed"
    done = [sum(s["status"] == "completed" for s in line["steps"]) for line in lines]
    assert done == sorted(done) and done[-1] == 3 and done[0] < 3


async def test_follow_draws_steps_and_a_progress_bar(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    wf = _registry(url)
    async with wf:
        first = await start(wf.workflows["three"], 2)
        await first.return_value(timeout=15)
        run = await start(wf.workflows["three"], 2)
        proc = await asyncio.create_subprocess_exec(
            *DURABLY, "inspect", "run", run.run_id, "--follow", "--world", url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env(),
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        world = await wf.open()
        rec = await world.get_run(run.run_id)
        steps = await world.list_steps(run.run_id)
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert run.run_id in text and "completed" in text and "slow" in text
    assert rec is not None
    console = Console(record=True, width=160)
    console.print(render_run(rec, steps, (2, first.run_id), time.time()))
    drawn = console.export_text()
    assert f"2/2 calls (as many as {first.run_id} made)" in drawn
    assert "━" in drawn  # the bar


async def test_watch_json_prints_changes_until_interrupted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    wf = _registry(url)
    async with wf:
        await (await start(wf.workflows["three"], 1)).return_value(timeout=15)
        proc = await asyncio.create_subprocess_exec(
            *DURABLY, "inspect", "runs", "--watch", "--json", "--world", url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env(),
        )  # fmt: skip
        assert proc.stdout is not None
        first = json.loads(await asyncio.wait_for(proc.stdout.readline(), 20))
        assert first["status"] == "completed"
        run = await start(wf.workflows["three"], 2)
        seen: list[dict[str, object]] = []
        until = time.monotonic() + 20
        while not any(x["run_id"] == run.run_id and x["status"] == "completed" for x in seen):
            assert time.monotonic() < until, seen
            seen.append(json.loads(await asyncio.wait_for(proc.stdout.readline(), 20)))
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 20)
    assert proc.returncode == 0
    assert all(x["run_id"] == run.run_id for x in seen)


def test_skill_is_printed(tmp_path: Path) -> None:
    import subprocess

    out = subprocess.run(
        [*DURABLY, "skill"], capture_output=True, text=True, cwd=tmp_path, env=_env(), timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("---\nname: durably\n")
    assert "durably inspect run RUN_ID --follow --json" in out.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_web_serves_the_dashboard_and_refuses_a_public_host_without_token(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'web.db'}"
    refused = await asyncio.create_subprocess_exec(
        *DURABLY, "web", "--world", url, "--host", "0.0.0.0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env(),
    )  # fmt: skip
    _, err = await asyncio.wait_for(refused.communicate(), 30)
    assert refused.returncode == 1 and "token" in err.decode()

    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        *DURABLY, "web", "--world", url, "--port", str(port), "--token", "t0k",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env(),
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            until = time.monotonic() + 20
            while True:
                try:
                    denied = await client.get("/runs")
                    break
                except httpx.TransportError:
                    assert time.monotonic() < until, "durably web did not start"
                    await asyncio.sleep(0.1)
            assert denied.status_code == 401
            page = await client.get("/runs", headers={"Authorization": "Bearer t0k"})
            assert page.status_code == 200 and "no runs match" in page.text
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 20)
