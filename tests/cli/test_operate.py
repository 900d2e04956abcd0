"""``durably start``, ``wake``, ``cancel`` (bulk), ``fork`` and ``prune`` through click's
CliRunner, with the runs executed by a worker of the same registry in the test."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from durably.cli import cli
from durably.run import Run
from tests.cli import ops_app

APP = "tests.cli.ops_app:wf"


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/ops.db"


def invoke(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def ok_json(*args: str) -> Any:
    res = invoke(*args, "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def serve(url: str, fn: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``fn`` while a worker of the app's registry serves ``url``."""
    wf = ops_app.wf
    wf.world_url = url
    wf._world = None

    async def go() -> Any:
        wf.embedded_worker = True
        try:
            await wf.open()
            return await fn()
        finally:
            wf.embedded_worker = False
            await wf.aclose()
            wf._world = None

    return asyncio.run(go())


def run(run_id: str) -> Run:
    return Run(ops_app.wf, run_id)


def test_start_with_kwargs_positional_args_and_attributes(url: str) -> None:
    a = ok_json(
        "start", APP, "greet", "--args", '{"name": "ada"}', "--attr", "team=core", "--world", url
    )
    assert a["status"] == "pending" and a["workflow"] == "greet"
    b = invoke("start", APP, "greet", "--args", '["bob"]', "--world", url)
    assert b.exit_code == 0
    b_id = b.stdout.strip()
    same = ok_json(
        "start", APP, "greet", "--args", '["cy"]', "--idempotency-key", "k", "--world", url
    )
    again = ok_json(
        "start", APP, "greet", "--args", '["cy"]', "--idempotency-key", "k", "--world", url
    )
    assert same["run_id"] == again["run_id"]

    async def results() -> list[Any]:
        return [await run(r).return_value(timeout=30) for r in (a["run_id"], b_id)] + [
            await run(a["run_id"]).attributes()
        ]

    assert serve(url, results) == ["hello ada", "hello bob", {"team": "core"}]

    bad = invoke("start", APP, "greet", "--args", "3", "--world", url)
    assert bad.exit_code == 1 and "JSON object" in bad.output
    unknown = invoke("start", APP, "nope", "--world", url)
    assert unknown.exit_code == 1 and "no workflow named 'nope'" in unknown.output


def test_wake_fires_a_sleep_early(url: str) -> None:
    nap = ok_json("start", APP, "napper", "--world", url)["run_id"]

    async def until_sleeping() -> None:
        for _ in range(3000):
            if (await run(nap).waiting()).kind == "sleep":
                return
            await asyncio.sleep(0.01)
        raise AssertionError("never slept")

    serve(url, until_sleeping)
    assert ok_json("wake", nap, "--world", url) == {"run_id": nap, "timers_fired": 1}
    assert serve(url, lambda: run(nap).return_value(timeout=30)) == "rested"
    assert ok_json("wake", nap, "--world", url)["timers_fired"] == 0


def test_cancel_by_filter_counts_and_confirms(url: str) -> None:
    naps = [ok_json("start", APP, "napper", "--world", url)["run_id"] for _ in range(3)]
    other = ok_json("start", APP, "greet", "--args", '["x"]', "--world", url)["run_id"]
    declined = invoke(
        "cancel", "--status", "pending", "--workflow", "napper", "--world", url, input="n\n"
    )
    assert declined.exit_code == 1 and "cancel 3 run(s)" in declined.output
    confirmed = invoke(
        "cancel", "--status", "pending", "--workflow", "napper", "--world", url, input="y\n"
    )
    assert confirmed.exit_code == 0 and "3 run(s) cancelled" in confirmed.output
    again = ok_json("cancel", "--workflow", "napper", "--world", url, "--yes")
    assert again["matched"] == 3  # asked again: the log records one request per run
    both = invoke("cancel", other, "--status", "pending", "--world", url)
    assert both.exit_code == 1

    async def statuses() -> list[str]:
        return [(await run(r).wait(timeout=30)).status for r in [*naps, other]]

    assert serve(url, statuses) == ["cancelled"] * 3 + ["completed"]
    ended = ok_json("cancel", naps[0], "--world", url)
    assert ended["already_ended"] == {naps[0]: "cancelled"}


def test_fork_reuses_steps_and_prune_deletes_ended_runs(url: str) -> None:
    ops_app.ran.clear()
    ops_app.broken["flaky"] = True
    src = ok_json("start", APP, "shout", "--args", '["ada"]', "--world", url)["run_id"]
    assert serve(url, lambda: run(src).wait(timeout=30)).status == "failed"
    assert ops_app.ran == ["hello ada", "flaky"]

    ops_app.broken["flaky"] = False
    bad = invoke("fork", src, "--from-step", "9", "--world", url)
    assert bad.exit_code == 1 and "between 0 and 2" in bad.output
    forked = ok_json("fork", src, "--from-step", "1", "--world", url)
    assert forked["fork_of"] == src and forked["deployment"] == "default"
    assert serve(url, lambda: run(forked["run_id"]).return_value(timeout=30)) == "HELLO ADA"
    assert ops_app.ran == ["hello ada", "flaky", "flaky"]  # hello was reused

    live = ok_json("start", APP, "napper", "--world", url)["run_id"]
    assert ok_json("prune", "--older-than", "30d", "--world", url, "--yes") == {"deleted": 0}
    declined = invoke("prune", "--older-than", "0s", "--world", url, input="n\n")
    assert declined.exit_code == 1 and "delete 2 run(s)" in declined.output
    assert ok_json(
        "prune", "--older-than", "0s", "--status", "completed", "--world", url, "--yes"
    ) == {"deleted": 1}
    assert ok_json("prune", "--older-than", "0", "--world", url, "--yes") == {"deleted": 1}
    left = ok_json("inspect", "runs", "--world", url)
    assert [r["run_id"] for r in left] == [live]


def test_inspect_streams_with_a_negative_start_index(url: str) -> None:
    rid = ok_json("start", APP, "streamer", "--args", "[5]", "--world", url)["run_id"]
    assert serve(url, lambda: run(rid).return_value(timeout=30)) == 5
    res = invoke("inspect", "streams", rid, "--start-index", "-2", "--decrypt", "--world", url)
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [(c["index"], c["value"]) for c in lines] == [(3, 3), (4, 4)]
