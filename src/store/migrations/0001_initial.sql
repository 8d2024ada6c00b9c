-- tokentrace store, schema version 1 (DESIGN §5). Times are ms since the epoch (UTC), money pico-USD.

-- One row per session file: where the import stopped and how to tell the file was rewritten.
CREATE TABLE IF NOT EXISTS files (
    id          INTEGER PRIMARY KEY,
    path        TEXT NOT NULL UNIQUE,
    agent       TEXT NOT NULL,
    dev         INTEGER NOT NULL,
    ino         INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    head_len    INTEGER NOT NULL,
    head_hash   TEXT NOT NULL,
    offset      INTEGER NOT NULL,   -- bytes consumed: always at a line boundary
    checkpoint  TEXT,               -- the parser's state at `offset`
    warnings    INTEGER NOT NULL DEFAULT 0,
    last_warning TEXT,
    imported_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS sessions (
    key            TEXT PRIMARY KEY, -- agent:session_id
    agent          TEXT NOT NULL,
    session_id     TEXT NOT NULL,
    agent_version  TEXT,
    cwd            TEXT,
    start_ms       INTEGER,
    end_ms         INTEGER,
    parent_session TEXT,
    name           TEXT,
    channel        TEXT,
    user           TEXT,
    metadata       TEXT,
    file_id        INTEGER
);

CREATE TABLE IF NOT EXISTS traces (
    id           TEXT PRIMARY KEY,   -- 32 hex
    root_span_id TEXT NOT NULL,      -- 16 hex
    session_key  TEXT NOT NULL,
    key          TEXT NOT NULL,
    is_prompt    INTEGER NOT NULL,
    name         TEXT,
    start_ms     INTEGER,
    end_ms       INTEGER,
    input        TEXT,
    output       TEXT,
    file_id      INTEGER
);
CREATE INDEX IF NOT EXISTS traces_session ON traces(session_key);
CREATE INDEX IF NOT EXISTS traces_file ON traces(file_id);

CREATE TABLE IF NOT EXISTS observations (
    id             TEXT PRIMARY KEY, -- 16 hex
    trace_id       TEXT,
    parent_id      TEXT,
    session_key    TEXT NOT NULL,
    kind           TEXT NOT NULL,
    name           TEXT NOT NULL,
    key            TEXT NOT NULL,
    start_ms       INTEGER,
    end_ms         INTEGER,
    completion_start_ms INTEGER,
    level          TEXT,             -- NULL reads as DEFAULT
    status_message TEXT,
    model          TEXT,
    response_model TEXT,
    provider       TEXT,
    input_tokens   INTEGER,
    output_tokens  INTEGER,
    cache_read_tokens INTEGER,
    cache_write_5m_tokens INTEGER,
    cache_write_1h_tokens INTEGER,
    reasoning_tokens INTEGER,
    agent_cost     TEXT,             -- JSON breakdown the agent recorded (pico-USD)
    cost_input     INTEGER,
    cost_output    INTEGER,
    cost_cache_read INTEGER,
    cost_cache_write INTEGER,
    cost_total     INTEGER,
    cost_source    TEXT,
    unpriced       INTEGER,
    input          TEXT,
    output         TEXT,
    metadata       TEXT,
    file_id        INTEGER
);
CREATE INDEX IF NOT EXISTS observations_session ON observations(session_key, kind);
CREATE INDEX IF NOT EXISTS observations_trace ON observations(trace_id);
CREATE INDEX IF NOT EXISTS observations_file ON observations(file_id);

CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
