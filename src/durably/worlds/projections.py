"""One rule per event type: whether a fact is new, and what an appended event changes.

:func:`durably.worlds.ledger.apply_commit` asks :func:`rule_for` for each event it
appends. A :class:`Rule` holds the two decisions the ledger makes about an event type:
``is_new`` (a fact that repeats one already recorded, or answers a call the run never
made, is dropped) and ``project`` (the status tables, ``runs`` and ``steps``, the hook
index and the queue, changed in the same transaction as the event). :data:`RULES` is
checked at import to hold exactly one rule per :class:`~durably.events.EventType`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..events import (
    EVENTS,
    RUN_END_STATUS,
    EventType,
    NewEvent,
    UnknownEventTypeError,
    require_handlers,
)
from . import locks
from .base import TERMINAL_STATUSES, Commit, HookRecord, RunRecord, StepRecord
from .store import RunRow, Store, TaskRow, copy_step

__all__ = ["RULES", "IsNew", "Project", "Rule", "WriteState", "rule_for"]

_STEP_DONE = frozenset({"completed", "failed", "cancelled"})


class WriteState:
    """What applying one write hands to the rules: the store, the run's row (changed in
    place), the commit, its time, the new-work flag, and facts to append after the write."""

    __slots__ = ("commit", "extra", "grants", "now", "row", "store", "work")

    def __init__(
        self, store: Store, row: RunRow, commit: Commit, now: float, work: list[bool]
    ) -> None:
        self.store = store
        self.row = row
        self.commit = commit
        self.now = now
        self.work = work
        self.extra: list[NewEvent] = []  # facts the world itself appends after the write
        #: Lock permits granted to other runs by this write (their facts follow it).
        self.grants: list[locks.LockEntry] = []


#: Whether a fact adds to the log (false: it repeats one already recorded, or answers a
#: call the run never made, and the world drops it).
IsNew = Callable[[Store, RunRow, NewEvent], bool]
#: Update the status tables and the queue for one appended event (``at``: its time;
#: ``claim``: the committing worker runs the step itself). Returns true when the event
#: made a queue entry that nobody holds yet.
Project = Callable[[WriteState, NewEvent, float, bool], bool]


def _new_if_call_known(store: Store, row: RunRow, fact: NewEvent) -> bool:
    """The default: a run-level fact is always new; a fact of a call the run never made is
    dropped."""
    return fact.call is None or store.get_step(row.record.run_id, fact.call) is not None


def _no_projection(x: WriteState, ev: NewEvent, at: float, claim: bool) -> bool:
    """The default: the event changes no status table and no queue entry."""
    return False


@dataclass(frozen=True, slots=True)
class Rule:
    """How a commit treats one event type.

    Attributes:
        is_new: asked of each fact before it is appended (commands are not asked).
        project: applied to every appended event, fact or command.
    """

    is_new: IsNew = _new_if_call_known
    project: Project = _no_projection


def rule_for(t: EventType) -> Rule:
    """The rule of event type ``t``.

    Raises:
        UnknownEventTypeError: ``t`` is not in the vocabulary.
    """
    rule = RULES.get(t)
    if rule is None:
        raise UnknownEventTypeError(
            f"the ledger has no rule for event type {t!r}: every event type needs an entry "
            "in durably.events.EVENTS and a Rule in durably.worlds.projections.RULES"
        )
    return rule


def _answers(check: Callable[[RunRecord, NewEvent, StepRecord], bool]) -> IsNew:
    """An :data:`IsNew` for facts that answer a call: new when the run made the call
    (its steps row exists) and ``check`` says the call still awaits this answer."""

    def is_new(store: Store, row: RunRow, fact: NewEvent) -> bool:
        if fact.call is None:
            return True
        step = store.get_step(row.record.run_id, fact.call)
        return step is not None and check(row.record, fact, step)

    return is_new


def _call_row(x: WriteState, ev: NewEvent) -> StepRecord | None:
    """A changeable copy of the steps row of ``ev``'s call (``None``: no such call)."""
    if ev.call is None:
        return None
    found = x.store.get_step(x.row.record.run_id, ev.call)
    return copy_step(found) if found is not None else None


# -- the run ---------------------------------------------------------------------------


def _run_created_is_new(store: Store, row: RunRow, fact: NewEvent) -> bool:
    return row.record.last_seq == 0


def _run_started_is_new(store: Store, row: RunRow, fact: NewEvent) -> bool:
    return row.record.status == "pending"


def _project_run_started(x: WriteState, ev: NewEvent, at: float, claim: bool) -> bool:
    rec = x.row.record
    rec.status = "running"
    rec.started_at = at
    return False


def _project_run_end(x: WriteState, ev: NewEvent, at: float, claim: bool) -> bool:
    store, row = x.store, x.row
    rec = row.record
    rec.status = RUN_END_STATUS[ev.type]  # type: ignore[assignment]
    rec.completed_at = at
    rec.error_type = ev.data.get("error_type")
    row.lease_owner = None
    row.lease_until = None
    # Nothing of an ended run runs or fires any more (steps in flight may still
    # record late results as facts); its hooks go and its streams close.
    store.delete_run_tasks(rec.run_id)
    store.delete_run_hooks(rec.run_id)
    store.close_run_streams(rec.run_id)
    locks.release_run(x)  # its permits go to the next waiters, in this same commit
    return False


def _cancel_requested_is_new(store: Store, row: RunRow, fact: NewEvent) -> bool:
    rec = row.record
    return not rec.cancel_requested and rec.status not in TERMINAL_STATUSES


def _project_cancel_requested(x: WriteState, ev: NewEvent, at: float, claim: bool) -> bool:
    x.row.record.cancel_requested = True
    return False


def _project_attributes_set(x: WriteState, ev: NewEvent, at: float, claim: bool) -> bool:
    rec = x.row.record
    # data: {"set": {key: value, ...}, "remove": [key, ...]}, plaintext and searchable.
    for key, value in (ev.data.get("set") or {}).items():
        rec.attributes[str(key)] = str(value)
    for key in ev.data.get("remove") or ():
        rec.attributes.pop(str(key), None)
    return False


def _project_stream_closed(x: WriteState, ev: NewEvent, at: float, claim: bool) -> bool:
    x.store.close_stream(x.row.record.run_id, str(ev.data.get("namespace", "")))
    return False


# -- steps -----------------------------------------------------------------------------


def _project_step_created(x: WriteState, ev: NewEvent, at: float, claim: bool) -> bool:
    store, rec, call = x.store, x.row.record, ev.call
    if call is None:
        return False
    step = StepRecord(
        run_id=rec.run_id,
        call=call,
        kind="step",
        name=str(ev.data.get("name", "")),
        status="running" if claim else "pending",
        attempts=1 if claim else 0,
        created_at=at,
        started_at=at if claim else None,
        completed_at=None,
    )
    store.save_step(step, new=True)
    store.put_task(
        TaskRow(
            rec.run_id,
            call,
            "step",
            rec.namespace,
            rec.deployment,
            visible_at=at,
            attempt=1 if claim else 0,
            lease_owner=x.commit.owner if claim else None,
            lease_until=x.now + x.commit.lease_seconds if claim else None,
        )
    )
    return not claim


def _step_retrying_is_new(rec: RunRecord, fact: NewEvent, step: StepRecord) -> bool:
    # Only the latest attempt may reschedule the step: a late report from an attempt
    # whose lease expired must not take the task from the worker now holding it.
    latest = int(fact.data.get("attempt", step.attempts)) >= step.attempts
    return step.kind == "step" and step.status not in _STEP_DONE and latest


def _project_step_retrying(x: WriteState, ev: NewEvent, at: float, claim: bool) -> bool:
    store, rec = x.store, x.row.record
    step = _call_row(x, ev)
    if step is None:
        return False
    call = step.call
    step.status = "retrying"
    step.attempts = int(ev.data.get("attempt", step.attempts))
    step.error_type = ev.data.get("error_type")
    retry_at = float(ev.data.get("retry_at", at))
    store.save_step(step, new=False)
    if rec.status in TERMINAL_STATUSES:
        return False  # the run ended meanwhile: no more attempts
    store.put_task(
        TaskRow(
            rec.run_id,
            call,
            "step",
            rec.namespace,
            rec.deployment,
            retry_at,
            attempt=step.attempts,
        )
    )
    return True


def _step_end_is_new(rec: RunRecord, fact: NewEvent, step: StepRecord) -> bool:
    return step.kind == "step" and step.status not in _STEP_DONE


def _project_step_end(x: WriteState, ev: NewEvent, at: float, claim: bool) -> bool:
    """``step_completed`` and ``step_failed``."""
    step = _call_row(x, ev)
    if step is None:
        return False
    step.status = str(EVENTS[ev.type].status)
    step.attempts = int(ev.data.get("attempt", step.attempts))
    if ev.data.get("started_at") is not None:
        step.started_at = float(ev.data["started_at"])
    step.completed_at = at
    step.error_type = ev.data.get("error_type")
    x.store.delete_task(step.run_id, step.call)
    x.store.save_step(step, new=False)
    return False


# -- timers ----------------------------------------------------------------------------


def _project_wait_created(x: WriteState, ev: NewEvent, at: float, claim: bool) -> bool:
    store, rec, call = x.store, x.row.record, ev.call
    if call is None:
        return False
    due = float(ev.data["due_at"])
    store.save_step(
        StepRecord(
            run_id=rec.run_id,
            call=call,
            kind="wait",
            name=str(ev.data.get("name", "sleep")),
            status="waiting",
            attempts=0,
            created_at=at,
            started_at=at,
            completed_at=None,
            due_at=due,
        ),
        new=True,
    )
    store.put_task(TaskRow(rec.run_id, call, "timer", rec.namespace, rec.deployment, due))
    return True


def _wait_completed_is_new(rec: RunRecord, fact: NewEvent, step: StepRecord) -> bool:
    return step.kind == "wait" and step.status == "waiting"


def _project_wait_completed(x: WriteState, ev: NewEvent, at: float, claim: bool) -> bool:
    step = _call_row(x, ev)
    if step is None:
        return False
    step.status = "completed"
    step.completed_at = at
    x.store.delete_task(step.run_id, step.call)
    x.store.save_step(step, new=False)
    return False


def _project_wait_cancelled(x: WriteState, ev: NewEvent, at: float, claim: bool) -> bool:
    step = _call_row(x, ev)
    if step is None:
        return False
    if step.status == "waiting":
        step.status = "cancelled"
        step.completed_at = at
    x.store.delete_task(step.run_id, step.call)
    x.store.save_step(step, new=False)
    return False


# -- child runs ------------------------------------------------------------------------


def _project_child_created(x: WriteState, ev: NewEvent, at: float, claim: bool) -> bool:
    rec, call = x.row.record, ev.call
    if call is None:
        return False
    x.store.save_step(
        StepRecord(
            run_id=rec.run_id,
            call=call,
            kind="child",
            name=str(ev.data.get("name", "")),
            status="running",
            attempts=1,
            created_at=at,
            started_at=at,
            completed_at=None,
            child_run_id=ev.data.get("child_run_id"),
        ),
        new=True,
    )
    return False


def _child_end_is_new(rec: RunRecord, fact: NewEvent, step: StepRecord) -> bool:
    return step.kind == "child" and step.status not in _STEP_DONE


def _project_child_end(x: WriteState, ev: NewEvent, at: float, claim: bool) -> bool:
    """``child_completed`` and ``child_failed``."""
    step = _call_row(x, ev)
    if step is None:
        return False
    step.status = str(EVENTS[ev.type].status)
    step.completed_at = at
    step.error_type = ev.data.get("error_type")
    x.store.save_step(step, new=False)
    return False


# -- hooks -----------------------------------------------------------------------------


def _project_hook_created(x: WriteState, ev: NewEvent, at: float, claim: bool) -> bool:
    store, rec, call = x.store, x.row.record, ev.call
    if call is None:
        return False
    token = str(ev.data["token"])
    holder = store.get_hook(token)
    conflict = holder is not None and (holder.run_id, holder.call) != (rec.run_id, call)
    store.save_step(
        StepRecord(
            run_id=rec.run_id,
            call=call,
            kind="hook",
            name=str(ev.data.get("name", ev.data.get("type", "hook"))),
            status="conflict" if conflict else "waiting",
            attempts=0,
            created_at=at,
            started_at=at,
            completed_at=at if conflict else None,
        ),
        new=True,
    )
    if conflict:
        assert holder is not None
        x.extra.append(
            NewEvent(
                EventType.HOOK_CONFLICT,
                call,
                {"token": token, "held_by": holder.run_id, "error_type": "HookConflictError"},
            )
        )
        return False
    x.extra.append(NewEvent(EventType.HOOK_REGISTERED, call, {"token": token}))
    store.put_hook(
        HookRecord(
            token=token,
            run_id=rec.run_id,
            call=call,
            hook_type=str(ev.data.get("type", "hook")),
            namespace=rec.namespace,
            created_at=at,
            metadata=dict(ev.data.get("metadata") or {}),
        )
    )
    return False


def _hook_received_is_new(rec: RunRecord, fact: NewEvent, step: StepRecord) -> bool:
    live = rec.status not in TERMINAL_STATUSES
    return live and step.kind == "hook" and step.status == "waiting"


def _project_hook_received(x: WriteState, ev: NewEvent, at: float, claim: bool) -> bool:
    step = _call_row(x, ev)
    if step is None:
        return False
    step.attempts += 1  # resumes received
    x.store.save_step(step, new=False)
    return False


def _project_hook_disposed(x: WriteState, ev: NewEvent, at: float, claim: bool) -> bool:
    store, rec = x.store, x.row.record
    step = _call_row(x, ev)
    if step is None:
        return False
    if step.status == "waiting":
        step.status = "disposed"
        step.completed_at = at
    token = ev.data.get("token")
    holder = store.get_hook(str(token)) if token is not None else None
    if holder is not None and (holder.run_id, holder.call) == (rec.run_id, step.call):
        store.delete_hook(holder.token)
    store.save_step(step, new=False)
    return False


# -- locks (the rules themselves are in durably.worlds.locks) ---------------------------


def _project_lock_requested(x: WriteState, ev: NewEvent, at: float, claim: bool) -> bool:
    if ev.call is not None:
        locks.request(x, str(ev.data["key"]), ev.call, int(ev.data.get("limit", 1)))
    return False


def _lock_acquired_is_new(store: Store, row: RunRow, fact: NewEvent) -> bool:
    # Appended only by the ledger, in the commit that grants the permit.
    return row.record.status not in TERMINAL_STATUSES


def _project_lock_released(x: WriteState, ev: NewEvent, at: float, claim: bool) -> bool:
    if ev.call is not None:
        locks.release(x, str(ev.data["key"]), x.row.record.run_id, ev.call)
    return False


_T = EventType

#: The ledger's rule for every event type.
RULES: dict[EventType, Rule] = {
    _T.RUN_CREATED: Rule(is_new=_run_created_is_new),
    _T.RUN_STARTED: Rule(is_new=_run_started_is_new, project=_project_run_started),
    _T.RUN_COMPLETED: Rule(project=_project_run_end),
    _T.RUN_FAILED: Rule(project=_project_run_end),
    _T.RUN_CANCEL_REQUESTED: Rule(
        is_new=_cancel_requested_is_new, project=_project_cancel_requested
    ),
    _T.RUN_CANCELLED: Rule(project=_project_run_end),
    _T.STEP_CREATED: Rule(project=_project_step_created),
    _T.STEP_RETRYING: Rule(is_new=_answers(_step_retrying_is_new), project=_project_step_retrying),
    _T.STEP_COMPLETED: Rule(is_new=_answers(_step_end_is_new), project=_project_step_end),
    _T.STEP_FAILED: Rule(is_new=_answers(_step_end_is_new), project=_project_step_end),
    _T.WAIT_CREATED: Rule(project=_project_wait_created),
    _T.WAIT_COMPLETED: Rule(
        is_new=_answers(_wait_completed_is_new), project=_project_wait_completed
    ),
    _T.WAIT_CANCELLED: Rule(project=_project_wait_cancelled),
    _T.CHILD_CREATED: Rule(project=_project_child_created),
    _T.CHILD_COMPLETED: Rule(is_new=_answers(_child_end_is_new), project=_project_child_end),
    _T.CHILD_FAILED: Rule(is_new=_answers(_child_end_is_new), project=_project_child_end),
    _T.HOOK_CREATED: Rule(project=_project_hook_created),
    _T.HOOK_RECEIVED: Rule(is_new=_answers(_hook_received_is_new), project=_project_hook_received),
    _T.HOOK_DISPOSED: Rule(project=_project_hook_disposed),
    # Appended by the ledger itself (after hook_created), for the body only.
    _T.HOOK_REGISTERED: Rule(),
    _T.HOOK_CONFLICT: Rule(),
    _T.STREAM_CLOSED: Rule(project=_project_stream_closed),
    _T.ATTRIBUTES_SET: Rule(project=_project_attributes_set),
    _T.DATA_DECRYPTED: Rule(),  # an audit record: nothing to project
    # -- flow control: locks --
    _T.LOCK_REQUESTED: Rule(project=_project_lock_requested),
    _T.LOCK_ACQUIRED: Rule(is_new=_lock_acquired_is_new),
    _T.LOCK_RELEASED: Rule(project=_project_lock_released),
}
require_handlers(RULES, EventType, "durably.worlds.projections.RULES")
