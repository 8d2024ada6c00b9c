-- Schema 10: what each sink acknowledged, per span. A trace that changed (a long prompt growing under `watch`)
-- is pending again as a whole, but only its spans whose encoding differs from the acknowledged one are sent:
-- the bytes sent for a prompt grow with its spans, not with spans x flushes. `hash` is the first 8 bytes of the
-- SHA-256 of the span's OTLP protobuf encoding (`sinks::span_hash`).
CREATE TABLE IF NOT EXISTS span_acks (
    sink     TEXT NOT NULL,
    trace_id TEXT NOT NULL,   -- traces.id (32 hex)
    span_id  BLOB NOT NULL,   -- the span's 8-byte id
    hash     INTEGER NOT NULL,
    PRIMARY KEY (sink, trace_id, span_id)
) WITHOUT ROWID;
