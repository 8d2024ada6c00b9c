-- Schema 11: what each OTLP metrics backend was last sent per series, for delta temporality
-- (OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta): the next push carries the change since then, with
-- that time as its start, also after a restart. `value` is JSON: a number (counters) or
-- {"counts": [...], "sum": x, "count": n} (histograms).
CREATE TABLE IF NOT EXISTS metric_pushes (
    sink      TEXT NOT NULL,
    series    TEXT NOT NULL,   -- metric name and sorted labels, e.g. tokentrace.cost.usage{tokentrace.agent=pi}
    value     TEXT NOT NULL,
    pushed_ms INTEGER NOT NULL,
    PRIMARY KEY (sink, series)
) WITHOUT ROWID;
