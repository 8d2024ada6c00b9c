-- Schema 12: spend by time without reading every generation. `status` and `statusline` (run from status bars
-- every few seconds) sum the cost of today, this week and this month and find the current 5-hour block: this
-- partial index holds each generation's time, session and cost in time order, so those sums read the range
-- they cover and nothing else (bench/BENCHMARKS.md, "status and statusline").
CREATE INDEX IF NOT EXISTS observations_spend ON observations(start_ms, session_key, cost_total) WHERE kind = 'generation';
