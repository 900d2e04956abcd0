-- durably Postgres world, schema version 4: locks and concurrency limits
-- (durably.worlds.locks). One row per (lock key, run, call): holding a permit, or
-- waiting for one in priority then arrival order. call -1 is a run's admission under a
-- workflow's concurrency limit. Commits that change a key's rows hold a transaction
-- advisory lock on the key (see durably.worlds.postgres.locks), so they never race.

CREATE TABLE IF NOT EXISTS locks (
    key           text             NOT NULL,
    run_id        text             NOT NULL,
    call          integer          NOT NULL,
    lim           integer          NOT NULL,
    holding       boolean          NOT NULL,
    priority      integer          NOT NULL DEFAULT 0,
    queued_at     double precision NOT NULL,
    namespace     text             NOT NULL DEFAULT '',
    workflow_name text             NOT NULL DEFAULT '',
    PRIMARY KEY (key, run_id, call)
);

CREATE INDEX IF NOT EXISTS locks_queue ON locks (key, holding, priority DESC, queued_at, run_id, call);
CREATE INDEX IF NOT EXISTS locks_run ON locks (run_id);
