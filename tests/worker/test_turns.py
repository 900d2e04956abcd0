"""What a turn writes besides the run's own record (durably.worker.turns)."""

from __future__ import annotations

from durably.events import EventType
from durably.runtime.instance import ChildStart
from durably.worker.turns import child_write
from durably.worlds.base import RunMeta, RunRecord


def _parent() -> RunRecord:
    return RunRecord(
        run_id="p1",
        workflow_name="parent",
        namespace="ns",
        deployment="v2",
        status="running",
        created_at=1.0,
        started_at=1.0,
        completed_at=None,
        last_seq=3,
    )


def test_a_child_start_becomes_the_creation_of_the_child_run() -> None:
    start = ChildStart(4, "p1-4", "child", b"args", {"workflow": "child"})
    write = child_write(_parent(), start)
    assert write.run_id == "p1-4"
    assert write.create == RunMeta(
        workflow_name="child",
        namespace="ns",
        deployment="v2",
        parent_run_id="p1",
        parent_call=4,
    )
    (created,) = write.facts
    assert created.type is EventType.RUN_CREATED and created.call is None
    assert created.data == {"workflow": "child"} and created.payload == b"args"
    # Created only if the parent's turn (which records child_created) is committed.
    assert write.requires == "p1"
