-- durably SQLite world, schema version 7: flow control across runs.
-- Rate limiters: the start times of each limiter's current window (a sliding window),
-- changed in the transaction that grants a step its start. Schedules: one row per
-- scheduled workflow of a namespace; last_tick moves only forward, by compare and set,
-- and a tick's run carries the tick's idempotency key, so each tick runs once.

CREATE TABLE IF NOT EXISTS rate_limiters (
    name    TEXT PRIMARY KEY,
    starts  BLOB NOT NULL DEFAULT x''           -- little-endian doubles, oldest first
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS schedules (
    namespace     TEXT NOT NULL,
    workflow_name TEXT NOT NULL,
    cron          TEXT NOT NULL,
    timezone      TEXT NOT NULL,
    catch_up      TEXT NOT NULL,
    anchor        REAL NOT NULL,                -- when this definition was registered
    next_tick     REAL,
    last_tick     REAL,                         -- the latest tick decided
    last_run_id   TEXT,
    pending       INTEGER NOT NULL DEFAULT 0,   -- last_tick's run may not exist yet
    updated_at    REAL NOT NULL,
    PRIMARY KEY (namespace, workflow_name)
) WITHOUT ROWID;
