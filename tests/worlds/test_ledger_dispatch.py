"""The event vocabulary and the ledger's dispatch: one rule per event type.

Adding an event type means its member and ``EventInfo`` in ``durably.events`` and its
``Rule`` in ``durably.worlds.projections``; these tests fail when either is forgotten or
when a table is routed wrongly.
"""

from __future__ import annotations

import dataclasses
from typing import cast

import pytest

import durably.events as events_mod
from durably.events import (
    COMMAND_TYPES,
    CREATING_TYPES,
    DELIVERABLE_TYPES,
    EVENTS,
    RUN_END_STATUS,
    TERMINAL_RUN_TYPES,
    EventType,
    NewEvent,
    UnknownEventTypeError,
    require_handlers,
)
from durably.worlds.base import Commit, HookRecord, RunMeta, RunWrite, StepRecord
from durably.worlds.ledger import OverlayStore, RunRow, apply_commit
from durably.worlds.projections import RULES, Rule, rule_for

BOGUS = cast(EventType, "bogus_type")


class _Empty:
    """A world with nothing in it (the :class:`Source` an overlay reads through)."""

    def get_run_row(self, run_id: str) -> RunRow | None:
        return None

    def find_idempotent(self, namespace: str, workflow_name: str, key: str) -> str | None:
        return None

    def get_step(self, run_id: str, call: int) -> StepRecord | None:
        return None

    def get_hook(self, token: str) -> HookRecord | None:
        return None


def _create(*facts: NewEvent, commands: list[NewEvent] | None = None) -> RunWrite:
    return RunWrite(
        "r1",
        create=RunMeta("wf", "default", "default"),
        facts=[NewEvent(EventType.RUN_CREATED, None, {"workflow": "wf"}), *facts],
        expected_seq=0 if commands is not None else None,
        commands=commands or [],
    )


# -- the vocabulary ------------------------------------------------------------------------


def test_every_event_type_has_its_facts() -> None:
    assert set(EVENTS) == set(EventType)
    for t, info in EVENTS.items():
        assert not (info.command and info.delivered), t  # a command is never delivered
        assert not info.ends_run or (info.command and info.status), t
        assert not info.creates or (info.command and info.call), t


def test_the_sets_are_derived_from_the_facts() -> None:
    assert {
        EventType.RUN_COMPLETED,
        EventType.RUN_FAILED,
        EventType.RUN_CANCELLED,
    } == TERMINAL_RUN_TYPES
    assert {
        EventType.STEP_CREATED,
        EventType.WAIT_CREATED,
        EventType.CHILD_CREATED,
        EventType.HOOK_CREATED,
    } == CREATING_TYPES
    assert TERMINAL_RUN_TYPES < COMMAND_TYPES
    assert not DELIVERABLE_TYPES & COMMAND_TYPES
    assert RUN_END_STATUS[EventType.RUN_CANCELLED] == "cancelled"


def test_the_module_docstring_lists_every_type_one_a_line() -> None:
    doc = events_mod.__doc__ or ""
    listed = [line.split("``")[1] for line in doc.splitlines() if line.startswith("* ``")]
    assert listed == [t.value for t in EventType]


def test_step_started_is_not_in_the_vocabulary() -> None:
    # Declared once and never written: no stored log can hold it.
    assert "step_started" not in {t.value for t in EventType}


# -- the ledger's table --------------------------------------------------------------------


def test_every_event_type_has_exactly_one_ledger_rule() -> None:
    assert set(RULES) == set(EventType)
    assert all(isinstance(rule, Rule) for rule in RULES.values())
    for t in EventType:
        assert rule_for(t) is RULES[t]


def test_a_table_missing_a_type_or_holding_a_stray_one_fails_loudly() -> None:
    partial = {t: Rule() for t in EventType if t is not EventType.WAIT_CANCELLED}
    with pytest.raises(UnknownEventTypeError, match="no handler for wait_cancelled"):
        require_handlers(partial, EventType, "the test table")
    stray = {**RULES, BOGUS: Rule()}
    with pytest.raises(UnknownEventTypeError, match="should not handle: bogus_type"):
        require_handlers(stray, EventType, "the test table")


def test_an_unknown_type_raises_a_clear_error() -> None:
    with pytest.raises(UnknownEventTypeError, match="no rule for event type 'bogus_type'"):
        rule_for(BOGUS)


def test_an_unknown_fact_or_command_is_refused_before_anything_is_appended() -> None:
    store = OverlayStore(_Empty())
    with pytest.raises(UnknownEventTypeError, match="bogus_type"):
        apply_commit(store, Commit([_create(NewEvent(BOGUS))]), 1.0)
    assert [e.type for e in store.events] == [EventType.RUN_CREATED]

    store = OverlayStore(_Empty())
    with pytest.raises(UnknownEventTypeError, match="bogus_type"):
        apply_commit(store, Commit([_create(commands=[NewEvent(BOGUS, 0)])]), 1.0)
    assert [e.type for e in store.events] == [EventType.RUN_CREATED]
    assert store.runs["r1"].record.last_seq == 1


def test_commits_route_each_event_through_its_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[EventType] = []

    def spy(t: EventType) -> Rule:
        rule = RULES[t]

        def project(x: object, ev: NewEvent, at: float, claim: bool) -> bool:
            seen.append(ev.type)
            return rule.project(x, ev, at, claim)  # type: ignore[arg-type]

        return dataclasses.replace(rule, project=project)

    for t in (EventType.RUN_STARTED, EventType.WAIT_CREATED):
        monkeypatch.setitem(RULES, t, spy(t))
    store = OverlayStore(_Empty())
    wait = NewEvent(EventType.WAIT_CREATED, 0, {"due_at": 5.0})
    result = apply_commit(
        store, Commit([_create(NewEvent(EventType.RUN_STARTED), commands=[wait])]), 1.0
    )
    assert result.results[0].ok
    assert seen == [EventType.RUN_STARTED, EventType.WAIT_CREATED]
    assert store.runs["r1"].record.status == "running"
    assert store.steps[("r1", 0)][0].status == "waiting"

    # A rule that calls every run_started old: the fact is dropped, as its rule says.
    monkeypatch.setitem(RULES, EventType.RUN_STARTED, Rule(is_new=lambda s, r, f: False))
    store = OverlayStore(_Empty())
    result = apply_commit(store, Commit([_create(NewEvent(EventType.RUN_STARTED))]), 1.0)
    assert not result.results[0].ok
    assert [e.type for e in store.events] == [EventType.RUN_CREATED]
    assert store.runs["r1"].record.status == "pending"
