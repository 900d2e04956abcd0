"""The message of a :class:`~durably.errors.NonDeterminismError`: what the log recorded
against what the replayed body now does, each command named as a user would say it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..events import COMMAND_TYPES, TERMINAL_RUN_TYPES, Event, EventType, NewEvent, require_handlers

__all__ = ["USUAL_CAUSES", "describe", "divergence_message"]

#: Appended to every divergence message: what usually makes a body diverge, and the
#: durable replacements (the same value on every replay).
USUAL_CAUSES = (
    " The usual causes: a branch on `random` (use durably.random()), on the clock "
    "(`time.time()`, `datetime.now()`: use durably.now()), on `uuid.uuid4()` (use "
    "durably.uuid4()), on the iteration order of a set or of unordered data, or on "
    "state read outside the run (a file, a database, a global): read it in a step, "
    "whose result is recorded."
)

#: How a divergence message names each command the body can make.
_DESCRIBE: dict[EventType, Callable[[Any], str]] = {
    EventType.STEP_CREATED: lambda name: f"step {name!r}",
    EventType.WAIT_CREATED: lambda name: f"a {name or 'timer'} (durable timer)",
    EventType.CHILD_CREATED: lambda name: f"child workflow {name!r}",
    EventType.WAIT_CANCELLED: lambda name: "the cancellation of a timer",
    EventType.HOOK_CREATED: lambda name: f"hook {name!r}",
    EventType.HOOK_DISPOSED: lambda name: "the disposal of a hook",
    EventType.ATTRIBUTES_SET: lambda name: "set_attributes()/remove_attributes()",
    **{t: (lambda name: "the end of the run") for t in TERMINAL_RUN_TYPES},
    EventType.LOCK_REQUESTED: lambda name: f"durably.lock({name!r})",
    EventType.LOCK_RELEASED: lambda name: "the release of a lock",
}
require_handlers(_DESCRIBE, COMMAND_TYPES, "durably.runtime.divergence._DESCRIBE")


def describe(t: EventType, data: dict[str, Any]) -> str:
    """A command as a user would name it (``step 'charge'``, ``a sleep (durable timer)``)."""
    name = _DESCRIBE.get(t)
    return name(data.get("name")) if name is not None else t.value


def divergence_message(
    run_id: str,
    workflow_name: str,
    ev: Event,
    issued: NewEvent | None,
    others: list[NewEvent],
) -> str:
    """Why a replay failed: the recorded event ``ev`` against the command the body issued
    in its place (``issued``), or against what else it issued (``others``) when nothing
    matched."""
    recorded = describe(ev.type, ev.data)
    where = f"call #{ev.call}" if ev.call is not None else "its end"
    if issued is None:
        made = [describe(e.type, e.data) for e in others]
        now = f"makes {made[0]}" if made else "makes no such call"
        return (
            f"run {run_id} diverged from its history at {where}: the log records "
            f"{recorded} (event {ev.seq}) but the workflow {workflow_name!r} now "
            f"{now}. Workflow code must make the same durable calls in the same order "
            "on every replay; start a new run (or a new deployment) for changed code."
            + USUAL_CAUSES
        )
    return (
        f"run {run_id} diverged from its history at {where}: the log records "
        f"{recorded} (event {ev.seq}) but the workflow {workflow_name!r} now calls "
        f"{describe(issued.type, issued.data)}. Workflow code must make the same durable "
        "calls in the same order on every replay." + USUAL_CAUSES
    )
