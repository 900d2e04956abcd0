-- durably PostgreSQL world, schema version 2: each stream chunk records the step
-- attempt that wrote it (the step's durable call and its attempt number), so a reader
-- can keep to the chunks of attempts whose completion is recorded. Chunks stored before
-- this version read as call NULL, attempt 0: not written by a known attempt, counted as
-- committed (what every reader saw of them before). Adding a column with a constant
-- default rewrites no rows.

ALTER TABLE chunks ADD COLUMN call integer, ADD COLUMN attempt integer NOT NULL DEFAULT 0;
