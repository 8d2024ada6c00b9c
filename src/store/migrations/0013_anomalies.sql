-- Schema 13: runaway and budget alerts (issue 20). One row per anomaly, keyed so that detecting it again (the
-- next import, a growing run of repeated calls) updates it instead of adding another; exported as a span
-- event and a Langfuse score on its trace, and notified (webhook, desktop) once. Times are ms since the epoch.
CREATE TABLE IF NOT EXISTS anomalies (
    key             TEXT PRIMARY KEY,  -- kind|what it is about (session, trace, first repeated call, budget period)
    kind            TEXT NOT NULL,     -- repeated_tool_call | cost_window | model_calls | budget
    session_key     TEXT NOT NULL,
    trace_id        TEXT,              -- the trace it is reported on
    at_ms           INTEGER,           -- when it happened, in the agent's time
    value           REAL NOT NULL,     -- the measured number (calls in a row, USD, model calls)
    limit_value     REAL NOT NULL,     -- the limit it passed
    message         TEXT NOT NULL,
    detected_ms     INTEGER NOT NULL,
    notified_ms     INTEGER,           -- when every configured alert channel took it
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER,
    last_error      TEXT
);
CREATE INDEX IF NOT EXISTS anomalies_trace ON anomalies(trace_id);
CREATE INDEX IF NOT EXISTS anomalies_session ON anomalies(session_key);
