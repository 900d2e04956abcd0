-- durably PostgreSQL world, schema version 5: reserved for another branch's
-- migration (sched), which ships its own 005 file; this placeholder keeps the numbers
-- of the perf branch without a gap until both are merged (then this file goes).
SELECT 1;
