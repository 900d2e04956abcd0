"""Every SQL statement of the PostgreSQL world, by name (the schema is in ``migrations/``).

Statements name their tables with ``{schema}``, filled in once per world with the quoted
schema of its URL (:class:`Statements`), so they do not depend on ``search_path`` (which
connection poolers may not keep). Nothing here is built from user input; asyncpg prepares
each statement once per connection.

Many-row writes pass their rows as one JSON document (``jsonb_to_recordset``) or one
array per column (``unnest``), so a statement keeps one shape (one prepared plan)
whatever the number of rows. The column lists the row decoders read are shared with
SQLite (:mod:`..sql.rows`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields

from ..sql.rows import (
    EVENT_COLUMNS,
    HOOK_COLUMNS,
    LOCK_COLUMNS,
    LOG_COLUMNS,
    RUN_COLUMNS,
    STEP_COLUMNS,
)

__all__ = ["Statements", "list_runs"]

# -- schema and migrations -------------------------------------------------------------

SCHEMA_EXISTS = "SELECT 1 FROM pg_namespace WHERE nspname = $1"

CREATE_SCHEMA = "CREATE SCHEMA IF NOT EXISTS {schema}"

# Several processes may start on a new database at once: one applies the migrations.
MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(hashtext('durably:' || $1))"

MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)
"""

# Read without any lock first: an up-to-date schema needs no more.
MIGRATIONS_TABLE_EXISTS = "SELECT to_regclass($1) IS NOT NULL"

SCHEMA_VERSION = "SELECT coalesce(max(version), 0) FROM {schema}.schema_migrations"

SET_MIGRATION_SEARCH_PATH = "SET LOCAL search_path TO {schema}"

RECORD_MIGRATION = "INSERT INTO {schema}.schema_migrations (version, name) VALUES ($1, $2)"

# -- runs ------------------------------------------------------------------------------

_RUN_COLUMNS_R = ", ".join(f"r.{c.strip()}" for c in RUN_COLUMNS.split(","))
_RUN_NULLS = (
    "NULL::text, NULL::text, NULL::text, NULL::text, NULL::text, NULL::float8,"
    " NULL::float8, NULL::float8, NULL::int, NULL::text, NULL::text, NULL::int, NULL::text,"
    " NULL::bool, NULL::jsonb, NULL::int, NULL::int, NULL::float8, NULL::text, NULL::float8"
)

GET_RUN = f"SELECT {RUN_COLUMNS} FROM {{schema}}.runs WHERE run_id = $1"

GET_LAST_SEQ = "SELECT last_seq FROM {schema}.runs WHERE run_id = $1"

# The filters of list_runs: a JSON object the attributes must contain; a run id prefix
# (LIKE's wildcards in it escaped).
_LIST_RUNS_WHERE = {
    "status": "status = {}",
    "workflow_name": "workflow_name = {}",
    "namespace": "namespace = {}",
    "attributes": "attributes @> {}::jsonb",
    "deployment": "deployment = {}",
    "run_id_prefix": "run_id LIKE {} || '%'",
}


@functools.cache
def list_runs(schema: str, given: frozenset[str]) -> tuple[str, tuple[str, ...]]:
    """The query of ``list_runs`` with the filters ``given`` (names of
    ``_LIST_RUNS_WHERE``) and only those, and the order of its filter arguments (then
    limit, offset). One shape per combination, so that each prepared plan uses the
    index of its filter (migration 006: status, workflow, namespace with created_at);
    ``($1 IS NULL OR status = $1)`` would leave a generic plan that cannot."""
    names = tuple(k for k in _LIST_RUNS_WHERE if k in given)
    where = " AND ".join(_LIST_RUNS_WHERE[k].format(f"${i}") for i, k in enumerate(names, 1))
    n = len(names)
    sql = (
        f"SELECT {RUN_COLUMNS} FROM {schema}.runs{' WHERE ' + where if where else ''}"
        f" ORDER BY created_at DESC, run_id DESC LIMIT ${n + 1} OFFSET ${n + 2}"
    )
    return sql, names


# -- events and steps ------------------------------------------------------------------

READ_EVENTS = (
    f"SELECT {EVENT_COLUMNS} FROM {{schema}}.events"
    " WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
)

READ_LOG = (
    f"SELECT {LOG_COLUMNS} FROM {{schema}}.events WHERE run_id = $1 AND seq > $2 ORDER BY seq"
)

# The conditions repeat the partial index's, so the planner uses it.
READ_COMMAND = (
    f"SELECT {EVENT_COLUMNS} FROM {{schema}}.events"
    " WHERE run_id = $1 AND call = $2 AND call IS NOT NULL AND right(type, 8) = '_created'"
    " ORDER BY seq LIMIT 1"
)

_STEP_COLUMNS_S = ", ".join(f"s.{c.strip()}" for c in STEP_COLUMNS.split(","))
_STEP_NULLS = (
    "NULL::text, NULL::int, NULL::text, NULL::text, NULL::text, NULL::int, NULL::float8,"
    " NULL::float8, NULL::float8, NULL::float8, NULL::text, NULL::text"
)

LIST_STEPS = f"SELECT {STEP_COLUMNS} FROM {{schema}}.steps WHERE run_id = $1 ORDER BY call"

# -- commits ---------------------------------------------------------------------------

_HOOK_COLUMNS_H = ", ".join(f"h.{c.strip()}" for c in HOOK_COLUMNS.split(","))
_HOOK_NULLS = "NULL::text, NULL::text, NULL::int, NULL::text, NULL::text, NULL::float8, NULL::text"

# Everything the ledger may read for one commit, in one round trip: the runs written
# ($1), the runs holding the idempotency keys of creates ($2, $3, $4), the steps rows of
# the calls named by facts and commands ($5, $6), and the hooks holding the tokens they
# name ($7). Rows are tagged 'r', 's' or 'h' and carry every shape (runs columns, steps
# columns, hooks columns). ``xmin`` identifies the version of a runs or steps row: the
# write statement applies only if it is still current.
_PRELOAD_REST = f"""
UNION ALL
SELECT 'r', r.xmin, {_RUN_COLUMNS_R}, {_STEP_NULLS}, {_HOOK_NULLS}
FROM {{schema}}.runs r
JOIN unnest($2::text[], $3::text[], $4::text[]) AS k(namespace, workflow_name, key)
  ON r.namespace = k.namespace AND r.workflow_name = k.workflow_name
 AND r.idempotency_key = k.key
UNION ALL
SELECT 's', s.xmin, {_RUN_NULLS}, {_STEP_COLUMNS_S}, {_HOOK_NULLS}
FROM {{schema}}.steps s
JOIN unnest($5::text[], $6::int[]) AS c(run_id, call)
  ON s.run_id = c.run_id AND s.call = c.call
UNION ALL
SELECT 'h', NULL::xid, {_RUN_NULLS}, {_STEP_NULLS}, {_HOOK_COLUMNS_H}
FROM {{schema}}.hooks h WHERE h.token = ANY($7::text[])
"""

PRELOAD = f"""
SELECT 'r' AS k, r.xmin AS version, {_RUN_COLUMNS_R}, {_STEP_NULLS}, {_HOOK_NULLS}
FROM {{schema}}.runs r WHERE r.run_id = ANY($1::text[])
{_PRELOAD_REST}
"""

# The same, locking the runs rows (in run_id order, so two commits never deadlock):
# the path a commit takes after losing an optimistic race.
PRELOAD_LOCKED = f"""
WITH locked AS (
    SELECT r.xmin AS version, {_RUN_COLUMNS_R} FROM {{schema}}.runs r
    WHERE r.run_id = ANY($1::text[]) ORDER BY r.run_id FOR UPDATE
)
SELECT 'r' AS k, version, {RUN_COLUMNS}, {_STEP_NULLS}, {_HOOK_NULLS} FROM locked
{_PRELOAD_REST}
"""

# A commit's changes in one statement (one round trip, its own transaction unless one is
# open). $1 is a JSON document with one list of records per kind of change (the keys
# below, and "e" for the events); the events' binary payloads come as one array ($2).
# Two parameters, whatever the commit holds: asyncpg then encodes almost nothing (each
# array it is given costs it several checks per item), and the statement keeps one
# prepared plan.
#
# The main query runs first. It sends the notifications ("n": [channel, payload] pairs,
# delivered at commit); updates the runs ("u") and the steps rows ("su") the ledger read,
# each only if its row is still the version read (``xmin``); puts the hooks ("hp"), each
# only if its token is free, this run's, or freed by this commit (its run ended, "hr");
# if any did not apply, durably_unchanged() raises serialization_failure and nothing is
# written. It then inserts the new runs ("i") and steps rows ("sn") and returns the
# versions of every runs and steps row written, which the next commit may start from.
# The other writes run after the main query (unreferenced data-modifying CTEs do), so
# every commit takes its row locks in the same order. The rows deleted and put never
# overlap (tasks "td", "tr" / "tp"; hooks "hd", "hr" / "hp"; streams "sc" / "sr"): one
# statement never touches a row twice.

#: The rows of the writes every step makes ("u", "su", "sn", "td", "tp") come as JSON
#: arrays, not objects: the names of their columns are here, not in every row sent (a
#: step's commit sends about half the bytes). Order matters: it is write_params's.
RUN_UPDATE_COLUMNS = (
    "run_id text, version xid, status text, started_at float8, completed_at float8,"
    " last_seq int, error_type text, cancel_requested bool, attributes jsonb,"
    " decided_seq int, turn_seq int, turn_due_at float8, lease_owner text, lease_until float8"
)
STEP_COLUMNS_W = (
    "run_id text, call int, kind text, name text, status text, attempts int,"
    " created_at float8, started_at float8, completed_at float8, due_at float8,"
    " error_type text, child_run_id text, version xid"
)
TASK_COLUMNS_W = (
    "run_id text, call int, kind text, namespace text, deployment text, visible_at float8,"
    " attempt int, lease_owner text, lease_until float8"
)


def _rows(key: str, columns: str, zipped: str = "") -> str:
    """The rows of ``$1 -> key`` (JSON arrays, one item per column, in the order of
    ``columns``: ``name type, ...``) as a subquery with those columns; ``zipped``
    (``"name expression"``, a set-returning expression) adds a column whose n-th value is
    the expression's n-th, alongside the n-th row (``ROWS FROM`` walks both at once)."""
    picks = []
    for i, col in enumerate(c.strip() for c in columns.split(",")):
        name, type_ = col.split()
        if type_ == "text":
            picks.append(f"x ->> {i} AS {name}")
        elif type_ == "jsonb":
            picks.append(f"x -> {i} AS {name}")
        else:
            picks.append(f"(x ->> {i})::{type_} AS {name}")
    rows = f"jsonb_array_elements($1::jsonb -> '{key}')"
    if not zipped:
        return f"(SELECT {', '.join(picks)} FROM {rows} AS x)"
    name, expression = zipped.split(" ", 1)
    picks.append(name)
    return f"(SELECT {', '.join(picks)} FROM ROWS FROM ({rows}, {expression}) AS n(x, {name}))"


_W_RUNS = f"""ru AS (
    UPDATE {{schema}}.runs AS r SET
        status = u.status, started_at = u.started_at, completed_at = u.completed_at,
        last_seq = u.last_seq, error_type = u.error_type,
        cancel_requested = u.cancel_requested, attributes = u.attributes,
        decided_seq = u.decided_seq, turn_seq = u.turn_seq, turn_due_at = u.turn_due_at,
        lease_owner = u.lease_owner, lease_until = u.lease_until
    FROM {_rows("u", RUN_UPDATE_COLUMNS)} AS u
    WHERE r.run_id = u.run_id AND r.xmin = u.version
    RETURNING r.run_id, r.xmin AS version
)"""

_W_NEW_RUNS = """ri AS (
    INSERT INTO {schema}.runs (run_id, workflow_name, namespace, deployment, status,
        created_at, started_at, completed_at, last_seq, idempotency_key, parent_run_id,
        parent_call, error_type, cancel_requested, attributes, decided_seq, turn_seq,
        turn_due_at, lease_owner, lease_until)
    SELECT * FROM jsonb_to_recordset($1::jsonb -> 'i') AS u(
        run_id text, workflow_name text, namespace text, deployment text, status text,
        created_at float8, started_at float8, completed_at float8, last_seq int,
        idempotency_key text, parent_run_id text, parent_call int, error_type text,
        cancel_requested bool, attributes jsonb, decided_seq int, turn_seq int,
        turn_due_at float8, lease_owner text, lease_until float8)
    RETURNING run_id, xmin AS version
)"""

#: The events' columns but their payloads, which come apart in $2 (one per event, in
#: the same order). Order matters: it is write_params's.
EVENT_COLUMNS_W = "run_id text, seq int, type text, call int, data text, created_at float8"

_W_EVENTS = f"""ev AS (
    INSERT INTO {{schema}}.events (run_id, seq, type, call, data, payload, created_at)
    SELECT e.run_id, e.seq, e.type, e.call, e.data, e.payload, e.created_at
    FROM {_rows("e", EVENT_COLUMNS_W, zipped="payload unnest($2::bytea[])")} AS e
)"""

_W_STEPS = f"""su AS (
    UPDATE {{schema}}.steps AS s SET
        kind = u.kind, name = u.name, status = u.status, attempts = u.attempts,
        created_at = u.created_at, started_at = u.started_at,
        completed_at = u.completed_at, due_at = u.due_at, error_type = u.error_type,
        child_run_id = u.child_run_id
    FROM {_rows("su", STEP_COLUMNS_W)} AS u
    WHERE s.run_id = u.run_id AND s.call = u.call AND s.xmin = u.version
    RETURNING s.run_id, s.call, s.xmin AS version
), sn AS (
    INSERT INTO {{schema}}.steps AS s (run_id, call, kind, name, status, attempts,
        created_at, started_at, completed_at, due_at, error_type, child_run_id)
    SELECT run_id, call, kind, name, status, attempts, created_at, started_at,
        completed_at, due_at, error_type, child_run_id
    FROM {_rows("sn", STEP_COLUMNS_W)} AS u
    ON CONFLICT (run_id, call) DO UPDATE SET
        kind = EXCLUDED.kind, name = EXCLUDED.name, status = EXCLUDED.status,
        attempts = EXCLUDED.attempts, created_at = EXCLUDED.created_at,
        started_at = EXCLUDED.started_at, completed_at = EXCLUDED.completed_at,
        due_at = EXCLUDED.due_at, error_type = EXCLUDED.error_type,
        child_run_id = EXCLUDED.child_run_id
    RETURNING s.run_id, s.call, s.xmin AS version
)"""

_W_TASKS = f"""td AS (
    DELETE FROM {{schema}}.tasks AS t
    USING {_rows("td", "run_id text, call int")} AS d
    WHERE t.run_id = d.run_id AND t.call = d.call
), tp AS (
    INSERT INTO {{schema}}.tasks (run_id, call, kind, namespace, deployment, visible_at,
        attempt, lease_owner, lease_until)
    SELECT * FROM {_rows("tp", TASK_COLUMNS_W)} AS p
    ON CONFLICT (run_id, call) DO UPDATE SET
        kind = EXCLUDED.kind, namespace = EXCLUDED.namespace,
        deployment = EXCLUDED.deployment, visible_at = EXCLUDED.visible_at,
        attempt = EXCLUDED.attempt, lease_owner = EXCLUDED.lease_owner,
        lease_until = EXCLUDED.lease_until
)"""

_W_TASKS_DROPPED = f"""tdr AS (
    DELETE FROM {{schema}}.tasks AS t
    WHERE t.run_id IN (SELECT jsonb_array_elements_text($1::jsonb -> 'tr'))
      AND NOT EXISTS (
          SELECT 1 FROM {_rows("tp", "run_id text, call int")} AS p
          WHERE p.run_id = t.run_id AND p.call = t.call)
)"""

_W_HOOKS = """hd AS (
    DELETE FROM {schema}.hooks
    WHERE token IN (SELECT jsonb_array_elements_text($1::jsonb -> 'hd'))
), hdr AS (
    DELETE FROM {schema}.hooks
    WHERE run_id IN (SELECT jsonb_array_elements_text($1::jsonb -> 'hr'))
      AND token NOT IN (SELECT p.token
                        FROM jsonb_to_recordset($1::jsonb -> 'hp') AS p(token text))
), hp AS (
    INSERT INTO {schema}.hooks AS h (token, run_id, call, hook_type, namespace, created_at,
        metadata)
    SELECT * FROM jsonb_to_recordset($1::jsonb -> 'hp') AS p(
        token text, run_id text, call int, hook_type text, namespace text,
        created_at float8, metadata text)
    ON CONFLICT (token) DO UPDATE SET
        run_id = EXCLUDED.run_id, call = EXCLUDED.call, hook_type = EXCLUDED.hook_type,
        namespace = EXCLUDED.namespace, created_at = EXCLUDED.created_at,
        metadata = EXCLUDED.metadata
    WHERE h.run_id = EXCLUDED.run_id
       OR h.run_id IN (SELECT jsonb_array_elements_text($1::jsonb -> 'hr'))
    RETURNING 1
)"""

_W_STREAMS = """sc AS (
    INSERT INTO {schema}.streams AS s (run_id, namespace, count, closed, updated_at)
    SELECT k.run_id, k.namespace, 0, true, ($1::jsonb ->> 'now')::float8
    FROM jsonb_to_recordset($1::jsonb -> 'sc') AS k(run_id text, namespace text)
    ON CONFLICT (run_id, namespace) DO UPDATE SET
        closed = true, updated_at = EXCLUDED.updated_at
), scr AS (
    UPDATE {schema}.streams AS s SET closed = true, closer_call = NULL, closer_attempt = 0,
        updated_at = ($1::jsonb ->> 'now')::float8
    WHERE s.run_id IN (SELECT jsonb_array_elements_text($1::jsonb -> 'sr'))
      AND (NOT s.closed OR s.closer_call IS NOT NULL)
      AND NOT EXISTS (
          SELECT 1 FROM jsonb_to_recordset($1::jsonb -> 'sc') AS k(run_id text, namespace text)
          WHERE k.run_id = s.run_id AND k.namespace = s.namespace)
)"""


def _checked(*ctes_and_keys: tuple[str, str]) -> str:
    counts = "\n               AND ".join(
        f"(SELECT count(*) FROM {cte}) = coalesce(jsonb_array_length($1::jsonb -> '{key}'), 0)"
        for cte, key in ctes_and_keys
    )
    # A note with a third item (a run's watch lock key: see Hub.watch_key) is sent only
    # when the lock cannot be taken, i.e. some process follows the run's steps. Taking it
    # holds it until this transaction ends, so a process that starts following the run
    # meanwhile waits for this commit and then reads what it wrote.
    return f"""checked AS (
    SELECT (SELECT count(pg_notify(n ->> 0, n ->> 1))
            FROM jsonb_array_elements($1::jsonb -> 'n') AS n
            WHERE n ->> 2 IS NULL
               OR NOT pg_try_advisory_xact_lock((n ->> 2)::bigint)) AS notified,
           {{schema}}.durably_unchanged(
               {counts}) AS ok
)"""


_W_RESULT = """
SELECT w.k, w.run_id, w.call, w.version
FROM checked LEFT JOIN (
    SELECT 'r' AS k, run_id, NULL::int AS call, version FROM ru
    UNION ALL SELECT 'r', run_id, NULL, version FROM ri
    UNION ALL SELECT 's', run_id, call, version FROM su
    UNION ALL SELECT 's', run_id, call, version FROM sn
) AS w ON true
"""

WRITE = (
    "WITH "
    + ", ".join(
        [
            _W_RUNS,
            _W_NEW_RUNS,
            _W_EVENTS,
            _W_STEPS,
            _W_TASKS,
            _W_TASKS_DROPPED,
            _W_HOOKS,
            _W_STREAMS,
            _checked(("ru", "u"), ("su", "su"), ("hp", "hp")),
        ]
    )
    + _W_RESULT
)

# The same for the commits most are (a step's result and the next call of runs that
# exist): no runs created, no hooks, no streams, no run ending. Less for the server to
# set up and run at every step.
WRITE_STEPS = (
    "WITH "
    + ", ".join([_W_RUNS, _W_EVENTS, _W_STEPS, _W_TASKS, _checked(("ru", "u"), ("su", "su"))])
    + _W_RESULT.replace("    UNION ALL SELECT 'r', run_id, NULL, version FROM ri\n", "")
)

# Which of a commit's events are in the log, to settle a commit whose connection was
# lost before its outcome was known.
FIND_EVENTS = """
SELECT e.run_id, e.seq, e.type, e.created_at FROM {schema}.events e
JOIN unnest($1::text[], $2::int[]) AS k(run_id, seq) ON e.run_id = k.run_id AND e.seq = k.seq
"""

# -- the queue: claims and leases ------------------------------------------------------

# One statement leases due run turns and due tasks, oldest first, skipping rows another
# transaction holds (so claims never wait, and never deadlock). A step task's steps row
# is locked with it and marked running: this claim is a new attempt. Rows come back
# tagged 'r' or 't' with the time they became claimable, to order them.
# Only work the worker can do is leased (see World.claim): run turns and timers of its
# workflows ($8), step tasks of its steps ($9) or of runs of its workflows (ad-hoc steps
# are run by replaying the body); NULL for any. The names filter rows the indexes find.
# Due by $10 (now, or ahead of it for a worker on a virtual clock); leases expire by $3.
CLAIM = """
WITH due_runs AS (
    SELECT run_id, turn_ready_at FROM {schema}.runs
    WHERE namespace = $1 AND deployment = $2 AND turn_ready_at <= $10::float8
      AND (lease_until IS NULL OR lease_until < $3::float8)
      AND ($8::text[] IS NULL OR workflow_name = ANY($8::text[]))
    ORDER BY turn_ready_at
    LIMIT $4
    FOR UPDATE SKIP LOCKED
), leased_runs AS (
    UPDATE {schema}.runs AS r SET lease_owner = $6, lease_until = $7
    FROM due_runs AS d WHERE r.run_id = d.run_id
    RETURNING r.run_id, d.turn_ready_at AS ready_at
), due_tasks AS (
    SELECT t.run_id, t.call, t.ready_at FROM {schema}.tasks AS t
    JOIN {schema}.steps AS s ON s.run_id = t.run_id AND s.call = t.call
    JOIN {schema}.runs AS r ON r.run_id = t.run_id
    WHERE t.namespace = $1 AND t.deployment = $2 AND t.ready_at <= $10::float8
      AND (t.lease_until IS NULL OR t.lease_until < $3::float8)
      AND ($8::text[] IS NULL OR r.workflow_name = ANY($8::text[])
           OR (t.kind = 'step' AND ($9::text[] IS NULL OR s.name = ANY($9::text[]))))
    ORDER BY t.ready_at
    LIMIT $5
    FOR UPDATE OF t, s SKIP LOCKED
), leased_tasks AS (
    UPDATE {schema}.tasks AS t SET
        lease_owner = $6, lease_until = $7,
        attempt = t.attempt + CASE WHEN t.kind = 'step' THEN 1 ELSE 0 END
    FROM due_tasks AS d WHERE t.run_id = d.run_id AND t.call = d.call
    RETURNING t.run_id, t.call, t.kind, t.attempt, t.visible_at, d.ready_at
), marked AS (
    UPDATE {schema}.steps AS s SET status = 'running', attempts = l.attempt,
        started_at = $3::float8
    FROM leased_tasks AS l
    WHERE l.kind = 'step' AND s.run_id = l.run_id AND s.call = l.call
)
SELECT 'r' AS k, run_id, NULL::int AS call, NULL::text AS kind, NULL::int AS attempt,
       NULL::float8 AS visible_at, ready_at FROM leased_runs
UNION ALL
SELECT 't', run_id, call, kind, attempt, visible_at, ready_at FROM leased_tasks
"""

# Leases are extended and handed back row by row, skipping rows a commit holds at this
# instant (the caller tries those again): so these never wait in a lock queue either.
EXTEND_LEASES = """
WITH r AS (
    UPDATE {schema}.runs SET lease_until = $1
    WHERE run_id IN (SELECT run_id FROM {schema}.runs
                     WHERE run_id = ANY($2::text[]) AND lease_owner = $3
                     FOR UPDATE SKIP LOCKED)
    RETURNING run_id
), t AS (
    UPDATE {schema}.tasks SET lease_until = $1
    WHERE (run_id, call) IN (SELECT t.run_id, t.call FROM {schema}.tasks AS t
                             JOIN unnest($4::text[], $5::int[]) AS k(run_id, call)
                               ON t.run_id = k.run_id AND t.call = k.call
                             WHERE t.lease_owner = $3
                             FOR UPDATE OF t SKIP LOCKED)
    RETURNING run_id, call
)
SELECT 'r' AS k, run_id, NULL::int AS call FROM r
UNION ALL
SELECT 't', run_id, call FROM t
"""

# Only the rows still held by the owner are handed back; those skipped because a commit
# holds them at this instant come back as 'r?'/'t?' rows to retry. The namespaces of the
# released rows are woken in the same transaction ($5 channel, $6 this process's token)
# and come back as 'w' rows.
RELEASE = """
WITH r AS (
    UPDATE {schema}.runs SET lease_owner = NULL, lease_until = NULL
    WHERE run_id IN (SELECT run_id FROM {schema}.runs
                     WHERE run_id = ANY($1::text[]) AND lease_owner = $2
                     FOR UPDATE SKIP LOCKED)
    RETURNING run_id, namespace
), t AS (
    UPDATE {schema}.tasks SET lease_owner = NULL, lease_until = NULL,
        -- a step handed back is not an attempt lost: its count goes back down
        attempt = CASE WHEN kind = 'step' AND attempt > 0 THEN attempt - 1 ELSE attempt END
    WHERE (run_id, call) IN (SELECT t.run_id, t.call FROM {schema}.tasks AS t
                             JOIN unnest($3::text[], $4::int[]) AS k(run_id, call)
                               ON t.run_id = k.run_id AND t.call = k.call
                             WHERE t.lease_owner = $2
                             FOR UPDATE OF t SKIP LOCKED)
    RETURNING run_id, call, namespace
), held AS (
    SELECT 'r?' AS k, run_id, NULL::int AS call FROM {schema}.runs
    WHERE run_id = ANY($1::text[]) AND lease_owner = $2
      AND run_id NOT IN (SELECT run_id FROM r)
    UNION ALL
    SELECT 't?', t.run_id, t.call FROM {schema}.tasks AS t
    JOIN unnest($3::text[], $4::int[]) AS k(run_id, call)
      ON t.run_id = k.run_id AND t.call = k.call
    WHERE t.lease_owner = $2
      AND (t.run_id, t.call) NOT IN (SELECT run_id, call FROM t)
), woken AS (
    SELECT array_agg(DISTINCT namespace) AS namespaces
    FROM (SELECT namespace FROM r UNION ALL SELECT namespace FROM t) AS n
), notified AS (
    SELECT count(pg_notify($5, json_build_object('o', $6::text, 'w', namespaces)::text)) AS n
    FROM woken WHERE namespaces IS NOT NULL
)
SELECT k, run_id, call FROM held
UNION ALL
SELECT 'w', ns, NULL::int FROM notified, woken, unnest(woken.namespaces) AS ns
"""

# When the earliest run turn or task of a queue that CLAIM with the same names ($3, $4)
# would lease becomes claimable (both in index order, the names filtering).
NEXT_DUE = """
SELECT
  (SELECT turn_ready_at FROM {schema}.runs
    WHERE namespace = $1 AND deployment = $2 AND turn_ready_at IS NOT NULL
      AND ($3::text[] IS NULL OR workflow_name = ANY($3::text[]))
    ORDER BY turn_ready_at LIMIT 1),
  (SELECT t.ready_at FROM {schema}.tasks AS t
    JOIN {schema}.steps AS s ON s.run_id = t.run_id AND s.call = t.call
    JOIN {schema}.runs AS r ON r.run_id = t.run_id
    WHERE t.namespace = $1 AND t.deployment = $2
      AND ($3::text[] IS NULL OR r.workflow_name = ANY($3::text[])
           OR (t.kind = 'step' AND ($4::text[] IS NULL OR s.name = ANY($4::text[]))))
    ORDER BY t.ready_at LIMIT 1)
"""

# -- hooks -----------------------------------------------------------------------------

GET_HOOK = f"SELECT {HOOK_COLUMNS} FROM {{schema}}.hooks WHERE token = $1"

LIST_HOOKS = f"""
SELECT {HOOK_COLUMNS} FROM {{schema}}.hooks
WHERE ($1::text IS NULL OR namespace = $1) AND ($2::text IS NULL OR run_id = $2)
ORDER BY created_at DESC, token DESC
LIMIT $3
"""

# -- streams ---------------------------------------------------------------------------

# An append makes the stream rows it needs (for runs that exist), then locks them in
# key order, so two appenders to one stream take turns and never deadlock.
MAKE_STREAMS = """
INSERT INTO {schema}.streams (run_id, namespace, count, closed, updated_at)
SELECT k.run_id, k.namespace, 0, false, $3
FROM (SELECT DISTINCT * FROM unnest($1::text[], $2::text[]) AS u(run_id, namespace)
      ORDER BY 1, 2) AS k
JOIN {schema}.runs AS r ON r.run_id = k.run_id
ON CONFLICT (run_id, namespace) DO NOTHING
"""

LOCK_STREAMS = """
SELECT s.run_id, s.namespace, s.count, s.closed, s.closer_call, s.closer_attempt
FROM {schema}.streams AS s
JOIN (SELECT DISTINCT * FROM unnest($1::text[], $2::text[]) AS u(run_id, namespace)) AS k
  ON s.run_id = k.run_id AND s.namespace = k.namespace
ORDER BY s.run_id, s.namespace
FOR UPDATE OF s
"""

# The chunks ($1-$4, and the attempts that wrote them: $10-$11), the streams' new counts
# ($5-$7), whether each is closed and by which attempt ($12-$14: a retry reopens the
# stream its earlier attempt closed) and the wake-ups ($9: a JSON list of [channel, payload]).
WRITE_CHUNKS = """
WITH c AS (
    INSERT INTO {schema}.chunks (run_id, namespace, idx, payload, created_at, call, attempt)
    SELECT u.run_id, u.namespace, u.idx, u.payload, $8, u.call, u.attempt
    FROM unnest($1::text[], $2::text[], $3::int[], $4::bytea[], $10::int[], $11::int[])
        AS u(run_id, namespace, idx, payload, call, attempt)
), s AS (
    UPDATE {schema}.streams AS s SET count = u.count, closed = u.closed,
        closer_call = u.closer_call, closer_attempt = u.closer_attempt, updated_at = $8
    FROM unnest($5::text[], $6::text[], $7::int[], $12::bool[], $13::int[], $14::int[])
        AS u(run_id, namespace, count, closed, closer_call, closer_attempt)
    WHERE s.run_id = u.run_id AND s.namespace = u.namespace
)
SELECT count(pg_notify(n ->> 0, n ->> 1)) FROM jsonb_array_elements($9::jsonb) AS n
"""

# The first chunk an append wrote, to settle an append whose connection was lost.
FIND_CHUNKS = """
SELECT c.run_id, c.namespace, c.idx, c.payload FROM {schema}.chunks AS c
JOIN unnest($1::text[], $2::text[], $3::int[]) AS k(run_id, namespace, idx)
  ON c.run_id = k.run_id AND c.namespace = k.namespace AND c.idx = k.idx
"""

GET_STREAM = "SELECT count, closed FROM {schema}.streams WHERE run_id = $1 AND namespace = $2"

# The stream's state, then its chunks from $3 on (state columns repeat on every row; a
# stream without chunks there gives one row with NULL chunk columns).
READ_CHUNKS = """
SELECT s.count, s.closed, c.idx, c.payload, c.created_at, c.call, c.attempt
FROM {schema}.streams AS s
LEFT JOIN LATERAL (
    SELECT idx, payload, created_at, call, attempt FROM {schema}.chunks
    WHERE run_id = $1 AND namespace = $2 AND idx >= $3 ORDER BY idx LIMIT $4
) AS c ON true
WHERE s.run_id = $1 AND s.namespace = $2
ORDER BY c.idx
"""

RUN_TASKS = (
    "SELECT call, kind, visible_at, attempt, lease_owner, lease_until FROM {schema}.tasks"
    " WHERE run_id = $1 ORDER BY call"
)

STREAM_INFO = (
    "SELECT namespace, count, closed, updated_at, closer_call, closer_attempt"
    " FROM {schema}.streams WHERE run_id = $1 ORDER BY namespace"
)

# Counts by status under the runs page's other filters.
COUNT_RUNS = """
SELECT status, count(*) FROM {schema}.runs
WHERE ($1::text IS NULL OR workflow_name = $1)
  AND ($2::text IS NULL OR namespace = $2)
  AND ($3::text IS NULL OR deployment = $3)
  AND ($4::text IS NULL OR left(run_id, length($4)) = $4)
  AND ($5::jsonb IS NULL OR attributes @> $5::jsonb)
GROUP BY status
"""

# Who holds what: the leases on run turns and on tasks (expired ones too).
LIST_LEASES = """
SELECT lease_owner, run_id, 'turn', lease_until, NULL::int, NULL::text, workflow_name,
       namespace, deployment
FROM {schema}.runs WHERE lease_owner IS NOT NULL AND lease_until IS NOT NULL
  AND ($1::text IS NULL OR namespace = $1)
UNION ALL
SELECT t.lease_owner, t.run_id, t.kind, t.lease_until, t.call, s.name, r.workflow_name,
       t.namespace, t.deployment
FROM {schema}.tasks AS t JOIN {schema}.runs AS r ON r.run_id = t.run_id
LEFT JOIN {schema}.steps AS s ON s.run_id = t.run_id AND s.call = t.call
WHERE t.lease_owner IS NOT NULL AND t.lease_until IS NOT NULL
  AND ($1::text IS NULL OR t.namespace = $1)
ORDER BY 1, 2, 5
"""

# -- deployments -----------------------------------------------------------------------

TOUCH_DEPLOYMENT = """
INSERT INTO {schema}.deployments (namespace, name, first_seen, last_seen)
VALUES ($1, $2, $3, $3)
ON CONFLICT (namespace, name) DO UPDATE SET last_seen = EXCLUDED.last_seen
"""

LIST_DEPLOYMENTS = """
SELECT k.namespace, k.name, coalesce(d.first_seen, 0), coalesce(d.last_seen, 0),
       (SELECT count(*) FROM {schema}.runs AS r WHERE r.namespace = k.namespace
           AND r.deployment = k.name AND r.status IN ('pending', 'running'))
FROM (SELECT namespace, name FROM {schema}.deployments
      UNION SELECT DISTINCT namespace, deployment FROM {schema}.runs) AS k
LEFT JOIN {schema}.deployments AS d ON d.namespace = k.namespace AND d.name = k.name
WHERE ($1::text IS NULL OR k.namespace = $1)
ORDER BY 3 DESC, 2 DESC
"""

# Re-pin the runs that may move (not ended, no step in flight, no turn in progress) and
# their queued tasks; wake the namespace's workers ($5 channel, $6 payload).
MOVE_RUNS = """
WITH m AS (
    SELECT run_id FROM {schema}.runs AS r
    WHERE r.namespace = $1 AND r.deployment = $2 AND r.status IN ('pending', 'running')
      AND (r.lease_owner IS NULL OR r.lease_until < $4)
      AND NOT EXISTS (SELECT 1 FROM {schema}.tasks AS t WHERE t.run_id = r.run_id
                      AND t.kind = 'step' AND t.lease_owner IS NOT NULL)
    ORDER BY run_id
    FOR UPDATE SKIP LOCKED
), moved AS (
    UPDATE {schema}.runs AS r SET deployment = $3 FROM m WHERE r.run_id = m.run_id
    RETURNING r.run_id
), t AS (
    UPDATE {schema}.tasks AS t SET deployment = $3 FROM moved WHERE t.run_id = moved.run_id
)
SELECT n, (SELECT count(pg_notify($5, $6)) WHERE n > 0)
FROM (SELECT count(*) AS n FROM moved) AS c
"""

# -- pruning ended runs ------------------------------------------------------------------

# ($1 ended_before, $2 statuses, $3 namespace or NULL, $4 limit, $5 dry run): a bounded
# batch of ended runs, oldest end first, deleted with all they own in one statement.
PRUNE_RUNS = """
WITH doomed AS (
    SELECT run_id FROM {schema}.runs
    WHERE status IN ('completed', 'failed', 'cancelled') AND status = ANY($2::text[])
      AND completed_at < $1::float8 AND ($3::text IS NULL OR namespace = $3::text)
    ORDER BY completed_at, run_id
    LIMIT $4
    FOR UPDATE SKIP LOCKED
), gone AS (
    SELECT run_id FROM doomed WHERE NOT $5::bool
), e AS (DELETE FROM {schema}.events WHERE run_id IN (SELECT run_id FROM gone)
), s AS (DELETE FROM {schema}.steps WHERE run_id IN (SELECT run_id FROM gone)
), t AS (DELETE FROM {schema}.tasks WHERE run_id IN (SELECT run_id FROM gone)
), h AS (DELETE FROM {schema}.hooks WHERE run_id IN (SELECT run_id FROM gone)
), c AS (DELETE FROM {schema}.chunks WHERE run_id IN (SELECT run_id FROM gone)
), st AS (DELETE FROM {schema}.streams WHERE run_id IN (SELECT run_id FROM gone)
), r AS (DELETE FROM {schema}.runs WHERE run_id IN (SELECT run_id FROM gone)
)
SELECT run_id FROM doomed ORDER BY run_id
"""

# -- payloads at rest (re-encryption) --------------------------------------------------

SCAN_EVENT_PAYLOADS = f"""
SELECT {EVENT_COLUMNS} FROM {{schema}}.events
WHERE (run_id, seq) > ($1::text, $2::int) AND payload IS NOT NULL
ORDER BY run_id, seq
LIMIT $3
"""

SCAN_CHUNK_PAYLOADS = """
SELECT run_id, namespace, idx, payload, created_at, call, attempt FROM {schema}.chunks
WHERE (run_id, namespace, idx) > ($1::text, $2::text, $3::int)
ORDER BY run_id, namespace, idx
LIMIT $4
"""

# Each payload is replaced only where it still equals the old one.
SWAP_PAYLOADS = """
WITH e AS (
    UPDATE {schema}.events AS e SET payload = u.new
    FROM unnest($1::text[], $2::int[], $3::bytea[], $4::bytea[]) AS u(run_id, seq, old, new)
    WHERE e.run_id = u.run_id AND e.seq = u.seq AND e.payload = u.old
    RETURNING 1
), c AS (
    UPDATE {schema}.chunks AS c SET payload = u.new
    FROM unnest($5::text[], $6::text[], $7::int[], $8::bytea[], $9::bytea[])
        AS u(run_id, namespace, idx, old, new)
    WHERE c.run_id = u.run_id AND c.namespace = u.namespace AND c.idx = u.idx
      AND c.payload = u.old
    RETURNING 1
)
SELECT (SELECT count(*) FROM e) + (SELECT count(*) FROM c)
"""


# -- locks (durably.worlds.locks; the lock path is durably.worlds.postgres.locks) --------

_LOCK_COLUMNS_L = ", ".join(f"l.{c.strip()}" for c in LOCK_COLUMNS.split(","))

# The keys a lock commit changes: those it names ($1) and those of the entries of the
# runs it may end ($2); a transaction advisory lock is taken on each, always in the same
# order (so two commits never deadlock on them), before they are returned.
LOCK_KEYS_XACT = """
WITH k AS (
    SELECT unnest($1::text[]) AS key
    UNION
    SELECT key FROM {schema}.locks WHERE run_id = ANY($2::text[])
), held AS (
    SELECT count(pg_advisory_xact_lock(h)) AS n FROM (
        SELECT DISTINCT hashtextextended('durably.lock:' || key, 0) AS h FROM k ORDER BY h
    ) AS s
)
SELECT k.key FROM k, held
"""

# Every holder of the keys ($1), their first $2 waiters each, and the entries of the
# runs the commit may end ($3); tagged 'h', 'w' or 'r'.
READ_LOCKS = f"""
SELECT 'h' AS k, {_LOCK_COLUMNS_L} FROM {{schema}}.locks l
WHERE l.key = ANY($1::text[]) AND l.holding
UNION ALL
SELECT 'w', w.* FROM unnest($1::text[]) AS q(key) CROSS JOIN LATERAL (
    SELECT {_LOCK_COLUMNS_L} FROM {{schema}}.locks l
    WHERE l.key = q.key AND NOT l.holding
    ORDER BY l.priority DESC, l.queued_at, l.run_id, l.call
    LIMIT $2
) AS w
UNION ALL
SELECT 'r', {_LOCK_COLUMNS_L} FROM {{schema}}.locks l WHERE l.run_id = ANY($3::text[])
"""

# Delete ($1-$3: key, run_id, call) and put ($4-$12: the LOCK_COLUMNS) lock entries.
WRITE_LOCKS = f"""
WITH gone AS (
    DELETE FROM {{schema}}.locks l
    USING unnest($1::text[], $2::text[], $3::int[]) AS g(key, run_id, call)
    WHERE l.key = g.key AND l.run_id = g.run_id AND l.call = g.call
)
INSERT INTO {{schema}}.locks ({LOCK_COLUMNS})
SELECT * FROM unnest($4::text[], $5::text[], $6::int[], $7::int[], $8::bool[], $9::int[],
                     $10::float8[], $11::text[], $12::text[])
ON CONFLICT (key, run_id, call) DO UPDATE SET
    lim = EXCLUDED.lim, holding = EXCLUDED.holding, priority = EXCLUDED.priority,
    queued_at = EXCLUDED.queued_at, namespace = EXCLUDED.namespace,
    workflow_name = EXCLUDED.workflow_name
"""

LIST_LOCKS = f"""
SELECT {LOCK_COLUMNS} FROM {{schema}}.locks
WHERE ($1::text IS NULL OR key = $1) AND ($2::text IS NULL OR run_id = $2)
ORDER BY key, holding DESC, priority DESC, queued_at, run_id, call
LIMIT $3
"""


@dataclass(frozen=True, slots=True)
class Statements:
    """Every statement of this module with ``{schema}`` filled in, by name."""

    CREATE_SCHEMA: str
    MIGRATIONS_TABLE: str
    SCHEMA_VERSION: str
    SET_MIGRATION_SEARCH_PATH: str
    RECORD_MIGRATION: str
    GET_RUN: str
    GET_LAST_SEQ: str
    READ_EVENTS: str
    READ_LOG: str
    READ_COMMAND: str
    LIST_STEPS: str
    RUN_TASKS: str
    COUNT_RUNS: str
    LIST_LEASES: str
    PRELOAD: str
    PRELOAD_LOCKED: str
    WRITE: str
    WRITE_STEPS: str
    FIND_EVENTS: str
    CLAIM: str
    EXTEND_LEASES: str
    RELEASE: str
    NEXT_DUE: str
    GET_HOOK: str
    LIST_HOOKS: str
    MAKE_STREAMS: str
    LOCK_STREAMS: str
    WRITE_CHUNKS: str
    FIND_CHUNKS: str
    GET_STREAM: str
    READ_CHUNKS: str
    STREAM_INFO: str
    TOUCH_DEPLOYMENT: str
    LIST_DEPLOYMENTS: str
    MOVE_RUNS: str
    PRUNE_RUNS: str
    SCAN_EVENT_PAYLOADS: str
    SCAN_CHUNK_PAYLOADS: str
    SWAP_PAYLOADS: str
    # -- locks --
    LOCK_KEYS_XACT: str
    READ_LOCKS: str
    WRITE_LOCKS: str
    LIST_LOCKS: str

    @classmethod
    def for_schema(cls, quoted_schema: str) -> Statements:
        """The statements for one schema (``quoted_schema`` is a quoted identifier)."""
        g = globals()
        return cls(**{f.name: g[f.name].format(schema=quoted_schema) for f in fields(cls)})
