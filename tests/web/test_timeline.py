"""The timeline laid out from hand-written event logs: every kind of row, live and ended."""

from __future__ import annotations

from typing import Any

from durably.events import Event, EventType
from durably.web.timeline import build_timeline, human_duration
from durably.worlds.base import RunRecord, StepRecord

T0 = 1_000_000.0


def ev(seq: int, t: float, type_: EventType, call: int | None = None, **data: Any) -> Event:
    return Event("r1", seq, type_, call, data, None, T0 + t)


def record(status: str, completed: float | None = None) -> RunRecord:
    return RunRecord(
        run_id="r1",
        workflow_name="wf",
        namespace="default",
        deployment="default",
        status=status,  # type: ignore[arg-type]
        created_at=T0,
        started_at=T0 + 1,
        completed_at=None if completed is None else T0 + completed,
        last_seq=0,
    )


def test_an_ended_run_with_retries_a_sleep_a_hook_and_a_child() -> None:
    E = EventType
    events = [
        ev(1, 0, E.RUN_CREATED),
        ev(2, 1, E.RUN_STARTED),
        ev(3, 1, E.STEP_CREATED, 0, name="charge"),
        ev(4, 3, E.STEP_RETRYING, 0, attempt=1, started_at=T0 + 2, retry_at=T0 + 5,
           error_type="Timeout"),
        ev(5, 6, E.STEP_COMPLETED, 0, attempt=2, started_at=T0 + 5),
        ev(6, 6, E.WAIT_CREATED, 1, name="sleep", due_at=T0 + 8),
        ev(7, 8, E.WAIT_COMPLETED, 1),
        ev(8, 8, E.HOOK_CREATED, 2, type="Approval", token="t"),
        ev(9, 9, E.HOOK_RECEIVED, 2, token="t"),
        ev(10, 9, E.HOOK_DISPOSED, 2, token="t"),
        ev(11, 9, E.CHILD_CREATED, 3, name="sub", child_run_id="r1-3"),
        ev(12, 10, E.CHILD_FAILED, 3, error_type="Boom"),
        ev(13, 10, E.RUN_FAILED, error_type="Boom"),
    ]  # fmt: skip
    tl = build_timeline(record("failed", 10), events, now=T0 + 500)
    assert not tl.live and tl.end == T0 + 10
    # Reading it later (an audited decryption) does not stretch the chart.
    audit = ev(14, 400, E.DATA_DECRYPTED, who="ann@host", via="web", seqs=[1])
    assert build_timeline(record("failed", 10), [*events, audit], now=T0 + 500).end == T0 + 10
    run, step, wait, hook, child = tl.rows
    assert (run.kind, run.status, run.error_type) == ("run", "failed", "Boom")
    assert [b.css for b in run.bars] == ["queued", "run failed"]

    assert (step.status, step.attempts, step.duration) == ("completed", 2, 5.0)
    assert [b.css for b in step.bars] == [
        "queued",
        "attempt retrying",
        "backoff",
        "attempt completed",
    ]
    queued, first, backoff, second = step.bars
    assert (queued.x, queued.w) == (10.0, 10.0)  # t=1..2 of 0..10
    assert (first.x, first.w) == (20.0, 10.0)
    assert (backoff.x, backoff.w) == (30.0, 20.0)
    assert second.x == 50.0 and first.title == "attempt 1: 1.00s, retrying (Timeout)"

    assert (wait.kind, wait.status, wait.duration) == ("wait", "completed", 2.0)
    assert (hook.kind, hook.name, hook.status, hook.attempts) == ("hook", "Approval", "disposed", 1)
    assert [m.x for m in hook.marks] == [90.0]
    assert (child.child_run_id, child.status, child.error_type) == ("r1-3", "failed", "Boom")
    assert [(p, label) for p, label in tl.ticks][-1] == (100.0, "+10.00s")


def test_a_live_run_draws_up_to_now_and_shows_a_sleep_that_ends_soon() -> None:
    E = EventType
    events = [
        ev(1, 0, E.RUN_CREATED),
        ev(2, 1, E.RUN_STARTED),
        ev(3, 1, E.STEP_CREATED, 0, name="a"),
        ev(4, 2, E.STEP_COMPLETED, 0, attempt=1, started_at=T0 + 1),
        ev(5, 2, E.WAIT_CREATED, 1, name="sleep", due_at=T0 + 15),
        ev(6, 2, E.STEP_CREATED, 2, name="b"),
        ev(7, 3, E.STEP_RETRYING, 2, attempt=1, started_at=T0 + 2, retry_at=T0 + 4),
        ev(8, 3, E.HOOK_CREATED, 3, type="Go", token="g"),
        ev(9, 3, E.STEP_CREATED, 4, name="c"),
    ]  # fmt: skip
    steps = [
        StepRecord("r1", 4, "step", "c", "running", 1, T0 + 3, T0 + 3, None),
    ]
    tl = build_timeline(record("running"), events, now=T0 + 10, steps=steps)
    assert tl.live and tl.end == T0 + 15  # the sleep ends soon: its remainder shows
    _, a, wait, b, hook, c = tl.rows
    assert a.status == "completed"
    assert wait.end is None and wait.note == "due in 5.00s"
    assert [x.css for x in wait.bars] == ["wait", "wait due"]
    assert [x.css for x in b.bars] == ["attempt retrying", "backoff", "attempt running"]
    assert b.bars[-1].title == "attempt 2: running or queued"
    assert (hook.status, hook.end) == ("waiting", None)
    assert [x.css for x in c.bars] == ["attempt running"] and c.status == "running"


def test_far_dues_do_not_stretch_the_chart_and_rows_are_capped() -> None:
    E = EventType
    events = [ev(1, 0, E.RUN_CREATED), ev(2, 1, E.RUN_STARTED)]
    events += [ev(3 + i, 1, E.STEP_CREATED, i, name=f"s{i}") for i in range(10)]
    events.append(ev(20, 2, E.WAIT_CREATED, 10, name="sleep", due_at=T0 + 86_400))
    tl = build_timeline(record("running"), events, now=T0 + 4, max_rows=5)
    assert tl.end == T0 + 4 and tl.hidden_rows == 6 and len(tl.rows) == 6
    assert all(0.0 <= b.x <= 100.0 and b.w > 0 for r in tl.rows for b in r.bars)


def test_human_duration() -> None:
    assert human_duration(None) == "-"
    assert human_duration(0.0015) == "1.5ms"
    assert human_duration(3.456) == "3.46s"
    assert human_duration(600) == "10.0m"
    assert human_duration(7200 * 3) == "6.0h"
    assert human_duration(86400 * 3) == "3.0d"
