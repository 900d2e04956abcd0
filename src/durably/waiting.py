"""What a run waits for: the state finer than its status, derived from what the world has.

A run's status says only ``running`` while it sleeps, waits on a hook, runs a step or
waits for a worker to pick up its work. :func:`waiting_of` tells these apart from the
run's record, its ``steps`` projection (status, attempts), its queue entries (due times,
leases: :meth:`~durably.worlds.base.World.run_queue`) and its live hooks, and is the one
place every surface (``Run.waiting()``, the CLI, the HTTP API, the dashboard) asks.

The kinds (:data:`WaitKind`):

* ``"step"``: a step attempt runs on ``worker``, its lease ends at ``until``;
* ``"retry"``: a step failed and its next attempt is due at ``until``;
* ``"rate_limit"``: a step waits for its rate limit's window, until ``until``;
* ``"sleep"``: a durable timer fires at ``until``;
* ``"hook"``: a hook waits to be resumed (its type, whether it is a webhook; never the
  token, which is a secret);
* ``"child"``: a child run (``child_run_id``) must end;
* ``"turn"``: the workflow body is running its turn on ``worker`` (a moment, normally);
* ``"lock"``: the body waits for a permit of the lock ``name`` (``durably.lock``);
* ``"concurrency"``: the run is ``pending`` over its workflow's concurrency limit, for a
  permit of the key ``name`` (it starts when a run of that key ends);
* ``"worker"``: work is ready (the run's start or next turn, a step, a due timer) and no
  worker holds it: none of the run's namespace and deployment is running, or all are
  busy, or the one that held it stopped (its lease expired at ``since``). ``stalled``
  says it has been so for over :data:`STALLED_AFTER` seconds;
* ``None``: the run has ended (``since`` is when), or, for an instant between two
  changes, nothing is pending (read again).

When a run waits on several things at once (steps gathered in parallel), the first by
the order above is the main one and the others are in ``also``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from .errors import DecryptionError, RunNotFoundError
from .events import TERMINAL_RUN_TYPES, Event
from .worlds.base import TERMINAL_STATUSES, QueuedTask, RunRecord, StepRecord, StreamInfo
from .worlds.locks import ADMISSION
from .worlds.rates import RATE_LIMITED

if TYPE_CHECKING:
    from .worlds.base import World

__all__ = [
    "STALLED_AFTER",
    "WaitKind",
    "Waiting",
    "absent_stream",
    "end_event",
    "failing_step",
    "no_stream_message",
    "waiting_of",
]

#: What a run waits for (``None``: nothing, it has ended).
WaitKind = Literal[
    "step",
    "retry",
    "rate_limit",
    "sleep",
    "hook",
    "child",
    "turn",
    "worker",
    "lock",
    "concurrency",
]

_Work = Literal["start", "turn", "step", "timer"]

#: Ready work no worker has held for this many seconds is ``stalled``: workers claim
#: ready work within a poll, so this long means none that can is running (or all are
#: busy).
STALLED_AFTER = 10.0

#: The main wait is the first kind in this order.
_ORDER: dict[str | None, int] = {
    k: i
    for i, k in enumerate(
        (
            "worker",
            "turn",
            "step",
            "retry",
            "rate_limit",
            "child",
            "hook",
            "lock",
            "concurrency",
            "sleep",
        )
    )
}


@dataclass(frozen=True, slots=True)
class Waiting:
    """What a run waits for now, and since when (see :mod:`durably.waiting`).

    Attributes:
        kind: ``"step"``, ``"retry"``, ``"sleep"``, ``"hook"``, ``"child"``, ``"turn"``,
            ``"worker"``, or ``None`` when the run has ended.
        since: when this wait began (a step attempt's start, a sleep's start, when ready
            work became claimable, when the run ended), if known.
        call: the durable call waited on (``None``: the run itself).
        name: the call's name (a step's, a sleep's, a hook's).
        until: when it ends at the latest: a sleep's due time, a retry's time, the end of
            a running step's lease.
        worker: the worker holding the step or turn (for ``"worker"``: the one whose
            lease expired, if any).
        child_run_id: the child run waited on.
        hook_type: the payload type a hook waits for.
        webhook: whether the hook can be resumed over HTTP.
        attempt: a step's attempt (running, or the one that failed before a retry).
        error_type: for a retry, the error of the attempt that failed.
        work: ``"worker"`` only: the ready work: ``"start"`` (the run's first turn),
            ``"turn"`` (its next turn), ``"step"`` or ``"timer"`` (a due sleep).
        stalled: ``"worker"`` only: ready work unclaimed for over :data:`STALLED_AFTER`.
        also: the other things the run waits for at the same time.
    """

    kind: WaitKind | None
    since: float | None = None
    call: int | None = None
    name: str | None = None
    until: float | None = None
    worker: str | None = None
    child_run_id: str | None = None
    hook_type: str | None = None
    webhook: bool | None = None
    attempt: int | None = None
    error_type: str | None = None
    work: _Work | None = None
    stalled: bool = False
    also: tuple[Waiting, ...] = ()

    def describe(self, now: float | None = None) -> str:
        """One line for people: ``"sleep 'cooldown' until 2024-05-01 10:00:00"``."""
        now = time.time() if now is None else now
        if self.kind is None:
            return "nothing (ended)"
        what = _describe_one(self, now)
        if self.also:
            what += f" (and {len(self.also)} more)"
        return what

    def summary(self) -> str:
        """A few words for a table cell: ``"sleep until 10:00:00"``, ``"step 'charge'"``."""
        name = repr(self.name) if self.name else ""
        if self.kind is None:
            return ""
        if self.kind == "worker":
            return "a worker" + (" (stalled)" if self.stalled else "")
        if self.kind in ("sleep", "retry", "rate_limit"):
            what = {"sleep": "sleep", "retry": f"retry {name}"}.get(
                self.kind, f"rate limit of {name}"
            )
            return f"{what} until {_clock(self.until)}"
        if self.kind == "hook":
            return ("webhook " if self.webhook else "hook ") + (self.hook_type or name)
        if self.kind == "child":
            return f"child {self.child_run_id}"
        if self.kind == "turn":
            return "its turn"
        if self.kind == "lock":
            return f"lock {self.name}"
        if self.kind == "concurrency":
            return f"concurrency limit {self.name}"
        return f"step {name}"

    def to_json(self) -> dict[str, Any]:
        """The wait as JSON-ready data (``also`` as a list of the same)."""
        return {
            "kind": self.kind,
            "since": self.since,
            "call": self.call,
            "name": self.name,
            "until": self.until,
            "worker": self.worker,
            "child_run_id": self.child_run_id,
            "hook_type": self.hook_type,
            "webhook": self.webhook,
            "attempt": self.attempt,
            "error_type": self.error_type,
            "work": self.work,
            "stalled": self.stalled,
            "description": self.describe(),
            "also": [w.to_json() for w in self.also],
        }


def _clock(at: float | None) -> str:
    """A time as the CLI shows times: UTC, to the second."""
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(at)) if at else "-"


def _ago(now: float, at: float | None) -> str:
    if at is None:
        return ""
    secs = max(now - at, 0.0)
    if secs < 60:
        return f"{secs:.0f}s"
    if secs < 3600:
        return f"{secs / 60:.0f}m"
    return f"{secs / 3600:.1f}h"


def _describe_one(w: Waiting, now: float) -> str:
    name = repr(w.name) if w.name else ""
    if w.kind == "sleep":
        return f"sleep {name + ' ' if w.name != 'sleep' else ''}until {_clock(w.until)}"
    if w.kind == "step":
        return f"step {name} (attempt {w.attempt}) on {w.worker}, lease until {_clock(w.until)}"
    if w.kind == "retry":
        err = f" after {w.error_type}" if w.error_type else ""
        return f"retry of step {name}{err} at {_clock(w.until)}"
    if w.kind == "rate_limit":
        return f"step {name} waits for its rate limit until {_clock(w.until)}"
    if w.kind == "hook":
        how = "webhook" if w.webhook else "hook"
        return f"{how} {name} of type {w.hook_type or '?'}"
    if w.kind == "child":
        return f"child run {w.child_run_id}"
    if w.kind == "turn":
        return f"its workflow body on {w.worker}"
    if w.kind == "lock":
        return f"lock {w.name} (a permit held by another run)"
    if w.kind == "concurrency":
        return f"pending: over the concurrency limit of {w.name} (starts when one ends)"
    what = {
        "start": "its start",
        "turn": "its next turn",
        "step": f"step {name}",
        "timer": f"the end of sleep {name}",
    }.get(w.work or "", "its work")
    text = f"a worker to take {what}, ready for {_ago(now, w.since)}"
    if w.worker:
        text += f" (the lease of {w.worker} expired)"
    if w.stalled:
        text += ": is a worker of this namespace and deployment running?"
    return text


async def waiting_of(world: World, rec: RunRecord, *, now: float | None = None) -> Waiting:
    """What run ``rec`` waits for now, read from ``world`` (its queue, steps and hooks).

    Args:
        world: the world the run is in.
        rec: the run's record, as just read.
        now: the time to judge leases and due times by (default: now).
    """
    if rec.status in TERMINAL_STATUSES:
        return Waiting(None, since=rec.completed_at)
    now = time.time() if now is None else now
    queue = await world.run_queue(rec.run_id)
    steps = {s.call: s for s in await world.list_steps(rec.run_id)}
    tasks = {t.call: t for t in queue.tasks} if queue is not None else {}
    waits: list[Waiting] = []
    if queue is not None and queue.turn_due_at is not None and queue.turn_due_at <= now:
        if queue.lease_until is not None and queue.lease_until >= now:
            waits.append(Waiting("turn", since=queue.turn_due_at, worker=queue.lease_owner))
        else:
            work: _Work = "start" if rec.status == "pending" else "turn"
            # A run started with a priority is due before it was made (so claims take it
            # first): it has been ready since it was made.
            ready = max(queue.turn_due_at, rec.created_at) if work == "start" else queue.turn_due_at
            waits.append(_unclaimed(work, None, queue.lease_owner, ready, queue.lease_until, now))
    hooks: dict[int, tuple[str, bool]] | None = None
    for step in steps.values():
        task = tasks.get(step.call)
        if step.kind == "step" and task is not None:
            waits.append(_step_wait(step, task, now))
        elif step.kind == "wait" and step.status == "waiting":
            if task is not None and task.visible_at <= now and not _held(task, now):
                waits.append(_unclaimed("timer", step, task.lease_owner, *_ready(task), now))
            else:
                waits.append(
                    Waiting(
                        "sleep",
                        since=step.started_at,
                        call=step.call,
                        name=step.name,
                        until=step.due_at,
                    )
                )
        elif step.kind == "child" and step.status == "running":
            waits.append(
                Waiting(
                    "child",
                    since=step.started_at,
                    call=step.call,
                    name=step.name,
                    child_run_id=step.child_run_id,
                )
            )
        elif step.kind == "hook" and step.status == "waiting":
            if hooks is None:
                hooks = await _hook_facts(world, rec.run_id, steps)
            hook_type, webhook = hooks.get(step.call, ("", False))
            waits.append(
                Waiting(
                    "hook",
                    since=step.started_at,
                    call=step.call,
                    name=step.name,
                    hook_type=hook_type or None,
                    webhook=webhook,
                )
            )
    if not waits:
        waits = await _lock_waits(world, rec.run_id)
    if not waits:
        return Waiting(None)  # between two changes: nothing pending at this instant
    waits.sort(key=lambda w: (_ORDER.get(w.kind, 99), w.call if w.call is not None else -1))
    main, *rest = waits
    return replace(main, also=tuple(rest)) if rest else main


async def _lock_waits(world: World, run_id: str) -> list[Waiting]:
    """The locks (and concurrency limit) the run waits for a permit of: asked only of a
    run that waits for nothing else (it has no turn due, no task and no open call)."""
    list_locks = getattr(world, "list_locks", None)
    if list_locks is None:  # a world written before locks
        return []
    return [
        Waiting(
            "concurrency" if e.call == ADMISSION else "lock",
            since=e.queued_at,
            call=None if e.call == ADMISSION else e.call,
            name=e.key,
        )
        for e in await list_locks(run_id=run_id)
        if not e.holding
    ]


def _held(task: QueuedTask, now: float) -> bool:
    return task.lease_owner is not None and task.lease_until is not None and task.lease_until >= now


def _step_wait(step: StepRecord, task: QueuedTask, now: float) -> Waiting:
    if _held(task, now):
        return Waiting(
            "step",
            since=step.started_at,
            call=step.call,
            name=step.name,
            until=task.lease_until,
            worker=task.lease_owner,
            attempt=task.attempt,
        )
    if task.visible_at > now and step.status == RATE_LIMITED:
        return Waiting(
            "rate_limit", since=None, call=step.call, name=step.name, until=task.visible_at
        )
    if task.visible_at > now:
        return Waiting(
            "retry",
            since=None,  # when the attempt failed is in the log, not the projection
            call=step.call,
            name=step.name,
            until=task.visible_at,
            attempt=step.attempts,
            error_type=step.error_type,
        )
    return _unclaimed("step", step, task.lease_owner, *_ready(task), now)


def _ready(task: QueuedTask) -> tuple[float, float | None]:
    return task.visible_at, task.lease_until


def _unclaimed(
    work: _Work,
    step: StepRecord | None,
    owner: str | None,
    ready_at: float,
    lease_until: float | None,
    now: float,
) -> Waiting:
    """Ready work nobody holds: since it became ready, or since its lease expired (then
    ``worker`` is the one that held it)."""
    since = max(ready_at, lease_until or 0.0)
    lost = owner is not None and lease_until is not None and lease_until < now
    return Waiting(
        "worker",
        since=since,
        call=step.call if step else None,
        name=step.name if step else None,
        worker=owner if lost else None,
        error_type=step.error_type if step else None,
        work=work,
        stalled=now - since > STALLED_AFTER,
    )


async def _hook_facts(
    world: World, run_id: str, steps: dict[int, StepRecord]
) -> dict[int, tuple[str, bool]]:
    """Per hook call: its payload type and whether it is a webhook (from the plaintext
    data of its ``hook_created``; never the token)."""
    out: dict[int, tuple[str, bool]] = {
        h.call: (h.hook_type, False) for h in await world.list_hooks(run_id=run_id)
    }
    for call, (hook_type, _) in list(out.items()):
        try:
            created = await world.read_command(run_id, call)
        except DecryptionError:  # an encrypted world without the key: the data is plain
            created = await getattr(world, "inner", world).read_command(run_id, call)
        if created is not None:
            out[call] = (
                str(created.data.get("type") or hook_type),
                bool(created.data.get("webhook")),
            )
    return out


def failing_step(rec: RunRecord, steps: list[StepRecord]) -> StepRecord | None:
    """The durable call whose error failed the run: the last failed step or child (or
    conflicting hook) with the run's error type; ``None`` when the run did not fail or the
    body itself raised (no call failed with that error)."""
    if rec.status != "failed" or rec.error_type is None:
        return None
    for step in reversed(steps):
        if step.status in ("failed", "conflict") and step.error_type == rec.error_type:
            return step
    return None


async def end_event(world: World, rec: RunRecord) -> Event | None:
    """The event that ended the run (``run_completed``, ``run_failed``, ``run_cancelled``),
    or ``None`` while it runs. Payloads are as ``world`` returns them."""
    if rec.status not in TERMINAL_STATUSES:
        return None
    # The end is the last event or near it (late facts may follow it): look at the last
    # two (an encrypted world opens every payload it reads), then back a little, before
    # reading the whole log.
    read_after = rec.last_seq + 1  # events after this one have been looked at (none yet)
    for after in (rec.last_seq - 2, rec.last_seq - 16, 0):
        after = max(after, 0)
        if after >= read_after:
            continue
        for ev in reversed(await world.read_events(rec.run_id, after_seq=after)):
            if ev.type in TERMINAL_RUN_TYPES:
                return ev
        read_after = after
    return None


async def absent_stream(world: World, run_id: str, namespace: str) -> list[StreamInfo] | None:
    """The run's streams when a reader of stream ``namespace`` would wait in vain (the
    usual cause: a missing or misspelt namespace), else ``None``.

    The rule: the stream has no chunk and is not closed, and either the run has ended
    (its streams are final) or it has written other streams. A live run that has written
    no stream at all may still write this one (its default stream, typically): a reader
    may follow it. A stream a run writes only after its others have chunks must be read
    once it has begun (or after the run ended).

    Raises:
        RunNotFoundError: the run does not exist.
    """
    rec = await world.get_run(run_id)
    if rec is None:
        raise RunNotFoundError(run_id, world.url)
    infos = await world.stream_info(run_id)
    mine = next((i for i in infos if i.namespace == namespace), None)
    if mine is not None and (mine.count > 0 or mine.closed):
        return None
    others = [i for i in infos if i.namespace != namespace]
    if rec.status in TERMINAL_STATUSES or others:
        return others
    return None


def no_stream_message(run_id: str, namespace: str, streams: list[StreamInfo]) -> str:
    """``run X has no stream 'NS'; its streams: 'ui' (12 chunks), ...``."""
    shown = ", ".join(
        f"{i.namespace or '(default)'!r} ({i.count} chunk{'' if i.count == 1 else 's'})"
        for i in streams
    )
    what = f"run {run_id} has no stream {namespace or '(default)'!r}"
    if not shown:
        return f"{what}; it has no streams (it ended without writing one)"
    hint = "" if namespace else " (pass the namespace)"
    return f"{what}; its streams: {shown}{hint}"
