//! `tokentrace store rebuild`: what carries over from an old store into one rebuilt from the session files.
//!
//! Everything imported is re-derived from the files; what the files cannot give back is the delivery state
//! (which version of each trace each backend acknowledged, queued scores, a backend's `Retry-After`) and the
//! anomalies found while the sessions ran, so they are copied: a trace that was delivered up to date stays
//! delivered, one that was pending stays pending, and an alert already sent is not sent again.

use std::path::Path;

use anyhow::{Context as _, Result};
use rusqlite::params;

use super::Store;

/// What [`Store::carry_over_from`] copied and what it could not recover.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CarryOver {
    /// Delivery rows copied (per sink and trace).
    pub delivery: u64,
    /// Queued or sent Langfuse scores copied.
    pub scores: u64,
    /// Sessions of the old store that the rebuilt one does not have (their files are gone), as
    /// `(session key, file path)`.
    pub lost_sessions: Vec<(String, Option<String>)>,
}

impl Store {
    /// Copies the delivery state of the store at `old` into this (freshly rebuilt) store and lists the old
    /// sessions it lacks. A trace acknowledged at its latest version in the old store is acknowledged at its
    /// version here; anything else stays pending. Errors: `old` is not a readable store.
    pub fn carry_over_from(&mut self, old: &Path) -> Result<CarryOver> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "ATTACH DATABASE ?1 AS old",
            params![old.display().to_string()],
        )
        .with_context(|| format!("cannot read the old store {}", old.display()))?;
        let delivery = tx.execute(
            "INSERT OR REPLACE INTO delivery (sink, trace_id, sent_seq, failed_seq, attempts, next_attempt_ms, last_error)
             SELECT d.sink, d.trace_id,
                    CASE WHEN d.sent_seq >= ot.seq THEN nt.seq ELSE 0 END,
                    CASE WHEN d.failed_seq >= ot.seq THEN nt.seq ELSE NULL END,
                    d.attempts, d.next_attempt_ms, d.last_error
             FROM old.delivery d
             JOIN old.traces ot ON ot.id = d.trace_id
             JOIN main.traces nt ON nt.id = d.trace_id",
            [],
        )? as u64;
        let scores =
            tx.execute("INSERT OR IGNORE INTO scores SELECT * FROM old.scores", [])? as u64;
        // Spans the backends have, for the traces that are still here (ids are deterministic).
        tx.execute(
            "INSERT OR IGNORE INTO span_acks SELECT a.* FROM old.span_acks a
             WHERE a.trace_id IN (SELECT id FROM main.traces)",
            [],
        )?;
        // Runaway and budget anomalies (with whether they were alerted): the files give them back only while
        // their sessions are recent, and the exported root spans carry them.
        let anomalies: i64 = tx.query_row(
            "SELECT COUNT(*) FROM old.sqlite_master WHERE type = 'table' AND name = 'anomalies'",
            [],
            |r| r.get(0),
        )?;
        if anomalies > 0 {
            tx.execute(
                "INSERT OR REPLACE INTO anomalies SELECT a.* FROM old.anomalies a
                 WHERE a.session_key IN (SELECT key FROM main.sessions)",
                [],
            )?;
        }
        // Backends' Retry-After and other settings; the rebuilt store keeps its own counters and prices.
        tx.execute(
            "INSERT OR IGNORE INTO meta (key, value) SELECT key, value FROM old.meta WHERE key <> 'trace_seq'",
            [],
        )?;
        let lost_sessions = {
            let mut stmt = tx.prepare(
                "SELECT s.key, f.path FROM old.sessions s LEFT JOIN old.files f ON f.id = s.file_id
                 WHERE s.key NOT IN (SELECT key FROM main.sessions) ORDER BY s.key",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
        };
        tx.commit()?;
        self.conn.execute("DETACH DATABASE old", [])?;
        Ok(CarryOver {
            delivery,
            scores,
            lost_sessions,
        })
    }

    /// Writes the WAL into the database file (before the file is moved).
    pub fn checkpoint(&self) -> Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}
