"""Schedules as world state: one row per scheduled workflow of a namespace.

The cron arithmetic lives in :mod:`durably.schedules` (the worlds know no cron); a row
keeps what the drivers of every worker share:

* the definition (``cron``, ``timezone``, ``catch_up``) the code last registered, and
  ``anchor``: when it was registered, since ticks before it never run;
* ``last_tick``: the latest tick decided (run, or skipped by ``catch_up``), moved only
  forward and only by a driver that read the one before (:meth:`advance`-style compare
  and set), so two drivers never decide one tick twice;
* ``pending``: that tick's run may not exist yet: any driver creates it with the tick's
  idempotency key (a second creation returns the first run) and records it.

So a tick becomes exactly one run, whichever worker or process gets there first, and a
driver that dies between deciding a tick and starting its run leaves the run to the next.

:class:`ScheduleTable` holds these rules over plain rows, for the worlds that keep their
rows in Python (memory); the SQL worlds apply the same rules in SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["ScheduleRecord", "ScheduleTable", "TickDecision"]


@dataclass(slots=True)
class ScheduleRecord:
    """A scheduled workflow of a namespace, as the world keeps it.

    Attributes:
        namespace: the registry's namespace.
        workflow_name: the scheduled workflow.
        cron: its five-field cron expression.
        timezone: the IANA time zone the expression is read in.
        catch_up: ``"latest"``, ``"all"`` or ``"skip"``: what runs after downtime.
        anchor: when this definition was registered (ticks before it never run).
        next_tick: the next tick after ``last_tick`` (or ``anchor``), as the last
            driver computed it (for readers; drivers compute their own).
        last_tick: the latest tick decided, if any.
        last_run_id: the run of the latest tick that ran, if any.
        pending: ``last_tick``'s run may not exist yet (a driver creates it).
        updated_at: when a worker last changed the row.
    """

    namespace: str
    workflow_name: str
    cron: str
    timezone: str
    catch_up: str
    anchor: float
    next_tick: float | None = None
    last_tick: float | None = None
    last_run_id: str | None = None
    pending: bool = False
    updated_at: float = 0.0

    def same_definition(self, other: ScheduleRecord) -> bool:
        """Whether both rows define the same schedule (expression, zone, catch-up)."""
        return (self.cron, self.timezone, self.catch_up) == (
            other.cron,
            other.timezone,
            other.catch_up,
        )

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-ready data."""
        return {
            "namespace": self.namespace,
            "workflow": self.workflow_name,
            "cron": self.cron,
            "timezone": self.timezone,
            "catch_up": self.catch_up,
            "anchor": self.anchor,
            "next_tick": self.next_tick,
            "last_tick": self.last_tick,
            "last_run_id": self.last_run_id,
            "pending": self.pending,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class TickDecision:
    """A driver's decision of one tick, applied by compare and set
    (``World.advance_schedule``).

    Attributes:
        cron: the definition the driver read: the row must still have it.
        timezone: likewise, with ``cron``.
        last_tick: the row's last tick as the driver read it: the row must still have it.
        tick: the tick decided (the row's new ``last_tick``).
        pending: its run is to be created (false: skipped by ``catch_up``).
        next_tick: the tick after ``tick`` (for readers).
        now: when the driver decided (the row's ``updated_at``).
    """

    cron: str
    timezone: str
    last_tick: float | None
    tick: float
    pending: bool
    next_tick: float | None
    now: float


class ScheduleTable:
    """Schedule rows and the rules that change them, for worlds that keep rows in Python
    (call under the world's lock)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], ScheduleRecord] = {}

    def sync(
        self, namespace: str, put: Sequence[ScheduleRecord], drop: Sequence[str], now: float
    ) -> None:
        """Register the code's schedules (a new or changed definition is anchored at
        ``now`` and its next tick moves) and forget those the code no longer has."""
        for rec in put:
            key = (namespace, rec.workflow_name)
            old = self.rows.get(key)
            if old is None:
                self.rows[key] = replace(rec, namespace=namespace, anchor=now, updated_at=now)
            elif not old.same_definition(rec):
                self.rows[key] = replace(
                    old,
                    cron=rec.cron,
                    timezone=rec.timezone,
                    catch_up=rec.catch_up,
                    anchor=now,
                    next_tick=rec.next_tick,
                    updated_at=now,
                )
        for name in drop:
            self.rows.pop((namespace, name), None)

    def list(self, namespace: str | None) -> list[ScheduleRecord]:
        """Copies of the rows (of ``namespace``, or all), by namespace and workflow."""
        return [
            replace(r)
            for k, r in sorted(self.rows.items())
            if namespace is None or k[0] == namespace
        ]

    def advance(self, namespace: str, workflow_name: str, decision: TickDecision) -> bool:
        """Decide ``decision.tick`` if the row still has its definition and ``last_tick``."""
        d = decision
        row = self.rows.get((namespace, workflow_name))
        if row is None or (row.cron, row.timezone) != (d.cron, d.timezone):
            return False
        if row.last_tick != d.last_tick:
            return False
        row.last_tick, row.pending, row.next_tick, row.updated_at = (
            d.tick,
            d.pending,
            d.next_tick,
            d.now,
        )
        return True

    def ran(self, namespace: str, workflow_name: str, *, tick: float, run_id: str) -> None:
        """Record the run of the decided ``tick`` (no longer pending)."""
        row = self.rows.get((namespace, workflow_name))
        if row is not None and row.last_tick == tick:
            row.last_run_id, row.pending = run_id, False
