//! `tokentrace watch`: import what the agents write as they write it, deliver it within a second.
//!
//! One loop on this thread: file notifications (coalesced for [`QUIET`], at most [`MAX_BATCH`]) import the
//! files that changed through the same path as `report` and `sync`; a full rescan every `--rescan` seconds
//! is the safety net (network file systems, missed events); signals stop it or re-read the config. The
//! delivery thread ([`crate::watch::flush`]) sends what the imports changed.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use clap::Args;

use super::{print_import_warnings, sync, Context, Global, SourceArgs};
use crate::ingest::{self, Enricher, ImportOptions, ImportSummary};
use crate::model::Agent;
use crate::sinks::endpoint;
use crate::sources::{self, DiscoveredFile, Root};
use crate::store::Store;
use crate::watch::flush::{Flusher, DEFAULT_FLUSH};
use crate::watch::fs::{Change, FsWatch};
use crate::watch::lock;
use crate::watch::push::MetricsPusher;

/// Events are gathered until none came for this long…
const QUIET: Duration = Duration::from_millis(10);
/// …or for at most this long, so a file written without pause is still imported while it grows.
const MAX_BATCH: Duration = Duration::from_millis(200);
/// When a new folder is read a second time (see `recheck` in [`run`]).
const RECHECK: Duration = Duration::from_millis(1000);

#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  tokentrace watch                          every agent's default folders
  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 tokentrace watch
  tokentrace watch --source claude,codex    only these agents
  tokentrace watch --path ~/bots/sessions   a folder of session files (any agent)
  tokentrace watch --metrics-listen 127.0.0.1:9464   also serve /metrics

What it guarantees:
- A line is imported once it is complete (a line still being written waits).
- Every change reaches each configured backend: only the spans that changed,
  at most once per TOKENTRACE_FLUSH_MS (default 1000) per backend, retried
  with backoff for as long as it runs.
- Pending deliveries wait in the store: a backend down for a day costs no
  memory, and a kill (even SIGKILL) loses nothing.
- SIGINT / SIGTERM: stop reading, deliver what is pending within
  --shutdown-timeout, exit 0; a second signal exits at once.
- SIGHUP re-reads the config. One watch per store (a lock in the data dir).")]
pub struct WatchArgs {
    /// Only these agents (repeatable or comma-separated): pi, omp, claude, codex, gemini.
    #[arg(long, value_delimiter = ',', value_name = "AGENT")]
    pub source: Vec<String>,
    /// Watch DIR (recursively; the agent is detected from each file) instead of the agents' default
    /// locations. Repeatable. A folder that does not exist yet is waited for.
    #[arg(long, value_name = "DIR")]
    pub path: Vec<PathBuf>,
    /// Seconds between full rescans, the safety net for changes notifications miss (network file systems).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub rescan: u64,
    /// Seconds to deliver what is pending after SIGINT / SIGTERM before exiting (the rest stays queued).
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub shutdown_timeout: u64,
    /// Seconds between status lines in the log (files watched, traces sent, pending per backend); 0: none.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub status_interval: u64,
    /// Serve the metrics (as `tokentrace metrics` prints them) for Prometheus at http://ADDR/metrics, e.g.
    /// 127.0.0.1:9464. Bind a non-loopback address only on a network you trust: the labels name your
    /// models, tools, channels and users.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Also serve and push an agent's own metric names for its sessions (claude_code, codex); see `metrics --help`.
    #[arg(long, value_delimiter = ',', value_name = "AGENT")]
    pub metrics_compat: Vec<String>,
}

impl WatchArgs {
    fn sources(&self) -> SourceArgs {
        SourceArgs {
            source: self.source.clone(),
            path: Vec::new(),
            no_import: false,
        }
    }

    /// `--path` folders made absolute; unlike `report`, one that does not exist yet is fine (waited for).
    fn roots(&self, ctx: &Context) -> Result<Vec<Root>> {
        if self.path.is_empty() {
            return ctx.roots(&self.sources());
        }
        let cwd = std::env::current_dir().context("cannot read the working directory")?;
        Ok(self
            .path
            .iter()
            .map(|p| Root {
                agent: None,
                dir: std::fs::canonicalize(p).unwrap_or_else(|_| cwd.join(p)),
                origin: "--path".into(),
            })
            .collect())
    }
}

/// What wakes the loop.
enum Wake {
    Fs(notify::Result<notify::Event>),
    Signal(i32),
}

/// The importing side of `watch`: the store, the enrichment, the roots and what is known about files.
struct Importer {
    store: Store,
    enricher: Enricher,
    agents: Vec<Agent>,
    roots: Vec<Root>,
    /// The agent of every file imported so far (a file is detected once).
    known: HashMap<PathBuf, Agent>,
    /// Totals since start, for the status line.
    files_read: u64,
    records: u64,
    warnings: u64,
}

impl Importer {
    /// A full discovery and import, as `report` does.
    fn rescan(&mut self, show_progress: bool) -> Result<ImportSummary> {
        let started = jiff::Timestamp::now().as_millisecond();
        let (summary, files, ()) = super::import_roots(
            &mut self.store,
            &self.roots,
            &self.agents,
            &self.enricher,
            show_progress,
            |_| Ok(()),
        )?;
        for f in files {
            self.known.insert(f.path, f.agent);
        }
        self.count(&summary, started)?;
        Ok(summary)
    }

    /// Imports the files a batch of notifications names (and whatever new folders hold).
    fn import_change(&mut self, change: &Change, appeared: &[PathBuf]) -> Result<ImportSummary> {
        let mut files: Vec<DiscoveredFile> = Vec::new();
        let mut seen = BTreeSet::new();
        for path in &change.files {
            if !matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("jsonl" | "json")
            ) || !self.roots.iter().any(|r| path.starts_with(&r.dir))
            {
                continue;
            }
            let agent = match self.known.get(path) {
                Some(a) => Some(*a),
                // Not recognisable yet (an empty new file, a first line still being written): the next
                // write tries again.
                None => sources::detect(path),
            };
            if let Some(agent) = agent.filter(|a| self.agents.contains(a)) {
                if seen.insert(path.clone()) {
                    files.push(DiscoveredFile {
                        path: path.clone(),
                        agent,
                        stat: None,
                    });
                }
            }
        }
        // A new folder (a Codex day, a Claude project) may hold files written before its watch existed.
        let dirs: Vec<Root> = change
            .new_dirs
            .iter()
            .chain(appeared)
            .filter(|d| self.roots.iter().any(|r| d.starts_with(&r.dir)))
            .map(|d| Root {
                agent: None,
                dir: d.clone(),
                origin: "watch".into(),
            })
            .collect();
        if !dirs.is_empty() {
            let found = sources::scan(&dirs, &self.agents, |p| self.known.get(p).copied());
            for f in found.files {
                if seen.insert(f.path.clone()) {
                    files.push(f);
                }
            }
        }
        if files.is_empty() {
            return Ok(ImportSummary::default());
        }
        let started = jiff::Timestamp::now().as_millisecond();
        let summary = ingest::import_with(
            &mut self.store,
            &files,
            &self.enricher,
            ImportOptions::default(),
        )?;
        for f in files {
            self.known.insert(f.path, f.agent);
        }
        self.count(&summary, started)?;
        Ok(summary)
    }

    fn count(&mut self, summary: &ImportSummary, since_ms: i64) -> Result<()> {
        super::after_import(
            &mut self.store,
            summary,
            self.enricher.config(),
            since_ms,
            true,
        )?;
        self.files_read += summary.files_read;
        self.records += summary.records;
        self.warnings += summary.warnings;
        for w in &summary.warning_samples {
            tracing::warn!("{w}");
        }
        Ok(())
    }
}

/// A duration in ms from the environment variable `var`, else `default`. Errors: not a positive number.
fn env_ms(ctx: &Context, var: &str, default: Duration) -> Result<Duration> {
    match ctx.env.var(var) {
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
            .with_context(|| format!("{var}={v} is not a positive number of ms")),
        None => Ok(default),
    }
}

/// `TOKENTRACE_FLUSH_MS`, else [`DEFAULT_FLUSH`].
fn flush_interval(ctx: &Context) -> Result<Duration> {
    env_ms(ctx, "TOKENTRACE_FLUSH_MS", DEFAULT_FLUSH)
}

/// `OTEL_METRIC_EXPORT_INTERVAL` (ms, as the OpenTelemetry SDKs read it), else
/// [`crate::watch::push::DEFAULT_INTERVAL`].
fn metrics_interval(ctx: &Context) -> Result<Duration> {
    env_ms(
        ctx,
        "OTEL_METRIC_EXPORT_INTERVAL",
        crate::watch::push::DEFAULT_INTERVAL,
    )
}

/// The backends and delivery options the context asks for. Errors: a configuration problem (bad
/// variables, credentials over plain http).
fn delivery(ctx: &Context) -> Result<(Vec<endpoint::Endpoint>, crate::sinks::DeliveryOptions)> {
    let opts = sync::delivery_options(ctx)?;
    let endpoints = endpoint::configured(&ctx.env)?;
    for ep in &endpoints {
        endpoint::check_transport(ep, ctx.config.allow_insecure)?;
    }
    Ok((endpoints, opts))
}

/// Forwards SIGINT, SIGTERM and SIGHUP to the loop; a second SIGINT / SIGTERM exits at once (the outbox keeps
/// whatever was not delivered).
fn forward_signals(tx: std::sync::mpsc::Sender<Wake>) -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .context("cannot install signal handlers")?;
    std::thread::Builder::new()
        .name("tt-signals".into())
        .spawn(move || {
            let mut stops = 0;
            for sig in signals.forever() {
                if sig != SIGHUP {
                    stops += 1;
                    if stops > 1 {
                        eprintln!("tokentrace watch: second signal, exiting now (pending deliveries stay queued)");
                        std::process::exit(128 + sig);
                    }
                }
                if tx.send(Wake::Signal(sig)).is_err() {
                    return;
                }
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}

/// Waits for more notifications after the first, until [`QUIET`] passes without one or [`MAX_BATCH`] is
/// reached; a signal that arrives meanwhile is returned for the loop.
fn gather(rx: &Receiver<Wake>, change: &mut Change) -> Option<i32> {
    let until = Instant::now() + MAX_BATCH;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        match rx.recv_timeout(left.min(QUIET)) {
            Ok(Wake::Fs(e)) => change.add(e),
            Ok(Wake::Signal(s)) => return Some(s),
            Err(_) => return None,
        }
    }
}

pub fn run(global: &Global, ctx: Context, args: WatchArgs) -> Result<()> {
    anyhow::ensure!(
        !ctx.ephemeral,
        "watch keeps what it imported and what is pending in a store: --ephemeral cannot be used"
    );
    let interval = flush_interval(&ctx)?;
    let (endpoints, opts) = delivery(&ctx)?;
    let agents = args.sources().agents()?;
    let roots = args.roots(&ctx)?;
    let compat = ctx.metrics_compat(&args.metrics_compat)?;
    let _lock = lock::acquire(&ctx.data_dir)?;

    let (tx, rx) = std::sync::mpsc::channel::<Wake>();
    forward_signals(tx.clone())?;
    // Watch before the first import, so nothing written during it is missed.
    let mut fs =
        FsWatch::with_channel(roots.iter().map(|r| r.dir.clone()).collect(), tx, Wake::Fs)?;
    let mut importer = Importer {
        store: ctx.open_store()?,
        enricher: ctx.enricher()?,
        agents,
        roots,
        known: HashMap::new(),
        files_read: 0,
        records: 0,
        warnings: 0,
    };
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let alerts_running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let first = importer.rescan(interactive)?;
    print_import_warnings(&first);
    crate::sinks::alerts::spawn_send(
        ctx.store_path(),
        importer.enricher.config().alerts.clone(),
        alerts_running.clone(),
    );
    release_freed_memory();
    tracing::info!(
        "watching {} folder(s) ({} waiting to appear); {} session file(s) known, {} new record(s) imported",
        fs.watched_roots(),
        importer.roots.len().saturating_sub(fs.watched_roots()),
        importer.known.len(),
        first.records
    );
    let pusher = match endpoint::metrics_endpoint(&ctx.env)? {
        Some(ep) => {
            endpoint::check_transport(&ep, ctx.config.allow_insecure)?;
            let interval = metrics_interval(&ctx)?;
            tracing::info!(
                "pushing metrics to {} every {} s",
                ep.display_url(),
                interval.as_secs_f64()
            );
            let settings = crate::sinks::sink_settings(&opts.settings, ep.name);
            Some(MetricsPusher::start(
                ctx.store_path(),
                ep,
                settings,
                interval,
                compat,
                crate::sinks::metrics::Temporality::parse(
                    ctx.env
                        .var("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"),
                )?,
            )?)
        }
        None => None,
    };
    if let Some(addr) = args.metrics_listen {
        let bound = crate::metrics::serve::spawn(addr, ctx.store_path(), compat)?;
        tracing::info!("serving metrics at http://{bound}/metrics");
    }
    let mut flusher = if endpoints.is_empty() {
        tracing::info!(
            "no backend configured (OTEL_EXPORTER_OTLP_ENDPOINT, LANGFUSE_*): keeping the store up to date only"
        );
        None
    } else {
        for ep in &endpoints {
            tracing::info!("delivering to {} at {}", ep.name, ep.display_url());
        }
        Some(Flusher::start(ctx.store_path(), endpoints, opts, interval)?)
    };

    let rescan_every = Duration::from_secs(args.rescan.max(1));
    let status_every =
        (args.status_interval > 0).then(|| Duration::from_secs(args.status_interval));
    let mut next_rescan = Instant::now() + rescan_every;
    let mut next_status = status_every.map(|d| Instant::now() + d);
    let mut last_error: Option<String> = None;
    // Folders created lately are read again once `notify` has surely added their watch: a file written into
    // a new folder between our read of it and that watch has no event of its own.
    let mut recheck: Option<(Instant, BTreeSet<PathBuf>)> = None;
    let stop_signal = loop {
        let now = Instant::now();
        let mut wake_at = next_status.map_or(next_rescan, |s| s.min(next_rescan));
        if let Some((at, _)) = &recheck {
            wake_at = wake_at.min(*at);
        }
        let mut change = Change::default();
        let mut signal = None;
        match rx.recv_timeout(wake_at.saturating_duration_since(now)) {
            Ok(Wake::Fs(e)) => {
                change.add(e);
                signal = gather(&rx, &mut change);
            }
            Ok(Wake::Signal(s)) => signal = Some(s),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break None,
        }
        if recheck
            .as_ref()
            .is_some_and(|(at, _)| Instant::now() >= *at)
        {
            if let Some((_, dirs)) = recheck.take() {
                change.new_dirs.extend(dirs);
            }
        } else if !change.new_dirs.is_empty() {
            let at = Instant::now() + RECHECK;
            let dirs = &mut recheck.get_or_insert_with(|| (at, BTreeSet::new())).1;
            dirs.extend(change.new_dirs.iter().cloned());
        }
        let rescan = change.rescan || Instant::now() >= next_rescan;
        // Watches follow what exists once per wake-up (a rescan reads the roots that appeared anyway).
        let appeared = if rescan || !change.is_empty() {
            fs.refresh()
        } else {
            Vec::new()
        };
        let result = if rescan {
            next_rescan = Instant::now() + rescan_every;
            let summary = importer.rescan(false);
            release_freed_memory();
            summary
        } else if !change.is_empty() {
            importer.import_change(&change, &appeared)
        } else {
            Ok(ImportSummary::default())
        };
        // Alerts for anomalies an import found, and retries of failed ones at each rescan, on a thread of
        // their own (only then: a wake-up that imported nothing found nothing new).
        if rescan || result.as_ref().is_ok_and(|s| s.files_read > 0) {
            crate::sinks::alerts::spawn_send(
                ctx.store_path(),
                importer.enricher.config().alerts.clone(),
                alerts_running.clone(),
            );
        }
        match result {
            Ok(summary) if summary.records > 0 => {
                tracing::debug!(
                    "imported {} record(s) from {} file(s)",
                    summary.records,
                    summary.files_read
                );
                if let Some(f) = &flusher {
                    f.changed();
                }
            }
            Ok(_) => {}
            // A store error (disk full, a store locked for minutes): say so and go on; the next change or
            // rescan tries again from the stored offsets.
            Err(e) => {
                let msg = format!("{e:#}");
                tracing::error!("import failed: {msg}");
                last_error = Some(msg);
            }
        }
        if next_status.is_some_and(|t| Instant::now() >= t) {
            next_status = status_every.map(|d| Instant::now() + d);
            status_line(&fs, &importer, flusher.as_ref(), last_error.as_deref());
        }
        match signal {
            Some(signal_hook::consts::SIGHUP) => {
                match Context::new(global) {
                    Ok(new) => match (new.enricher(), delivery(&new)) {
                        (Ok(enricher), Ok((endpoints, opts))) => {
                            tracing::info!("SIGHUP: configuration re-read");
                            importer.enricher = enricher;
                            match &flusher {
                                Some(f) => f.reload(endpoints, opts),
                                None if !endpoints.is_empty() => {
                                    flusher = Some(Flusher::start(
                                        new.store_path(),
                                        endpoints,
                                        opts,
                                        flush_interval(&new).unwrap_or(interval),
                                    )?)
                                }
                                None => {}
                            }
                        }
                        (Err(e), _) | (_, Err(e)) => {
                            tracing::error!("SIGHUP: the new configuration cannot be used, keeping the old one: {e:#}")
                        }
                    },
                    Err(e) => {
                        tracing::error!("SIGHUP: the new configuration cannot be used, keeping the old one: {e:#}")
                    }
                }
            }
            Some(s) => break Some(s),
            None => {}
        }
    };
    tracing::info!(
        "stopping{}: delivering what is pending (at most {} s)",
        stop_signal.map_or(String::new(), |s| format!(" on signal {s}")),
        args.shutdown_timeout
    );
    // Both within --shutdown-timeout: a quarter for the last metrics push, the rest for pending traces.
    let shutdown = Duration::from_secs(args.shutdown_timeout);
    let stopping = Instant::now();
    if let Some(p) = pusher {
        p.stop(shutdown / 4);
    }
    if let Some(f) = flusher {
        let (finished, stats) = f.stop(shutdown.saturating_sub(stopping.elapsed()));
        if !finished {
            tracing::warn!(
                "delivery did not finish in time; the rest stays queued for the next start"
            );
        }
        for s in stats {
            tracing::info!(
                "{}: {} trace(s), {} span(s) sent in {} request(s) since start",
                s.sink,
                s.traces_sent,
                s.spans_sent,
                s.requests
            );
        }
    }
    Ok(())
}

/// Hands memory freed after a big import back to the system. glibc keeps freed heap pages (the first
/// import's parse buffers, the price table's JSON document) in the process for reuse, so a service that
/// imported the shared corpus once sat at 21 MB of heap instead of ~5 MB for as long as it ran.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the allocator's arenas to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The periodic one-line status at info level.
fn status_line(fs: &FsWatch, importer: &Importer, flusher: Option<&Flusher>, error: Option<&str>) {
    let sinks = flusher
        .map(|f| {
            f.stats()
                .iter()
                .map(|s| {
                    format!(
                        "{}: {} trace(s) sent, {} pending, {} refused{}",
                        s.sink,
                        s.traces_sent,
                        s.pending,
                        s.failed,
                        s.last_error
                            .as_deref()
                            .map(|e| format!(", last error: {}", crate::report::printable(e)))
                            .unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_else(|| "no backend".into());
    tracing::info!(
        "status: {} folder(s) watched, {} file(s) known; since start {} file(s) read, {} record(s), {} warning(s); {sinks}{}",
        fs.watched_roots(),
        importer.known.len(),
        importer.files_read,
        importer.records,
        importer.warnings,
        error.map(|e| format!("; last import error: {e}")).unwrap_or_default()
    );
}
