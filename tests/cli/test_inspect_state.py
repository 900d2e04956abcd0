"""``inspect run`` / ``inspect runs``: what a run waits for, why it failed (and, with
--decrypt, the message and traceback, audited), why it was cancelled."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import durably
from durably import Workflows
from tests.cli.test_cli import durably as cli


async def _cli(*args: str, cwd: Path) -> Any:
    # In a thread: the run's step is held by this process's event loop meanwhile.
    out = await asyncio.to_thread(cli, *args, cwd=cwd)
    assert out.returncode == 0, out.stderr
    return out


async def _until(run: durably.Run, kind: str) -> None:
    for _ in range(1500):
        if (await run.waiting()).kind == kind:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"run never waited for {kind}")


async def test_inspect_shows_waiting_failures_and_cancel_reasons(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / '.durably' / 'durably.db'}"
    wf = Workflows(world=url)
    idle = Workflows(world=url, worker=False, deployment="v-nobody-runs")
    gate = asyncio.Event()

    @wf.step
    async def fetch() -> dict:  # type: ignore[type-arg]
        return None  # type: ignore[return-value]  # the quick start's mistake

    @wf.step
    async def hold() -> None:
        await gate.wait()

    @wf.workflow
    async def broken() -> None:
        await fetch()

    @wf.workflow
    async def napper() -> None:
        await durably.sleep("1d")

    @wf.workflow
    async def holder() -> None:
        await hold()

    @idle.workflow
    async def orphan() -> None:
        pass

    try:
        failed = await wf.start(broken)
        await failed.wait(timeout=30)
        sleeping = await wf.start(napper)
        cancelled = await wf.start(napper)
        await _until(cancelled, "sleep")
        await cancelled.cancel("no longer needed")
        await cancelled.wait(timeout=30)
        running = await wf.start(holder)
        await _until(running, "step")
        waiting = await idle.start(orphan)
        await _until(sleeping, "sleep")

        runs = json.loads((await _cli("inspect", "runs", "--json", cwd=tmp_path)).stdout)
        by_id = {r["run_id"]: r for r in runs}
        assert by_id[sleeping.run_id]["waiting"]["kind"] == "sleep"
        assert by_id[running.run_id]["waiting"]["kind"] == "step"
        assert by_id[waiting.run_id]["waiting"]["kind"] == "worker"
        assert by_id[failed.run_id]["failing_step"]["name"] == "fetch"
        assert by_id[failed.run_id]["waiting"] is None

        table = (await _cli("inspect", "runs", cwd=tmp_path)).stdout
        assert "waiting for / error" in table
        assert "SerializationError in 'fetch'" in table and "step 'hold'" in table

        one = (await _cli("inspect", "run", running.run_id, cwd=tmp_path)).stdout
        assert "waiting   for step 'hold' (attempt 1) on " in one
        assert "lease until" in one  # in the step's detail too
        doc = json.loads(
            (await _cli("inspect", "run", running.run_id, "--json", cwd=tmp_path)).stdout
        )
        assert doc["waiting"]["kind"] == "step" and doc["waiting"]["worker"]
        assert doc["steps"][0]["worker"] == doc["waiting"]["worker"]
        assert doc["steps"][0]["lease_until"] == doc["waiting"]["until"]

        slept = (await _cli("inspect", "run", sleeping.run_id, cwd=tmp_path)).stdout
        assert "waiting   for sleep until " in slept

        orphaned = (await _cli("inspect", "run", waiting.run_id, cwd=tmp_path)).stdout
        assert "waiting   for a worker to take its start" in orphaned

        stopped = (await _cli("inspect", "run", cancelled.run_id, cwd=tmp_path)).stdout
        assert "status    cancelled: no longer needed" in stopped
        doc = json.loads(
            (await _cli("inspect", "run", cancelled.run_id, "--json", cwd=tmp_path)).stdout
        )
        assert doc["cancel_reason"] == "no longer needed"

        # Failed: type and step in plaintext; message and traceback only with --decrypt.
        plain = (await _cli("inspect", "run", failed.run_id, cwd=tmp_path)).stdout
        assert "failed (SerializationError in step 'fetch', #0)" in plain
        assert "does not match" not in plain and "--decrypt" in plain
        before = len(await failed.events())
        shown = (await _cli("inspect", "run", failed.run_id, "--decrypt", cwd=tmp_path)).stdout
        assert "error     SerializationError: the return value of step 'fetch'" in shown
        assert "Traceback (most recent call last)" in shown
        events = await failed.events()
        assert len(events) == before + 1
        audit = events[-1]
        assert audit.type == "data_decrypted" and audit.data["via"] == "cli"
        end = next(e for e in events if e.type == "run_failed")
        assert audit.data["seqs"] == [end.seq]
        doc = json.loads(
            (
                await _cli("inspect", "run", failed.run_id, "--decrypt", "--json", cwd=tmp_path)
            ).stdout
        )
        assert doc["error"]["type"] == "SerializationError"
        assert "Input should be a valid dictionary" in doc["error"]["message"]
        assert "Traceback" in doc["error"]["traceback"]
    finally:
        gate.set()
        await wf.aclose()
        await idle.aclose()


async def test_streams_without_their_namespace_name_the_runs_streams(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / '.durably' / 'durably.db'}"
    wf = Workflows(world=url)

    @wf.step
    async def write_ui() -> None:
        ui = durably.get_writable("ui")
        for part in ("a", "b", "c"):
            await ui.write(part)

    @wf.workflow
    async def chatty() -> None:
        await write_ui()

    @wf.workflow
    async def silent() -> None:
        pass

    try:
        run = await wf.start(chatty)
        await run.wait(timeout=30)
        quiet = await wf.start(silent)
        await quiet.wait(timeout=30)
    finally:
        await wf.aclose()
    for args in (("--follow",), ("--from", "0"), ("--namespace", "UI")):
        out = await asyncio.to_thread(cli, "inspect", "streams", run.run_id, *args, cwd=tmp_path)
        assert out.returncode == 1, out
        ns = "'UI'" if "UI" in args else "'(default)'"
        assert f"run {run.run_id} has no stream {ns}; its streams: 'ui' (3 chunks)" in out.stderr
    out = await _cli(
        "inspect", "streams", run.run_id, "--namespace", "ui", "--follow", cwd=tmp_path
    )
    assert [json.loads(line)["index"] for line in out.stdout.splitlines()] == [0, 1, 2]
    out = await asyncio.to_thread(cli, "inspect", "streams", quiet.run_id, "-f", cwd=tmp_path)
    assert out.returncode == 1 and "it has no streams" in out.stderr
