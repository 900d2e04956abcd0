-- durably PostgreSQL world, schema version 6: indexes for the run lists of `inspect runs`,
-- the dashboard and GET /runs filtered by status, workflow or namespace, newest first.
-- Without them a filter that matches few runs (the failed ones among a million ended)
-- reads the whole table. None of these columns changes at a step (status changes a few
-- times a run), so the updates of a run's row at its steps stay HOT.
-- On a large existing table this migration builds the indexes under a lock that holds
-- commits back until it is done; to avoid that, create them beforehand with
-- CREATE INDEX CONCURRENTLY (same names: these statements then do nothing).

CREATE INDEX IF NOT EXISTS runs_status_created ON runs (status, created_at DESC, run_id DESC);
CREATE INDEX IF NOT EXISTS runs_workflow_created
    ON runs (workflow_name, created_at DESC, run_id DESC);
CREATE INDEX IF NOT EXISTS runs_namespace_created
    ON runs (namespace, created_at DESC, run_id DESC);
