-- Schema 8: the reports' facts without reading the observation rows. `report` reads every generation, tool
-- call and subagent (kind, times, level, name, model, provider, tokens, cost, flag) by session: this partial
-- covering index holds exactly those columns for exactly those rows (a third of the rows: events and spans
-- are left out), so the query scans it in order instead of fetching 32k rows from all over a 90 MB file:
-- 72 ms -> 17 ms on the 1 GB Claude benchmark's store (bench/BENCHMARKS.md).
CREATE INDEX IF NOT EXISTS observations_facts ON observations(session_key, kind, start_ms, end_ms, level, name, model, response_model, provider, input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, reasoning_tokens, cost_total, cost_source, unpriced, flag) WHERE kind IN ('generation', 'tool', 'agent');
