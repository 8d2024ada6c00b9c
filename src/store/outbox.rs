//! Delivery state per sink (the outbox): which traces are pending, and what happened to each attempt.
//!
//! A trace is pending for a sink while its `seq` (bumped on every change) is ahead of the version the sink
//! acknowledged. Acks happen only after a 2xx, in one transaction per batch, so a crash re-sends at most the
//! batch in flight (same ids and start times: the backend replaces, it does not duplicate).

use anyhow::Result;
use rusqlite::{params, OptionalExtension};

use super::read::SessionRow;
use super::Store;
use crate::model::{Kind, Level, Usage};

/// A trace waiting for a sink, at the version to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub trace_id: String,
    pub seq: i64,
    /// Position in delivery order (start time, ms); with `trace_id`, the cursor of the next page.
    pub start_ms: i64,
}

/// One observation with everything an exporter needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportObservation {
    pub id: String,
    pub parent_id: Option<String>,
    pub kind: Kind,
    pub name: String,
    pub key: String,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub completion_start_ms: Option<i64>,
    pub level: Level,
    pub status_message: Option<String>,
    pub model: Option<String>,
    pub response_model: Option<String>,
    pub provider: Option<String>,
    pub usage: Option<Usage>,
    /// pico-USD.
    pub cost_total: Option<i64>,
    pub cost_source: Option<String>,
    pub input: Option<String>,
    pub output: Option<String>,
    pub metadata: Option<serde_json::Value>,
}

/// A trace with its session and observations, ordered by start time then id (deterministic output).
#[derive(Debug, Clone, PartialEq)]
pub struct ExportTrace {
    pub id: String,
    pub root_span_id: String,
    pub name: Option<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub input: Option<String>,
    pub output: Option<String>,
    pub session: SessionRow,
    pub observations: Vec<ExportObservation>,
}

/// Backlog of one sink.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Backlog {
    pub pending: u64,
    pub failed: u64,
    pub sent: u64,
    pub last_error: Option<String>,
}

impl Store {
    /// Traces pending for `sink` after the cursor `after` (a previous page's last item), oldest first, at most
    /// `limit`. Failed versions are included only with `retry_failed`; traces in backoff only once `now_ms`
    /// passed their next attempt.
    pub fn pending(
        &self,
        sink: &str,
        now_ms: i64,
        retry_failed: bool,
        after: Option<&Pending>,
        limit: usize,
    ) -> Result<Vec<Pending>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT t.id, t.seq, COALESCE(t.start_ms, 0) FROM traces t
             LEFT JOIN delivery d ON d.sink = ?1 AND d.trace_id = t.id
             WHERE t.seq > COALESCE(d.sent_seq, 0)
               AND (?3 OR d.failed_seq IS NULL OR d.failed_seq < t.seq)
               AND (d.next_attempt_ms IS NULL OR d.next_attempt_ms <= ?2)
               AND (COALESCE(t.start_ms, 0), t.id) > (?5, ?6)
             ORDER BY COALESCE(t.start_ms, 0), t.id LIMIT ?4",
        )?;
        let (after_ms, after_id) = after.map_or((i64::MIN, String::new()), |p| {
            (p.start_ms, p.trace_id.clone())
        });
        let rows = stmt.query_map(
            params![sink, now_ms, retry_failed, limit as i64, after_ms, after_id],
            |r| {
                Ok(Pending {
                    trace_id: r.get(0)?,
                    seq: r.get(1)?,
                    start_ms: r.get(2)?,
                })
            },
        )?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Everything needed to export one trace; `None` if it no longer exists.
    pub fn export_trace(&self, trace_id: &str) -> Result<Option<ExportTrace>> {
        let Some(t) = self.trace(trace_id)? else {
            return Ok(None);
        };
        let session = self.session(&t.session_key)?;
        let Some(session) = session else {
            return Ok(None);
        };
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, parent_id, kind, name, key, start_ms, end_ms, completion_start_ms, level, status_message,
                    model, response_model, provider, input_tokens, output_tokens, cache_read_tokens,
                    cache_write_5m_tokens, cache_write_1h_tokens, reasoning_tokens, cost_total, cost_source,
                    input, output, metadata
             FROM observations WHERE trace_id = ?1 ORDER BY start_ms, id",
        )?;
        let observations = stmt
            .query_map([trace_id], |r| {
                let input_tokens: Option<i64> = r.get(13)?;
                let n = |i: usize| -> rusqlite::Result<u64> {
                    Ok(r.get::<_, Option<i64>>(i)?.unwrap_or(0) as u64)
                };
                let usage = match input_tokens {
                    Some(input) => Some(Usage {
                        input: input as u64,
                        output: n(14)?,
                        cache_read: n(15)?,
                        cache_write_5m: n(16)?,
                        cache_write_1h: n(17)?,
                        reasoning: n(18)?,
                    }),
                    None => None,
                };
                let metadata: Option<String> = r.get(23)?;
                Ok(ExportObservation {
                    id: r.get(0)?,
                    parent_id: r.get(1)?,
                    kind: Kind::parse(&r.get::<_, String>(2)?).unwrap_or(Kind::Event),
                    name: r.get(3)?,
                    key: r.get(4)?,
                    start_ms: r.get(5)?,
                    end_ms: r.get(6)?,
                    completion_start_ms: r.get(7)?,
                    level: Level::parse(
                        r.get::<_, Option<String>>(8)?
                            .as_deref()
                            .unwrap_or("DEFAULT"),
                    ),
                    status_message: r.get(9)?,
                    model: r.get(10)?,
                    response_model: r.get(11)?,
                    provider: r.get(12)?,
                    usage,
                    cost_total: r.get(19)?,
                    cost_source: r.get(20)?,
                    input: r.get(21)?,
                    output: r.get(22)?,
                    metadata: metadata.and_then(|m| serde_json::from_str(&m).ok()),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some(ExportTrace {
            id: t.id,
            root_span_id: t.root_span_id,
            name: t.name,
            start_ms: t.start_ms,
            end_ms: t.end_ms,
            input: t.input,
            output: t.output,
            session,
            observations,
        }))
    }

    /// Runs `sql` once per trace, in one transaction; `run` binds one trace's parameters and executes.
    fn per_trace(
        &mut self,
        sql: &str,
        traces: &[Pending],
        mut run: impl FnMut(&mut rusqlite::CachedStatement<'_>, &Pending) -> rusqlite::Result<usize>,
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(sql)?;
            for p in traces {
                run(&mut stmt, p)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Acknowledges delivered versions (after a 2xx).
    pub fn mark_sent(&mut self, sink: &str, sent: &[Pending]) -> Result<()> {
        self.per_trace(
            "INSERT INTO delivery (sink, trace_id, sent_seq, attempts) VALUES (?1, ?2, ?3, 1)
             ON CONFLICT(sink, trace_id) DO UPDATE SET sent_seq = MAX(delivery.sent_seq, excluded.sent_seq),
               failed_seq = NULL, attempts = delivery.attempts + 1, next_attempt_ms = NULL, last_error = NULL",
            sent,
            |stmt, p| stmt.execute(params![sink, p.trace_id, p.seq]),
        )
    }

    /// Attaches a note to delivered traces (a partial success's message) without changing their state: it
    /// is what `doctor` and the sync summary show as the sink's latest error.
    pub fn note_delivery(&mut self, sink: &str, traces: &[Pending], note: &str) -> Result<()> {
        self.per_trace(
            "UPDATE delivery SET last_error = ?3 WHERE sink = ?1 AND trace_id = ?2",
            traces,
            |stmt, p| stmt.execute(params![sink, p.trace_id, note]),
        )
    }

    /// Records a refused version (4xx other than 408/429): not retried until it changes or `--retry-failed`.
    pub fn mark_failed(&mut self, sink: &str, failed: &[Pending], error: &str) -> Result<()> {
        self.per_trace(
            "INSERT INTO delivery (sink, trace_id, failed_seq, attempts, last_error) VALUES (?1, ?2, ?3, 1, ?4)
             ON CONFLICT(sink, trace_id) DO UPDATE SET failed_seq = excluded.failed_seq,
               attempts = delivery.attempts + 1, next_attempt_ms = NULL, last_error = excluded.last_error",
            failed,
            |stmt, p| stmt.execute(params![sink, p.trace_id, p.seq, error]),
        )
    }

    /// Records a retryable failure: the traces stay pending, not before `next_attempt_ms`.
    pub fn mark_retry(
        &mut self,
        sink: &str,
        traces: &[Pending],
        next_attempt_ms: i64,
        error: &str,
    ) -> Result<()> {
        self.per_trace(
            "INSERT INTO delivery (sink, trace_id, attempts, next_attempt_ms, last_error) VALUES (?1, ?2, 1, ?3, ?4)
             ON CONFLICT(sink, trace_id) DO UPDATE SET attempts = delivery.attempts + 1,
               next_attempt_ms = excluded.next_attempt_ms, last_error = excluded.last_error",
            traces,
            |stmt, p| stmt.execute(params![sink, p.trace_id, next_attempt_ms, error]),
        )
    }

    /// The time (ms since the epoch) before which `sink` should get no request: the latest next attempt a
    /// retryable failure recorded (a backend's `Retry-After` applies to the backend, not to the traces of one
    /// request). `None` when nothing was recorded; a time in the past means no wait.
    pub fn retry_not_before(&self, sink: &str) -> Result<Option<i64>> {
        Ok(self.conn().query_row(
            "SELECT MAX(next_attempt_ms) FROM delivery WHERE sink = ?1",
            [sink],
            |r| r.get(0),
        )?)
    }

    /// Pending, failed and sent trace counts of a sink, with the latest error.
    pub fn backlog(&self, sink: &str) -> Result<Backlog> {
        let (pending, failed, sent): (i64, i64, i64) = self.conn().query_row(
            "SELECT
               SUM(CASE WHEN t.seq > COALESCE(d.sent_seq, 0) AND (d.failed_seq IS NULL OR d.failed_seq < t.seq) THEN 1 ELSE 0 END),
               SUM(CASE WHEN d.failed_seq IS NOT NULL AND d.failed_seq >= t.seq THEN 1 ELSE 0 END),
               SUM(CASE WHEN d.sent_seq >= t.seq THEN 1 ELSE 0 END)
             FROM traces t LEFT JOIN delivery d ON d.sink = ?1 AND d.trace_id = t.id",
            [sink],
            |r| Ok((r.get::<_, Option<i64>>(0)?.unwrap_or(0), r.get::<_, Option<i64>>(1)?.unwrap_or(0), r.get::<_, Option<i64>>(2)?.unwrap_or(0))),
        )?;
        let last_error = self
            .conn()
            .query_row(
                "SELECT last_error FROM delivery WHERE sink = ?1 AND last_error IS NOT NULL ORDER BY rowid DESC LIMIT 1",
                [sink],
                |r| r.get(0),
            )
            .optional()?;
        Ok(Backlog {
            pending: pending as u64,
            failed: failed as u64,
            sent: sent as u64,
            last_error,
        })
    }
}
