//! The delivery side of `watch`: a thread with its own store connection that runs the engine `sync` runs
//! ([`sinks::deliver`]) whenever the importer says something changed — at most once per flush interval per
//! sink, with backoff while a backend fails, for as long as `watch` runs.
//!
//! The queue between the importer and the backends is the store's outbox (`traces.seq`, `delivery`,
//! `span_acks`): what the thread has not acknowledged is pending there, so memory stays flat however long a
//! backend is down, and a kill loses nothing. Each call of the engine gets no retry budget of its own: a
//! failure ends the call at once (recording a backend's `Retry-After` in the store, as `sync` does) and this
//! loop waits — interruptibly, so that a stop is never stuck behind a backoff.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::worker::Worker;
use crate::sinks::{self, http, DeliveryOptions, Endpoint};
use crate::store::Store;

/// Default flush interval (`TOKENTRACE_FLUSH_MS`): changes reach a backend at most this often, per sink.
pub const DEFAULT_FLUSH: Duration = Duration::from_millis(1000);

/// What the flusher did for one sink since `watch` started (for the status line and `--json` summaries).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SinkStats {
    pub sink: String,
    pub requests: u64,
    pub traces_sent: u64,
    pub spans_sent: u64,
    pub retries: u64,
    /// Traces waiting for this sink after the latest flush.
    pub pending: u64,
    /// Traces the backend refused (4xx), waiting for `sync --retry-failed`.
    pub failed: u64,
    pub last_error: Option<String>,
}

/// Messages from the importer.
enum Msg {
    /// The store has new or changed traces.
    Changed,
    /// New endpoints and options (SIGHUP re-read the config).
    Reload(Vec<Endpoint>, DeliveryOptions),
    /// Deliver what is pending until `deadline`, then end.
    Stop(Instant),
}

/// Handle of the delivery thread.
pub struct Flusher {
    tx: Sender<Msg>,
    worker: Worker,
    stats: Arc<Mutex<Vec<SinkStats>>>,
}

/// One sink's schedule.
struct Sink {
    endpoint: Endpoint,
    /// Something may be pending.
    dirty: bool,
    /// Failed flushes in a row.
    attempt: u32,
    /// No flush before this (backoff, or the backend's `Retry-After`).
    not_before: Instant,
    last_flush: Option<Instant>,
}

impl Flusher {
    /// Starts the thread on the store at `store_path`; everything already pending is delivered first.
    pub fn start(
        store_path: PathBuf,
        endpoints: Vec<Endpoint>,
        opts: DeliveryOptions,
        interval: Duration,
    ) -> Result<Flusher> {
        let (tx, rx) = std::sync::mpsc::channel();
        let stats = Arc::new(Mutex::new(Vec::new()));
        let shared = stats.clone();
        let worker = Worker::spawn("tt-deliver", "delivery", move || {
            if let Err(e) = run(&store_path, endpoints, opts, interval, &rx, &shared) {
                tracing::error!("delivery stopped: {e:#}");
            }
        })?;
        Ok(Flusher { tx, worker, stats })
    }

    /// Tells the thread that the store changed.
    pub fn changed(&self) {
        let _ = self.tx.send(Msg::Changed);
    }

    /// Replaces the endpoints and options (config re-read).
    pub fn reload(&self, endpoints: Vec<Endpoint>, opts: DeliveryOptions) {
        let _ = self.tx.send(Msg::Reload(endpoints, opts));
    }

    /// Per-sink counters so far.
    pub fn stats(&self) -> Vec<SinkStats> {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Delivers what is pending within `timeout`, then stops the thread. Returns whether it finished in time
    /// (false: it is still busy with a request; whatever it did not acknowledge stays in the outbox) and the
    /// final counters.
    pub fn stop(self, timeout: Duration) -> (bool, Vec<SinkStats>) {
        let _ = self.tx.send(Msg::Stop(Instant::now() + timeout));
        let finished = self.worker.wait(timeout);
        let stats = self.stats.lock().map(|s| s.clone()).unwrap_or_default();
        (finished, stats)
    }
}

fn run(
    store_path: &std::path::Path,
    endpoints: Vec<Endpoint>,
    mut opts: DeliveryOptions,
    interval: Duration,
    rx: &Receiver<Msg>,
    stats: &Mutex<Vec<SinkStats>>,
) -> Result<()> {
    let mut store = Store::open(store_path)?;
    let now = Instant::now();
    let new_sinks = |endpoints: Vec<Endpoint>| -> Vec<Sink> {
        endpoints
            .into_iter()
            .map(|endpoint| Sink {
                endpoint,
                dirty: true,
                attempt: 0,
                not_before: now,
                last_flush: None,
            })
            .collect()
    };
    let mut sinks = new_sinks(endpoints);
    reset_stats(stats, &sinks);
    let mut seed = (jiff::Timestamp::now().as_nanosecond() as u64) | 1;
    // Within a run, a failure ends the engine's call at once: this loop does the waiting.
    opts.retry_budget = Duration::ZERO;
    loop {
        let now = Instant::now();
        // When a dirty sink may be flushed next: after its backoff, and one interval after its last flush
        // (the first change after a quiet spell goes at once).
        let due = |s: &Sink| s.not_before.max(s.last_flush.map_or(now, |t| t + interval));
        let mut flushed = false;
        for sink in sinks.iter_mut().filter(|s| s.dirty && due(s) <= now) {
            flush(&mut store, sink, &opts, stats, &mut seed)?;
            flushed = true;
        }
        if flushed {
            continue;
        }
        let due = sinks.iter().filter(|s| s.dirty).map(due).min();
        let msg = match due {
            Some(due) => match rx.recv_timeout(due - now) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            },
            None => match rx.recv() {
                Ok(m) => m,
                Err(_) => return Ok(()),
            },
        };
        match msg {
            Msg::Changed => sinks.iter_mut().for_each(|s| s.dirty = true),
            Msg::Reload(endpoints, new_opts) => {
                sinks = new_sinks(endpoints);
                reset_stats(stats, &sinks);
                opts = DeliveryOptions {
                    retry_budget: Duration::ZERO,
                    ..new_opts
                };
            }
            Msg::Stop(deadline) => {
                // The last flush may use what is left of the shutdown time to retry.
                for sink in &mut sinks {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    let opts = DeliveryOptions {
                        retry_budget: left,
                        ..opts.clone()
                    };
                    flush(&mut store, sink, &opts, stats, &mut seed)?;
                }
                return Ok(());
            }
        }
    }
}

fn reset_stats(stats: &Mutex<Vec<SinkStats>>, sinks: &[Sink]) {
    if let Ok(mut s) = stats.lock() {
        *s = sinks
            .iter()
            .map(|k| SinkStats {
                sink: k.endpoint.name.to_string(),
                ..Default::default()
            })
            .collect();
    }
}

/// One run of the engine for one sink; schedules the next one.
fn flush(
    store: &mut Store,
    sink: &mut Sink,
    opts: &DeliveryOptions,
    stats: &Mutex<Vec<SinkStats>>,
    seed: &mut u64,
) -> Result<()> {
    let started = Instant::now();
    sink.last_flush = Some(started);
    let report = sinks::deliver(store, &sink.endpoint, opts, |_| {})?;
    if report.spans_sent > 0 || report.traces_refused > 0 {
        tracing::debug!(
            "{}: sent {} trace(s), {} span(s) in {} request(s) in {:?}",
            report.sink,
            report.traces_sent,
            report.spans_sent,
            report.requests,
            started.elapsed()
        );
    }
    let blocked = report.gave_up.is_some();
    if blocked {
        sink.attempt += 1;
        let mut wait = http::backoff(sink.attempt, seed);
        // A Retry-After the backend sent (stored by the engine) binds us too.
        let until = store.retry_not_before(sink.endpoint.name)?.unwrap_or(0);
        let asked = until - jiff::Timestamp::now().as_millisecond();
        if asked > 0 {
            wait = wait.max(Duration::from_millis(asked as u64));
        }
        tracing::warn!(
            "{}: {}; next try in {:.1}s ({} trace(s) pending)",
            report.sink,
            report
                .gave_up
                .as_deref()
                .or(report.backlog.last_error.as_deref())
                .unwrap_or("delivery failed"),
            wait.as_secs_f64(),
            report.backlog.pending
        );
        sink.not_before = Instant::now() + wait;
    } else {
        sink.attempt = 0;
        sink.not_before = Instant::now();
    }
    // Still dirty while something is pending (a failed run, or traces that changed during the flush).
    sink.dirty = blocked || report.backlog.pending > 0;
    if let Ok(mut all) = stats.lock() {
        if let Some(s) = all.iter_mut().find(|s| s.sink == report.sink) {
            s.requests += report.requests;
            s.traces_sent += report.traces_sent;
            s.spans_sent += report.spans_sent;
            s.retries += report.retries;
            s.pending = report.backlog.pending;
            s.failed = report.backlog.failed;
            s.last_error = report.gave_up.clone().or(report.backlog.last_error.clone());
        }
    }
    Ok(())
}
