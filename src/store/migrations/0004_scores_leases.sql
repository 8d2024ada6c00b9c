-- Schema 4: the scores outbox and the per-sink delivery lease (src/store/outbox.rs). Times are ms since the
-- epoch (UTC).

-- Langfuse scores waiting for a sink (the scores outbox), keyed by the deterministic score id. A score is
-- queued in the transaction that acknowledges its trace and stays until the backend acknowledges it: `body`
-- is the JSON to POST; a score whose body changed (its trace grew) is pending again.
CREATE TABLE IF NOT EXISTS scores (
    sink            TEXT NOT NULL,
    id              TEXT NOT NULL,
    trace_id        TEXT NOT NULL,
    body            TEXT NOT NULL,
    state           TEXT NOT NULL,      -- pending | sent | failed (refused with a 4xx)
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER,            -- not before (a backend's Retry-After)
    last_error      TEXT,
    PRIMARY KEY (sink, id)
);
CREATE INDEX IF NOT EXISTS scores_state ON scores(sink, state);

-- One delivering `sync` per sink at a time: the holder renews `expires_ms` while it works. A lease whose
-- holder's process is gone (same host) or that expired may be taken over.
CREATE TABLE IF NOT EXISTS leases (
    sink       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,          -- host:pid:nonce
    host       TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
