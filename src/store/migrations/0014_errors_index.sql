-- Schema 14: one index fewer on every observation. `observations_session (session_key, kind)` served lookups
-- by session that `observations_facts` (which leads with the same two columns, for model calls, tool calls and
-- subagents) serves as well, except "does this session have an error", which now has a partial index of its
-- own holding only the ERROR rows. Each observation written updated seven b-trees, now six (and a few error
-- rows): the random page writes of an incremental import and the index build of a first one shrink with it.
DROP INDEX IF EXISTS observations_session;
CREATE INDEX IF NOT EXISTS observations_errors ON observations(session_key) WHERE level = 'ERROR';
