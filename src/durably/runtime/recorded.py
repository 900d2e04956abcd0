"""What a replay knows of the log before the body asks: the steps already settled.

A cold replay feeds a body its whole log. A step call the log shows settled (completed
or failed for good) gets its result from the log, so its arguments are not needed: they
are neither encoded again nor decrypted from the log, only their recorded size is
charged to the run's payload budget, as it was when they were first recorded. That, and
opening only the payloads the body consumes (:class:`PayloadOpener`), keeps the cost of
replaying a recorded step small as histories grow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..crypto import plain_length
from ..events import Event, EventType

__all__ = ["PayloadOpener", "SettledCalls"]

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
