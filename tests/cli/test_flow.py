"""`durably inspect schedules` and `durably inspect rates` (text and --json)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path

from click.testing import CliRunner

from durably import Workflows, start
from durably.cli import cli


async def _schedule_and_limit(url: str) -> tuple[str, float]:
    async with Workflows(world=url, encryption_key=False) as wf:

        @wf.workflow(name="nightly", schedule="0 3 * * *", timezone="Europe/Paris")
        async def nightly(tick: datetime) -> None: ...

        @wf.step(rate_limit="openai:60/min")
        async def ask() -> int:
            return 1

        @wf.workflow
        async def agent() -> int:
            return await ask()

        await wf.open()
        assert wf.worker is not None
        driver = wf.worker.schedules
        base = 1_800_000_000.0  # 2027-01-15 08:00 UTC
        driver.clock = lambda: base
        await driver.run_once()
        driver.clock = lambda: base + 86_400.0  # a day later: the 03:00 tick has passed
        await driver.run_once()
        run = await start(agent)
        assert await run.return_value() == 1
        return run.run_id, base


def test_inspect_schedules_shows_the_next_tick_and_the_last_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/w.db"
    asyncio.run(_schedule_and_limit(url))
    out = CliRunner().invoke(cli, ["inspect", "schedules", "--world", url, "--json"])
    assert out.exit_code == 0, out.output
    (row,) = json.loads(out.output)
    assert (row["workflow"], row["cron"], row["timezone"]) == (
        "nightly",
        "0 3 * * *",
        "Europe/Paris",
    )
    assert row["last_tick_local"] == "2027-01-16T03:00:00+01:00"
    assert row["next_tick_local"] == "2027-01-17T03:00:00+01:00"
    assert row["last_run_id"] and row["last_run_status"] in ("pending", "running", "completed")
    text = CliRunner().invoke(cli, ["inspect", "schedules", "--world", url])
    assert text.exit_code == 0 and "nightly" in text.output and "0 3 * * *" in text.output


def test_inspect_rates_lists_limiters(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/w.db"
    asyncio.run(_schedule_and_limit(url))
    out = CliRunner().invoke(cli, ["inspect", "rates", "--world", url, "--json"])
    assert out.exit_code == 0, out.output
    (limiter,) = json.loads(out.output)
    assert limiter["name"] == "openai" and limiter["recent_starts"] == 1


def test_no_schedules_says_how_one_is_registered(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/w.db"

    async def empty() -> None:
        async with Workflows(world=url, encryption_key=False, worker=False):
            pass

    asyncio.run(empty())
    out = CliRunner().invoke(cli, ["inspect", "schedules", "--world", url])
    assert out.exit_code == 0 and "@wf.workflow(schedule=...)" in out.output
