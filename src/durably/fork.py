"""Forking a run: which part of its log a new run copies, and in which writes.

``durably fork RUN --from-step N`` (and :meth:`durably.Run.fork`) makes a new run of the
same workflow and input whose log starts with a copy of the source run's history up to
durable call ``N`` (counted from 0 in call order, the ``call`` column of ``durably inspect
run``): the calls before ``N`` keep their recorded results and are not run again, and the
body goes on from call ``N`` on the code of the fork's deployment. This is how an operator
re-runs the tail of a failed run after a fix, without paying again for what succeeded.

The copy must be a history the body can replay, event by event, exactly as a worker would
have written it, so :func:`plan_fork` keeps, in log order:

* every event recorded before the command of call ``N`` (the body's decisions up to then,
  and the facts it had seen), except those the copy must not repeat: the source's own
  ``run_created`` (the fork writes its own, naming the source), cancel requests, stream
  closes, audit records and the run's end;
* the facts recorded after it that answer calls before ``N`` (a step of a ``gather`` that
  finished after call ``N`` was made): results the fork reuses too.

Commands the body made after call ``N`` (even about older calls: a timer cancelled, a hook
disposed) are left out: the fork's body decides them again. ``hook_registered`` and
``hook_conflict`` are not copied either, as the world appends them itself after the write
that creates the hook; the copy is cut into writes at the same places the source's turns
were, so they land where they did. The last write asks for a turn, so a worker replays the
copy at once and records call ``N`` and what follows.

A step before ``N`` that had not finished is created again in the fork and runs there; a
timer that had not fired fires at its recorded time. Two things cannot be copied, and a
fork that needs them is refused with a message: a child run before ``N`` that has not
ended (its result goes to its own parent) and a hook before ``N`` that is still live in
the source (its token is taken).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ForkError
from .events import COMMAND_TYPES, EVENTS, Event, EventType, NewEvent
from .worlds.base import HookRecord, RunMeta, RunWrite, StepRecord

__all__ = ["ForkPlan", "plan_fork"]

_T = EventType

#: Facts of the source that the fork does not copy (see the module's docstring).
_NOT_COPIED = frozenset(
    {
        _T.RUN_CREATED,
        _T.RUN_CANCEL_REQUESTED,
        _T.STREAM_CLOSED,
        _T.DATA_DECRYPTED,
        _T.HOOK_REGISTERED,
        _T.HOOK_CONFLICT,
    }
)
#: Appended by the world after a write that creates a hook: the copy is cut there.
_WORLD_APPENDED = frozenset({_T.HOOK_REGISTERED, _T.HOOK_CONFLICT})


@dataclass(slots=True)
class ForkPlan:
    """The writes that create a fork, in order (one commit), and what they copy."""

    run_id: str
    writes: list[RunWrite] = field(default_factory=list)
    copied: int = 0  # events copied from the source
    calls: int = 0  # durable calls the source had made


def _is_command(ev: Event) -> bool:
    # attributes_set is a command only when the body set them (it has a call then).
    if ev.type is _T.ATTRIBUTES_SET:
        return ev.call is not None
    return ev.type in COMMAND_TYPES


def _copy(ev: Event, now: float) -> NewEvent:
    """``ev`` as the fork records it: the same type, call, data and payload, stamped now
    (a copied step's recorded start is the fork's too, so that durations do not span
    the time between the source and the fork)."""
    data: dict[str, Any] = dict(ev.data)
    if "started_at" in data:
        data["started_at"] = now
    return NewEvent(ev.type, ev.call, data, ev.payload)


def _refuse(
    source: str, from_step: int, steps: Sequence[StepRecord], hooks: Sequence[HookRecord]
) -> None:
    for s in steps:
        if s.call >= from_step:
            continue
        if s.kind == "child" and s.status not in ("completed", "failed", "cancelled"):
            raise ForkError(
                f"call {s.call} of run {source} is child run {s.child_run_id}, which has not "
                f"ended: its result goes to run {source}, not to a fork. Wait for it, or "
                f"fork from step {s.call} or earlier"
            )
    for h in hooks:
        if h.call < from_step:
            raise ForkError(
                f"call {h.call} of run {source} is a hook that is still live (its token is "
                f"taken until run {source} disposes of it or ends): cancel run {source} "
                f"first, or fork from step {h.call} or earlier"
            )


def plan_fork(
    source: Event | None,
    events: Sequence[Event],
    *,
    run_id: str,
    meta: RunMeta,
    from_step: int,
    created: dict[str, Any],
    steps: Sequence[StepRecord] = (),
    live_hooks: Sequence[HookRecord] = (),
) -> ForkPlan:
    """The writes that create fork ``run_id`` of the run whose log is ``events``.

    Args:
        source: the source's ``run_created`` event (its payload is the fork's input).
        events: the source's whole log, payloads in plaintext.
        run_id: the fork's id.
        meta: what the fork is (workflow, namespace, deployment).
        from_step: the first durable call the fork runs again.
        created: the data of the fork's ``run_created`` event.
        steps: the source's calls (``steps`` projection), to refuse what cannot be copied.
        live_hooks: the source's live hooks, to refuse what cannot be copied.

    Raises:
        ForkError: ``from_step`` is not a call of the source (0 to its number of calls),
            or the fork would need a child run or a hook before it (see the module).
    """
    rid = events[0].run_id if events else "?"
    calls = 1 + max((e.call for e in events if _is_command(e) and e.call is not None), default=-1)
    if not 0 <= from_step <= calls:
        raise ForkError(
            f"run {rid} made {calls} durable calls (0 to {calls - 1}); --from-step must be "
            f"between 0 and {calls} ({calls}: reuse every call and run only the rest of the "
            "body); see the calls with `durably inspect run`"
        )
    _refuse(rid, from_step, steps, live_hooks)
    # The cut: the command that made call ``from_step`` (or the run's end).
    cut = next(
        (
            e.seq
            for e in events
            if _is_command(e) and (e.call == from_step or EVENTS[e.type].ends_run)
        ),
        None,
    )
    now = time.time()
    first = NewEvent(_T.RUN_CREATED, None, created, source.payload if source else None)
    plan = ForkPlan(run_id, [RunWrite(run_id, create=meta, facts=[first])], calls=calls)
    seq = 1  # the fork's last seq so far
    current: RunWrite | None = plan.writes[0]
    for ev in events:
        if ev.type in _WORLD_APPENDED:
            current = None  # the world appended it: the source's next write starts here
            continue
        before_cut = cut is None or ev.seq < cut
        command = _is_command(ev)
        if ev.type in _NOT_COPIED or EVENTS[ev.type].ends_run:
            continue
        if not before_cut and (command or ev.call is None or ev.call >= from_step):
            continue
        copy = _copy(ev, now)
        if command:
            if current is None or not current.commands or current.facts:
                current = RunWrite(run_id, expected_seq=seq)
                plan.writes.append(current)
            current.commands.append(copy)
            if ev.type is _T.HOOK_CREATED:
                seq += 1  # hook_registered or hook_conflict, appended by the world
        else:
            if current is None or current.commands:
                current = RunWrite(run_id)
                plan.writes.append(current)
            current.facts.append(copy)
        seq += 1
        plan.copied += 1
    plan.writes.append(RunWrite(run_id, turn=True))
    return plan
