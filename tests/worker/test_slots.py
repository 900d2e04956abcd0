"""The worker's slot bookkeeping (durably.worker.slots)."""

from __future__ import annotations

import pytest

from durably.worker.slots import MAX_TURNS_AT_ONCE, Slots


def test_no_more_slots_than_the_concurrency() -> None:
    slots = Slots(2, lambda: None)
    assert slots.free == 2
    assert slots.try_take() and slots.try_take()
    assert not slots.try_take()
    assert slots.busy == 2 and slots.free == 0
    slots.give_back()
    assert slots.free == 1
    assert slots.try_take()
    slots.give_back(2)
    assert slots.busy == 0


def test_a_claimed_task_takes_its_slot_unconditionally() -> None:
    # The world hands over no more tasks than there were free slots when the claim
    # began, but an inline step may have taken one meanwhile.
    slots = Slots(1, lambda: None)
    assert slots.try_take()
    slots.take()
    assert slots.busy == 2 and slots.free == -1
    assert not slots.try_take()


def test_giving_back_wakes_the_claim_loop_only_when_it_waits_for_a_slot() -> None:
    woken: list[int] = []
    slots = Slots(1, lambda: woken.append(1))
    slots.take()
    slots.give_back()
    assert woken == []
    slots.take()
    slots.starved = True
    slots.give_back(0)  # nothing given back: nothing to claim for
    assert woken == []
    slots.give_back()
    assert woken == [1]


def test_held_leases_are_listed_for_the_heartbeat_and_stop() -> None:
    slots = Slots(4, lambda: None)
    slots.hold_run("r1")
    slots.hold_task("r1", 3)
    slots.hold_task("r1", 3)  # held once, however often it is said
    slots.hold_task("r2", 1)
    runs, tasks = slots.held()
    assert runs == ["r1"]
    assert sorted(tasks) == [("r1", 3), ("r2", 1)]
    slots.drop_task("r1", 3)
    slots.drop_task("r1", 3)  # dropping twice is harmless
    slots.drop_run("r1")
    assert slots.held() == ([], [("r2", 1)])


def test_turns_in_flight_are_bounded() -> None:
    slots = Slots(1, lambda: None)
    assert slots.turns_free == MAX_TURNS_AT_ONCE
    for i in range(MAX_TURNS_AT_ONCE + 3):
        slots.hold_run(f"r{i}")
    assert slots.turns_free == 0
    slots.drop_run("r0")
    assert slots.turns_free == 0  # still over the bound
    slots.drop_run("r1")
    slots.drop_run("r2")
    assert slots.turns_free == 0  # at the bound
    slots.drop_run("r3")
    assert slots.turns_free == 1


def test_concurrency_must_be_positive() -> None:
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        Slots(0, lambda: None)
