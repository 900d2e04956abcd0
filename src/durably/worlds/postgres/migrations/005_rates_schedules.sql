-- durably Postgres world, schema version 5: flow control across runs.
-- Rate limiters: the start times of each limiter's current window (a sliding window),
-- changed, under the limiter row's lock, in the transaction that grants a step its
-- start. Schedules: one row per scheduled workflow of a namespace; last_tick moves only
-- forward, by compare and set, and a tick's run carries the tick's idempotency key, so
-- each tick runs once.

CREATE TABLE IF NOT EXISTS rate_limiters (
    name    TEXT PRIMARY KEY,
    starts  DOUBLE PRECISION[] NOT NULL DEFAULT '{}',  -- oldest first
    granted BOOLEAN NOT NULL DEFAULT true              -- whether the last start asked fit
);

CREATE TABLE IF NOT EXISTS schedules (
    namespace     TEXT NOT NULL,
    workflow_name TEXT NOT NULL,
    cron          TEXT NOT NULL,
    timezone      TEXT NOT NULL,
    catch_up      TEXT NOT NULL,
    anchor        DOUBLE PRECISION NOT NULL,     -- when this definition was registered
    next_tick     DOUBLE PRECISION,
    last_tick     DOUBLE PRECISION,              -- the latest tick decided
    last_run_id   TEXT,
    pending       BOOLEAN NOT NULL DEFAULT false, -- last_tick's run may not exist yet
    updated_at    DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, workflow_name)
);
