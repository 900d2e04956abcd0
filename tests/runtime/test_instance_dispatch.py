"""The run instance's dispatch: one ``_apply_<type>`` method per fact the body consumes.

These fail when an event type the body consumes has no handler, when a handler names no
event type, or when a command has no name for divergence messages.
"""

from __future__ import annotations

from typing import Any, cast

import pytest

from durably import Workflows
from durably.events import (
    COMMAND_TYPES,
    DELIVERABLE_TYPES,
    Event,
    EventType,
    NewEvent,
    UnknownEventTypeError,
    handlers_by_name,
)
from durably.runtime import divergence
from durably.runtime import instance as instance_mod
from durably.runtime.instance import RunInstance
from durably.worlds.base import RunRecord

BOGUS = cast(EventType, "bogus_type")


def test_every_consumed_fact_has_exactly_one_handler() -> None:
    table = instance_mod._APPLY
    assert set(table) == set(DELIVERABLE_TYPES)
    for t, handler in table.items():
        assert handler is vars(RunInstance)[f"_apply_{t.value}"]


def test_every_command_is_named_in_divergence_messages() -> None:
    assert set(divergence._DESCRIBE) == set(COMMAND_TYPES)
    assert divergence.describe(EventType.STEP_CREATED, {"name": "add"}) == "step 'add'"
    assert divergence.describe(EventType.RUN_FAILED, {}) == "the end of the run"


def test_a_missing_or_stray_handler_fails_loudly() -> None:
    class Partial:
        def _apply_run_started(self) -> None: ...

    with pytest.raises(UnknownEventTypeError, match="no handler for step_completed"):
        handlers_by_name(Partial, "_apply_", {EventType.RUN_STARTED, EventType.STEP_COMPLETED})

    class Stray(Partial):
        def _apply_step_startd(self) -> None: ...

    with pytest.raises(UnknownEventTypeError, match="no event type named step_startd"):
        handlers_by_name(Stray, "_apply_", {EventType.RUN_STARTED})


def _instance() -> RunInstance:
    wf = Workflows(world="memory://", worker=False)

    @wf.workflow
    async def idle() -> None:
        return None

    record = RunRecord(
        run_id="r1",
        workflow_name="idle",
        namespace="default",
        deployment="default",
        status="running",
        created_at=1.0,
        started_at=None,
        completed_at=None,
        last_seq=0,
    )
    return RunInstance(record, wf.workflows["idle"].spec, wf.limits)


def _event(t: EventType, seq: int, data: dict[str, Any] | None = None) -> Event:
    return Event("r1", seq, t, None, data or {}, None, 1.0)


def test_an_unknown_type_in_the_log_raises_a_clear_error() -> None:
    inst = _instance()
    inst.feed(_event(EventType.RUN_CREATED, 1))
    inst.feed(_event(EventType.STREAM_CLOSED, 2, {"namespace": ""}))  # known: ignored
    with pytest.raises(UnknownEventTypeError, match="'bogus_type'"):
        inst.feed(_event(BOGUS, 3))
    with pytest.raises(UnknownEventTypeError, match="'bogus_type'"):
        inst.deliver(NewEvent(BOGUS), 1.0)
    inst.close()


def test_a_consumed_fact_reaches_its_handler() -> None:
    inst = _instance()
    inst.feed(_event(EventType.RUN_CREATED, 1))
    inst.feed(_event(EventType.RUN_STARTED, 2))
    assert inst.done  # the body ran (and returned) on run_started
    assert [c.type for c in inst.new_commands()] == [EventType.RUN_COMPLETED]
    inst.close()
