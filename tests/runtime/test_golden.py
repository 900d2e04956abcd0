"""Histories recorded by earlier versions replay unchanged under this one.

Each file under tests/fixtures/histories/ is the full event log of an ended run, one per
scenario (``<scenario>-<version>.json``, written by ``python -m tests.fixtures.make_histories``;
``golden-0.1.0.json`` is the first, kept byte for byte). The current runtime replays it
against the same workflow code: every recorded command must match a call the body makes,
nothing new may be issued, no step body runs (every result comes from the log), and the
body must end as recorded: the same result, the same error, or cancelled.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from durably import Workflows
from durably.events import Event, EventType
from durably.runtime.instance import RunInstance
from durably.worlds.base import RunRecord
from tests.fixtures.golden_workflows import STEP_BODIES_RUN, register
from tests.fixtures.make_histories import HISTORIES as HISTORY_DIR
from tests.fixtures.make_histories import SCENARIOS

HISTORIES = sorted(HISTORY_DIR.glob("*.json"))


def _events(doc: dict[str, Any]) -> list[Event]:
    return [
        Event(
            run_id=e["run_id"],
            seq=e["seq"],
            type=EventType(e["type"]),
            call=e["call"],
            data=e["data"],
            payload=None if e["payload"] is None else base64.b64decode(e["payload"]),
            created_at=e["created_at"],
        )
        for e in doc["events"]
    ]


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
def test_history_replays(path: Path) -> None:
    doc = json.loads(path.read_text())
    events = _events(doc)
    wf = Workflows(world="memory://", worker=False)
    register(wf)
    first = events[0]
    record = RunRecord(
        run_id=first.run_id,
        workflow_name=doc["workflow"],
        namespace="default",
        deployment="default",
        status="running",
        created_at=first.created_at,
        started_at=None,
        completed_at=None,
        last_seq=0,
    )
    inst = RunInstance(record, wf.workflows[doc["workflow"]].spec, wf.limits)
    bodies_before = STEP_BODIES_RUN[0]
    inst.index(events)
    for ev in events:
        inst.feed(ev)  # raises NonDeterminismError on any divergence
    assert inst.done
    assert inst.new_commands() == []
    assert STEP_BODIES_RUN[0] == bodies_before, "a replay ran a step body"
    task = inst.task
    assert task is not None and task.done()
    status = doc.get("status", "completed")  # golden-0.1.0.json predates the key
    if status == "completed":
        assert task.result() == doc["result"]
    elif status == "failed":
        exc = task.exception()
        assert exc is not None
        assert (type(exc).__name__, str(exc)) == (doc["error"]["type"], doc["error"]["message"])
    else:
        assert status == "cancelled"
        assert inst.cancel_requested and task.cancelled()


def test_the_first_history_is_kept() -> None:
    assert (HISTORY_DIR / "golden-0.1.0.json").exists()


@pytest.mark.parametrize("name", [s.name for s in SCENARIOS])
def test_every_scenario_has_a_history(name: str) -> None:
    assert any(p.stem.startswith(f"{name}-") for p in HISTORIES), (
        f"no history for scenario {name!r}: python -m tests.fixtures.make_histories"
    )
