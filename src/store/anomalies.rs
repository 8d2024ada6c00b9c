//! Stored anomalies (schema 13): what the runaway and budget checks found, what sinks export with each trace,
//! and which alerts are still to be sent.

use anyhow::Result;
use rusqlite::params;

use super::Store;

/// One anomaly. `key` identifies it across detections (see the migration).
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    pub key: String,
    /// `repeated_tool_call`, `cost_window`, `model_calls` or `budget`.
    pub kind: String,
    pub session_key: String,
    pub trace_id: Option<String>,
    /// When it happened (the agent's time), ms.
    pub at_ms: Option<i64>,
    /// The measured number: calls in a row, USD, model calls, USD spent.
    pub value: f64,
    pub limit: f64,
    pub message: String,
}

/// The facts the runaway checks read for one session, in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionCall {
    pub trace_id: Option<String>,
    pub start_ms: Option<i64>,
    /// `tool` or `generation`.
    pub is_tool: bool,
    /// Tool name.
    pub name: String,
    /// A tool's arguments as stored (after redaction; absent under `capture = "metadata"`).
    pub input: Option<String>,
    /// A generation's cost, pico-USD.
    pub cost_pico: i64,
}

impl Store {
    /// Sessions with records from files imported at or after `since_ms` (the import that just ran).
    pub fn sessions_imported_since(&self, since_ms: i64) -> Result<Vec<String>> {
        // CROSS JOIN keeps the files as the outer loop (a few changed files, then their rows through
        // `observations_file`); left to itself SQLite scanned every observation and looked its file up: 65 ms
        // instead of 5 ms after a 1 % append to the 1 GB benchmark (239 files).
        let mut stmt = self.conn().prepare_cached(
            "SELECT DISTINCT o.session_key FROM files f CROSS JOIN observations o ON o.file_id = f.id
             WHERE f.imported_at >= ?1",
        )?;
        let rows = stmt.query_map([since_ms], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// A session's tool calls and model calls, in time order.
    pub fn session_calls_in_order(&self, session_key: &str) -> Result<Vec<SessionCall>> {
        let mut stmt = self.conn().prepare_cached(concat!(
            "SELECT trace_id, start_ms, kind = 'tool', name, input, COALESCE(cost_total, 0) FROM observations
             WHERE session_key = ?1 AND kind IN ('tool', 'generation') AND ",
            facts_kinds!(),
            " ORDER BY start_ms, id"
        ))?;
        let rows = stmt.query_map([session_key], |r| {
            Ok(SessionCall {
                trace_id: r.get(0)?,
                start_ms: r.get(1)?,
                is_tool: r.get(2)?,
                name: r.get(3)?,
                input: r.get(4)?,
                cost_pico: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The latest prompt trace of a session (what a session-wide anomaly is reported on).
    pub fn last_trace_of(&self, session_key: &str) -> Result<Option<(String, Option<i64>)>> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT id, start_ms FROM traces WHERE session_key = ?1 ORDER BY is_prompt DESC, start_ms DESC LIMIT 1",
            )?
            .query_row([session_key], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    /// Saves an anomaly found at `now_ms`; returns true when it is new. A new one, or one whose numbers
    /// changed, makes its trace pending again for every sink (its root span carries the event).
    pub fn record_anomaly(&mut self, a: &Anomaly, now_ms: i64) -> Result<bool> {
        let tx = self.conn_mut().transaction()?;
        let before: Option<(f64, Option<String>)> = {
            use rusqlite::OptionalExtension;
            tx.query_row(
                "SELECT value, trace_id FROM anomalies WHERE key = ?1",
                [&a.key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
        };
        let changed = before
            .as_ref()
            .is_none_or(|(v, t)| *v != a.value || *t != a.trace_id);
        if changed {
            tx.execute(
                "INSERT INTO anomalies (key, kind, session_key, trace_id, at_ms, value, limit_value, message, detected_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT(key) DO UPDATE SET trace_id = excluded.trace_id, at_ms = excluded.at_ms,
                   value = excluded.value, limit_value = excluded.limit_value, message = excluded.message",
                params![a.key, a.kind, a.session_key, a.trace_id, a.at_ms, a.value, a.limit, a.message, now_ms],
            )?;
            let mut traces: Vec<&str> = a.trace_id.iter().map(String::as_str).collect();
            if let Some((_, Some(old))) = &before {
                traces.push(old);
            }
            super::write::bump_traces(&tx, traces)?;
        }
        tx.commit()?;
        Ok(before.is_none())
    }

    /// The anomalies reported on a trace, oldest first.
    pub fn anomalies_of_trace(&self, trace_id: &str) -> Result<Vec<Anomaly>> {
        self.anomalies_where("trace_id = ?1", trace_id)
    }

    /// The anomalies of a session, oldest first.
    pub fn anomalies_of_session(&self, session_key: &str) -> Result<Vec<Anomaly>> {
        self.anomalies_where("session_key = ?1", session_key)
    }

    fn anomalies_where(&self, cond: &str, value: &str) -> Result<Vec<Anomaly>> {
        let sql = format!(
            "SELECT key, kind, session_key, trace_id, at_ms, value, limit_value, message FROM anomalies
             WHERE {cond} ORDER BY detected_ms, key"
        );
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let rows = stmt.query_map([value], anomaly_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Anomalies whose alerts are due at `now_ms` (not yet notified, fewer than `max_attempts` tries, past
    /// their backoff, detected at or after `fresh_since_ms`).
    pub fn alerts_due(
        &self,
        now_ms: i64,
        max_attempts: i64,
        fresh_since_ms: i64,
    ) -> Result<Vec<Anomaly>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT key, kind, session_key, trace_id, at_ms, value, limit_value, message FROM anomalies
             WHERE notified_ms IS NULL AND attempts < ?2 AND COALESCE(next_attempt_ms, 0) <= ?1
               AND detected_ms >= ?3
             ORDER BY detected_ms, key",
        )?;
        let rows = stmt.query_map(params![now_ms, max_attempts, fresh_since_ms], anomaly_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Alert attempts made so far for an anomaly.
    pub fn alert_attempts(&self, key: &str) -> Result<i64> {
        Ok(self.conn().query_row(
            "SELECT attempts FROM anomalies WHERE key = ?1",
            [key],
            |r| r.get(0),
        )?)
    }

    /// Records an alert attempt: done (`error` None) or failed, to retry at `retry_at_ms`.
    pub fn alert_attempted(
        &self,
        key: &str,
        now_ms: i64,
        error: Option<&str>,
        retry_at_ms: i64,
    ) -> Result<()> {
        match error {
            None => self.conn().execute(
                "UPDATE anomalies SET notified_ms = ?2, attempts = attempts + 1, last_error = NULL WHERE key = ?1",
                params![key, now_ms],
            )?,
            Some(e) => self.conn().execute(
                "UPDATE anomalies SET attempts = attempts + 1, last_error = ?2, next_attempt_ms = ?3 WHERE key = ?1",
                params![key, e, retry_at_ms],
            )?,
        };
        Ok(())
    }
}

fn anomaly_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Anomaly> {
    Ok(Anomaly {
        key: r.get(0)?,
        kind: r.get(1)?,
        session_key: r.get(2)?,
        trace_id: r.get(3)?,
        at_ms: r.get(4)?,
        value: r.get(5)?,
        limit: r.get(6)?,
        message: r.get(7)?,
    })
}
