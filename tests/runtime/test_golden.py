"""Histories recorded by earlier versions replay unchanged under this one.

Each file under tests/fixtures/histories/ is the full event log of a finished run. The
current runtime replays it against the same workflow code: every recorded command must
match a call the body makes, nothing new may be issued, and the body must end with the
recorded result.
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
from tests.fixtures.golden_workflows import register

HISTORIES = sorted((Path(__file__).parent.parent / "fixtures" / "histories").glob("*.json"))


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
    inst.index(events)
    for ev in events:
        inst.feed(ev)  # raises NonDeterminismError on any divergence
    assert inst.done
    assert inst.new_commands() == []
    assert inst.task is not None and inst.task.result() == doc["result"]


def test_there_is_a_history() -> None:
    assert HISTORIES
