-- durably PostgreSQL world, schema version 6: reserved for another branch's
-- migration (another), which ships its own 006 file; this placeholder keeps the numbers
-- of the perf branch without a gap until both are merged (then this file goes).
SELECT 1;
