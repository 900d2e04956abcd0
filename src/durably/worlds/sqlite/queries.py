"""Every SQL statement of the SQLite world, by name (the schema is in ``migrations/``;
the column lists the row decoders read are shared, in :mod:`..sql.rows`).

Statements are constant strings (or, for ``list_runs``, one per combination of its
filters) so that each connection's statement cache prepares them once; nothing here is
built from user input.
"""

from __future__ import annotations

import functools

from ..sql.rows import (
    EVENT_COLUMNS,
    HOOK_COLUMNS,
    LOCK_COLUMNS,
    LOG_COLUMNS,
    RUN_COLUMNS,
    STEP_COLUMNS,
)

# -- connection and schema -------------------------------------------------------------

PRAGMA_WAL = "PRAGMA journal_mode=WAL"
# Measured: a step commit touches ~8 pages; 2 KiB pages cut a sequential step by ~13%.
PRAGMA_PAGE_SIZE = "PRAGMA page_size=2048"
PRAGMA_SYNCHRONOUS = "PRAGMA synchronous={level}"  # level is validated: FULL/NORMAL/OFF
PRAGMA_BUSY_TIMEOUT = "PRAGMA busy_timeout={ms:d}"
PRAGMA_QUERY_ONLY = "PRAGMA query_only=1"
PRAGMA_WAL_AUTOCHECKPOINT = "PRAGMA wal_autocheckpoint={pages:d}"
WAL_CHECKPOINT_PASSIVE = "PRAGMA wal_checkpoint(PASSIVE)"
GET_USER_VERSION = "PRAGMA user_version"
SET_USER_VERSION = "PRAGMA user_version={version:d}"
# One stored payload that is encrypted (starts with crypto.MAGIC), if any: the key id it
# names is the key the database needs. Asked only when its key file is missing.
HAS_TABLE = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
SEALED_EVENT_PAYLOAD = "SELECT payload FROM events WHERE substr(payload, 1, 4) = ? LIMIT 1"
SEALED_CHUNK_PAYLOAD = "SELECT payload FROM chunks WHERE substr(payload, 1, 4) = ? LIMIT 1"

BEGIN_IMMEDIATE = "BEGIN IMMEDIATE"
# Changes when another connection has committed since this one last asked (memo.py).
DATA_VERSION = "PRAGMA data_version"
COMMIT = "COMMIT"
ROLLBACK = "ROLLBACK"

# -- runs ------------------------------------------------------------------------------


GET_RUN = f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?"

GET_LAST_SEQ = "SELECT last_seq FROM runs WHERE run_id = ?"

FIND_IDEMPOTENT = (
    "SELECT run_id FROM runs WHERE namespace = ? AND workflow_name = ? AND idempotency_key = ?"
)

INSERT_RUN = f"INSERT INTO runs ({RUN_COLUMNS}) VALUES ({', '.join('?' * 20)})"


@functools.cache
def update_run(columns: tuple[str, ...]) -> str:
    """An ``UPDATE runs`` of only ``columns`` (names of ``memo.RUN_STATE``): a column
    left out leaves its indexes' pages untouched (a step changes none that is indexed)."""
    return f"UPDATE runs SET {', '.join(c + ' = ?' for c in columns)} WHERE run_id = ?"


# Filters that are NULL match everything; :attrs is a JSON object that the run's
# attributes must contain (every key with the same value).
_LIST_RUNS_WHERE = {
    "status": "status = :status",
    "workflow_name": "workflow_name = :workflow_name",
    "namespace": "namespace = :namespace",
    "deployment": "deployment = :deployment",
    "run_id_prefix": "run_id LIKE :run_id_prefix || '%'",
    "attrs": """NOT EXISTS (
        SELECT 1 FROM json_each(:attrs) AS f
        WHERE NOT EXISTS (
            SELECT 1 FROM json_each(runs.attributes) AS a
            WHERE a.key = f.key AND a.value = f.value
        ))""",
}


@functools.cache
def list_runs(given: frozenset[str]) -> str:
    """The query of ``list_runs`` with the filters ``given`` (names of
    ``_LIST_RUNS_WHERE``) and only those: a condition ``(:x IS NULL OR ...)`` would keep
    SQLite from using the indexes on (status, created_at) and the like (migration 008)."""
    where = " AND ".join(_LIST_RUNS_WHERE[k] for k in _LIST_RUNS_WHERE if k in given)
    return (
        f"SELECT {RUN_COLUMNS} FROM runs{' WHERE ' + where if where else ''}"
        " ORDER BY created_at DESC, run_id DESC LIMIT :limit OFFSET :offset"
    )


# -- events ----------------------------------------------------------------------------

INSERT_EVENT = (
    "INSERT INTO events (run_id, seq, type, call, data, payload, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)

# A NULL limit reads to the end (a negative LIMIT has no bound in SQLite).
READ_EVENTS = (
    f"SELECT {EVENT_COLUMNS} FROM events"
    " WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT coalesce(?, -1)"
)

READ_LOG = f"SELECT {LOG_COLUMNS} FROM events WHERE run_id = ? AND seq > ? ORDER BY seq"

# The conditions repeat the partial index's, which the planner would otherwise pass
# over for the primary key (and then scan the run's whole log).
READ_COMMAND = (
    f"SELECT {EVENT_COLUMNS}"
    " FROM events INDEXED BY events_commands"
    " WHERE run_id = ? AND call = ? AND call IS NOT NULL AND substr(type, -8) = '_created'"
    " ORDER BY seq LIMIT 1"
)

# -- steps -----------------------------------------------------------------------------


GET_STEP = f"SELECT {STEP_COLUMNS} FROM steps WHERE run_id = ? AND call = ?"

LIST_STEPS = f"SELECT {STEP_COLUMNS} FROM steps WHERE run_id = ? ORDER BY call"

# One statement for a new row and a changed one, so a commit writes its steps in one call.
UPSERT_STEP = (
    f"INSERT INTO steps ({STEP_COLUMNS}) VALUES ({', '.join('?' * 12)})"
    " ON CONFLICT (run_id, call) DO UPDATE SET kind = excluded.kind, name = excluded.name,"
    " status = excluded.status, attempts = excluded.attempts,"
    " created_at = excluded.created_at, started_at = excluded.started_at,"
    " completed_at = excluded.completed_at, due_at = excluded.due_at,"
    " error_type = excluded.error_type, child_run_id = excluded.child_run_id"
)

MARK_STEP_RUNNING = (
    "UPDATE steps SET status = 'running', attempts = ?, started_at = ?"
    " WHERE run_id = ? AND call = ?"
)

# -- tasks -----------------------------------------------------------------------------

PUT_TASK = (
    "INSERT OR REPLACE INTO tasks (run_id, call, kind, namespace, deployment, visible_at,"
    " attempt, lease_owner, lease_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

DELETE_TASK = "DELETE FROM tasks WHERE run_id = ? AND call = ?"

DELETE_RUN_TASKS = "DELETE FROM tasks WHERE run_id = ?"

RUN_TASKS = (
    "SELECT call, kind, visible_at, attempt, lease_owner, lease_until FROM tasks"
    " WHERE run_id = ? ORDER BY call"
)

# Counts by status under the runs page's other filters (?1..?5 as LIST_RUNS's).
COUNT_RUNS = """
SELECT status, count(*) FROM runs
WHERE (?1 IS NULL OR workflow_name = ?1)
  AND (?2 IS NULL OR namespace = ?2)
  AND (?3 IS NULL OR deployment = ?3)
  AND (?4 IS NULL OR substr(run_id, 1, length(?4)) = ?4)
  AND (?5 IS NULL OR NOT EXISTS (
        SELECT 1 FROM json_each(?5) AS f
        WHERE NOT EXISTS (
            SELECT 1 FROM json_each(runs.attributes) AS a
            WHERE a.key = f.key AND a.value = f.value
        )
  ))
GROUP BY status
"""

# Who holds what: the leases on run turns and on tasks (expired ones too).
LIST_LEASES = """
SELECT lease_owner, run_id, 'turn', lease_until, NULL, NULL, workflow_name, namespace,
       deployment
FROM runs WHERE lease_owner IS NOT NULL AND lease_until IS NOT NULL
  AND (?1 IS NULL OR namespace = ?1)
UNION ALL
SELECT t.lease_owner, t.run_id, t.kind, t.lease_until, t.call, s.name, r.workflow_name,
       t.namespace, t.deployment
FROM tasks AS t JOIN runs AS r ON r.run_id = t.run_id
LEFT JOIN steps AS s ON s.run_id = t.run_id AND s.call = t.call
WHERE t.lease_owner IS NOT NULL AND t.lease_until IS NOT NULL
  AND (?1 IS NULL OR t.namespace = ?1)
ORDER BY 1, 2, 5
"""

# -- the queue: claims and leases ------------------------------------------------------

# A worker is handed only work it can do (see World.claim): run turns and timers of its
# workflows, step tasks of its steps or of runs of its workflows (ad-hoc steps are run by
# replaying the body). :workflows and :steps are JSON arrays of names, NULL for any.
_KNOWN_WORKFLOW = "(:workflows IS NULL OR {col} IN (SELECT value FROM json_each(:workflows)))"
_TASK_TAKEN = (
    "(" + _KNOWN_WORKFLOW.format(col="r.workflow_name") + " OR (t.kind = 'step' AND"
    " (:steps IS NULL OR s.name IN (SELECT value FROM json_each(:steps)))))"
)

DUE_RUNS = (
    "SELECT run_id FROM runs"
    " WHERE namespace = :namespace AND deployment = :deployment AND turn_due_at <= :due"
    " AND (lease_until IS NULL OR lease_until < :now)"
    " AND " + _KNOWN_WORKFLOW.format(col="workflow_name") + " ORDER BY turn_due_at LIMIT :limit"
)

LEASE_RUN = "UPDATE runs SET lease_owner = ?, lease_until = ? WHERE run_id = ?"

DUE_TASKS = (
    "SELECT t.run_id, t.call, t.kind, t.attempt, t.visible_at FROM tasks AS t"
    " JOIN runs AS r ON r.run_id = t.run_id"
    " JOIN steps AS s ON s.run_id = t.run_id AND s.call = t.call"
    " WHERE t.namespace = :namespace AND t.deployment = :deployment AND t.visible_at <= :due"
    " AND (t.lease_until IS NULL OR t.lease_until < :now) AND "
    + _TASK_TAKEN
    + " ORDER BY t.visible_at LIMIT :limit"
)

LEASE_TASK = (
    "UPDATE tasks SET lease_owner = ?, lease_until = ?, attempt = ? WHERE run_id = ? AND call = ?"
)

EXTEND_RUN_LEASE = "UPDATE runs SET lease_until = ? WHERE run_id = ? AND lease_owner = ?"

EXTEND_TASK_LEASE = (
    "UPDATE tasks SET lease_until = ? WHERE run_id = ? AND call = ? AND lease_owner = ?"
)

RELEASE_RUN = (
    "UPDATE runs SET lease_owner = NULL, lease_until = NULL WHERE run_id = ? AND lease_owner = ?"
)

# A step handed back is not an attempt lost: its count goes back down.
RELEASE_TASK = (
    "UPDATE tasks SET lease_owner = NULL, lease_until = NULL,"
    " attempt = CASE WHEN kind = 'step' AND attempt > 0 THEN attempt - 1 ELSE attempt END"
    " WHERE run_id = ? AND call = ? AND lease_owner = ?"
)

BUMP_WORK_CLOCK = "UPDATE work_clock SET version = version + 1 WHERE id = 1"

GET_WORK_CLOCK = "SELECT version FROM work_clock WHERE id = 1"

# When the earliest run turn or task becomes claimable (a lease delays it to its expiry).
NEXT_DUE = (
    """
SELECT
  (SELECT min(max(turn_due_at, coalesce(lease_until, 0.0))) FROM runs
    WHERE namespace = :namespace AND deployment = :deployment AND turn_due_at IS NOT NULL
      AND """
    + _KNOWN_WORKFLOW.format(col="workflow_name")
    + """),
  (SELECT min(max(t.visible_at, coalesce(t.lease_until, 0.0))) FROM tasks AS t
    JOIN runs AS r ON r.run_id = t.run_id
    JOIN steps AS s ON s.run_id = t.run_id AND s.call = t.call
    WHERE t.namespace = :namespace AND t.deployment = :deployment AND """
    + _TASK_TAKEN
    + """)
"""
)

# -- hooks -----------------------------------------------------------------------------


GET_HOOK = f"SELECT {HOOK_COLUMNS} FROM hooks WHERE token = ?"

PUT_HOOK = f"INSERT OR REPLACE INTO hooks ({HOOK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)"

DELETE_HOOK = "DELETE FROM hooks WHERE token = ?"

DELETE_RUN_HOOKS = "DELETE FROM hooks WHERE run_id = ?"

LIST_HOOKS = (
    f"SELECT {HOOK_COLUMNS} FROM hooks"
    " WHERE (?1 IS NULL OR namespace = ?1)"
    " AND (?2 IS NULL OR run_id = ?2)"
    " ORDER BY created_at DESC, token DESC LIMIT ?3"
)

# -- streams ---------------------------------------------------------------------------

GET_STREAM = (
    "SELECT count, closed, closer_call, closer_attempt FROM streams"
    " WHERE run_id = ? AND namespace = ?"
)

# (run_id, namespace, count, closed, closer_call, closer_attempt, updated_at): an append
# sets the closer of the stream it closes, and clears it on the stream a retry reopens.
PUT_STREAM = (
    "INSERT INTO streams (run_id, namespace, count, closed, closer_call, closer_attempt,"
    " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (run_id, namespace) DO UPDATE SET count = excluded.count,"
    " closed = excluded.closed, closer_call = excluded.closer_call,"
    " closer_attempt = excluded.closer_attempt, updated_at = excluded.updated_at"
)

CLOSE_STREAM = (
    "INSERT INTO streams (run_id, namespace, count, closed, updated_at) VALUES (?, ?, 0, 1, ?)"
    " ON CONFLICT (run_id, namespace) DO UPDATE SET closed = 1, updated_at = excluded.updated_at"
)

# The run's end closes its streams for good: none stays reopenable by a step's retry.
CLOSE_RUN_STREAMS = (
    "UPDATE streams SET closed = 1, closer_call = NULL, closer_attempt = 0, updated_at = ?"
    " WHERE run_id = ? AND (closed = 0 OR closer_call IS NOT NULL) RETURNING namespace"
)

INSERT_CHUNK = (
    "INSERT INTO chunks (run_id, namespace, idx, payload, created_at, call, attempt)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)

READ_CHUNKS = (
    "SELECT idx, payload, created_at, call, attempt FROM chunks"
    " WHERE run_id = ? AND namespace = ? AND idx >= ? ORDER BY idx LIMIT ?"
)

STREAM_INFO = (
    "SELECT namespace, count, closed, updated_at, closer_call, closer_attempt FROM streams"
    " WHERE run_id = ? ORDER BY namespace"
)

# -- deployments -----------------------------------------------------------------------

TOUCH_DEPLOYMENT = (
    "INSERT INTO deployments (namespace, name, first_seen, last_seen) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (namespace, name) DO UPDATE SET last_seen = excluded.last_seen"
)

LIST_DEPLOYMENTS = """
SELECT k.namespace, k.name, COALESCE(d.first_seen, 0), COALESCE(d.last_seen, 0),
       (SELECT count(*) FROM runs r WHERE r.namespace = k.namespace
           AND r.deployment = k.name AND r.status IN ('pending', 'running'))
FROM (SELECT namespace, name FROM deployments
      UNION SELECT DISTINCT namespace, deployment FROM runs) AS k
LEFT JOIN deployments d ON d.namespace = k.namespace AND d.name = k.name
WHERE (?1 IS NULL OR k.namespace = ?1)
ORDER BY 3 DESC, 2 DESC
"""

# Runs that may move: not ended, no step in flight, no turn in progress.
MOVABLE_RUNS = """
SELECT run_id FROM runs r
WHERE r.namespace = ? AND r.deployment = ? AND r.status IN ('pending', 'running')
  AND (r.lease_owner IS NULL OR r.lease_until < ?)
  AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.run_id = r.run_id AND t.kind = 'step'
                  AND t.lease_owner IS NOT NULL)
"""

MOVE_RUN = "UPDATE runs SET deployment = ? WHERE run_id = ?"

MOVE_RUN_TASKS = "UPDATE tasks SET deployment = ? WHERE run_id = ?"

# -- pruning ended runs ------------------------------------------------------------------

# (ended_before, statuses as a JSON list, namespace or NULL, limit)
PRUNABLE_RUNS = """
SELECT run_id FROM runs
WHERE status IN ('completed', 'failed', 'cancelled')
  AND status IN (SELECT value FROM json_each(?2))
  AND completed_at < ?1 AND (?3 IS NULL OR namespace = ?3)
ORDER BY completed_at, run_id LIMIT ?4
"""

#: What a pruned run owns, deleted by run id (its ``runs`` row last).
PRUNE_RUN = tuple(
    f"DELETE FROM {table} WHERE run_id = ?"
    for table in ("events", "steps", "tasks", "hooks", "chunks", "streams", "runs")
)

# -- payloads at rest (re-encryption) --------------------------------------------------

SCAN_EVENT_PAYLOADS = (
    f"SELECT {EVENT_COLUMNS} FROM events"
    " WHERE payload IS NOT NULL AND (run_id, seq) > (?, ?) ORDER BY run_id, seq LIMIT ?"
)

SCAN_CHUNK_PAYLOADS = (
    "SELECT run_id, namespace, idx, payload, created_at, call, attempt FROM chunks"
    " WHERE (run_id, namespace, idx) > (?, ?, ?) ORDER BY run_id, namespace, idx LIMIT ?"
)

SWAP_EVENT_PAYLOAD = "UPDATE events SET payload = ? WHERE run_id = ? AND seq = ? AND payload = ?"

SWAP_CHUNK_PAYLOAD = (
    "UPDATE chunks SET payload = ? WHERE run_id = ? AND namespace = ? AND idx = ? AND payload = ?"
)

# -- locks (durably.worlds.locks) ------------------------------------------------------

LOCK_HOLDERS = f"SELECT {LOCK_COLUMNS} FROM locks WHERE key = ? AND holding = 1"
LOCK_WAITERS = (
    f"SELECT {LOCK_COLUMNS} FROM locks WHERE key = ? AND holding = 0"
    " ORDER BY priority DESC, queued_at, run_id, call LIMIT ?"
)
RUN_LOCKS = f"SELECT {LOCK_COLUMNS} FROM locks WHERE run_id = ?"
PUT_LOCK = f"INSERT OR REPLACE INTO locks ({LOCK_COLUMNS}) VALUES ({', '.join('?' * 9)})"
DELETE_LOCK = "DELETE FROM locks WHERE key = ? AND run_id = ? AND call = ?"
LIST_LOCKS = f"""
SELECT {LOCK_COLUMNS} FROM locks
WHERE (?1 IS NULL OR key = ?1) AND (?2 IS NULL OR run_id = ?2)
ORDER BY key, holding DESC, priority DESC, queued_at, run_id, call
LIMIT ?3
"""
