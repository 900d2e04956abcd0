"""Agent runs recorded by earlier versions replay unchanged: every recorded step (model
requests, tool calls, the approval's hook and announcement, attributes) matches a call the
body makes, no model is asked and no tool runs, and the run ends with its recorded answer.
Record a new file with ``python -m tests.ai.golden`` (see tests/ai/golden.py)."""

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

from . import golden

HISTORIES = sorted(golden.HISTORIES.glob("*.json"))


def _events(doc: dict[str, Any]) -> list[Event]:
    """The events of a history file as tests/ai/golden.py writes them."""
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


def test_there_is_a_history() -> None:
    assert HISTORIES, "python -m tests.ai.golden"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
def test_agent_history_replays(path: Path) -> None:
    doc = json.loads(path.read_text())
    events = _events(doc)
    wf = Workflows(world="memory://", worker=False)
    golden.register(wf)
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
    ran_before = list(golden.RAN)
    inst.index(events)
    for ev in events:
        inst.feed(ev)  # raises NonDeterminismError on any divergence
    assert inst.done
    assert inst.new_commands() == []
    assert ran_before == golden.RAN, "a replay asked the model or ran a tool"
    task = inst.task
    assert task is not None and task.done()
    assert task.result() == doc["result"]
    names = [e.data.get("name") for e in events if e.type == "step_created"]
    assert names == [
        "support.model",
        "support.tool.lookup_order",
        "support.model",
        "support.approval",
        "support.tool.refund",
        "support.model",
    ]
