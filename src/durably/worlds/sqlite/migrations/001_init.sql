-- durably SQLite world, schema version 1.
-- The log (events), its projections (runs, steps) and the queue (turn columns of runs,
-- tasks) live in one file and change together in one transaction per commit.

CREATE TABLE runs (
    run_id           TEXT PRIMARY KEY,
    workflow_name    TEXT NOT NULL,
    namespace        TEXT NOT NULL,
    deployment       TEXT NOT NULL,
    status           TEXT NOT NULL,
    created_at       REAL NOT NULL,
    started_at       REAL,
    completed_at     REAL,
    last_seq         INTEGER NOT NULL DEFAULT 0,
    idempotency_key  TEXT,
    parent_run_id    TEXT,
    parent_call      INTEGER,
    error_type       TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    attributes       TEXT NOT NULL DEFAULT '{}',   -- JSON object of str -> str
    -- the turn queue: a run needs a turn while turn_due_at is set
    decided_seq      INTEGER NOT NULL DEFAULT 0,   -- last deliverable fact or command
    turn_seq         INTEGER NOT NULL DEFAULT 0,
    turn_due_at      REAL,
    lease_owner      TEXT,
    lease_until      REAL
);

CREATE UNIQUE INDEX runs_idempotency
    ON runs (namespace, workflow_name, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Only runs that need a turn are indexed: finished runs cost the claim nothing.
CREATE INDEX runs_turns
    ON runs (namespace, deployment, turn_due_at)
    WHERE turn_due_at IS NOT NULL;

CREATE INDEX runs_created ON runs (created_at);

CREATE TABLE events (
    run_id     TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    type       TEXT NOT NULL,
    call       INTEGER,
    data       TEXT,                               -- JSON object; NULL when empty
    payload    BLOB,
    created_at REAL NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- read_command: the *_created event of a durable call, without scanning the run's log.
CREATE INDEX events_commands
    ON events (run_id, call, seq)
    WHERE call IS NOT NULL AND substr(type, -8) = '_created';

CREATE TABLE steps (
    run_id       TEXT NOT NULL,
    call         INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    status       TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_at   REAL NOT NULL,
    started_at   REAL,
    completed_at REAL,
    due_at       REAL,
    error_type   TEXT,
    child_run_id TEXT,
    PRIMARY KEY (run_id, call)
) WITHOUT ROWID;

CREATE TABLE tasks (
    run_id      TEXT NOT NULL,
    call        INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    namespace   TEXT NOT NULL,
    deployment  TEXT NOT NULL,
    visible_at  REAL NOT NULL,
    attempt     INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until REAL,
    PRIMARY KEY (run_id, call)
) WITHOUT ROWID;

CREATE INDEX tasks_visible ON tasks (namespace, deployment, visible_at);

-- Bumped by every commit that makes work claimable (and by every release), so idle
-- workers of other processes notice new work by polling one row.
CREATE TABLE work_clock (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);

INSERT INTO work_clock (id, version) VALUES (1, 0);
