-- durably Postgres world, schema version 4: reserved for the locks and concurrency work
-- (branch `locks`), which ships its own 004 file; this placeholder keeps the numbers of
-- this branch without a gap until both are merged (then this file goes).
SELECT 1;
