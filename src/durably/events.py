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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "COMMAND_TYPES",
    "DELIVERABLE_TYPES",
    "TERMINAL_RUN_TYPES",
    "Event",
    "EventType",
    "NewEvent",
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
    STEP_STARTED = "step_started"
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


#: Facts the workflow body consumes; appending one means the run needs a turn.
DELIVERABLE_TYPES = frozenset(
    {
        EventType.RUN_STARTED,
        EventType.RUN_CANCEL_REQUESTED,
        EventType.STEP_COMPLETED,
        EventType.STEP_FAILED,
        EventType.WAIT_COMPLETED,
        EventType.CHILD_COMPLETED,
        EventType.CHILD_FAILED,
        EventType.HOOK_RECEIVED,
        EventType.HOOK_REGISTERED,
        EventType.HOOK_CONFLICT,
    }
)

#: Events that only the turn holder appends; replay checks them against the body's calls.
COMMAND_TYPES = frozenset(
    {
        EventType.STEP_CREATED,
        EventType.WAIT_CREATED,
        EventType.WAIT_CANCELLED,
        EventType.CHILD_CREATED,
        EventType.HOOK_CREATED,
        EventType.HOOK_DISPOSED,
        EventType.ATTRIBUTES_SET,
        EventType.RUN_COMPLETED,
        EventType.RUN_FAILED,
        EventType.RUN_CANCELLED,
    }
)

TERMINAL_RUN_TYPES = frozenset(
    {EventType.RUN_COMPLETED, EventType.RUN_FAILED, EventType.RUN_CANCELLED}
)


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
