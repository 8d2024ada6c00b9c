//! What each OTLP metrics backend was last sent, per series (schema 11): the base of the next delta push.

use std::collections::HashMap;

use anyhow::Result;
use rusqlite::params;

use super::Store;

impl Store {
    /// The values last pushed to `sink`: series key → (value as JSON, when, ms since the epoch).
    pub fn metric_pushes(&self, sink: &str) -> Result<HashMap<String, (String, i64)>> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT series, value, pushed_ms FROM metric_pushes WHERE sink = ?1")?;
        let rows = stmt.query_map([sink], |r| Ok((r.get(0)?, (r.get(1)?, r.get(2)?))))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records what a push the backend acknowledged carried (series key, value as JSON), at `pushed_ms`, in one
    /// transaction.
    pub fn record_metric_pushes(
        &self,
        sink: &str,
        values: &[(String, String)],
        pushed_ms: i64,
    ) -> Result<()> {
        let tx = self.conn().unchecked_transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO metric_pushes (sink, series, value, pushed_ms) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(sink, series) DO UPDATE SET value = excluded.value, pushed_ms = excluded.pushed_ms",
            )?;
            for (series, value) in values {
                stmt.execute(params![sink, series, value, pushed_ms])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}
