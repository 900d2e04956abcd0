-- durably PostgreSQL world, schema version 1.
-- The log (events), its projections (runs, steps) and the queue (the turn columns of
-- runs, and tasks) live in one schema and change together in one transaction per commit.
-- Times are seconds since the epoch as DOUBLE PRECISION, as in every other world.

CREATE TABLE runs (
    run_id           TEXT PRIMARY KEY,
    workflow_name    TEXT NOT NULL,
    namespace        TEXT NOT NULL,
    deployment       TEXT NOT NULL,
    status           TEXT NOT NULL,
    created_at       DOUBLE PRECISION NOT NULL,
    started_at       DOUBLE PRECISION,
    completed_at     DOUBLE PRECISION,
    last_seq         INTEGER NOT NULL DEFAULT 0,
    idempotency_key  TEXT,
    parent_run_id    TEXT,
    parent_call      INTEGER,
    error_type       TEXT,
    cancel_requested BOOLEAN NOT NULL DEFAULT false,
    attributes       JSONB NOT NULL DEFAULT '{}',   -- str -> str, searched with @>
    -- the turn queue: a run needs a turn while turn_due_at is set
    decided_seq      INTEGER NOT NULL DEFAULT 0,    -- last deliverable fact or command
    turn_seq         INTEGER NOT NULL DEFAULT 0,
    turn_due_at      DOUBLE PRECISION,
    lease_owner      TEXT,
    lease_until      DOUBLE PRECISION,
    -- when the turn can be claimed: its due time, or the end of the lease holding it
    turn_ready_at    DOUBLE PRECISION GENERATED ALWAYS AS (
        CASE WHEN turn_due_at IS NULL THEN NULL
             ELSE greatest(turn_due_at, lease_until) END
    ) STORED
) WITH (fillfactor = 80);   -- room for HOT updates: a run's row changes at every step

CREATE UNIQUE INDEX runs_idempotency
    ON runs (namespace, workflow_name, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Only runs that need a turn are indexed: finished and sleeping runs cost claims nothing.
CREATE INDEX runs_turns
    ON runs (namespace, deployment, turn_ready_at)
    WHERE turn_ready_at IS NOT NULL;

CREATE INDEX runs_created ON runs (created_at DESC, run_id DESC);

CREATE TABLE events (
    run_id     TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    type       TEXT NOT NULL,
    call       INTEGER,
    data       TEXT,                -- a JSON object, NULL when empty; kept as written
    payload    BYTEA,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- read_command: the *_created event of a durable call, without scanning the run's log.
CREATE INDEX events_commands
    ON events (run_id, call)
    WHERE call IS NOT NULL AND right(type, 8) = '_created';

CREATE TABLE steps (
    run_id       TEXT NOT NULL,
    call         INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    status       TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_at   DOUBLE PRECISION NOT NULL,
    started_at   DOUBLE PRECISION,
    completed_at DOUBLE PRECISION,
    due_at       DOUBLE PRECISION,
    error_type   TEXT,
    child_run_id TEXT,
    PRIMARY KEY (run_id, call)
) WITH (fillfactor = 90);

CREATE TABLE tasks (
    run_id      TEXT NOT NULL,
    call        INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    namespace   TEXT NOT NULL,
    deployment  TEXT NOT NULL,
    visible_at  DOUBLE PRECISION NOT NULL,
    attempt     INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until DOUBLE PRECISION,
    -- when the task can be claimed: visible and not leased
    ready_at    DOUBLE PRECISION GENERATED ALWAYS AS (greatest(visible_at, lease_until)) STORED,
    PRIMARY KEY (run_id, call)
);

CREATE INDEX tasks_ready ON tasks (namespace, deployment, ready_at);

-- Live hooks only: a disposed hook, or one of an ended run, leaves this index (its
-- history stays in the run's log and steps).
CREATE TABLE hooks (
    token      TEXT PRIMARY KEY,
    run_id     TEXT NOT NULL,
    call       INTEGER NOT NULL,
    hook_type  TEXT NOT NULL,
    namespace  TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    metadata   TEXT NOT NULL DEFAULT '{}'      -- a JSON object
);

CREATE INDEX hooks_run ON hooks (run_id);
CREATE INDEX hooks_namespace ON hooks (namespace, created_at DESC);

-- One row per (run, namespace): how many chunks, and whether it is closed.
CREATE TABLE streams (
    run_id     TEXT NOT NULL,
    namespace  TEXT NOT NULL,
    count      INTEGER NOT NULL DEFAULT 0,
    closed     BOOLEAN NOT NULL DEFAULT false,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, namespace)
);

CREATE TABLE chunks (
    run_id     TEXT NOT NULL,
    namespace  TEXT NOT NULL,
    idx        INTEGER NOT NULL,
    payload    BYTEA NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, namespace, idx)
);

-- Deployments (code versions) whose workers were seen, and when.
CREATE TABLE deployments (
    namespace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    first_seen DOUBLE PRECISION NOT NULL,
    last_seen  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, name)
);

CREATE INDEX runs_deployment ON runs (namespace, deployment, status);

-- A commit checks, in the same statement that writes, that the rows it read have not
-- changed since (optimistic concurrency); this raises the error that makes it retry.
CREATE FUNCTION durably_unchanged(ok BOOLEAN) RETURNS BOOLEAN
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT ok THEN
        RAISE EXCEPTION 'durably: a run changed after this commit read it'
            USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN true;
END
$$;
