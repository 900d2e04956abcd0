"""Histories recorded by earlier versions replay unchanged under this one.

Each file under tests/fixtures/histories/ is the full event log of an ended run, one per
scenario (``<scenario>-<version>.json``, written by ``python -m tests.fixtures.make_histories``;
``golden-0.1.0.json`` is the first, kept byte for byte). They are replayed with the tool
users keep their own exported histories with, :func:`durably.testing.replay` (the same as
``durably replay FILE MODULE:ATTR``): every recorded command must match a call the body
makes, no step body runs (every result comes from the log), and the body must end as
recorded: the same result, the same error, or cancelled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from durably import NonDeterminismError, Workflows
from durably.testing import load_history, replay
from tests.fixtures.golden_workflows import STEP_BODIES_RUN, register
from tests.fixtures.make_histories import HISTORIES as HISTORY_DIR
from tests.fixtures.make_histories import SCENARIOS

HISTORIES = sorted(HISTORY_DIR.glob("*.json"))


def _registry() -> Workflows:
    wf = Workflows(world="memory://", worker=False)
    register(wf)
    return wf


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays(path: Path) -> None:
    bodies_before = STEP_BODIES_RUN[0]
    report = await replay(path, _registry())  # raises NonDeterminismError on a divergence
    assert report.ok and report.calls > 0
    assert STEP_BODIES_RUN[0] == bodies_before, "a replay ran a step body"
    doc = json.loads(path.read_text())
    status = doc.get("status", "completed")  # golden-0.1.0.json predates the key
    assert load_history(path).events[-1].type.value == f"run_{status}"


async def test_a_changed_result_is_a_divergence_at_the_end() -> None:
    doc = json.loads((HISTORY_DIR / "sequential-0.1.0.json").read_text())
    end = doc["events"][-1]
    assert end["type"] == "run_completed"
    end["payload"] = "OTk5"  # base64 of 999: not what the code returns
    with pytest.raises(
        NonDeterminismError, match="ends differently: the log records the result 999"
    ):
        await replay(doc, _registry())


async def test_a_reordered_history_is_caught() -> None:
    doc = json.loads((HISTORY_DIR / "golden-0.1.0.json").read_text())
    created = [e for e in doc["events"] if e["type"] == "step_created"]
    names = [e["data"]["name"] for e in created]
    # The first two step calls of distinct names, swapped in the log.
    i = next(i for i in range(1, len(created)) if names[i] != names[0])
    created[0]["data"]["name"], created[i]["data"]["name"] = names[i], names[0]
    with pytest.raises(NonDeterminismError, match=r"diverged at step 0: the log has step "):
        await replay(doc, _registry())


def test_the_first_history_is_kept() -> None:
    assert (HISTORY_DIR / "golden-0.1.0.json").exists()


@pytest.mark.parametrize("name", [s.name for s in SCENARIOS])
def test_every_scenario_has_a_history(name: str) -> None:
    assert any(p.stem.startswith(f"{name}-") for p in HISTORIES), (
        f"no history for scenario {name!r}: python -m tests.fixtures.make_histories"
    )


def test_the_replay_command_replays_every_history() -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "durably",
            "replay",
            str(HISTORY_DIR),
            "tests.fixtures.golden_registry:wf",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("ok: ") == len(HISTORIES)
