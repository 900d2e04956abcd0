"""Live views in the terminal: ``durably inspect run RUN_ID --follow`` and
``durably inspect runs --watch``.

Both redraw in place (rich's live display) and, with ``--json``, print one JSON object per
line each time something changed instead, for scripts and coding agents: ``--follow``
prints the whole run (with its steps) and stops when the run ends; ``--watch`` prints each
run that appeared or changed, until interrupted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

import click
from rich.console import Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from ..errors import RunNotFoundError
from ..waiting import Waiting, failing_step, waiting_of
from ..worlds import World, resolve_world_url
from ..worlds.base import TERMINAL_STATUSES, RunFilter, RunRecord, StepRecord
from .common import console, fmt_duration, fmt_time, run_async, with_world

__all__ = [
    "follow",
    "run_detail",
    "run_json",
    "run_states",
    "status_line",
    "step_detail",
    "wait_of_call",
    "watch",
]

_DONE = frozenset({"completed", "failed", "cancelled", "disposed", "conflict"})
_STYLE = {
    "completed": "green",
    "failed": "red",
    "conflict": "red",
    "cancelled": "dim",
    "retrying": "yellow",
    "running": "blue",
    "waiting": "magenta",
    "pending": "dim",
}


def follow(world_url: str | None, run_id: str, as_json: bool, interval: float = 0.5) -> None:
    """``inspect run RUN_ID --follow``: redraw the run until it ends."""

    async def go(world: World) -> None:
        await follow_run(world, run_id, as_json=as_json, interval=interval, url=world_url)

    with contextlib.suppress(KeyboardInterrupt):
        run_async(with_world(world_url, go, read_only=True))


def watch(world_url: str | None, flt: RunFilter, as_json: bool, interval: float = 1.0) -> None:
    """``inspect runs --watch``: redraw the runs table until interrupted."""

    async def go(world: World) -> None:
        await watch_runs(world, flt, as_json=as_json, interval=interval)

    with contextlib.suppress(KeyboardInterrupt):
        run_async(with_world(world_url, go, read_only=True))


# -- what the tables say beside a status ---------------------------------------------


def status_line(
    rec: RunRecord, failing: StepRecord | None = None, reason: str | None = None
) -> str:
    """The status with what explains it: the error type and the failing step of a failed
    run, the reason of a cancelled one, a cancel asked of a live one."""
    text: str = rec.status
    if rec.error_type:
        text += f" ({rec.error_type}"
        text += f" in {failing.kind} {failing.name!r}, #{failing.call})" if failing else ")"
    if rec.status == "cancelled" and reason:
        text += f": {reason}"
    if rec.cancel_requested and rec.status not in TERMINAL_STATUSES:
        text += " (cancel requested)"
    return text


def wait_of_call(waiting: Waiting | None, call: int) -> Waiting | None:
    """What the run waits for on durable call ``call``, if it waits on it."""
    if waiting is None:
        return None
    for w in (waiting, *waiting.also):
        if w.call == call:
            return w
    return None


def step_detail(step: StepRecord, waiting: Waiting | None) -> str:
    """The detail cell of a step: the worker and lease end of a running attempt, a
    sleep's end, an error type, a child run."""
    w = wait_of_call(waiting, step.call)
    if w is not None and w.kind == "step":
        return f"on {w.worker}, lease until {fmt_time(w.until)}"
    if w is not None and w.kind == "retry":
        return f"{step.error_type or 'failed'}; retry at {fmt_time(w.until)}"
    if w is not None and w.kind == "worker":
        return "ready, no worker has taken it" + (" (stalled)" if w.stalled else "")
    return (
        step.error_type
        or (f"until {fmt_time(step.due_at)}" if step.due_at and not step.completed_at else "")
        or (step.child_run_id or "")
    )


def run_detail(rec: RunRecord, waiting: Waiting | None, failing: StepRecord | None) -> str:
    """The runs table's cell beside the status: what a live run waits for, the error
    type and failing step of a failed one."""
    if rec.status == "failed":
        return (rec.error_type or "") + (f" in {failing.name!r}" if failing else "")
    if waiting is not None and waiting.kind is not None:
        return waiting.summary() + (f" +{len(waiting.also)}" if waiting.also else "")
    return ""


async def run_states(
    world: World, runs: list[RunRecord]
) -> list[tuple[Waiting | None, StepRecord | None]]:
    """Per run: what it waits for (live runs) and its failing step (failed runs)."""
    out: list[tuple[Waiting | None, StepRecord | None]] = []
    for r in runs:
        waiting = None if r.status in TERMINAL_STATUSES else await waiting_of(world, r)
        failing = failing_step(r, await world.list_steps(r.run_id)) if r.error_type else None
        out.append((waiting, failing))
    return out


def run_json(rec: RunRecord, waiting: Waiting | None, failing: StepRecord | None) -> dict[str, Any]:
    """A run as JSON, with what it waits for and its failing step."""
    return {
        **rec.to_json(),
        "waiting": waiting.to_json() if waiting is not None and waiting.kind else None,
        "failing_step": (
            {"call": failing.call, "kind": failing.kind, "name": failing.name} if failing else None
        ),
    }


# -- one run ----------------------------------------------------------------------------


async def expected_calls(world: World, rec: RunRecord) -> tuple[int, str] | None:
    """How many durable calls a run of this workflow made last time it completed (and
    which run that was), for a progress bar; ``None`` when there is no such run."""
    for earlier in await world.list_runs(
        RunFilter(status="completed", workflow_name=rec.workflow_name, limit=5)
    ):
        if earlier.run_id != rec.run_id:
            steps = await world.list_steps(earlier.run_id)
            if steps:
                return len(steps), earlier.run_id
    return None


async def follow_run(
    world: World,
    run_id: str,
    *,
    as_json: bool,
    interval: float = 0.5,
    url: str | None = None,
) -> RunRecord:
    """Show run ``run_id`` as it progresses; return its record once it has ended."""
    rec = await world.get_run(run_id)
    if rec is None:
        raise RunNotFoundError(run_id, resolve_world_url(url))
    expected = await expected_calls(world, rec)
    last: Any = None
    view: Live | None = None
    if not as_json:
        view = Live(console=console, auto_refresh=False, transient=False)
        view.start()
    try:
        while True:
            steps = await world.list_steps(run_id)
            waiting = await waiting_of(world, rec)
            if as_json:
                state = (
                    rec.last_seq,
                    rec.status,
                    [(s.status, s.attempts) for s in steps],
                    (waiting.kind, waiting.call, waiting.worker, waiting.stalled),
                )
                if state != last:
                    last = state
                    line = {
                        **run_json(rec, waiting, failing_step(rec, steps)),
                        "steps": [s.to_json() for s in steps],
                    }
                    click.echo(json.dumps(line, separators=(",", ":"), default=str))
                    sys.stdout.flush()
            else:
                assert view is not None
                view.update(render_run(rec, steps, expected, time.time(), waiting), refresh=True)
            if rec.status in TERMINAL_STATUSES:
                return rec
            await world.wait_for_run(run_id, after_seq=rec.last_seq, timeout=interval)
            fresh = await world.get_run(run_id)
            if fresh is None:
                raise RunNotFoundError(run_id, resolve_world_url(url))
            rec = fresh
    finally:
        if view is not None:
            view.stop()


def render_run(
    rec: RunRecord,
    steps: list[StepRecord],
    expected: tuple[int, str] | None,
    now: float,
    waiting: Waiting | None = None,
) -> RenderableType:
    """The run's header (and what it waits for), a progress bar (when the call count is
    known) and its steps."""
    end = rec.completed_at if rec.completed_at else now
    head = Text.assemble(
        (rec.run_id, "bold"),
        "  ",
        rec.workflow_name,
        "  ",
        (rec.status, _STYLE.get(rec.status, "")),
        f"  {fmt_duration(rec.started_at, end) if rec.started_at else '-'}",
        f"  deployment {rec.deployment}",
    )
    if rec.error_type:
        failing = failing_step(rec, steps)
        head.append(f"  {rec.error_type}", style="red")
        if failing is not None:
            head.append(f" in {failing.kind} {failing.name!r}", style="red")
    parts: list[RenderableType] = [head]
    if waiting is not None and waiting.kind is not None:
        since = f" (since {fmt_time(waiting.since)})" if waiting.since else ""
        parts.append(Text(f"waiting for {waiting.describe(now)}{since}", style="magenta"))
    done = sum(1 for s in steps if s.status in _DONE)
    if expected is not None:
        total = max(expected[0], len(steps))
        bar = Table.grid(padding=(0, 1))
        bar.add_row(
            ProgressBar(total=total, completed=min(done, total), width=40),
            Text(f"{done}/{total} calls (as many as {expected[1]} made)", style="dim"),
        )
        parts.append(bar)
    table = Table(show_edge=False, header_style="bold", pad_edge=False)
    for col in ("#", "kind", "name", "status", "attempts", "started", "took", "detail"):
        table.add_column(col, no_wrap=True)
    for s in steps:
        finished = s.completed_at if s.completed_at else (None if rec.completed_at else now)
        took = fmt_duration(s.started_at or s.created_at, finished)
        detail = step_detail(s, waiting)
        table.add_row(
            str(s.call),
            s.kind,
            s.name,
            Text(s.status, style=_STYLE.get(s.status, "")),
            str(s.attempts) if s.kind == "step" else "",
            fmt_time(s.started_at),
            took + ("" if s.completed_at or rec.completed_at else "…"),
            detail,
        )
    parts.append(table)
    return Group(*parts)


# -- runs -------------------------------------------------------------------------------


async def watch_runs(
    world: World,
    flt: RunFilter,
    *,
    as_json: bool,
    interval: float = 1.0,
    rounds: int | None = None,
) -> None:
    """Show the runs matching ``flt`` as they change (``rounds``: stop after that many
    refreshes; ``None``: until cancelled)."""
    seen: dict[str, Any] = {}
    view: Live | None = None
    if not as_json:
        view = Live(console=console, auto_refresh=False, transient=False)
        view.start()
    try:
        n = 0
        while rounds is None or n < rounds:
            n += 1
            runs = await world.list_runs(flt)
            states = await run_states(world, runs)
            if as_json:
                for r, (w, failing) in reversed(list(zip(runs, states, strict=True))):
                    # oldest change first
                    waits = (w.kind, w.call, w.stalled) if w is not None else None
                    state = (r.status, r.last_seq, sorted(r.attributes.items()), waits)
                    if seen.get(r.run_id) != state:
                        seen[r.run_id] = state
                        line = run_json(r, w, failing)
                        click.echo(json.dumps(line, separators=(",", ":"), default=str))
                sys.stdout.flush()
            else:
                assert view is not None
                view.update(render_runs(runs, time.time(), states), refresh=True)
            if rounds is None or n < rounds:
                await asyncio.sleep(interval)
    finally:
        if view is not None:
            view.stop()


def render_runs(
    runs: list[RunRecord],
    now: float,
    states: list[tuple[Waiting | None, StepRecord | None]] | None = None,
) -> RenderableType:
    """The runs table, with live durations and, per run, what it waits for or why it
    failed (``states``, as :func:`run_states` gives them)."""
    table = Table(show_edge=False, header_style="bold", pad_edge=False)
    cols = (
        "run id",
        "workflow",
        "status",
        "waiting for / error",
        "created",
        "duration",
        "deployment",
        "attributes",
    )
    for col in cols:
        table.add_column(col, no_wrap=True)
    for i, r in enumerate(runs):
        end = r.completed_at or now
        w, failing = states[i] if states is not None else (None, None)
        table.add_row(
            r.run_id,
            r.workflow_name,
            Text(r.status, style=_STYLE.get(r.status, "")),
            run_detail(r, w, failing),
            fmt_time(r.created_at),
            fmt_duration(r.started_at, end) if r.started_at else "-",
            r.deployment,
            " ".join(f"{k}={v}" for k, v in sorted(r.attributes.items())),
        )
    caption = Text(f"{len(runs)} run(s), {fmt_time(now)} (Ctrl-C to stop)", style="dim")
    return Group(table, caption)
