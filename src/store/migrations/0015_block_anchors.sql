-- Schema 15: where each agent's newest 5-hour block begins, so `status` and `statusline` read only the calls
-- since then instead of every call back to the last 5-hour pause (on the 1 GB benchmark, whose month has no
-- such pause, all 19,573 calls: a fifth of a `status` call's instructions).
--
-- `first_ms` is the first model call (ms) of a block of the agent, as `report::blocks::place` placed it from
-- the calls stored at the time. Blocks are placed from the oldest call forward, so one that starts at a call
-- stays where it is whatever arrives later than that call; only a model call of the agent earlier than it
-- (a backfill) or the removal of a call at or before it (a rewritten file read again) can move it. The
-- triggers drop the anchor then, and the next reader places the blocks from the last pause again.
CREATE TABLE IF NOT EXISTS block_anchors (
    agent    TEXT PRIMARY KEY,
    first_ms INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TRIGGER IF NOT EXISTS block_anchors_insert AFTER INSERT ON observations
WHEN NEW.kind = 'generation'
BEGIN
    DELETE FROM block_anchors
    WHERE first_ms > NEW.start_ms AND NEW.session_key >= agent || ':' AND NEW.session_key < agent || ';';
END;

CREATE TRIGGER IF NOT EXISTS block_anchors_delete AFTER DELETE ON observations
WHEN OLD.kind = 'generation'
BEGIN
    DELETE FROM block_anchors
    WHERE first_ms >= OLD.start_ms AND OLD.session_key >= agent || ':' AND OLD.session_key < agent || ';';
END;

CREATE TRIGGER IF NOT EXISTS block_anchors_update AFTER UPDATE OF kind, start_ms, session_key ON observations
WHEN (OLD.kind = 'generation' OR NEW.kind = 'generation')
     AND (OLD.kind IS NOT NEW.kind OR OLD.start_ms IS NOT NEW.start_ms OR OLD.session_key IS NOT NEW.session_key)
BEGIN
    DELETE FROM block_anchors
    WHERE (OLD.kind = 'generation' AND first_ms >= OLD.start_ms
           AND OLD.session_key >= agent || ':' AND OLD.session_key < agent || ';')
       OR (NEW.kind = 'generation' AND first_ms > NEW.start_ms
           AND NEW.session_key >= agent || ':' AND NEW.session_key < agent || ';');
END;
