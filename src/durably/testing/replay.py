"""Replay checks: does the current code still replay a run's recorded history?

A deploy that changes a workflow's code must not break the runs in flight: each of them
replays its log against the new code at its next turn, and a body that now makes other
durable calls than the log recorded fails with ``NonDeterminismError``. A replay check
finds that before the deploy, from exported histories (``durably inspect events RUN
--export FILE``): the runtime replays the log against the registry's workflow exactly as
a worker would, without running any step (every result comes from the log), and reports
the first divergence: at which durable call (counted from 0 in call order: steps, sleeps,
hooks, child runs), what the log has and what the code called.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import HistoryError, NonDeterminismError
from ..events import TERMINAL_RUN_TYPES, Event, EventType, UnknownEventTypeError
from ..runtime.divergence import describe
from ..runtime.failures import decode_error_doc, error_type_name
from ..runtime.instance import RunInstance
from ..worlds.base import RunRecord
from .history import History, load_history

if TYPE_CHECKING:
    from ..registry import Workflows

__all__ = ["Divergence", "ReplayReport", "check_history", "replay"]


@dataclass(slots=True)
class Divergence:
    """Where a replay first left its log.

    Attributes:
        index: the durable call where it diverged, counted from 0 in call order (steps,
            sleeps, hooks, child runs, attribute changes); at the run's end, the number
            of calls the code made.
        recorded: what the log has there (``step 'charge'``).
        called: what the code called instead (``step 'refund'``, ``no call``).
        seq: the sequence number of the recorded event.
        message: the full explanation, as ``NonDeterminismError`` gives it.
    """

    index: int
    recorded: str
    called: str
    seq: int
    message: str

    def to_json(self) -> dict[str, Any]:
        """The divergence as JSON-ready data."""
        return {
            "index": self.index,
            "recorded": self.recorded,
            "called": self.called,
            "seq": self.seq,
            "message": self.message,
        }


@dataclass(slots=True)
class ReplayReport:
    """The outcome of replaying one history: compatible when ``divergence`` is ``None``."""

    source: str
    run_id: str
    workflow: str
    events: int
    calls: int
    divergence: Divergence | None = None

    @property
    def ok(self) -> bool:
        """Whether the code replays the history unchanged."""
        return self.divergence is None

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "source": self.source,
            "run_id": self.run_id,
            "workflow": self.workflow,
            "events": self.events,
            "calls": self.calls,
            "compatible": self.ok,
            "divergence": None if self.divergence is None else self.divergence.to_json(),
        }


async def replay(history: str | Path | dict[str, Any], wf: Workflows) -> ReplayReport:
    """Replay an exported history against the workflows of ``wf``, running no step.

    Args:
        history: the file ``durably inspect events RUN --export FILE`` wrote (or its
            parsed JSON).
        wf: the registry with the current code of the run's workflow.

    Returns:
        The report (compatible).

    Raises:
        NonDeterminismError: the code diverges from the history; the message names the
            durable call (counted from 0), what the log has and what the code called.
        HistoryError: not a history, or its workflow is not registered in ``wf``.
    """
    report = check_history(history, wf)
    if report.divergence is not None:
        d = report.divergence
        raise NonDeterminismError(
            f"{report.source}: diverged at step {d.index}: the log has {d.recorded}, "
            f"the code called {d.called}. {d.message}"
        )
    return report


def check_history(history: str | Path | dict[str, Any] | History, wf: Workflows) -> ReplayReport:
    """Replay a history like :func:`replay`, returning the divergence rather than
    raising it (``durably replay`` prints it).

    Raises:
        HistoryError: not a history, or its workflow is not registered in ``wf``.
    """
    h = history if isinstance(history, History) else load_history(history)
    workflow = wf.workflows.get(h.workflow)
    if workflow is None:
        raise HistoryError(
            f"{h.source} is a run of workflow {h.workflow!r}, which the registry does not "
            f"have (registered: {', '.join(sorted(wf.workflows)) or 'none'})"
        )
    first = h.events[0]
    record = RunRecord(
        run_id=h.run_id,
        workflow_name=h.workflow,
        namespace=h.namespace,
        deployment=h.deployment,
        status="running",
        created_at=first.created_at,
        started_at=None,
        completed_at=None,
        last_seq=0,
    )
    inst = RunInstance(record, workflow.spec, wf.limits)
    report = ReplayReport(h.source, h.run_id, h.workflow, len(h.events), 0)
    try:
        inst.index(h.events)
        inst.feed_log(h.events)
        report.divergence = _outcome(inst, h.events)
    except NonDeterminismError as e:
        report.divergence = _diverged(inst, e)
    except UnknownEventTypeError as e:
        raise HistoryError(f"{h.source}: {e}") from None
    finally:
        report.calls = inst.calls_made
        inst.close()
    return report


def _diverged(inst: RunInstance, error: NonDeterminismError) -> Divergence:
    if inst.divergence is None:  # raised elsewhere (cannot happen today): say it whole
        return Divergence(inst.calls_made, "?", "?", inst.seen_seq, str(error))
    ev, issued, others = inst.divergence
    if issued is not None:
        called = describe(issued.type, issued.data)
    elif others:
        called = describe(others[0].type, others[0].data)
    else:
        called = "no such call (the body waits on something else, or has ended)"
    index = ev.call if ev.call is not None else inst.calls_made
    return Divergence(index, describe(ev.type, ev.data), called, ev.seq, str(error))


def _outcome(inst: RunInstance, events: list[Event]) -> Divergence | None:
    """Whether an ended run ends the same way: the same result, or the same error."""
    end = events[-1]
    if end.type not in TERMINAL_RUN_TYPES:
        return None  # a run in flight: the code may go on past the log
    task = inst.task
    if task is None or not task.done() or end.type is EventType.RUN_CANCELLED:
        return None
    recorded, returned = _end_of_log(end), _end_of_body(inst)
    if recorded == returned:
        return None
    message = (
        f"run {inst.run_id} ends differently: the log records {recorded} (event {end.seq}) "
        f"but the workflow {inst.workflow.name!r} now {returned}."
    )
    return Divergence(inst.calls_made, recorded, returned, end.seq, message)


def _end_of_log(end: Event) -> str:
    if end.type is EventType.RUN_COMPLETED:
        value = None if end.payload is None else json.loads(end.payload)
        return f"the result {json.dumps(value, sort_keys=True)}"
    doc = decode_error_doc(end.payload)
    name = str(doc.get("qualname", "")).rsplit(".", 1)[-1]
    return f"the error {name}: {doc.get('message')}"


def _end_of_body(inst: RunInstance) -> str:
    task = inst.task
    assert task is not None
    if task.cancelled():
        return "is cancelled"
    exc = task.exception()
    if exc is None:
        try:
            payload = inst.workflow.shape.encode_result(task.result())
        except Exception as e:  # its result no longer encodes
            return f"the error {error_type_name(e)}: {e}"
        return f"the result {json.dumps(json.loads(payload), sort_keys=True)}"
    return f"the error {type(exc).__name__}: {exc}"
