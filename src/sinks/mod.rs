//! Sinks: deliver stored traces to OTLP backends and Langfuse, durably (DESIGN §5, §6).
//!
//! The store's delivery table is the outbox. Each run pages through the traces pending for a sink (new, or
//! changed since they were last acknowledged), encodes them ([`encode`]) into requests bounded in span count
//! and bytes (≤ 4 MB), and sends them ([`http`]): a 2xx acknowledges the traces of the request; connection
//! errors, timeouts, 408, 429 and 5xx are retried with exponential backoff and jitter (honouring
//! `Retry-After`) until the run's retry budget is spent, after which the traces stay pending for the next
//! run; any other 4xx marks them failed with the server's message (`sync --retry-failed` tries again).
//! Ids and start times are deterministic, so anything sent twice replaces rather than duplicates.
//!
//! Langfuse scores are queued in the store when their trace is acknowledged and sent after the traces,
//! under the same deadline and backoff (`Retry-After` included); what is not acknowledged stays queued for
//! the next run. One `sync` at a time delivers to a sink: it holds the sink's lease in the store
//! ([`LEASE_TTL`], renewed while it works; a killed holder's lease is taken over at once on the same host,
//! else when it expires), and a second `sync` waits for it within its retry budget.

pub mod alerts;
pub mod encode;
pub mod endpoint;
pub mod http;
pub mod langfuse;
pub mod metrics;
pub mod scores;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use crate::store::outbox::{Backlog, ExportTrace, LeaseHolder, Pending, QueuedScore, SpanAck};
use crate::store::Store;
pub use encode::ExportSettings;
pub use endpoint::{Endpoint, Protocol};

/// Hard ceiling of one request body (before gzip), bytes.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// How long a sink's delivery lease holds without renewal. The holder renews it before every request and
/// every wait, so only a `sync` that was killed (on another host) or hangs lets it run out.
pub const LEASE_TTL: Duration = Duration::from_secs(60);

/// How a run delivers.
#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// Also resend versions a backend refused with a 4xx.
    pub retry_failed: bool,
    /// How long one run keeps retrying a backend that is down before leaving the rest pending.
    pub retry_budget: Duration,
    /// Fraction of sessions exported (`TOKENTRACE_SAMPLE_RATE`), decided per session, deterministically.
    pub sample_rate: f64,
    /// At most this many spans per request.
    pub max_batch_spans: usize,
    pub settings: ExportSettings,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            retry_failed: false,
            retry_budget: Duration::from_secs(60),
            sample_rate: 1.0,
            max_batch_spans: 2000,
            settings: ExportSettings {
                service_name: "tokentrace".into(),
                ..Default::default()
            },
        }
    }
}

/// What a run did for one sink.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SinkReport {
    pub sink: String,
    pub url: String,
    pub requests: u64,
    pub traces_sent: u64,
    pub spans_sent: u64,
    /// Traces the backend refused in this run.
    pub traces_refused: u64,
    /// Spans a backend accepted the request of but said it dropped (OTLP partial success), in this run.
    pub spans_rejected: u64,
    /// Traces left out by sampling (acknowledged without sending).
    pub sampled_out: u64,
    /// Scores acknowledged in this run.
    pub scores_sent: u64,
    /// Scores the backend refused (4xx) in this run.
    pub scores_failed: u64,
    /// Retryable errors met in this run.
    pub retries: u64,
    /// State after the run.
    pub backlog: Backlog,
    /// The backend stayed unreachable for the whole retry budget, or asked to wait past it.
    pub gave_up: Option<String>,
}

/// True when the session is in the sample (`rate` in 0..=1; the same session always gets the same answer).
pub fn sampled(session_key: &str, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 {
        return false;
    }
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("tokentrace/v1|sample|{session_key}").as_bytes());
    let n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    (n as f64 / u64::MAX as f64) < rate
}

/// A piece of a request: spans of one trace (a huge trace is split in several parts; its last part carries
/// the acknowledgement).
struct Part {
    trace: Pending,
    last: bool,
    spans: Vec<Span>,
    /// What acknowledging this part records: one entry per span in `spans`.
    acks: Vec<SpanAck>,
    bytes: usize,
    scores: Vec<scores::Score>,
}

/// The identity of a span's content: the first 8 bytes of the SHA-256 of its OTLP protobuf encoding (stable
/// across releases and machines, unlike `std`'s hasher). A span is sent again only when this changes.
pub fn span_hash(span: &Span) -> i64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(span.encode_to_vec());
    i64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// The Langfuse scores queued with a trace: its own, and its session's (computed over the whole stored
/// session, so they are updated in place as the session grows).
fn scores_for(
    store: &Store,
    trace: &ExportTrace,
    environment: Option<&str>,
) -> Result<Vec<scores::Score>> {
    let mut out = scores::for_trace(trace, environment);
    let (had_errors, cost) = store.session_score_facts(&trace.session.key)?;
    out.extend(scores::for_session(
        &trace.session.agent,
        &trace.session.session_id,
        scores::SessionFacts { had_errors, cost },
        environment,
    ));
    Ok(out)
}

/// The scores the acknowledging parts of `parts` queue.
fn queued_scores(parts: &[Part]) -> Vec<QueuedScore> {
    parts
        .iter()
        .filter(|p| p.last)
        .flat_map(|p| p.scores.iter())
        .map(|s| QueuedScore {
            id: s.id.clone(),
            trace_id: s.target(),
            body: serde_json::to_string(s).expect("score serializes"),
        })
        .collect()
}

/// Splits the spans of one trace that the sink has not acknowledged as they are (`acked`: span id → hash,
/// see [`Store::acked_spans`]; empty for a trace never sent) into parts of at most `max_bytes` encoded bytes;
/// the last part carries `scores`. A trace whose every span was acknowledged yields one part without spans.
fn parts(
    trace: &ExportTrace,
    pending: &Pending,
    settings: &ExportSettings,
    max_bytes: usize,
    acked: &HashMap<Vec<u8>, i64>,
    scores: Vec<scores::Score>,
) -> Vec<Part> {
    let spans = encode::trace_spans(trace, settings);
    let mut out: Vec<Part> = Vec::new();
    let empty = || Part {
        trace: pending.clone(),
        last: false,
        spans: Vec::new(),
        acks: Vec::new(),
        bytes: 0,
        scores: Vec::new(),
    };
    let mut current = empty();
    for span in spans {
        let hash = span_hash(&span);
        if acked.get(&span.span_id) == Some(&hash) {
            continue;
        }
        let len = span.encoded_len() + 8;
        if !current.spans.is_empty() && current.bytes + len > max_bytes {
            out.push(std::mem::replace(&mut current, empty()));
        }
        current.bytes += len;
        current.acks.push(SpanAck {
            trace_id: trace.id.clone(),
            span_id: span.span_id.clone(),
            hash,
        });
        current.spans.push(span);
    }
    current.last = true;
    current.scores = scores;
    out.push(current);
    out
}

/// Span bytes per request: protobuf as is; OTLP/JSON (hex ids, key names) is about three times larger.
fn span_budget(protocol: Protocol) -> usize {
    match protocol {
        Protocol::Protobuf => MAX_REQUEST_BYTES - 256 * 1024,
        Protocol::Json => MAX_REQUEST_BYTES / 3,
    }
}

fn body(parts: &[Part], settings: &ExportSettings, protocol: Protocol) -> Vec<u8> {
    let spans = parts.iter().flat_map(|p| p.spans.iter().cloned()).collect();
    let req = encode::request(spans, settings);
    match protocol {
        Protocol::Protobuf => req.encode_to_vec(),
        Protocol::Json => serde_json::to_vec(&req).expect("OTLP request serializes"),
    }
}

/// Groups parts into requests bounded by span count and bytes.
fn requests(parts: Vec<Part>, max_spans: usize, max_bytes: usize) -> Vec<Vec<Part>> {
    let mut out: Vec<Vec<Part>> = Vec::new();
    let (mut spans, mut bytes) = (0usize, 0usize);
    for part in parts {
        let fits = out.last().is_some_and(|r| !r.is_empty())
            && spans + part.spans.len() <= max_spans
            && bytes + part.bytes <= max_bytes;
        if !fits {
            out.push(Vec::new());
            spans = 0;
            bytes = 0;
        }
        spans += part.spans.len();
        bytes += part.bytes;
        out.last_mut().expect("a request").push(part);
    }
    out
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// This process's identity for sink leases: `host:pid:nonce` (the nonce tells two runs of one process
/// apart).
fn lease_holder() -> LeaseHolder {
    static NONCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let host = hostname();
    let pid = std::process::id();
    let nonce = NONCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    LeaseHolder {
        holder: format!("{host}:{pid}:{}:{nonce}", now_ms()),
        host,
        pid: i64::from(pid),
        expires_ms: now_ms() + LEASE_TTL.as_millis() as i64,
    }
}

/// This machine's host name (empty when it cannot be read).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it when it fits.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0 {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    }
}

/// The state of one delivery run to one endpoint.
struct Run<'a> {
    endpoint: &'a Endpoint,
    client: reqwest::blocking::Client,
    deadline: Instant,
    seed: u64,
    lease: LeaseHolder,
    report: SinkReport,
}

impl Run<'_> {
    /// Extends the lease over `wait` plus [`LEASE_TTL`]. False (with `gave_up` set) when another `sync`
    /// took it over meanwhile: this run must stop sending.
    /// After a retryable failure (counted in the report): how long to wait — the backend's `Retry-After`,
    /// else our backoff for `attempt` (then advanced), at most 5 minutes — and the time from which the next
    /// run may send. A time the backend asked for binds the next run too, also when this one is killed
    /// mid-wait; our own backoff does not: a user who runs sync again (having fixed the collector, say) wants
    /// it tried at once.
    fn retry_timing(
        &mut self,
        attempt: &mut u32,
        retry_after: Option<Duration>,
    ) -> (Duration, i64) {
        self.report.retries += 1;
        let wait = retry_after
            .unwrap_or_else(|| http::backoff(*attempt, &mut self.seed))
            .min(Duration::from_secs(300));
        *attempt += 1;
        let not_before = match retry_after {
            Some(_) => now_ms() + wait.as_millis() as i64,
            None => now_ms(),
        };
        (wait, not_before)
    }

    /// Honours a stored `Retry-After` (`until`, ms since the epoch) of `who`: sleeps until then, holding the
    /// lease. `false` when the run must stop instead (the wait ends past the retry budget, noted in the
    /// report, or the lease was lost).
    fn wait_until(&mut self, store: &Store, until: i64, who: &str) -> Result<bool> {
        let wait = Duration::from_millis(until.saturating_sub(now_ms()).max(0) as u64);
        if wait.is_zero() {
            return Ok(true);
        }
        if Instant::now() + wait > self.deadline {
            self.report.gave_up = Some(format!(
                "{who} asked (Retry-After) to be left alone {:.1}s more, past the retry budget",
                wait.as_secs_f64()
            ));
            return Ok(false);
        }
        tracing::info!("backing off {:.1}s as {who} asked", wait.as_secs_f64());
        if !self.keep_lease(store, wait)? {
            return Ok(false);
        }
        std::thread::sleep(wait);
        Ok(true)
    }

    fn keep_lease(&mut self, store: &Store, wait: Duration) -> Result<bool> {
        let until = now_ms() + (wait + LEASE_TTL).as_millis() as i64;
        if store.renew_lease(self.endpoint.name, &self.lease.holder, until)? {
            return Ok(true);
        }
        self.report.gave_up = Some(
            "another tokentrace sync took over the delivery to this sink (this run was stalled past its lease)"
                .into(),
        );
        Ok(false)
    }

    /// Waits (within the deadline) for the sink's lease. False (with `gave_up` set) when another `sync`
    /// kept it for the whole retry budget.
    fn take_lease(&mut self, store: &mut Store) -> Result<bool> {
        let mut told = false;
        loop {
            self.lease.expires_ms = now_ms() + LEASE_TTL.as_millis() as i64;
            let Some(other) = store.acquire_lease(self.endpoint.name, &self.lease)? else {
                return Ok(true);
            };
            let poll = Duration::from_millis(200);
            if Instant::now() + poll > self.deadline {
                self.report.gave_up = Some(format!(
                    "another tokentrace sync (pid {} on {}) is delivering to this sink; this run sent nothing to it",
                    other.pid,
                    if other.host.is_empty() { "?" } else { &other.host }
                ));
                return Ok(false);
            }
            if !told {
                tracing::info!(
                    "waiting for another tokentrace sync (pid {}) to finish delivering to {}",
                    other.pid,
                    self.endpoint.name
                );
                told = true;
            }
            std::thread::sleep(poll);
        }
    }

    /// Scrubbed (credentials masked) form of an error to show or store.
    fn scrub(&self, error: &str) -> String {
        self.endpoint.scrub(error)
    }
}

/// Delivers everything pending for one endpoint: traces, then the Langfuse scores queued for it. Errors only
/// on store failures; backend problems end up in the report (and in the delivery tables).
///
/// Holds the sink's lease (waiting for another `sync` that holds it, within the retry budget) so that two
/// runs never send the same traces at the same time.
pub fn deliver(
    store: &mut Store,
    endpoint: &Endpoint,
    opts: &DeliveryOptions,
    progress: impl FnMut(u64),
) -> Result<SinkReport> {
    let mut run = Run {
        endpoint,
        client: http::client(),
        deadline: Instant::now() + opts.retry_budget,
        seed: (now_ms() as u64) | 1,
        lease: lease_holder(),
        report: SinkReport {
            sink: endpoint.name.to_string(),
            url: endpoint.display_url(),
            ..Default::default()
        },
    };
    if run.take_lease(store)? {
        let result = deliver_traces(store, &mut run, opts, progress).and_then(|()| {
            if run.report.gave_up.is_none() {
                deliver_scores(store, &mut run, opts.retry_failed)
            } else {
                Ok(())
            }
        });
        let released = store.release_lease(endpoint.name, &run.lease.holder);
        result?;
        released?;
    }
    run.report.backlog = store.backlog(endpoint.name)?;
    Ok(run.report)
}

/// The traces part of [`deliver`], under the lease.
fn deliver_traces(
    store: &mut Store,
    run: &mut Run<'_>,
    opts: &DeliveryOptions,
    mut progress: impl FnMut(u64),
) -> Result<()> {
    let endpoint = run.endpoint;
    let settings = sink_settings(&opts.settings, endpoint.name);
    let mut cursor: Option<Pending> = None;
    // A backend that asked an earlier run to wait (Retry-After) gets nothing before then, also when that run
    // was killed while it waited.
    let until = store.retry_not_before(endpoint.name)?.unwrap_or(0);
    if !run.wait_until(store, until, "the backend")? {
        return Ok(());
    }
    let started = now_ms();
    'pages: loop {
        let page = store.pending(
            endpoint.name,
            started,
            opts.retry_failed,
            cursor.as_ref(),
            256,
        )?;
        let Some(last) = page.last().cloned() else {
            break;
        };
        cursor = Some(last);
        let mut all_parts = Vec::new();
        let mut skipped = Vec::new();
        for p in &page {
            match store.export_trace(&p.trace_id)? {
                Some(t) if sampled(&t.session.key, opts.sample_rate) => {
                    let scores = match endpoint.scores_url {
                        Some(_) => scores_for(store, &t, settings.environment.as_deref())?,
                        None => Vec::new(),
                    };
                    let acked = store.acked_spans(endpoint.name, &p.trace_id)?;
                    all_parts.extend(parts(
                        &t,
                        p,
                        &settings,
                        span_budget(endpoint.protocol),
                        &acked,
                        scores,
                    ))
                }
                Some(_) => {
                    run.report.sampled_out += 1;
                    skipped.push(p.clone());
                }
                None => skipped.push(p.clone()),
            }
        }
        store.mark_sent(endpoint.name, &skipped)?;
        // A trace that changed without changing any span the sink has (a re-import of the same lines) is
        // acknowledged without a request; its scores are queued as usual.
        let (unchanged, all_parts): (Vec<Part>, Vec<Part>) =
            all_parts.into_iter().partition(|p| p.spans.is_empty());
        if !unchanged.is_empty() {
            let traces: Vec<Pending> = unchanged.iter().map(|p| p.trace.clone()).collect();
            store.mark_sent_with_scores(endpoint.name, &traces, &[], &queued_scores(&unchanged))?;
            progress(traces.len() as u64);
        }
        for request in requests(
            all_parts,
            opts.max_batch_spans,
            span_budget(endpoint.protocol),
        ) {
            let payload = body(&request, &settings, endpoint.protocol);
            let content_type = match endpoint.protocol {
                Protocol::Protobuf => "application/x-protobuf",
                Protocol::Json => "application/json",
            };
            let traces: Vec<Pending> = request.iter().map(|p| p.trace.clone()).collect();
            let mut attempt = 0u32;
            loop {
                if !run.keep_lease(store, Duration::ZERO)? {
                    break 'pages;
                }
                match http::post(
                    &run.client,
                    &endpoint.url,
                    &endpoint.headers,
                    content_type,
                    &payload,
                    true,
                    None,
                ) {
                    http::Outcome::Delivered { partial } => {
                        let acked: Vec<Pending> = request
                            .iter()
                            .filter(|p| p.last)
                            .map(|p| p.trace.clone())
                            .collect();
                        let spans: Vec<SpanAck> = request
                            .iter()
                            .flat_map(|p| p.acks.iter().cloned())
                            .collect();
                        store.mark_sent_with_scores(
                            endpoint.name,
                            &acked,
                            &spans,
                            &queued_scores(&request),
                        )?;
                        if let Some(p) = partial {
                            // Not retried (OTLP: the backend will reject them again), but never silent.
                            let note = run.scrub(&format!(
                                "{} accepted the request but rejected {} span(s): {}",
                                endpoint.display_url(),
                                p.rejected_spans,
                                p.error_message
                            ));
                            tracing::warn!("{note}");
                            store.note_delivery(endpoint.name, &traces, &note)?;
                            run.report.spans_rejected += p.rejected_spans;
                        }
                        run.report.requests += 1;
                        run.report.traces_sent += acked.len() as u64;
                        run.report.spans_sent +=
                            request.iter().map(|p| p.spans.len() as u64).sum::<u64>();
                        progress(acked.len() as u64);
                        break;
                    }
                    http::Outcome::Refused { error } => {
                        let error = run.scrub(&error);
                        tracing::warn!("{error}");
                        store.mark_failed(endpoint.name, &traces, &error)?;
                        run.report.traces_refused += traces.len() as u64;
                        progress(traces.len() as u64);
                        break;
                    }
                    http::Outcome::Retry { error, retry_after } => {
                        let error = run.scrub(&error);
                        // Recorded before waiting (`not_before`), so a killed run still honours it.
                        let (wait, not_before) = run.retry_timing(&mut attempt, retry_after);
                        store.mark_retry(endpoint.name, &traces, not_before, &error)?;
                        if Instant::now() + wait > run.deadline {
                            tracing::warn!("{error}; giving up for this run");
                            run.report.gave_up = Some(error);
                            break 'pages;
                        }
                        tracing::info!("{error}; retrying in {:.1}s", wait.as_secs_f64());
                        if !run.keep_lease(store, wait)? {
                            break 'pages;
                        }
                        std::thread::sleep(wait);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Sends the scores queued for the endpoint (Langfuse), one POST each, under the run's deadline and
/// backoff. Whatever is not acknowledged stays queued: pending (retryable errors, deadline) or failed
/// (4xx; `retry_failed` resends those).
fn deliver_scores(store: &mut Store, run: &mut Run<'_>, retry_failed: bool) -> Result<()> {
    let Some(url) = run.endpoint.scores_url.clone() else {
        return Ok(());
    };
    let sink = run.endpoint.name;
    let until = store.scores_not_before(sink)?.unwrap_or(0);
    if !run.wait_until(store, until, "the scores endpoint")? {
        return Ok(());
    }
    let auth: Vec<(String, String)> = run
        .endpoint
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .cloned()
        .collect();
    let started = now_ms();
    let mut after = String::new();
    loop {
        let page = store.pending_scores(sink, started, retry_failed, &after, 256)?;
        let Some((last, _)) = page.last() else {
            break;
        };
        after = last.clone();
        for (id, body) in page {
            let mut attempt = 0u32;
            loop {
                if !run.keep_lease(store, Duration::ZERO)? {
                    return Ok(());
                }
                // A hanging endpoint must not hold the run past its budget (by more than a second).
                let remaining = run.deadline.saturating_duration_since(Instant::now());
                let timeout = remaining.clamp(Duration::from_secs(1), Duration::from_secs(10));
                match http::post(
                    &run.client,
                    &url,
                    &auth,
                    "application/json",
                    body.as_bytes(),
                    false,
                    Some(timeout),
                ) {
                    http::Outcome::Delivered { .. } => {
                        store.mark_score(sink, &id, &body, Ok(()))?;
                        run.report.scores_sent += 1;
                        break;
                    }
                    http::Outcome::Refused { error } => {
                        let error = run.scrub(&format!("score {id}: {error}"));
                        tracing::warn!("{error}");
                        store.mark_score(sink, &id, &body, Err(&error))?;
                        run.report.scores_failed += 1;
                        break;
                    }
                    http::Outcome::Retry { error, retry_after } => {
                        let error = run.scrub(&format!("scores: {error}"));
                        let (wait, not_before) = run.retry_timing(&mut attempt, retry_after);
                        store.mark_score_retry(sink, &id, not_before, &error)?;
                        if Instant::now() + wait > run.deadline {
                            tracing::warn!("{error}; giving up for this run");
                            run.report.gave_up = Some(error);
                            return Ok(());
                        }
                        tracing::info!("{error}; retrying in {:.1}s", wait.as_secs_f64());
                        if !run.keep_lease(store, wait)? {
                            return Ok(());
                        }
                        std::thread::sleep(wait);
                    }
                }
            }
        }
    }
    Ok(())
}

/// The export settings for the sink `name`: Langfuse reads `langfuse.observation.input/output`, so the
/// OpenInference copies (`input.value` / `output.value`) would store content twice there.
pub fn sink_settings(settings: &ExportSettings, name: &str) -> ExportSettings {
    let mut settings = settings.clone();
    settings.content_values = name != "langfuse";
    settings
}

/// `request-0001.json`, …, and `scores.jsonl`: the names [`dry_run`] writes in a sink's folder.
fn is_dry_run_file(name: &std::ffi::OsStr) -> bool {
    name.to_str().is_some_and(|n| {
        n == "scores.jsonl"
            || n.strip_prefix("request-")
                .and_then(|r| r.strip_suffix(".json"))
                .is_some_and(|d| d.len() >= 4 && d.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// The sink folders a dry run writes.
const DRY_RUN_SINKS: [&str; 2] = ["otlp", "langfuse"];

fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

/// Makes `dir` ready for a dry run: created private (0700) when missing; an existing one may hold only what
/// an earlier dry run wrote (sink folders `otlp/`, `langfuse/` with request files and `scores.jsonl`, or
/// request files of older releases at the top), which is removed (so no stale request survives a smaller
/// run).
///
/// Errors: `dir` is not a directory, or holds anything else (it was not written by a dry run).
fn prepare_dry_run_dir(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return create_private_dir(dir);
    }
    let list = |d: &Path| -> Result<Vec<std::fs::DirEntry>> {
        std::fs::read_dir(d)
            .with_context(|| format!("--dry-run {}: not a readable directory", d.display()))?
            .map(|e| e.with_context(|| format!("cannot list {}", d.display())))
            .collect()
    };
    let (mut ours, mut dirs, mut foreign) = (Vec::new(), Vec::new(), Vec::new());
    for e in list(dir)? {
        let is_file = e.file_type().is_ok_and(|t| t.is_file());
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
        let name = e.file_name();
        if is_file && is_dry_run_file(&name) {
            ours.push(e.path());
        } else if is_dir && DRY_RUN_SINKS.iter().any(|s| name == *s) {
            for f in list(&e.path())? {
                if f.file_type().is_ok_and(|t| t.is_file()) && is_dry_run_file(&f.file_name()) {
                    ours.push(f.path());
                } else {
                    foreign.push(format!(
                        "{}/{}",
                        name.to_string_lossy(),
                        f.file_name().to_string_lossy()
                    ));
                }
            }
            dirs.push(e.path());
        } else {
            foreign.push(name.to_string_lossy().into_owned());
        }
    }
    if !foreign.is_empty() {
        foreign.sort();
        anyhow::bail!(
            "--dry-run {}: the directory is not empty and holds files a dry run did not write ({}{}); \
             give a new or empty directory (a dry run replaces only its own request-NNNN.json and scores.jsonl files)",
            dir.display(),
            foreign.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
            if foreign.len() > 3 { ", …" } else { "" }
        );
    }
    for p in ours {
        std::fs::remove_file(&p).with_context(|| format!("cannot remove {}", p.display()))?;
    }
    for d in dirs {
        std::fs::remove_dir(&d).with_context(|| format!("cannot remove {}", d.display()))?;
    }
    Ok(())
}

/// What a dry run wrote for one sink.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DryRunReport {
    pub sink: String,
    pub requests: u64,
    pub spans: u64,
    /// Langfuse scores written to `scores.jsonl`.
    pub scores: u64,
}

/// Writes, for each sink in `sinks` (name and protocol; a generic `otlp` one when none is configured), the
/// requests that would be sent for every stored trace into `dir/<sink>/` as OTLP/JSON (`request-0001.json`,
/// …, in delivery order and batching), and for Langfuse the score bodies that would be posted
/// (`scores.jsonl`, one per line). Changes nothing in the store; two runs over the same store write
/// identical bytes. The files hold prompts and answers: folders are created 0700 and files 0600. What an
/// earlier dry run wrote in `dir` is removed first.
///
/// Errors: `dir` holds files a dry run did not write; a file cannot be written.
pub fn dry_run(
    store: &Store,
    dir: &Path,
    sinks: &[(&str, Protocol)],
    opts: &DeliveryOptions,
) -> Result<Vec<DryRunReport>> {
    prepare_dry_run_dir(dir)?;
    let default = [("otlp", Protocol::Protobuf)];
    let sinks = if sinks.is_empty() {
        &default[..]
    } else {
        sinks
    };
    let mut reports = Vec::new();
    for (name, protocol) in sinks {
        let sink_dir = dir.join(name);
        create_private_dir(&sink_dir)?;
        let settings = sink_settings(&opts.settings, name);
        let with_scores = *name == "langfuse";
        let mut report = DryRunReport {
            sink: name.to_string(),
            ..Default::default()
        };
        let mut scores_seen: std::collections::HashMap<String, usize> = Default::default();
        let mut all_scores: Vec<scores::Score> = Vec::new();
        let mut cursor: Option<Pending> = None;
        // A sink name no delivery row uses: every trace is pending.
        const DRY: &str = "\u{0}dry-run";
        loop {
            let page = store.pending(DRY, i64::MAX, true, cursor.as_ref(), 256)?;
            let Some(last) = page.last().cloned() else {
                break;
            };
            cursor = Some(last);
            let mut all_parts = Vec::new();
            for p in &page {
                if let Some(t) = store.export_trace(&p.trace_id)? {
                    if sampled(&t.session.key, opts.sample_rate) {
                        let scores = if with_scores {
                            scores_for(store, &t, settings.environment.as_deref())?
                        } else {
                            Vec::new()
                        };
                        let all = &HashMap::new();
                        all_parts.extend(parts(
                            &t,
                            p,
                            &settings,
                            span_budget(*protocol),
                            all,
                            scores,
                        ));
                    }
                }
            }
            for request in requests(all_parts, opts.max_batch_spans, span_budget(*protocol)) {
                report.requests += 1;
                report.spans += request.iter().map(|p| p.spans.len() as u64).sum::<u64>();
                let mut spans = Vec::new();
                for part in request {
                    spans.extend(part.spans);
                    // Queued in acknowledgement order; a score queued again (a session's) replaces the
                    // earlier body in place, as the outbox does.
                    for score in part.scores {
                        match scores_seen.get(&score.id) {
                            Some(&i) => all_scores[i] = score,
                            None => {
                                scores_seen.insert(score.id.clone(), all_scores.len());
                                all_scores.push(score);
                            }
                        }
                    }
                }
                let req = encode::request(spans, &settings);
                let path = sink_dir.join(format!("request-{:04}.json", report.requests));
                write_private(&path, &serde_json::to_vec_pretty(&req)?)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
        }
        if with_scores {
            let mut lines = String::new();
            for s in &all_scores {
                lines.push_str(&serde_json::to_string(s)?);
                lines.push('\n');
            }
            let path = sink_dir.join("scores.jsonl");
            write_private(&path, lines.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            report.scores = all_scores.len() as u64;
        }
        reports.push(report);
    }
    Ok(reports)
}

/// Writes a new file readable by its owner only (0600).
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Kind, Level};
    use crate::store::outbox::ExportObservation;
    use crate::store::read::SessionRow;

    /// A trace of 600 tool calls with 20,000-char outputs (~12 MB of content).
    fn huge_trace() -> ExportTrace {
        let observations = (0..600)
            .map(|i| ExportObservation {
                id: format!("{i:016x}"),
                parent_id: None,
                kind: Kind::Tool,
                name: "bash".into(),
                key: format!("tool:{i}"),
                start_ms: Some(1_000 + i),
                end_ms: Some(2_000 + i),
                completion_start_ms: None,
                level: Level::Default,
                status_message: None,
                model: None,
                response_model: None,
                provider: None,
                usage: None,
                cost_total: None,
                cost: None,
                cost_source: None,
                input: Some("{\"command\":\"cat big.log\"}".into()),
                output: Some("x".repeat(20_000)),
                metadata: None,
                tool_call_id: Some(format!("call_{i}")),
                finish_reason: None,
                response_id: None,
            })
            .collect();
        ExportTrace {
            id: "0123456789abcdef0123456789abcdef".into(),
            root_span_id: "fedcba9876543210".into(),
            name: Some("pi prompt 1".into()),
            start_ms: Some(1_000),
            end_ms: Some(3_000),
            input: Some("read the logs".into()),
            output: None,
            anomalies: Vec::new(),
            session: SessionRow {
                key: "pi:s".into(),
                agent: "pi".into(),
                session_id: "s".into(),
                agent_version: None,
                cwd: None,
                start_ms: Some(1_000),
                end_ms: None,
                name: None,
                channel: None,
                user: None,
                parent_session: None,
                file: None,
                agent_cost: None,
            },
            observations,
        }
    }

    #[test]
    fn requests_stay_under_4_mb_and_carry_every_span_once() {
        let trace = huge_trace();
        let pending = Pending {
            trace_id: trace.id.clone(),
            seq: 1,
            start_ms: 1_000,
        };
        let settings = DeliveryOptions::default().settings;
        for protocol in [Protocol::Protobuf, Protocol::Json] {
            let all = parts(
                &trace,
                &pending,
                &settings,
                span_budget(protocol),
                &HashMap::new(),
                Vec::new(),
            );
            let reqs = requests(all, 100_000, span_budget(protocol));
            assert!(reqs.len() >= 3, "{protocol:?}: {} requests", reqs.len());
            let mut ids = std::collections::BTreeSet::new();
            for r in &reqs {
                let size = body(r, &settings, protocol).len();
                assert!(
                    size <= MAX_REQUEST_BYTES,
                    "{protocol:?}: a request of {size} bytes"
                );
                for p in r {
                    for s in &p.spans {
                        assert!(ids.insert(s.span_id.clone()), "a span sent twice");
                    }
                }
            }
            assert_eq!(ids.len(), 601, "600 tools + the root");
            // Only the trace's last part acknowledges it.
            let acks: usize = reqs.iter().flatten().filter(|p| p.last).count();
            assert_eq!(acks, 1);
        }
    }

    #[test]
    fn sampling_is_deterministic_per_session() {
        let keys: Vec<String> = (0..1000).map(|i| format!("pi:session-{i}")).collect();
        let kept = keys.iter().filter(|k| sampled(k, 0.25)).count();
        assert!((200..300).contains(&kept), "{kept} of 1000 kept at 25%");
        assert!(keys.iter().all(|k| sampled(k, 0.25) == sampled(k, 0.25)));
        assert!(keys.iter().all(|k| sampled(k, 1.0)));
        assert!(!keys.iter().any(|k| sampled(k, 0.0)));
    }
}
