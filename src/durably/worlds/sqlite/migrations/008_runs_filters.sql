-- durably SQLite world, schema version 8: indexes for the run lists of `inspect runs`,
-- the dashboard and GET /runs filtered by status, workflow or namespace, newest first.
-- Without them a filter that matches few runs (the failed ones among a million ended)
-- scans the whole table. A runs row changes at every step, but none of these columns
-- does then (status changes a few times a run), so steps pay nothing for them.

CREATE INDEX IF NOT EXISTS runs_status_created ON runs (status, created_at);
CREATE INDEX IF NOT EXISTS runs_workflow_created ON runs (workflow_name, created_at);
CREATE INDEX IF NOT EXISTS runs_namespace_created ON runs (namespace, created_at);
