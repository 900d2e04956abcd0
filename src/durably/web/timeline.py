"""A run's timeline (Gantt chart), built from its event log.

One row per durable call (steps, sleeps, hooks, child runs) under a row for the run itself,
each with bars for what happened when: a step's time in the queue, each attempt (and how it
ended), the backoff between attempts; a sleep from its start to when it fired (or is due);
a hook from its creation to its disposal, with a mark per resume received; a child run from
its start to its end. Positions are percentages of the chart's width, so a template
draws the bars as SVG rectangles without any arithmetic of its own.

Long idle stretches (a sleep of hours between steps of seconds) are drawn compressed, so
the steps do not shrink to slivers, and a :class:`~durably.web.scale.Zoom` shows a window
of the chart: see :mod:`durably.web.scale`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from ..events import EVENTS, TERMINAL_RUN_TYPES, Event, EventType, require_handlers
from ..worlds.base import TERMINAL_STATUSES, RunRecord, StepRecord
from .scale import Gap, Zoom, human_duration, make_scale

__all__ = ["Bar", "Gap", "Mark", "Row", "Timeline", "Zoom", "build_timeline", "human_duration"]

#: The narrowest bar drawn, in percent of the chart, so that a 1 ms step stays visible.
MIN_WIDTH = 0.35


@dataclass(slots=True)
class Bar:
    """A span of time in a row; ``css`` names its kind and outcome for the stylesheet."""

    start: float
    end: float
    css: str
    title: str
    x: float = 0.0
    w: float = 0.0


@dataclass(slots=True)
class Mark:
    """An instant in a row (a hook resume)."""

    at: float
    title: str
    x: float = 0.0


@dataclass(slots=True)
class Row:
    """One line of the chart: the run itself or one of its durable calls."""

    kind: str  # "run", "step", "wait", "hook" or "child"
    name: str
    status: str
    start: float
    call: int | None = None
    end: float | None = None  # None: still going
    attempts: int = 0
    error_type: str | None = None
    child_run_id: str | None = None
    note: str = ""
    bars: list[Bar] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    # while building
    _mark_from: float = 0.0
    _retry_at: float | None = None
    _due: float | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (``None`` while going)."""
        return None if self.end is None else max(self.end - self.start, 0.0)


@dataclass(slots=True)
class Timeline:
    """The chart: its time span, rows, axis ticks (``(percent, label)``), the idle gaps
    drawn compressed and the zoom it is drawn at (positions are of the zoom's window)."""

    start: float
    end: float
    rows: list[Row]
    ticks: list[tuple[float, str]]
    live: bool
    hidden_rows: int = 0
    gaps: list[Gap] = field(default_factory=list)
    zoom: Zoom = field(default_factory=Zoom)
    window: tuple[float, float] = (0.0, 0.0)  # the times at the window's edges


def build_timeline(
    run: RunRecord,
    events: Sequence[Event],
    *,
    now: float,
    steps: Sequence[StepRecord] = (),
    max_rows: int = 500,
    zoom: Zoom | None = None,
) -> Timeline:
    """Lay out the timeline of ``run`` from its ``events`` as of ``now``.

    Args:
        run: the run's record.
        events: its event log, in order.
        now: the current time (bars of what is still going end there).
        steps: the run's ``steps`` projection, to tell a running step from a queued one.
        max_rows: rows beyond this many are counted in ``hidden_rows``, not drawn.
        zoom: the window of the chart to draw and its scale (default: all of it, idle
            gaps compressed).
    """
    zoom = zoom or Zoom()
    live = run.status not in TERMINAL_STATUSES
    run_row = Row(kind="run", name=run.workflow_name, status=run.status, start=run.created_at)
    rows: dict[int, Row] = {}
    run_end: float | None = run.completed_at if not live else None
    for ev in events:
        _apply(ev, run_row, rows)
        if ev.type in TERMINAL_RUN_TYPES:
            run_end = ev.created_at
            run_row.error_type = ev.data.get("error_type")

    # The chart spans the run, up to now while it goes on (a little further when a sleep
    # is about to end, so its remainder shows). Audit records of reading the run's
    # payloads (data_decrypted, often long after its end) are not part of it.
    end = run_end if run_end is not None else now
    ran = [e.created_at for e in events if e.type is not EventType.DATA_DECRYPTED]
    end = max(end, max(ran, default=end))
    if live:
        span = max(end - run.created_at, 1.0)
        dues = [r._due for r in rows.values() if r.end is None and r._due is not None]
        soon = [d for d in dues if end < d <= end + span]
        if soon:
            end = max(soon)
    start = run.created_at

    status_of = {s.call: s.status for s in steps}
    clock = now if live else end
    _finish_run_row(run_row, run, run_end, clock)
    ordered = [rows[c] for c in sorted(rows)]
    for row in ordered:
        _finish(row, run_end, clock, status_of.get(row.call or 0))
    hidden = max(len(ordered) - max_rows, 0)
    shown = [run_row, *ordered[:max_rows]]
    # Busy: step attempts and the instants something was recorded; the rest is idle.
    busy = [(t, t) for t in ran]
    busy += [(b.start, b.end) for r in ordered for b in r.bars if b.css.startswith("attempt")]
    scale = make_scale(start, end, busy, compress=zoom.compress)
    lo, hi = zoom.lo, zoom.hi

    def at(t: float) -> float:  # a time's place in the window, in percent
        return (scale.x(t) - lo) / (hi - lo) * 100.0

    for row in shown:
        bars = []
        for bar in row.bars:
            x0, x1 = at(bar.start), at(bar.end)
            if x1 < 0.0 or x0 > 100.0:
                continue  # outside the window
            x0, x1 = max(x0, 0.0), min(x1, 100.0)
            bar.x = min(x0, 100.0 - MIN_WIDTH)
            bar.w = max(x1 - x0, MIN_WIDTH)
            bars.append(bar)
        row.bars = bars
        row.marks = [m for m in row.marks if 0.0 <= at(m.at) <= 100.0]
        for mark in row.marks:
            mark.x = at(mark.at)
    gaps = []
    for gap in scale.gaps:
        x0, x1 = at(gap.start), at(gap.end)
        if x1 > 0.0 and x0 < 100.0:
            gaps.append(replace(gap, x=max(x0, 0.0), w=min(x1, 100.0) - max(x0, 0.0)))
    ticks = []
    for i in range(6):
        pct = i * 20.0
        x = lo + (hi - lo) * pct / 100.0
        if any(g.x - 8 < x < g.x + g.w + 8 for g in scale.gaps):
            continue  # at a compressed gap: its label (how long it is) goes there
        ticks.append((pct, "+" + human_duration(scale.t(x) - start)))
    window = (scale.t(lo), scale.t(hi))
    return Timeline(start, end, shown, ticks, live, hidden, gaps, zoom, window)


def _apply(ev: Event, run_row: Row, rows: dict[int, Row]) -> None:
    draw = _DRAW.get(ev.type)
    if draw is not None:
        draw(ev, run_row, rows)


#: What an event changes in the chart: the run's row, or the rows of the calls by number.
_Draw = Callable[[Event, Row, dict[int, Row]], None]


def _run_started(ev: Event, run_row: Row, rows: dict[int, Row]) -> None:
    run_row._mark_from = ev.created_at


def _step_created(ev: Event, run_row: Row, rows: dict[int, Row]) -> None:
    if ev.call is not None:
        name, at = str(ev.data.get("name", "")), ev.created_at
        rows[ev.call] = Row("step", name, "pending", at, ev.call, _mark_from=at)


def _wait_created(ev: Event, run_row: Row, rows: dict[int, Row]) -> None:
    if ev.call is not None:
        due = ev.data.get("due_at")
        row = rows[ev.call] = Row(
            "wait", str(ev.data.get("name", "sleep")), "waiting", ev.created_at, ev.call
        )
        row._due = float(due) if due is not None else None


def _hook_created(ev: Event, run_row: Row, rows: dict[int, Row]) -> None:
    if ev.call is not None:
        name = str(ev.data.get("type") or ev.data.get("name") or "hook")
        row = rows[ev.call] = Row("hook", name, "waiting", ev.created_at, ev.call)
        row.note = str(ev.data.get("token", ""))


def _child_created(ev: Event, run_row: Row, rows: dict[int, Row]) -> None:
    if ev.call is not None:
        name = str(ev.data.get("name", ""))
        row = rows[ev.call] = Row("child", name, "running", ev.created_at, ev.call)
        row.child_run_id = ev.data.get("child_run_id")


def _on_row(change: Callable[[Row, Event], None]) -> _Draw:
    """A :data:`_Draw` that changes the row of the event's call (none drawn: nothing)."""

    def draw(ev: Event, run_row: Row, rows: dict[int, Row]) -> None:
        row = rows.get(ev.call) if ev.call is not None else None
        if row is not None:
            change(row, ev)

    return draw


def _wait_completed(row: Row, ev: Event) -> None:
    row.end, row.status = ev.created_at, "completed"
    if ev.data.get("early"):
        row.note = "woken early"


def _wait_cancelled(row: Row, ev: Event) -> None:
    if row.end is None:
        row.end, row.status = ev.created_at, "cancelled"


def _hook_received(row: Row, ev: Event) -> None:
    row.attempts += 1
    row.marks.append(Mark(ev.created_at, f"resume #{row.attempts} received"))


def _hook_conflict(row: Row, ev: Event) -> None:
    row.end, row.status = ev.created_at, "conflict"
    row.error_type = str(ev.data.get("error_type") or "HookConflictError")


def _hook_disposed(row: Row, ev: Event) -> None:
    if row.end is None:
        row.end, row.status = ev.created_at, "disposed"


def _child_ended(row: Row, ev: Event) -> None:
    row.end, row.status = ev.created_at, str(EVENTS[ev.type].status)
    row.error_type = ev.data.get("error_type")


def _attempt(row: Row, ev: Event) -> None:
    """A step attempt ended (retrying, completed or failed)."""
    data, end = ev.data, ev.created_at
    attempt = int(data.get("attempt") or row.attempts + 1)
    started = float(data.get("started_at") or row._mark_from)
    _gap(row, started, attempt)
    if ev.type is EventType.STEP_RETRYING:
        outcome = "retrying"
        row._retry_at = float(data.get("retry_at") or end)
    else:
        outcome = str(EVENTS[ev.type].status)
        row.end, row.status = end, outcome
    err = data.get("error_type")
    row.error_type = err if outcome != "completed" else None
    detail = f" ({err})" if err and outcome != "completed" else ""
    title = f"attempt {attempt}: {human_duration(end - started)}, {outcome}{detail}"
    row.bars.append(Bar(started, end, f"attempt {outcome}", title))
    row.attempts = attempt
    row.status = outcome
    row._mark_from = end


def _gap(row: Row, until: float, attempt: int) -> None:
    """The time before an attempt: in the queue (first) or backing off (later)."""
    since = row._mark_from
    if until - since <= 0:
        return
    if attempt <= 1 or row._retry_at is None:
        row.bars.append(Bar(since, until, "queued", f"queued {human_duration(until - since)}"))
    else:
        row.bars.append(
            Bar(
                since,
                until,
                "backoff",
                f"backoff before attempt {attempt}: {human_duration(until - since)}",
            )
        )


_T = EventType

#: How each event type is drawn (``None``: it is not).
_DRAW: dict[EventType, _Draw | None] = {
    _T.RUN_CREATED: None,  # the run's row starts at the run's creation anyway
    _T.RUN_STARTED: _run_started,
    _T.RUN_COMPLETED: None,  # the run's end: see build_timeline
    _T.RUN_FAILED: None,
    _T.RUN_CANCEL_REQUESTED: None,
    _T.RUN_CANCELLED: None,
    _T.STEP_CREATED: _step_created,
    _T.STEP_RETRYING: _on_row(_attempt),
    _T.STEP_COMPLETED: _on_row(_attempt),
    _T.STEP_FAILED: _on_row(_attempt),
    _T.WAIT_CREATED: _wait_created,
    _T.WAIT_COMPLETED: _on_row(_wait_completed),
    _T.WAIT_CANCELLED: _on_row(_wait_cancelled),
    _T.CHILD_CREATED: _child_created,
    _T.CHILD_COMPLETED: _on_row(_child_ended),
    _T.CHILD_FAILED: _on_row(_child_ended),
    _T.HOOK_CREATED: _hook_created,
    _T.HOOK_RECEIVED: _on_row(_hook_received),
    _T.HOOK_DISPOSED: _on_row(_hook_disposed),
    _T.HOOK_REGISTERED: None,
    _T.HOOK_CONFLICT: _on_row(_hook_conflict),
    _T.STREAM_CLOSED: None,
    _T.ATTRIBUTES_SET: None,
    _T.DATA_DECRYPTED: None,  # an audit record, often long after the run
    # Locks: shown by the dashboard's locks page (durably.web.locks), not on the timeline.
    _T.LOCK_REQUESTED: None,
    _T.LOCK_ACQUIRED: None,
    _T.LOCK_RELEASED: None,
}
require_handlers(_DRAW, EventType, "durably.web.timeline._DRAW")


def _finish_run_row(row: Row, run: RunRecord, run_end: float | None, clock: float) -> None:
    started = run.started_at or row._mark_from or None
    end = run_end if run_end is not None else clock
    row.end = run_end
    if started is None:
        row.bars.append(Bar(row.start, end, "queued", f"pending {human_duration(end - row.start)}"))
        return
    if started > row.start:
        wait = started - row.start
        row.bars.append(Bar(row.start, started, "queued", f"pending {human_duration(wait)}"))
    row.bars.append(Bar(started, end, f"run {run.status}", f"{run.status}, {_took(started, end)}"))


def _took(a: float, b: float) -> str:
    return human_duration(b - a)


def _finish(row: Row, run_end: float | None, clock: float, step_status: str | None) -> None:
    """Close what is still open: up to the run's end, or up to now while it goes on."""
    stop = run_end if run_end is not None else clock
    if row.kind == "step":
        if row.end is not None:
            return
        if row._retry_at is not None:
            retry_at = min(row._retry_at, stop)
            row.bars.append(
                Bar(
                    row._mark_from, retry_at, "backoff", f"backoff until attempt {row.attempts + 1}"
                )
            )
            if stop > retry_at:
                label = f"attempt {row.attempts + 1}: running or queued"
                row.bars.append(Bar(retry_at, stop, "attempt running", label))
        elif step_status == "running":
            row.status = "running"
            row.bars.append(Bar(row._mark_from, stop, "attempt running", "attempt 1: running"))
        else:
            row.bars.append(Bar(row._mark_from, stop, "queued", "queued"))
        if run_end is not None:
            row.status = "abandoned" if row.status in ("pending", "running") else row.status
        return
    end = row.end if row.end is not None else stop
    if row.kind == "wait":
        css = "wait" if row.status != "cancelled" else "wait cancelled"
        due = row._due
        title = f"sleep {human_duration(end - row.start)}"
        if row.end is None and due is not None:
            title += f", due in {human_duration(due - clock)}"
            row.note = f"due in {human_duration(due - clock)}"
        row.bars.append(Bar(row.start, end, css, title))
        if row.end is None and due is not None and due > end:
            row.bars.append(Bar(end, due, "wait due", f"until due ({human_duration(due - end)})"))
    elif row.kind == "hook":
        received = f", {row.attempts} resume(s)" if row.attempts else ""
        title = f"hook {row.status}, {human_duration(end - row.start)}{received}"
        row.bars.append(Bar(row.start, end, f"hook {row.status}", title))
    elif row.kind == "child":
        title = f"child run {row.status}, {human_duration(end - row.start)}"
        row.bars.append(Bar(row.start, end, f"child {row.status}", title))
