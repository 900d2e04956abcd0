"""What a run that does not move is waiting for, when it is a worker that can take it.

A worker claims only runs of its own workflows and tasks of its own steps (or of runs of
its workflows), so work that no live worker of the namespace and deployment has stays in
the queue, failing nobody. ``durably inspect run`` says so: the run's oldest work that
has been due for more than :data:`WAITING_AFTER` seconds and that no worker claimed, what
a worker needs to take it, and when a worker of the run's deployment was last seen.

Read from the run's projections only: a run not yet started, a step never yet claimed
(``pending``) and a timer past its due time (``waiting``). A step whose lease expired or
that is waiting for its retry is not told apart from one that is running.
"""

from __future__ import annotations

from typing import Any

from ..worlds import World
from ..worlds.base import TERMINAL_STATUSES, RunRecord, StepRecord
from .common import fmt_time

__all__ = ["WAITING_AFTER", "describe", "waiting_for_worker"]

#: How long work may be due before it shows as waiting: longer than a claim takes when a
#: worker that has it is alive and has room.
WAITING_AFTER = 5.0


async def waiting_for_worker(
    world: World, rec: RunRecord, steps: list[StepRecord], now: float
) -> dict[str, Any] | None:
    """The run's oldest work due for over :data:`WAITING_AFTER` seconds and not claimed,
    as JSON-ready data (``None`` when there is none)."""
    if rec.status in TERMINAL_STATUSES:
        return None
    found: dict[str, Any] | None = None
    if rec.status == "pending":
        found = {"kind": "run", "name": rec.workflow_name, "call": None}
        found["due_since"] = rec.created_at
    for s in steps:
        if s.kind == "step" and s.status == "pending":
            due = s.created_at
        elif s.kind == "wait" and s.status == "waiting" and s.due_at is not None:
            due = s.due_at
        else:
            continue
        if found is None or due < found["due_since"]:
            kind = "step" if s.kind == "step" else "timer"
            found = {"kind": kind, "name": s.name, "call": s.call, "due_since": due}
    if found is None or now - found["due_since"] <= WAITING_AFTER:
        return None
    if found["kind"] == "step":
        needs = f"step {found['name']!r} or workflow {rec.workflow_name!r}"
    else:
        needs = f"workflow {rec.workflow_name!r}"
    seen = [
        d.last_seen
        for d in await world.list_deployments(rec.namespace)
        if d.name == rec.deployment and d.last_seen
    ]
    return {
        **found,
        "needs": needs,
        "namespace": rec.namespace,
        "deployment": rec.deployment,
        "worker_last_seen": max(seen) if seen else None,
    }


def describe(waiting: dict[str, Any]) -> str:
    """One line for a person: what is due since when, and who could take it."""
    what = {
        "run": f"the run's first turn (workflow {waiting['name']!r})",
        "step": f"step {waiting['name']!r} (call {waiting['call']})",
        "timer": f"timer {waiting['name']!r} (call {waiting['call']})",
    }[waiting["kind"]]
    seen = waiting["worker_last_seen"]
    worker = (
        f"a worker of deployment {waiting['deployment']!r} was last seen {fmt_time(seen)}"
        if seen
        else f"no worker of deployment {waiting['deployment']!r} was ever seen"
    )
    return (
        f"{what} due since {fmt_time(waiting['due_since'])}, not claimed: waiting for a "
        f"worker that has {waiting['needs']} (namespace {waiting['namespace']!r}); {worker}"
    )
