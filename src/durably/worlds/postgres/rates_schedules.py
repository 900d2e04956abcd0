"""Flow control in the Postgres world: rate limiters and schedules (the rules are
:mod:`durably.worlds.rates` and :mod:`durably.worlds.schedules`; the world delegates
here). The named statements are at the top, with ``{schema}`` as in :mod:`.queries`.

A rate-limited start is one statement (one round trip): the step task's row is locked
(still leased to the asking worker?), then the limiter's row (every start of one limiter
takes turns on it, across all workers), the window is decided in SQL by the rule of
:func:`durably.worlds.rates.decide`, and the task moves when over. Schedule changes are
single-row statements (a compare and set on ``last_tick``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..rates import RATE_LIMITED, RateDecision, RateState
from ..schedules import ScheduleRecord, TickDecision
from .connections import Connections
from .hub import Hub

__all__ = ["FlowStatements", "PostgresFlow"]

# A rate-limited start in one statement: the step's task, still leased to the asker
# ($3), is locked; then the limiter's row (made on first use; every start of one limiter
# takes its turn on it across all workers) keeps the starts of its window ($5 - $6, $5:
# now) with this one added if fewer than $7 remain. Not added: the task moves to when
# the oldest start that must leave has left, held by nobody, the claim's attempt not
# counted, its steps row 'rate_limited' ($8), and the namespace's workers hear of it
# ($9, $10). Returns whether the task was ours, whether granted, and when it moved to.
_TAKE_RATE = """
WITH task AS (
    SELECT run_id, call, namespace FROM {schema}.tasks
    WHERE run_id = $1 AND call = $2 AND lease_owner = $3
    FOR UPDATE
), lim AS (
    INSERT INTO {schema}.rate_limiters AS r (name, starts, granted)
    SELECT $4, ARRAY[$5::float8], true FROM task
    ON CONFLICT (name) DO UPDATE SET
        -- The limiter's clock never runs backwards (see durably.worlds.rates.decide): a
        -- writer whose now ($5) is behind the latest start counts at that start.
        starts = (
            WITH t AS (SELECT GREATEST($5::float8, (SELECT max(s) FROM unnest(r.starts) AS s))
                              AS n),
            kept AS (SELECT ARRAY(SELECT s FROM unnest(r.starts) AS s, t
                                  WHERE s > t.n - $6::float8 ORDER BY s) AS a)
            SELECT CASE WHEN cardinality(a) < $7 THEN a || t.n ELSE a END FROM kept, t
        ),
        granted = (SELECT count(*) < $7 FROM unnest(r.starts) AS s
                   WHERE s > GREATEST($5::float8, (SELECT max(s2) FROM unnest(r.starts) AS s2))
                             - $6::float8)
    RETURNING starts, granted
), verdict AS (
    SELECT granted, starts[cardinality(starts) - $7 + 1] + $6::float8 AS retry_at,
           starts[cardinality(starts)] AS at FROM lim
), moved AS (
    UPDATE {schema}.tasks AS t SET visible_at = v.retry_at, lease_owner = NULL,
        lease_until = NULL,
        attempt = CASE WHEN t.kind = 'step' AND t.attempt > 0 THEN t.attempt - 1
                       ELSE t.attempt END
    FROM verdict AS v, task
    WHERE NOT v.granted AND t.run_id = task.run_id AND t.call = task.call
    RETURNING t.run_id, t.call, t.attempt
), marked AS (
    UPDATE {schema}.steps AS s SET status = $8, attempts = m.attempt
    FROM moved AS m WHERE s.run_id = m.run_id AND s.call = m.call
)
SELECT EXISTS (SELECT 1 FROM task) AS ours,
       (SELECT granted FROM verdict) AS granted,
       (SELECT retry_at FROM verdict) AS retry_at,
       (SELECT namespace FROM task) AS namespace,
       (SELECT at FROM verdict) AS at,
       (SELECT count(pg_notify($9, json_build_object('o', $10::text,
                                                     'w', json_build_array(task.namespace))::text))
        FROM moved, task) AS woken
"""

_LIST_RATES = "SELECT name, starts FROM {schema}.rate_limiters ORDER BY name"

_COLUMNS = (
    "namespace, workflow_name, cron, timezone, catch_up, anchor, next_tick, last_tick,"
    " last_run_id, pending, updated_at"
)

_LIST_SCHEDULES = f"""
SELECT {_COLUMNS} FROM {{schema}}.schedules WHERE ($1::text IS NULL OR namespace = $1)
ORDER BY namespace, workflow_name
"""

# A new row, or a changed definition (anchored now, its next tick moved; what ran stays).
_PUT_SCHEDULE = f"""
INSERT INTO {{schema}}.schedules ({_COLUMNS})
VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL, false, $6)
ON CONFLICT (namespace, workflow_name) DO UPDATE SET
    cron = excluded.cron, timezone = excluded.timezone, catch_up = excluded.catch_up,
    anchor = excluded.anchor, next_tick = excluded.next_tick, updated_at = excluded.updated_at
WHERE (schedules.cron, schedules.timezone, schedules.catch_up)
      IS DISTINCT FROM (excluded.cron, excluded.timezone, excluded.catch_up)
"""

_DROP_SCHEDULES = """
DELETE FROM {schema}.schedules WHERE namespace = $1 AND workflow_name = ANY($2::text[])
"""

_ADVANCE_SCHEDULE = """
UPDATE {schema}.schedules SET last_tick = $1, pending = $2, next_tick = $3, updated_at = $4
WHERE namespace = $5 AND workflow_name = $6 AND cron = $7 AND timezone = $8
  AND last_tick IS NOT DISTINCT FROM $9::float8
RETURNING 1
"""

_SCHEDULE_RAN = """
UPDATE {schema}.schedules SET last_run_id = $1, pending = false
WHERE namespace = $2 AND workflow_name = $3 AND last_tick = $4
"""


class FlowStatements:
    """The statements of this module with ``{schema}`` filled in."""

    def __init__(self, schema: str) -> None:
        self.TAKE_RATE = _TAKE_RATE.format(schema=schema)
        self.LIST_RATES = _LIST_RATES.format(schema=schema)
        self.LIST_SCHEDULES = _LIST_SCHEDULES.format(schema=schema)
        self.PUT_SCHEDULE = _PUT_SCHEDULE.format(schema=schema)
        self.DROP_SCHEDULES = _DROP_SCHEDULES.format(schema=schema)
        self.ADVANCE_SCHEDULE = _ADVANCE_SCHEDULE.format(schema=schema)
        self.SCHEDULE_RAN = _SCHEDULE_RAN.format(schema=schema)


async def take_rate(
    db: Connections,
    sql: FlowStatements,
    hub: Hub,
    *,
    limiter: str,
    limit: int,
    per: float,
    owner: str,
    run_id: str,
    call: int,
    now: float,
) -> RateDecision:
    """See :meth:`durably.worlds.base.World.take_rate` (one statement)."""
    rows = await db.fetch(
        "take a rate limit",
        sql.TAKE_RATE,
        run_id,
        call,
        owner,
        limiter,
        now,
        per,
        limit,
        RATE_LIMITED,
        hub.config.channel,
        hub.token,
    )
    ours, granted, retry_at, namespace, at = rows[0][:5]
    if not ours:
        return RateDecision(False, lost=True)
    if granted:
        return RateDecision(True, at=float(at))
    hub.work_arrived([str(namespace)])
    return RateDecision(False, float(retry_at))


async def list_rates(db: Connections, sql: FlowStatements) -> list[RateState]:
    """See :meth:`durably.worlds.base.World.list_rates`."""
    rows = await db.fetch("list rate limiters", sql.LIST_RATES)
    return [RateState(r[0], list(r[1])) for r in rows]


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


async def sync_schedules(
    db: Connections,
    sql: FlowStatements,
    namespace: str,
    put: Sequence[ScheduleRecord],
    drop: Sequence[str],
    now: float,
) -> None:
    """See :meth:`durably.worlds.base.World.sync_schedules`."""
    for rec in put:
        await db.fetch(
            "register a schedule",
            sql.PUT_SCHEDULE,
            namespace,
            rec.workflow_name,
            rec.cron,
            rec.timezone,
            rec.catch_up,
            now,
            rec.next_tick,
        )
    if drop:
        await db.fetch("drop schedules", sql.DROP_SCHEDULES, namespace, list(drop))


async def list_schedules(
    db: Connections, sql: FlowStatements, namespace: str | None
) -> list[ScheduleRecord]:
    """See :meth:`durably.worlds.base.World.list_schedules`."""
    return [_schedule(r) for r in await db.fetch("list schedules", sql.LIST_SCHEDULES, namespace)]


async def advance_schedule(
    db: Connections,
    sql: FlowStatements,
    namespace: str,
    workflow_name: str,
    decision: TickDecision,
) -> bool:
    """See :meth:`durably.worlds.base.World.advance_schedule`."""
    d = decision
    rows = await db.fetch(
        "decide a schedule's tick",
        sql.ADVANCE_SCHEDULE,
        d.tick,
        d.pending,
        d.next_tick,
        d.now,
        namespace,
        workflow_name,
        d.cron,
        d.timezone,
        d.last_tick,
    )
    return bool(rows)


async def schedule_ran(
    db: Connections,
    sql: FlowStatements,
    namespace: str,
    workflow_name: str,
    *,
    tick: float,
    run_id: str,
) -> None:
    """See :meth:`durably.worlds.base.World.schedule_ran`."""
    await db.fetch(
        "record a schedule's run", sql.SCHEDULE_RAN, run_id, namespace, workflow_name, tick
    )


class PostgresFlow:
    """The Postgres world's flow control (its ``flow``: see ``SqlWorld``).

    Args:
        db: the world's connections.
        schema: the world's quoted schema name.
        live: the world's hub, opening the world if needed.
    """

    def __init__(self, db: Connections, schema: str, live: Callable[[], Awaitable[Hub]]) -> None:
        self.db = db
        self.sql = FlowStatements(schema)
        self.live = live

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
        hub = await self.live()
        return await take_rate(
            self.db,
            self.sql,
            hub,
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
        await self.live()
        return await list_rates(self.db, self.sql)

    async def sync_schedules(
        self, namespace: str, put: Sequence[ScheduleRecord], drop: Sequence[str], now: float
    ) -> None:
        """See :func:`sync_schedules`."""
        await self.live()
        await sync_schedules(self.db, self.sql, namespace, put, drop, now)

    async def list_schedules(self, namespace: str | None) -> list[ScheduleRecord]:
        """See :func:`list_schedules`."""
        await self.live()
        return await list_schedules(self.db, self.sql, namespace)

    async def advance_schedule(
        self, namespace: str, workflow_name: str, decision: TickDecision
    ) -> bool:
        """See :func:`advance_schedule`."""
        await self.live()
        return await advance_schedule(self.db, self.sql, namespace, workflow_name, decision)

    async def schedule_ran(
        self, namespace: str, workflow_name: str, *, tick: float, run_id: str
    ) -> None:
        """See :func:`schedule_ran`."""
        await self.live()
        await schedule_ran(self.db, self.sql, namespace, workflow_name, tick=tick, run_id=run_id)
