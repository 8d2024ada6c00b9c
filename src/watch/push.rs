//! The metrics side of `watch`: every `OTEL_METRIC_EXPORT_INTERVAL` (default 60 s) the metric set is
//! computed from the store and pushed to the OTLP metrics endpoint ([`crate::sinks::metrics`]). Cumulative
//! values make a failed push harmless: the next one carries everything.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use anyhow::Result;

use super::worker::Worker;
use crate::metrics::collect::Compat;
use crate::sinks::metrics::Temporality;
use crate::sinks::{metrics, Endpoint, ExportSettings};
use crate::store::Store;

/// Default push interval (`OTEL_METRIC_EXPORT_INTERVAL`, ms, as the OpenTelemetry SDKs read it).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// Handle of the push thread.
pub struct MetricsPusher {
    stop: Sender<Instant>,
    worker: Worker,
}

impl MetricsPusher {
    /// Starts pushing the metrics of the store at `store_path` to `endpoint` every `interval` (first push at
    /// once).
    pub fn start(
        store_path: PathBuf,
        endpoint: Endpoint,
        settings: ExportSettings,
        interval: Duration,
        compat: Compat,
        temporality: Temporality,
    ) -> Result<MetricsPusher> {
        let (stop, rx) = std::sync::mpsc::channel();
        let worker = Worker::spawn("tt-metrics-push", "metrics push", move || {
            let how = (compat, temporality);
            run(&store_path, &endpoint, &settings, interval, how, &rx);
        })?;
        Ok(MetricsPusher { stop, worker })
    }

    /// Pushes once more (within `timeout`) and stops; a push still retrying past that is left behind (the
    /// next start pushes the same cumulative values).
    pub fn stop(self, timeout: Duration) {
        let _ = self.stop.send(Instant::now() + timeout);
        self.worker.wait(timeout);
    }
}

fn run(
    store_path: &std::path::Path,
    endpoint: &Endpoint,
    settings: &ExportSettings,
    interval: Duration,
    how: (Compat, Temporality),
    rx: &Receiver<Instant>,
) {
    let mut next = Instant::now();
    loop {
        let budget = match rx.recv_timeout(next.saturating_duration_since(Instant::now())) {
            Ok(deadline) => Some(deadline.saturating_duration_since(Instant::now())),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let stopping = budget.is_some();
        // A push may retry for half the interval (at most 10 s, so that a stop is seen soon); the last one
        // for what is left of the shutdown time.
        let budget = budget.unwrap_or((interval / 2).min(Duration::from_secs(10)));
        match push_once(store_path, endpoint, settings, how, budget) {
            Ok(report) => match &report.error {
                None => {
                    tracing::debug!("metrics: {} series pushed to {}", report.points, report.url)
                }
                Some(e) => tracing::warn!("metrics push to {} failed: {e}", report.url),
            },
            Err(e) => tracing::warn!("metrics push: {e:#}"),
        }
        if stopping {
            return;
        }
        next = Instant::now() + interval;
    }
}

fn push_once(
    store_path: &std::path::Path,
    endpoint: &Endpoint,
    settings: &ExportSettings,
    (compat, temporality): (Compat, Temporality),
    budget: Duration,
) -> Result<metrics::PushReport> {
    // Read-write: a delta push records what it sent.
    let store = Store::open(store_path)?;
    let snapshot = crate::metrics::collect::collect(&store, compat)?;
    metrics::push(
        endpoint,
        &snapshot,
        settings,
        jiff::Timestamp::now().as_millisecond(),
        budget,
        temporality,
        &store,
    )
}
