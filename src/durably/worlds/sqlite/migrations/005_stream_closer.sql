-- durably SQLite world, schema version 5: a closed stream records the step attempt that
-- closed it (the step's durable call and its attempt number), so that a later attempt of
-- that step (a retry after the closing attempt failed or was killed before its completion
-- was recorded) may reopen it, and a committed reader ends at a close only once it is
-- final. NULL and 0: open, or closed otherwise (the run's end, or before this version).

ALTER TABLE streams ADD COLUMN closer_call INTEGER;
ALTER TABLE streams ADD COLUMN closer_attempt INTEGER NOT NULL DEFAULT 0;
