-- durably SQLite world, schema version 2: the hook token index and durable streams.

-- Live hooks only: a disposed hook, or one of an ended run, leaves this index (its
-- history stays in the run's log and steps).
CREATE TABLE hooks (
    token      TEXT PRIMARY KEY,
    run_id     TEXT NOT NULL,
    call       INTEGER NOT NULL,
    hook_type  TEXT NOT NULL,
    namespace  TEXT NOT NULL,
    created_at REAL NOT NULL,
    metadata   TEXT NOT NULL DEFAULT '{}'          -- JSON object
);

CREATE INDEX hooks_run ON hooks (run_id);
CREATE INDEX hooks_namespace ON hooks (namespace, created_at);

-- One row per (run, namespace): how many chunks, and whether it is closed.
CREATE TABLE streams (
    run_id     TEXT NOT NULL,
    namespace  TEXT NOT NULL,
    count      INTEGER NOT NULL DEFAULT 0,
    closed     INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    PRIMARY KEY (run_id, namespace)
);

CREATE TABLE chunks (
    run_id     TEXT NOT NULL,
    namespace  TEXT NOT NULL,
    idx        INTEGER NOT NULL,
    payload    BLOB NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (run_id, namespace, idx)
);
