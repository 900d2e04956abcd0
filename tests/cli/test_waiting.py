"""`durably inspect run` shows work that no worker claimed: what it is, since when, and
what a worker needs to take it (a worker claims only its own workflows and steps)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from durably import Workflows
from durably.cli import cli
from durably.cli import waiting as waiting_module
from durably.cli.waiting import WAITING_AFTER, waiting_for_worker
from durably.events import EventType as E
from durably.events import NewEvent
from durably.worlds import World, open_world
from durably.worlds.base import Commit, RunMeta, RunWrite


async def _run(world: World, run_id: str, *commands: NewEvent) -> None:
    """A run of workflow "wb" whose first turn recorded ``commands`` (none claimed)."""
    create = RunWrite(
        run_id,
        create=RunMeta("wb", "ns", "dep"),
        facts=[NewEvent(E.RUN_CREATED, None, {})],
    )
    await world.commit(Commit([create]))
    if commands:
        turn = RunWrite(
            run_id,
            facts=[NewEvent(E.RUN_STARTED, None, {})],
            expected_seq=1,
            commands=list(commands),
        )
        assert (await world.commit(Commit([turn]))).results[0].ok


async def _waiting(world: World, run_id: str, now: float) -> dict[str, object] | None:
    rec = await world.get_run(run_id)
    assert rec is not None
    return await waiting_for_worker(world, rec, await world.list_steps(run_id), now)


async def test_the_oldest_unclaimed_work_shows_with_what_it_needs() -> None:
    world = open_world("memory://")
    await world.open()
    t0 = time.time()
    later = t0 + 3600

    await _run(world, "never-started")
    got = await _waiting(world, "never-started", t0 + WAITING_AFTER + 1)
    assert got is not None
    assert (got["kind"], got["name"], got["needs"]) == ("run", "wb", "workflow 'wb'")
    assert got["worker_last_seen"] is None
    # Due only just now: a worker may be about to claim it.
    assert await _waiting(world, "never-started", t0) is None

    await _run(
        world,
        "step-due",
        NewEvent(E.WAIT_CREATED, 0, {"due_at": later, "name": "nap"}),
        NewEvent(E.STEP_CREATED, 1, {"name": "sb"}),
    )
    await world.touch_deployment("ns", "dep")
    got = await _waiting(world, "step-due", t0 + WAITING_AFTER + 60)
    assert got is not None
    assert (got["kind"], got["name"], got["call"]) == ("step", "sb", 1)
    assert got["needs"] == "step 'sb' or workflow 'wb'"
    assert got["worker_last_seen"] is not None
    # A timer shows once past its due time.
    await _run(world, "timer-due", NewEvent(E.WAIT_CREATED, 0, {"due_at": later, "name": "nap"}))
    assert await _waiting(world, "timer-due", later) is None
    got = await _waiting(world, "timer-due", later + WAITING_AFTER + 1)
    assert got is not None
    assert (got["kind"], got["name"], got["needs"]) == ("timer", "nap", "workflow 'wb'")

    # A claimed step is not waiting for a worker.
    claim = await world.claim(
        owner="w", namespace="ns", deployment="dep", max_runs=0, max_tasks=10, lease_seconds=30
    )
    assert [t.call for t in claim.tasks] == [1]
    assert await _waiting(world, "step-due", t0 + WAITING_AFTER + 60) is None


def test_inspect_run_shows_a_run_no_worker_has(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path}/two.db"
    app_a = Workflows(world=url, encryption_key=False)
    app_b = Workflows(world=url, encryption_key=False, worker=False)

    @app_a.workflow
    async def a_flow() -> str:
        return "a"

    @app_b.workflow
    async def b_flow() -> str:
        return "b"

    async def scenario() -> str:
        try:
            # A's worker is alive (its deployment announced); B has no worker running.
            assert await (await a_flow.start()).return_value(timeout=30) == "a"
            world = await app_a.open()
            for _ in range(3000):  # its first heartbeat (the run may end before it)
                if any(d.last_seen for d in await world.list_deployments("default")):
                    break
                await asyncio.sleep(0.01)
            run = await b_flow.start()
            return run.run_id
        finally:
            await app_a.aclose()
            await app_b.aclose()

    run_id = asyncio.run(scenario())
    monkeypatch.setattr(waiting_module, "WAITING_AFTER", 0.0)
    runner = CliRunner()

    out = runner.invoke(cli, ["inspect", "run", run_id, "--json", "--world", url])
    assert out.exit_code == 0, out.output
    shown = json.loads(out.output)
    assert shown["status"] == "pending"
    assert shown["waiting"]["kind"] == "worker"  # the general view: ready work nobody holds
    waiting = shown["unclaimed"]  # the detail: what a worker would need to take it
    assert (waiting["kind"], waiting["name"], waiting["needs"]) == (
        "run",
        "b_flow",
        "workflow 'b_flow'",
    )
    assert (waiting["namespace"], waiting["deployment"]) == ("default", "default")
    assert waiting["worker_last_seen"] is not None

    out = runner.invoke(cli, ["inspect", "run", run_id, "--world", url])
    assert out.exit_code == 0, out.output
    line = next(x for x in out.output.splitlines() if x.startswith("unclaimed"))
    assert "the run's first turn (workflow 'b_flow') due since" in line
    assert "waiting for a worker that has workflow 'b_flow'" in line
    assert "a worker of deployment 'default' was last seen" in line
