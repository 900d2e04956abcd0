"""Flow control in the SQLite world: rate limiters and schedules (the rules are
:mod:`durably.worlds.rates` and :mod:`durably.worlds.schedules`; the world delegates
here). Each function is one ``BEGIN IMMEDIATE`` transaction; the named statements are
at the top, as in :mod:`.queries`."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from ..rates import RATE_LIMITED, RateDecision, RateState, decide, pack_starts, unpack_starts
from ..schedules import ScheduleRecord, TickDecision
from . import queries as q
from .connections import Connections

__all__ = [
    "SqliteFlow",
    "advance_schedule",
    "list_rates",
    "list_schedules",
    "schedule_ran",
    "sync_schedules",
    "take_rate",
]

# -- named statements --------------------------------------------------------------------

TASK_LEASE = "SELECT lease_owner FROM tasks WHERE run_id = ? AND call = ?"

GET_RATE = "SELECT starts FROM rate_limiters WHERE name = ?"

PUT_RATE = (
    "INSERT INTO rate_limiters (name, starts) VALUES (?, ?)"
    " ON CONFLICT (name) DO UPDATE SET starts = excluded.starts"
)

LIST_RATES = "SELECT name, starts FROM rate_limiters ORDER BY name"

# A step moved by its rate limit: due later, held by nobody, and the claim's attempt
# does not count.
DEFER_TASK = (
    "UPDATE tasks SET visible_at = ?, lease_owner = NULL, lease_until = NULL,"
    " attempt = CASE WHEN kind = 'step' AND attempt > 0 THEN attempt - 1 ELSE attempt END"
    " WHERE run_id = ? AND call = ?"
)

MARK_RATE_LIMITED = (
    "UPDATE steps SET status = ?,"
    " attempts = (SELECT attempt FROM tasks WHERE run_id = steps.run_id AND call = steps.call)"
    " WHERE run_id = ? AND call = ?"
)

SCHEDULE_COLUMNS = (
    "namespace, workflow_name, cron, timezone, catch_up, anchor, next_tick, last_tick,"
    " last_run_id, pending, updated_at"
)

GET_SCHEDULE = f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE namespace = ? AND workflow_name = ?"

LIST_SCHEDULES = (
    f"SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE (? IS NULL OR namespace = ?)"
    " ORDER BY namespace, workflow_name"
)

INSERT_SCHEDULE = (
    f"INSERT INTO schedules ({SCHEDULE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, 0, ?)"
)

# A changed definition: anchored now, its next tick moved; what ran stays.
REDEFINE_SCHEDULE = (
    "UPDATE schedules SET cron = ?, timezone = ?, catch_up = ?, anchor = ?, next_tick = ?,"
    " updated_at = ? WHERE namespace = ? AND workflow_name = ?"
)

DROP_SCHEDULE = "DELETE FROM schedules WHERE namespace = ? AND workflow_name = ?"

# Compare and set: only the driver that read the row's last tick decides the next one.
ADVANCE_SCHEDULE = (
    "UPDATE schedules SET last_tick = ?, pending = ?, next_tick = ?, updated_at = ?"
    " WHERE namespace = ? AND workflow_name = ? AND cron = ? AND timezone = ?"
    " AND last_tick IS ?"
)

SCHEDULE_RAN = (
    "UPDATE schedules SET last_run_id = ?, pending = 0"
    " WHERE namespace = ? AND workflow_name = ? AND last_tick = ?"
)


# -- rate limiters -----------------------------------------------------------------------


def take_rate(
    db: Connections,
    *,
    limiter: str,
    limit: int,
    per: float,
    owner: str,
    run_id: str,
    call: int,
    now: float,
) -> RateDecision:
    """See :meth:`durably.worlds.base.World.take_rate`."""

    def work(conn: sqlite3.Connection) -> RateDecision:
        lease = conn.execute(TASK_LEASE, (run_id, call)).fetchall()
        if not lease or lease[0][0] != owner:
            return RateDecision(False, lost=True)
        found = conn.execute(GET_RATE, (limiter,)).fetchall()
        kept, retry_at = decide(unpack_starts(found[0][0]) if found else [], limit, per, now)
        conn.execute(PUT_RATE, (limiter, pack_starts(kept)))
        if retry_at is None:
            return RateDecision(True, at=kept[-1])
        conn.execute(DEFER_TASK, (retry_at, run_id, call))
        conn.execute(MARK_RATE_LIMITED, (RATE_LIMITED, run_id, call))
        conn.execute(q.BUMP_WORK_CLOCK)
        return RateDecision(False, retry_at)

    decision, hub = db.write(work)
    if not decision.granted and not decision.lost:
        hub.committed(set(), new_work=True)  # idle workers look again at what is due
    return decision


def list_rates(db: Connections) -> list[RateState]:
    """See :meth:`durably.worlds.base.World.list_rates`."""
    return [RateState(r[0], unpack_starts(r[1])) for r in db.read(LIST_RATES, ())]


# -- schedules ---------------------------------------------------------------------------


def _schedule(row: Sequence[Any]) -> ScheduleRecord:
    return ScheduleRecord(
        namespace=row[0],
        workflow_name=row[1],
        cron=row[2],
        timezone=row[3],
        catch_up=row[4],
        anchor=row[5],
        next_tick=row[6],
        last_tick=row[7],
        last_run_id=row[8],
        pending=bool(row[9]),
        updated_at=row[10],
    )


def sync_schedules(
    db: Connections,
    namespace: str,
    put: Sequence[ScheduleRecord],
    drop: Sequence[str],
    now: float,
) -> None:
    """See :meth:`durably.worlds.base.World.sync_schedules`."""

    def work(conn: sqlite3.Connection) -> None:
        for rec in put:
            found = conn.execute(GET_SCHEDULE, (namespace, rec.workflow_name)).fetchall()
            if not found:
                conn.execute(
                    INSERT_SCHEDULE,
                    (
                        namespace,
                        rec.workflow_name,
                        rec.cron,
                        rec.timezone,
                        rec.catch_up,
                        now,
                        rec.next_tick,
                        now,
                    ),
                )
            elif not _schedule(found[0]).same_definition(rec):
                conn.execute(
                    REDEFINE_SCHEDULE,
                    (
                        rec.cron,
                        rec.timezone,
                        rec.catch_up,
                        now,
                        rec.next_tick,
                        now,
                        namespace,
                        rec.workflow_name,
                    ),
                )
        for name in drop:
            conn.execute(DROP_SCHEDULE, (namespace, name))

    if put or drop:
        db.write(work)


def list_schedules(db: Connections, namespace: str | None) -> list[ScheduleRecord]:
    """See :meth:`durably.worlds.base.World.list_schedules`."""
    return [_schedule(r) for r in db.read(LIST_SCHEDULES, (namespace, namespace))]


def advance_schedule(
    db: Connections,
    namespace: str,
    workflow_name: str,
    decision: TickDecision,
) -> bool:
    """See :meth:`durably.worlds.base.World.advance_schedule`."""
    d = decision
    params = (d.tick, int(d.pending), d.next_tick, d.now, namespace, workflow_name, d.cron)
    changed, _ = db.write(
        lambda conn: conn.execute(ADVANCE_SCHEDULE, (*params, d.timezone, d.last_tick)).rowcount
    )
    return bool(changed)


def schedule_ran(
    db: Connections, namespace: str, workflow_name: str, *, tick: float, run_id: str
) -> None:
    """See :meth:`durably.worlds.base.World.schedule_ran`."""
    db.write(lambda conn: conn.execute(SCHEDULE_RAN, (run_id, namespace, workflow_name, tick)))


class SqliteFlow:
    """The SQLite world's flow control (its ``flow``: see ``SqlWorld``)."""

    def __init__(self, db: Connections) -> None:
        self.db = db

    async def take_rate(
        self,
        *,
        limiter: str,
        limit: int,
        per: float,
        owner: str,
        run_id: str,
        call: int,
        now: float,
    ) -> RateDecision:
        """See :func:`take_rate`."""
        return take_rate(
            self.db,
            limiter=limiter,
            limit=limit,
            per=per,
            owner=owner,
            run_id=run_id,
            call=call,
            now=now,
        )

    async def list_rates(self) -> list[RateState]:
        """See :func:`list_rates`."""
        return list_rates(self.db)

    async def sync_schedules(
        self, namespace: str, put: Sequence[ScheduleRecord], drop: Sequence[str], now: float
    ) -> None:
        """See :func:`sync_schedules`."""
        sync_schedules(self.db, namespace, put, drop, now)

    async def list_schedules(self, namespace: str | None) -> list[ScheduleRecord]:
        """See :func:`list_schedules`."""
        return list_schedules(self.db, namespace)

    async def advance_schedule(
        self, namespace: str, workflow_name: str, decision: TickDecision
    ) -> bool:
        """See :func:`advance_schedule`."""
        return advance_schedule(self.db, namespace, workflow_name, decision)

    async def schedule_ran(
        self, namespace: str, workflow_name: str, *, tick: float, run_id: str
    ) -> None:
        """See :func:`schedule_ran`."""
        schedule_ran(self.db, namespace, workflow_name, tick=tick, run_id=run_id)
