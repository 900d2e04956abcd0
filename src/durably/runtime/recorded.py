"""What a replay knows of the log before the body asks: the steps already settled.

A cold replay feeds a body its whole log. A step call the log shows settled (completed
or failed for good) gets its result from the log, so its arguments are not needed: they
are neither encoded again nor decrypted from the log, only their recorded size is
charged to the run's payload budget, as it was when they were first recorded. That, and
opening only the payloads the body consumes (:class:`PayloadOpener`), keeps the cost of
replaying a recorded step small as histories grow.

While a log is fed (:meth:`~durably.runtime.instance.RunInstance.feed_log`), a
:class:`LogCursor` says where the feeding stands, so that a body awaiting a step whose
creation and end come next in the log can take its result at once, without going back
to its loop (see :meth:`LogCursor.settled_end`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..crypto import plain_length
from ..events import COMMAND_TYPES, DELIVERABLE_TYPES, EVENTS, Event, EventType

__all__ = ["LogCursor", "PayloadOpener", "SettledCalls"]

#: Decrypts an event's payload (a world that stores payloads encrypted gives one).
PayloadOpener = Callable[[Event], "bytes | None"]

_SETTLING = frozenset({EventType.STEP_COMPLETED, EventType.STEP_FAILED})


class SettledCalls:
    """Step calls whose creation and end are both in the log read so far (a call is
    forgotten when the body makes it, so what is kept stays small)."""

    __slots__ = ("_created", "_settled")

    def __init__(self) -> None:
        self._created: dict[int, tuple[str, int]] = {}  # call -> (name, args length)
        self._settled: set[int] = set()

    def note(self, events: Iterable[Event]) -> None:
        """Remember the step calls these events create and settle."""
        for ev in events:
            if ev.call is None:
                continue
            if ev.type is EventType.STEP_CREATED:
                size = 0 if ev.payload is None else plain_length(ev.payload)
                self._created[ev.call] = (str(ev.data.get("name")), size)
            elif ev.type in _SETTLING and ev.call in self._created:
                self._settled.add(ev.call)

    def take(self, call: int, name: str) -> int | None:
        """If step ``call`` of this name is settled in the log, the size its arguments
        were recorded with (forgotten now: a call is made once); else ``None``."""
        created = self._created.pop(call, None)
        if call not in self._settled:
            return None
        self._settled.discard(call)
        if created is None or created[0] != name:
            return None
        return created[1]


#: Facts a body never sees (a retry scheduled, a stream closed, an audit record): feeding
#: one only moves the instance's ``seen_seq``. (``attributes_set`` is one when a step set
#: it, with no call: checked apart.)
_UNSEEN = frozenset(
    t
    for t in EVENTS
    if t not in COMMAND_TYPES and t not in DELIVERABLE_TYPES and t is not EventType.RUN_CREATED
)


class LogCursor:
    """A log being fed to a run, and the index of the next event to feed."""

    __slots__ = ("events", "next", "opener")

    def __init__(self, events: list[Event], opener: PayloadOpener | None) -> None:
        self.events = events
        self.next = 0
        self.opener = opener

    def settled_end(self, call: int, name: object) -> int | None:
        """The index of the event that ends step ``call`` (completed or failed) if the
        log's next events are exactly its creation (named ``name``), facts the body
        never sees, and that end; else ``None``. Feeding those events would only match
        the creation and deliver the end, which the body can then take at once."""
        events, i = self.events, self.next
        n = len(events)
        if i >= n:
            return None
        created = events[i]
        if (
            created.type is not EventType.STEP_CREATED
            or created.call != call
            or created.data.get("name") != name
        ):
            return None
        for j in range(i + 1, n):
            ev = events[j]
            t = ev.type
            if t in _SETTLING:
                return j if ev.call == call else None
            if t in _UNSEEN or (t is EventType.ATTRIBUTES_SET and ev.call is None):
                continue
            return None
        return None
