-- Schema 3: what import needs to be trusted at the edges (the agent's own session cost, format drift, rewrite
-- detection past the head). Runs after a repair step in `migrate.rs` that adds `traces.seq` to stores an early
-- release stamped 2 without it.

-- The cost the agent itself recorded for the whole session (pico-USD; Claude Code `cost-state.totalCostUSD`, the
-- last record), beside tokentrace's own sum of its generations. NULL when the agent records none per session.
ALTER TABLE sessions ADD COLUMN agent_cost INTEGER;

-- Hash of the last bytes consumed (up to `tail_len` bytes before `offset`): a rewrite that keeps size and head
-- but changes what was read is noticed (see ingest.rs for the rule).
ALTER TABLE files ADD COLUMN tail_len INTEGER NOT NULL DEFAULT 0;
ALTER TABLE files ADD COLUMN tail_hash TEXT;

-- Format drift: line types and usage fields a parser does not know, per file (so a re-read replaces them) and
-- agent version. `doctor` sums them per agent and version.
CREATE TABLE IF NOT EXISTS drift (
    file_id       INTEGER NOT NULL,
    agent         TEXT NOT NULL,
    agent_version TEXT NOT NULL DEFAULT '',
    what          TEXT NOT NULL,   -- 'line type' | 'usage field' | ...
    name          TEXT NOT NULL,
    count         INTEGER NOT NULL,
    example       TEXT,
    PRIMARY KEY (file_id, agent_version, what, name)
);
