-- durably SQLite world, schema version 6: locks and concurrency limits
-- (durably.worlds.locks). One row per (lock key, run, call): holding a permit, or
-- waiting for one in priority then arrival order. call -1 is a run's admission under a
-- workflow's concurrency limit.

CREATE TABLE IF NOT EXISTS locks (
    key           TEXT    NOT NULL,
    run_id        TEXT    NOT NULL,
    call          INTEGER NOT NULL,
    lim           INTEGER NOT NULL,
    holding       INTEGER NOT NULL,
    priority      INTEGER NOT NULL DEFAULT 0,
    queued_at     REAL    NOT NULL,
    namespace     TEXT    NOT NULL DEFAULT '',
    workflow_name TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (key, run_id, call)
);

CREATE INDEX IF NOT EXISTS locks_queue ON locks (key, holding, priority DESC, queued_at, run_id, call);
CREATE INDEX IF NOT EXISTS locks_run ON locks (run_id);
