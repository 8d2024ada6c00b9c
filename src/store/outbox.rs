//! Delivery state per sink (the outbox): which traces are pending, and what happened to each attempt.
//!
//! A trace is pending for a sink while its `seq` (bumped on every change) is ahead of the version the sink
//! acknowledged. Acks happen only after a 2xx, in one transaction per batch, so a crash re-sends at most the
//! batch in flight (same ids and start times: the backend replaces, it does not duplicate). Within a pending
//! trace only the spans whose encoding the sink has not acknowledged are sent (table `span_acks`, schema 10):
//! a prompt that grows for an hour under `watch` costs its spans once each, plus each changed span again.
//!
//! Langfuse scores have their own outbox (table `scores`, migration 4): a trace's scores are
//! queued in the transaction that acknowledges the trace and stay pending until the backend acknowledges
//! them. A lease per sink (table `leases`) lets one `sync` at a time deliver to a sink.

use std::collections::HashMap;

use anyhow::Result;
use rusqlite::{params, OptionalExtension};

use super::read::SessionRow;
use super::Store;
use crate::model::{CostBreakdown, Kind, Level, Usage};

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
    /// The cost per bucket (pico-USD), when the generation was priced; `total` equals `cost_total`.
    pub cost: Option<CostBreakdown>,
    pub cost_source: Option<String>,
    pub input: Option<String>,
    pub output: Option<String>,
    pub metadata: Option<serde_json::Value>,
    /// The agent's tool call id (tools).
    pub tool_call_id: Option<String>,
    /// Why the model stopped, as the agent wrote it (generations).
    pub finish_reason: Option<String>,
    /// The provider's response id (generations).
    pub response_id: Option<String>,
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
    /// Runaway and budget anomalies reported on this trace (span events and Langfuse scores).
    pub anomalies: Vec<super::anomalies::Anomaly>,
}

/// Backlog of one sink.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Backlog {
    pub pending: u64,
    pub failed: u64,
    pub sent: u64,
    pub last_error: Option<String>,
    /// Scores queued and not yet acknowledged (Langfuse).
    pub scores_pending: u64,
    /// Scores the backend refused (4xx); resent by `sync --retry-failed`.
    pub scores_failed: u64,
}

/// One Langfuse score to queue: its deterministic id, its trace and the JSON body to POST.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedScore {
    pub id: String,
    pub trace_id: String,
    pub body: String,
}

/// A span a backend acknowledged: its trace, its 8-byte id and the hash of the encoding it got.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanAck {
    pub trace_id: String,
    pub span_id: Vec<u8>,
    pub hash: i64,
}

/// Who asks for, or holds, a sink's delivery lease.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseHolder {
    /// Unique per process run: `host:pid:nonce`.
    pub holder: String,
    pub host: String,
    pub pid: i64,
    /// Until when (ms since the epoch) the lease holds without renewal.
    pub expires_ms: i64,
}

/// True when process `pid` exists on this host.
fn process_alive(pid: i64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn mask(text: &str) -> String {
    crate::sinks::endpoint::mask_credentials_in(text).into_owned()
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
                    input, output, metadata, tool_call_id, finish_reason, response_id,
                    cost_input, cost_output, cost_cache_read, cost_cache_write
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
                let cost_total: Option<i64> = r.get(19)?;
                let cost = match cost_total {
                    Some(total) => Some(CostBreakdown {
                        input: r.get::<_, Option<i64>>(27)?.unwrap_or(0),
                        output: r.get::<_, Option<i64>>(28)?.unwrap_or(0),
                        cache_read: r.get::<_, Option<i64>>(29)?.unwrap_or(0),
                        cache_write: r.get::<_, Option<i64>>(30)?.unwrap_or(0),
                        total,
                    }),
                    None => None,
                };
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
                    cost_total,
                    cost,
                    cost_source: r.get(20)?,
                    input: r.get(21)?,
                    output: r.get(22)?,
                    metadata: metadata.and_then(|m| serde_json::from_str(&m).ok()),
                    tool_call_id: r.get(24)?,
                    finish_reason: r.get(25)?,
                    response_id: r.get(26)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let anomalies = self.anomalies_of_trace(&t.id)?;
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
            anomalies,
        }))
    }

    /// What the session-level scores of `session_key` are computed from: whether any of its observations is an
    /// ERROR, and the sum of its generation costs (pico-USD, saturating).
    pub fn session_score_facts(&self, session_key: &str) -> Result<(bool, i64)> {
        // Two index searches: the session's ERROR rows (`observations_errors`) and its model calls
        // (`observations_facts`, whose partial condition the query repeats so that SQLite may use it).
        let (errors, cost): (bool, Option<i64>) = self.conn().query_row(
            concat!(
                "SELECT EXISTS (SELECT 1 FROM observations WHERE session_key = ?1 AND level = 'ERROR'),
                    (SELECT SUM(cost_total) FROM observations
                     WHERE session_key = ?1 AND kind = 'generation' AND ",
                facts_kinds!(),
                ")"
            ),
            [session_key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok((errors, cost.unwrap_or(0)))
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
            |stmt, p| stmt.execute(params![sink, p.trace_id, mask(note)]),
        )
    }

    /// Records a refused version (4xx other than 408/429): not retried until it changes or `--retry-failed`.
    pub fn mark_failed(&mut self, sink: &str, failed: &[Pending], error: &str) -> Result<()> {
        self.per_trace(
            "INSERT INTO delivery (sink, trace_id, failed_seq, attempts, last_error) VALUES (?1, ?2, ?3, 1, ?4)
             ON CONFLICT(sink, trace_id) DO UPDATE SET failed_seq = excluded.failed_seq,
               attempts = delivery.attempts + 1, next_attempt_ms = NULL, last_error = excluded.last_error",
            failed,
            |stmt, p| stmt.execute(params![sink, p.trace_id, p.seq, mask(error)]),
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
            |stmt, p| stmt.execute(params![sink, p.trace_id, next_attempt_ms, mask(error)]),
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
        let (scores_pending, scores_failed): (i64, i64) = self.conn().query_row(
            "SELECT COALESCE(SUM(state = 'pending'), 0), COALESCE(SUM(state = 'failed'), 0)
             FROM scores WHERE sink = ?1",
            [sink],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let last_error = match last_error {
            Some(e) => Some(e),
            None if scores_pending + scores_failed > 0 => self
                .conn()
                .query_row(
                    "SELECT last_error FROM scores WHERE sink = ?1 AND last_error IS NOT NULL
                     AND state != 'sent' ORDER BY rowid DESC LIMIT 1",
                    [sink],
                    |r| r.get(0),
                )
                .optional()?,
            None => None,
        };
        Ok(Backlog {
            pending: pending as u64,
            failed: failed as u64,
            sent: sent as u64,
            last_error,
            scores_pending: scores_pending as u64,
            scores_failed: scores_failed as u64,
        })
    }

    /// The spans of `trace_id` that `sink` acknowledged, as span id (8 bytes) → hash of the encoding it got
    /// (schema 10). Empty for a trace never delivered there.
    pub fn acked_spans(&self, sink: &str, trace_id: &str) -> Result<HashMap<Vec<u8>, i64>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT span_id, hash FROM span_acks WHERE sink = ?1 AND trace_id = ?2",
        )?;
        let rows = stmt.query_map(params![sink, trace_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Acknowledges delivered trace versions (as [`Store::mark_sent`]), records the spans the backend got
    /// (`spans`: their hashes, see [`Store::acked_spans`]) and queues the traces' scores, in one transaction:
    /// a crash loses none of them. A score already queued with the same body keeps its state (sent stays
    /// sent); one whose body changed is pending again.
    pub fn mark_sent_with_scores(
        &mut self,
        sink: &str,
        sent: &[Pending],
        spans: &[SpanAck],
        scores: &[QueuedScore],
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut span = tx.prepare_cached(
                "INSERT INTO span_acks (sink, trace_id, span_id, hash) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(sink, trace_id, span_id) DO UPDATE SET hash = excluded.hash",
            )?;
            for a in spans {
                span.execute(params![sink, a.trace_id, a.span_id, a.hash])?;
            }
            let mut ack = tx.prepare_cached(
                "INSERT INTO delivery (sink, trace_id, sent_seq, attempts) VALUES (?1, ?2, ?3, 1)
                 ON CONFLICT(sink, trace_id) DO UPDATE SET sent_seq = MAX(delivery.sent_seq, excluded.sent_seq),
                   failed_seq = NULL, attempts = delivery.attempts + 1, next_attempt_ms = NULL, last_error = NULL",
            )?;
            for p in sent {
                ack.execute(params![sink, p.trace_id, p.seq])?;
            }
            let mut queue = tx.prepare_cached(
                "INSERT INTO scores (sink, id, trace_id, body, state) VALUES (?1, ?2, ?3, ?4, 'pending')
                 ON CONFLICT(sink, id) DO UPDATE SET trace_id = excluded.trace_id, body = excluded.body,
                   state = 'pending', attempts = 0, last_error = NULL
                 WHERE scores.body != excluded.body",
            )?;
            for q in scores {
                queue.execute(params![sink, q.id, q.trace_id, q.body])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Scores queued for `sink` after id `after`, by id, at most `limit`: pending ones whose next attempt is
    /// not after `now_ms`, and with `retry_failed` also refused ones. Returns (id, body).
    pub fn pending_scores(
        &self,
        sink: &str,
        now_ms: i64,
        retry_failed: bool,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, String)>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, body FROM scores
             WHERE sink = ?1 AND (state = 'pending' OR (?3 AND state = 'failed'))
               AND (next_attempt_ms IS NULL OR next_attempt_ms <= ?2) AND id > ?4
             ORDER BY id LIMIT ?5",
        )?;
        let rows = stmt.query_map(
            params![sink, now_ms, retry_failed, after, limit as i64],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Records the backend's answer to one score: `Ok(())` acknowledged (2xx), `Err(error)` refused (4xx).
    /// Only the version that was sent (`body`) changes state.
    pub fn mark_score(
        &self,
        sink: &str,
        id: &str,
        body: &str,
        outcome: std::result::Result<(), &str>,
    ) -> Result<()> {
        let (state, error) = match outcome {
            Ok(()) => ("sent", None),
            Err(e) => ("failed", Some(mask(e))),
        };
        self.conn().execute(
            "UPDATE scores SET state = ?4, attempts = attempts + 1, next_attempt_ms = NULL, last_error = ?5
             WHERE sink = ?1 AND id = ?2 AND body = ?3",
            params![sink, id, body, state, error],
        )?;
        Ok(())
    }

    /// Records a retryable failure of one score: it stays pending, not before `next_attempt_ms`.
    pub fn mark_score_retry(
        &self,
        sink: &str,
        id: &str,
        next_attempt_ms: i64,
        error: &str,
    ) -> Result<()> {
        self.conn().execute(
            "UPDATE scores SET attempts = attempts + 1, next_attempt_ms = ?3, last_error = ?4
             WHERE sink = ?1 AND id = ?2",
            params![sink, id, next_attempt_ms, mask(error)],
        )?;
        Ok(())
    }

    /// The time before which the scores endpoint of `sink` should get no request (its `Retry-After`), as
    /// [`Store::retry_not_before`] for traces.
    pub fn scores_not_before(&self, sink: &str) -> Result<Option<i64>> {
        Ok(self.conn().query_row(
            "SELECT MAX(next_attempt_ms) FROM scores WHERE sink = ?1 AND state = 'pending'",
            [sink],
            |r| r.get(0),
        )?)
    }

    /// Takes the delivery lease of `sink` for `me` until `me.expires_ms`, unless another holder has it: a
    /// lease is free when nobody holds it, it expired, it is `me`'s already, or its holder's process is gone
    /// (same host). Returns `None` when taken, else the current holder.
    pub fn acquire_lease(&mut self, sink: &str, me: &LeaseHolder) -> Result<Option<LeaseHolder>> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let current: Option<LeaseHolder> = tx
            .query_row(
                "SELECT holder, host, pid, expires_ms FROM leases WHERE sink = ?1",
                [sink],
                |r| {
                    Ok(LeaseHolder {
                        holder: r.get(0)?,
                        host: r.get(1)?,
                        pid: r.get(2)?,
                        expires_ms: r.get(3)?,
                    })
                },
            )
            .optional()?;
        let now = jiff::Timestamp::now().as_millisecond();
        if let Some(c) = current {
            let gone = c.host == me.host && c.pid != me.pid && !process_alive(c.pid);
            if c.holder != me.holder && c.expires_ms > now && !gone {
                return Ok(Some(c));
            }
        }
        tx.execute(
            "INSERT INTO leases (sink, holder, host, pid, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(sink) DO UPDATE SET holder = excluded.holder, host = excluded.host,
               pid = excluded.pid, expires_ms = excluded.expires_ms",
            params![sink, me.holder, me.host, me.pid, me.expires_ms],
        )?;
        tx.commit()?;
        Ok(None)
    }

    /// Extends `holder`'s lease of `sink` to `until_ms`. False when it no longer holds it.
    pub fn renew_lease(&self, sink: &str, holder: &str, until_ms: i64) -> Result<bool> {
        Ok(self.conn().execute(
            "UPDATE leases SET expires_ms = MAX(expires_ms, ?3) WHERE sink = ?1 AND holder = ?2",
            params![sink, holder, until_ms],
        )? == 1)
    }

    /// Gives up `holder`'s lease of `sink` (nothing when it does not hold it).
    pub fn release_lease(&self, sink: &str, holder: &str) -> Result<()> {
        self.conn().execute(
            "DELETE FROM leases WHERE sink = ?1 AND holder = ?2",
            params![sink, holder],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(name: &str, pid: i64, expires_ms: i64) -> LeaseHolder {
        LeaseHolder {
            holder: name.into(),
            host: "h".into(),
            pid,
            expires_ms,
        }
    }

    /// Item 17: one holder per sink; an expired lease, or one whose process is gone, is taken over.
    #[test]
    fn a_sink_lease_has_one_holder_and_expires() {
        let mut store = Store::open_in_memory().unwrap();
        let now = jiff::Timestamp::now().as_millisecond();
        let me = i64::from(std::process::id());
        assert_eq!(
            store
                .acquire_lease("otlp", &holder("a", me, now + 60_000))
                .unwrap(),
            None
        );
        // Another run (of a live process) waits; another sink is independent.
        let other = store
            .acquire_lease("otlp", &holder("b", me, now + 60_000))
            .unwrap();
        assert_eq!(other.map(|o| o.holder).as_deref(), Some("a"));
        assert_eq!(
            store
                .acquire_lease("langfuse", &holder("b", me, now + 60_000))
                .unwrap(),
            None
        );
        assert!(store.renew_lease("otlp", "a", now + 90_000).unwrap());
        assert!(!store.renew_lease("otlp", "b", now + 90_000).unwrap());
        // Released: free.
        store.release_lease("otlp", "a").unwrap();
        assert_eq!(
            store
                .acquire_lease("otlp", &holder("b", me, now + 60_000))
                .unwrap(),
            None
        );
        // Expired: free, even though its process lives.
        store
            .acquire_lease("x", &holder("old", me, now - 1))
            .unwrap();
        assert_eq!(
            store
                .acquire_lease("x", &holder("new", me, now + 1))
                .unwrap(),
            None
        );
        // Held by a process that is gone (a killed sync): free at once.
        store
            .acquire_lease("y", &holder("dead", i64::from(i32::MAX), now + 60_000))
            .unwrap();
        assert_eq!(
            store
                .acquire_lease("y", &holder("new", me, now + 60_000))
                .unwrap(),
            None
        );
    }

    /// Item 16: scores stay queued until acknowledged; an unchanged score is not queued again once sent.
    #[test]
    fn scores_stay_queued_until_acknowledged() {
        let mut store = Store::open_in_memory().unwrap();
        let score = |id: &str, body: &str| QueuedScore {
            id: id.into(),
            trace_id: "t".into(),
            body: body.into(),
        };
        store
            .mark_sent_with_scores(
                "langfuse",
                &[],
                &[],
                &[score("s1", "{1}"), score("s2", "{2}")],
            )
            .unwrap();
        assert_eq!(store.backlog("langfuse").unwrap().scores_pending, 2);
        store
            .mark_score_retry("langfuse", "s1", 0, "http://u:pw@h answered 503")
            .unwrap();
        store.mark_score("langfuse", "s2", "{2}", Ok(())).unwrap();
        let b = store.backlog("langfuse").unwrap();
        assert_eq!((b.scores_pending, b.scores_failed), (1, 0));
        assert_eq!(b.last_error.as_deref(), Some("http://u:***@h answered 503"));
        // Re-queued unchanged: s2 stays sent. Changed: pending again.
        store
            .mark_sent_with_scores("langfuse", &[], &[], &[score("s2", "{2}")])
            .unwrap();
        assert_eq!(store.backlog("langfuse").unwrap().scores_pending, 1);
        store
            .mark_sent_with_scores("langfuse", &[], &[], &[score("s2", "{2b}")])
            .unwrap();
        let pending = store
            .pending_scores("langfuse", i64::MAX, false, "", 10)
            .unwrap();
        assert_eq!(pending.len(), 2);
        // A refusal is kept as failed, resent only with retry_failed.
        store
            .mark_score("langfuse", "s1", "{1}", Err("answered 400"))
            .unwrap();
        assert_eq!(store.backlog("langfuse").unwrap().scores_failed, 1);
        assert_eq!(
            store
                .pending_scores("langfuse", i64::MAX, false, "", 10)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            store
                .pending_scores("langfuse", i64::MAX, true, "", 10)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn session_score_facts_see_an_error_of_any_kind_and_sum_the_model_calls() {
        let store = Store::open_in_memory().unwrap();
        let add = |id: &str, session: &str, kind: &str, level: Option<&str>, cost: Option<i64>| {
            store
                .conn()
                .execute(
                    "INSERT INTO observations (id, session_key, kind, name, key, level, cost_total)
                     VALUES (?1, ?2, ?3, 'x', ?1, ?4, ?5)",
                    params![id, session, kind, level, cost],
                )
                .unwrap();
        };
        add("1", "pi:a", "generation", None, Some(5));
        add("2", "pi:a", "generation", Some("WARNING"), Some(7));
        add("3", "pi:a", "tool", None, Some(100)); // not a model call: not summed
        add("4", "pi:b", "generation", None, Some(11));
        add("5", "pi:b", "event", Some("ERROR"), None); // an error event (no model call, no tool)
        assert_eq!(store.session_score_facts("pi:a").unwrap(), (false, 12));
        assert_eq!(store.session_score_facts("pi:b").unwrap(), (true, 11));
        assert_eq!(store.session_score_facts("pi:none").unwrap(), (false, 0));
    }
}
