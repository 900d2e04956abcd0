"""The chaos check's rule for step bodies started after their completion was recorded: it
must not fail on what durably allows (a body starting after its claim, the claim made
before a late completion landed) and must still fail on a real re-execution.

The logs are made by hand (the interleavings are timing accidents a chaos run meets
rarely: Postgres faults, seed 73036), and fed to ``check_run`` as the chaos run would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.chaos.check import Findings, check_run, read_log

RUN = "run_A"


class FakeRun:
    async def status(self) -> str:
        return "completed"


class FakeWorkflows:
    async def get_run(self, run_id: str) -> FakeRun:
        return FakeRun()


class FakeEvents:
    def __init__(self, log: list[dict[str, Any]]) -> None:
        self.log = log

    async def read(self, run_id: str) -> list[dict[str, Any]]:
        return self.log


def completed(seq: int, call: int, attempt: int, at: float) -> dict[str, Any]:
    return {
        "seq": seq,
        "type": "step_completed",
        "call": call,
        "data": {"attempt": attempt},
        "created_at": at,
    }


def events(*completions: dict[str, Any]) -> list[dict[str, Any]]:
    head = [
        {"seq": 1, "type": "run_created", "call": None, "data": {}, "created_at": 1.0},
        {"seq": 2, "type": "step_created", "call": 0, "data": {"name": "work"}, "created_at": 2.0},
    ]
    return head + [{**c, "seq": 3 + i} for i, c in enumerate(completions)]


def steps_log(tmp_path: Path, *lines: tuple[int, str, float, int]) -> Path:
    path = tmp_path / "steps.log"
    path.write_text(
        "".join(f"{RUN} {RUN}.0 {a} {what} {at:.6f} {pid}\n" for a, what, at, pid in lines)
    )
    return path


async def check(log: list[dict[str, Any]], path: Path, seen: float) -> Findings:
    found = Findings()
    await check_run(
        FakeWorkflows(), FakeEvents(log), RUN, None, read_log(path), {(RUN, 0): seen}, set(), found
    )
    return found


async def test_a_later_attempt_claimed_before_a_late_completion_is_not_a_failure(
    tmp_path: Path,
) -> None:
    # Attempt 1 ends at 10 and stamps its completion; its worker loses the server, its
    # lease expires, attempt 2 is claimed; attempt 1's retried commit lands, is seen at
    # 14, and attempt 2's body (slow to start after its claim) starts at 14.5.
    path = steps_log(
        tmp_path, (1, "start", 9.0, 100), (1, "end", 10.0, 100), (2, "start", 14.5, 200)
    )
    found = await check(events(completed(0, 0, 1, 10.0)), path, seen=14.0)
    assert found.failures == []
    assert found.reexecutions == 0
    assert found.unconfirmed == 1
    assert "may have been claimed before the completion landed" in found.unconfirmed_notes[0]


async def test_the_recorded_attempt_running_again_after_it_was_seen_fails(tmp_path: Path) -> None:
    # A completed task queued again with its attempt count reset, or an inline
    # continuation that runs a done step again: the same attempt number, after the fact.
    path = steps_log(
        tmp_path, (1, "start", 9.0, 100), (1, "end", 10.0, 100), (1, "start", 14.5, 200)
    )
    found = await check(events(completed(0, 0, 1, 10.0)), path, seen=14.0)
    assert found.reexecutions == 1
    assert "after it was seen" in found.failures[0]


async def test_a_completed_task_queued_again_and_claimed_fails(tmp_path: Path) -> None:
    # The fault the rule above lets through by its attempt number is caught by the log:
    # the claim marks the step running, so the re-run's completion is recorded again.
    path = steps_log(
        tmp_path,
        (1, "start", 9.0, 100),
        (1, "end", 10.0, 100),
        (2, "start", 14.5, 200),
        (2, "end", 14.6, 200),
    )
    log = events(completed(0, 0, 1, 10.0), completed(0, 0, 2, 14.6))
    found = await check(log, path, seen=14.0)
    assert any("completed twice" in f for f in found.failures)
