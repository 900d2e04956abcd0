"""The event vocabulary shared by the runtime and every world.

A run is an append-only sequence of events, numbered from 1 by ``seq``. Events come in
two kinds:

* **facts** record something that happened outside the workflow body: a run started, a
  step finished, a timer fired. Anyone may append a fact at any time; a world drops a
  fact that repeats one already recorded (a step completed twice after a lease expired).
* **commands** record what the workflow body decided: call a step, start a timer, start
  a child, finish the run. Only the holder of the run's turn appends commands, and only
  if the log has not moved since it last read it (``expected_seq``).

``call`` is the position of a durable call in the body (0, 1, 2, ... in program order)
and ties a command to the facts that answer it.

Every event type, one a line (kind; what it records; its ``data`` keys; its payload).
The body consumes the facts marked *delivered*: appending one gives the run a turn.

* ``run_created``: fact; the run exists; workflow, traceparent, rerun_of, fork_of and
  from_step (a fork: the run whose history before call ``from_step`` it copies), priority,
  concurrency_key, concurrency_limit; args.
* ``run_started``: fact, delivered; the first turn begins; no data; no payload.
* ``run_completed``: command, ends the run; the body returned; no data; value.
* ``run_failed``: command, ends the run; the body raised; error_type; error.
* ``run_cancel_requested``: fact, delivered; someone asked the run to stop; reason.
* ``run_cancelled``: command, ends the run; the body stopped on cancellation; reason.
* ``step_created``: command, creates a step call; name, max_retries, retry_after, timeout,
  bound (a method step: its receiver is not recorded); args.
* ``step_retrying``: fact; an attempt failed and another is scheduled; attempt,
  error_type, retry_at, started_at; error.
* ``step_completed``: fact, delivered; the step returned; attempt, started_at; value.
* ``step_failed``: fact, delivered; the step failed for good; attempt, error_type,
  started_at; error.
* ``wait_created``: command, creates a wait call (durable timer); name, due_at.
* ``wait_completed``: fact, delivered; the timer fired; early (woken by an operator).
* ``wait_cancelled``: command; the body no longer waits on the timer; no data.
* ``child_created``: command, creates a child call; name, child_run_id (the child's input
  is the payload of the child's own ``run_created``).
* ``child_completed``: fact, delivered; the child run completed; no data; value.
* ``child_failed``: fact, delivered; the child run failed or was cancelled; error_type;
  error.
* ``hook_created``: command, creates a hook call; name, type, token (a keyed digest of
  the token, which the world indexes; the raw token in logs written before digests),
  webhook (true for a webhook), metadata (only in logs written before digests); value
  (``{"token", "metadata"}``, sealed).
* ``hook_received``: fact, delivered; a resume arrived; token (the digest); value.
* ``hook_disposed``: command; the body is done with the hook; token (the digest).
* ``hook_registered``: fact, delivered (appended by the world); the token was free; token.
* ``hook_conflict``: fact, delivered (appended by the world); a live hook holds the token;
  token, held_by, error_type.
* ``stream_closed``: fact; a stream of the run was closed; namespace, count; step_call and
  attempt when a step attempt closed it (a later attempt of that step may reopen it).
* ``attributes_set``: command when the body sets them (``call`` given), fact when a step
  does (``call`` is ``None``); set, remove.
* ``data_decrypted``: fact; an audit record of someone reading the run's payloads; who,
  via, what, seqs.
* ``lock_requested``: command; the body asks for a permit of a lock (a semaphore shared
  by every run of the world); key, limit. The world grants it at once or queues the run.
* ``lock_acquired``: fact, delivered (appended by the world, in the commit that grants
  the permit); key.
* ``lock_released``: command; the body leaves the lock's block, or stops waiting for it
  (a timed-out acquire); key. A run's end releases what it still holds without it.

No ``step_started`` event exists: a step's start is the ``started_at`` of the fact that
ends its attempt (writing one per attempt would cost a write per step on the hot path).
Early versions declared the type but never wrote it, so no stored log holds one.

:data:`EVENTS` holds these facts about each type as data (:class:`EventInfo`); the sets
below are derived from it, and the ledger, the runtime, telemetry and the dashboard read
them instead of keeping their own lists. Adding an event type: its member and
:class:`EventInfo` here, its rule in :mod:`durably.worlds.ledger`, an ``_apply_<type>``
method on :class:`~durably.runtime.instance.RunInstance` if the body consumes it, and its
views (the dashboard's timeline). The tables that must be complete are checked at import.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

__all__ = [
    "COMMAND_TYPES",
    "CREATING_TYPES",
    "DATA_UNREAD_BY_REPLAY",
    "DELIVERABLE_TYPES",
    "EVENTS",
    "RUN_END_STATUS",
    "TERMINAL_RUN_TYPES",
    "Event",
    "EventInfo",
    "EventType",
    "NewEvent",
    "UnknownEventTypeError",
    "handlers_by_name",
    "require_handlers",
]


class EventType(StrEnum):
    """Every kind of event a run's log may hold."""

    RUN_CREATED = "run_created"
    RUN_STARTED = "run_started"
    RUN_COMPLETED = "run_completed"
    RUN_FAILED = "run_failed"
    RUN_CANCEL_REQUESTED = "run_cancel_requested"
    RUN_CANCELLED = "run_cancelled"
    STEP_CREATED = "step_created"
    STEP_RETRYING = "step_retrying"
    STEP_COMPLETED = "step_completed"
    STEP_FAILED = "step_failed"
    WAIT_CREATED = "wait_created"
    WAIT_COMPLETED = "wait_completed"
    WAIT_CANCELLED = "wait_cancelled"
    CHILD_CREATED = "child_created"
    CHILD_COMPLETED = "child_completed"
    CHILD_FAILED = "child_failed"
    HOOK_CREATED = "hook_created"
    HOOK_RECEIVED = "hook_received"
    HOOK_DISPOSED = "hook_disposed"
    HOOK_REGISTERED = "hook_registered"
    HOOK_CONFLICT = "hook_conflict"
    STREAM_CLOSED = "stream_closed"
    ATTRIBUTES_SET = "attributes_set"
    DATA_DECRYPTED = "data_decrypted"
    # -- flow control: locks (see durably.worlds.locks) --
    LOCK_REQUESTED = "lock_requested"
    LOCK_ACQUIRED = "lock_acquired"
    LOCK_RELEASED = "lock_released"


#: What an event's payload holds, for whoever shows it: a call's arguments, a value
#: (a result, a hook's payload) or an error document.
PayloadKind = Literal["args", "value", "error"]
#: The kinds of durable call (the ``kind`` of a steps row).
CallKind = Literal["step", "wait", "child", "hook", "lock"]


@dataclass(frozen=True, slots=True)
class EventInfo:
    """What every part of durably may know about an event type without handling it.

    Attributes:
        command: appended only by the holder of the run's turn (replay checks it against
            the body's calls); otherwise a fact.
        delivered: a fact the workflow body consumes; appending one gives the run a turn.
        call: the kind of durable call the event belongs to (``None``: the run itself).
        creates: the event creates its call (a ``steps`` row of kind ``call``).
        status: the status the event moves its run or its call to, if one (a call's
            first status depends on how it is created, so creating events give none).
        ends_run: the event ends the run (``status`` is the run's final status).
        payload: what its payload holds (``None``: it has none).
        data: the keys its plaintext ``data`` may hold.
    """

    command: bool = False
    delivered: bool = False
    call: CallKind | None = None
    creates: bool = False
    status: str | None = None
    ends_run: bool = False
    payload: PayloadKind | None = None
    data: tuple[str, ...] = ()


_T = EventType

#: Every event type's :class:`EventInfo` (complete: checked at import).
EVENTS: Mapping[EventType, EventInfo] = {
    _T.RUN_CREATED: EventInfo(
        payload="args",
        data=(
            "workflow",
            "traceparent",
            "rerun_of",
            "fork_of",
            "from_step",
            # flow control: see durably.concurrency
            "priority",
            "concurrency_key",
            "concurrency_limit",
        ),
    ),
    _T.RUN_STARTED: EventInfo(delivered=True, status="running"),
    _T.RUN_COMPLETED: EventInfo(command=True, ends_run=True, status="completed", payload="value"),
    _T.RUN_FAILED: EventInfo(
        command=True, ends_run=True, status="failed", payload="error", data=("error_type",)
    ),
    _T.RUN_CANCEL_REQUESTED: EventInfo(delivered=True, data=("reason",)),
    _T.RUN_CANCELLED: EventInfo(command=True, ends_run=True, status="cancelled", data=("reason",)),
    _T.STEP_CREATED: EventInfo(
        command=True,
        call="step",
        creates=True,
        payload="args",
        data=("name", "max_retries", "retry_after", "timeout", "bound"),
    ),
    _T.STEP_RETRYING: EventInfo(
        call="step",
        status="retrying",
        payload="error",
        data=("attempt", "error_type", "retry_at", "started_at"),
    ),
    _T.STEP_COMPLETED: EventInfo(
        delivered=True,
        call="step",
        status="completed",
        payload="value",
        data=("attempt", "started_at"),
    ),
    _T.STEP_FAILED: EventInfo(
        delivered=True,
        call="step",
        status="failed",
        payload="error",
        data=("attempt", "error_type", "started_at"),
    ),
    _T.WAIT_CREATED: EventInfo(command=True, call="wait", creates=True, data=("name", "due_at")),
    _T.WAIT_COMPLETED: EventInfo(delivered=True, call="wait", status="completed", data=("early",)),
    _T.WAIT_CANCELLED: EventInfo(command=True, call="wait", status="cancelled"),
    _T.CHILD_CREATED: EventInfo(
        command=True, call="child", creates=True, data=("name", "child_run_id")
    ),
    _T.CHILD_COMPLETED: EventInfo(
        delivered=True, call="child", status="completed", payload="value"
    ),
    _T.CHILD_FAILED: EventInfo(
        delivered=True, call="child", status="failed", payload="error", data=("error_type",)
    ),
    _T.HOOK_CREATED: EventInfo(
        command=True,
        call="hook",
        creates=True,
        payload="value",
        data=("name", "type", "token", "webhook", "metadata"),
    ),
    _T.HOOK_RECEIVED: EventInfo(delivered=True, call="hook", payload="value", data=("token",)),
    _T.HOOK_DISPOSED: EventInfo(command=True, call="hook", status="disposed", data=("token",)),
    _T.HOOK_REGISTERED: EventInfo(delivered=True, call="hook", data=("token",)),
    _T.HOOK_CONFLICT: EventInfo(
        delivered=True,
        call="hook",
        status="conflict",
        data=("token", "held_by", "error_type"),
    ),
    _T.STREAM_CLOSED: EventInfo(data=("namespace", "count", "step_call", "attempt")),
    # A command when the body sets attributes (``call`` given); a fact when a step does.
    _T.ATTRIBUTES_SET: EventInfo(command=True, data=("set", "remove")),
    _T.DATA_DECRYPTED: EventInfo(data=("who", "via", "what", "seqs")),
    # -- flow control: locks --
    _T.LOCK_REQUESTED: EventInfo(command=True, call="lock", data=("name", "key", "limit")),
    _T.LOCK_ACQUIRED: EventInfo(delivered=True, call="lock", data=("key",)),
    _T.LOCK_RELEASED: EventInfo(command=True, call="lock", data=("key",)),
}

#: Facts the workflow body consumes; appending one means the run needs a turn.
DELIVERABLE_TYPES = frozenset(t for t, i in EVENTS.items() if i.delivered)

#: Events that only the turn holder appends; replay checks them against the body's calls.
COMMAND_TYPES = frozenset(t for t, i in EVENTS.items() if i.command)

#: Commands that end the run.
TERMINAL_RUN_TYPES = frozenset(t for t, i in EVENTS.items() if i.ends_run)

#: Commands that create a durable call (a ``steps`` row the ledger writes, not reads).
CREATING_TYPES = frozenset(t for t, i in EVENTS.items() if i.creates)

#: Events whose data a replay never reads: a step's attempts and its end (the body gets
#: the result or the error from the payload; the attempt and its times are for the
#: status tables). A world may leave their data out of a replay's read (``read_log``):
#: half the events of a long log, and no two alike.
DATA_UNREAD_BY_REPLAY = frozenset(
    {EventType.STEP_RETRYING, EventType.STEP_COMPLETED, EventType.STEP_FAILED}
)

#: The final status of a run, by the event that ends it.
RUN_END_STATUS: Mapping[EventType, str] = {
    t: str(i.status) for t, i in EVENTS.items() if i.ends_run
}


class UnknownEventTypeError(ValueError):
    """An event's type is not in the vocabulary (or a table has no handler for it)."""


def require_handlers(table: Mapping[Any, object], types: Iterable[EventType], where: str) -> None:
    """Check that ``table`` handles exactly ``types``, at import time.

    Raises:
        UnknownEventTypeError: a type has no handler, or a key of ``table`` is not one
            of ``types``; the message names them and ``where``.
    """
    wanted = set(types)
    missing = sorted(str(t) for t in wanted - set(table))
    extra = sorted(str(t) for t in set(table) - wanted)
    if missing or extra:
        parts = [f"no handler for {', '.join(missing)}"] if missing else []
        parts += [f"handlers for types it should not handle: {', '.join(extra)}"] if extra else []
        raise UnknownEventTypeError(f"{where}: {'; '.join(parts)}")


def handlers_by_name(
    cls: type, prefix: str, types: Iterable[EventType]
) -> dict[EventType, Callable[..., Any]]:
    """The methods of ``cls`` named ``prefix + type`` for each of ``types``, by type.

    Raises:
        UnknownEventTypeError: one of ``types`` has no such method, or a method with the
            prefix names no type among ``types`` (a stale or misspelt handler).
    """
    wanted = set(types)
    found = {
        t: getattr(cls, name)
        for t in EventType
        if callable(getattr(cls, name := prefix + t.value, None))
    }
    named = {name[len(prefix) :] for name in dir(cls) if name.startswith(prefix)}
    stray = sorted(named - {t.value for t in found})
    where = f"{cls.__name__}.{prefix}<type>"
    if stray:
        raise UnknownEventTypeError(f"{where}: no event type named {', '.join(stray)}")
    require_handlers(found, wanted, where)
    return found


require_handlers(EVENTS, EventType, "events.EVENTS")


@dataclass(slots=True)
class NewEvent:
    """An event about to be appended; the world gives it its ``seq``.

    Attributes:
        type: what happened.
        call: the durable call this event belongs to, or ``None`` for run-level events.
        data: small plaintext metadata (names, attempt numbers, due times).
        payload: the serialized (and, when enabled, encrypted) payload, or ``None``.
        created_at: seconds since the epoch; ``0.0`` means "now, as the world commits".
    """

    type: EventType
    call: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    payload: bytes | None = None
    created_at: float = 0.0


@dataclass(slots=True, frozen=True)
class Event:
    """An event as recorded in a run's log."""

    run_id: str
    seq: int
    type: EventType
    call: int | None
    data: dict[str, Any]
    payload: bytes | None
    created_at: float

    def to_json(self) -> dict[str, Any]:
        """The event as JSON-ready data (payload left out: it may be encrypted)."""
        return {
            "run_id": self.run_id,
            "seq": self.seq,
            "type": str(self.type),
            "call": self.call,
            "data": self.data,
            "payload_bytes": len(self.payload) if self.payload is not None else None,
            "created_at": self.created_at,
        }
