-- durably PostgreSQL world, schema version 4: reserved for another branch's
-- migration (locks), which ships its own 004 file; this placeholder keeps the numbers
-- of the perf branch without a gap until both are merged (then this file goes).
SELECT 1;
