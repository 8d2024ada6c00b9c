-- Schema 2: the outbox. `traces.seq` is bumped whenever the trace or one of its observations changes; a trace is
-- pending for a sink while its seq is ahead of the version the sink acknowledged.
-- (Stores from releases that stamped version 2 without this column are repaired by migration 3.)
ALTER TABLE traces ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;

-- Delivery state per sink and trace; a version the backend refused with a 4xx waits for `sync --retry-failed`.
CREATE TABLE IF NOT EXISTS delivery (
    sink            TEXT NOT NULL,
    trace_id        TEXT NOT NULL,
    sent_seq        INTEGER NOT NULL DEFAULT 0,
    failed_seq      INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER,
    last_error      TEXT,
    PRIMARY KEY (sink, trace_id)
);
