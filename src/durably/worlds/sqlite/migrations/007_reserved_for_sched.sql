-- durably SQLite world, schema version 7: reserved for another branch's migration
-- (sched), which ships its own 007 file; this placeholder keeps the numbers of the
-- perf branch without a gap until both are merged (then this file goes).
SELECT 1;
