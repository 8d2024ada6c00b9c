//! The import pipeline: file bytes → source parser → model records → pricing → privacy → store.
//!
//! Incremental: each file is read from the offset the store saved, in chunks of complete lines; each chunk
//! is one store transaction together with the new offset and parser checkpoint. A file whose size, mtime
//! and inode are unchanged is skipped without being opened. A file that shrank, was replaced, or whose first
//! bytes changed (pi migrations rewrite whole files; oh-my-pi rewrites its title slot in place) is re-read
//! from the start, replacing what was imported from it.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::model::Record;
use crate::pricing::Pricer;
use crate::privacy::{Privacy, RedactionCounts};
use crate::sources::reader::ChunkReader;
use crate::sources::{DiscoveredFile, FileStat, LineIssue, Parser};
use crate::store::{Chunk, FileRow, FileStamp, FileStamps, FileUpdate, Store};

/// Bytes of a file's head whose hash detects in-place rewrites.
const HEAD_BYTES: u64 = 1024;
/// Bytes before the saved offset whose hash detects a rewrite that keeps the head (and maybe the size): for a
/// file up to this size the whole consumed range is checked.
const TAIL_BYTES: u64 = 64 * 1024;
/// A store transaction is committed once it holds this many records (or [`BATCH_BYTES`] of input), so
/// that thousands of small session files do not cost a commit each.
const BATCH_RECORDS: usize = 10_000;
const BATCH_BYTES: u64 = 4 * 1024 * 1024;
/// An import of at least this many new bytes runs in the store's bulk mode ([`Store::set_bulk`]) with
/// transactions covering [`BULK_FACTOR`] times as many input bytes (and twice as many records): each commit
/// rewrites the index pages it touched, so fewer commits write fewer pages (1 GB Claude benchmark: 285k page
/// writes before).
const BULK_BYTES: u64 = 64 * 1024 * 1024;
const BULK_FACTOR: u64 = 8;

/// Chunks waiting for their transaction.
struct Batch {
    chunks: Vec<Chunk>,
    records: usize,
    bytes: u64,
    /// Bulk mode: larger transactions ([`BULK_FACTOR`]).
    bulk: bool,
    /// The store held no file when the import started: no session can belong to a file that was moved
    /// away since an earlier run, so [`moved_away`] is not asked (a query per session: 13k for pi's 13k
    /// small sessions).
    empty_store: bool,
}

impl Batch {
    fn new(bulk: bool, empty_store: bool) -> Batch {
        Batch {
            chunks: Vec::new(),
            records: 0,
            bytes: 0,
            bulk,
            empty_store,
        }
    }

    fn push(&mut self, chunk: Chunk, bytes: u64) {
        self.records += chunk.records.len();
        self.bytes += bytes;
        self.chunks.push(chunk);
    }

    fn full(&self) -> bool {
        // Records are held in memory until the commit: their count grows only 2x in bulk mode (pi's 13k
        // small sessions: 80k records in a batch took the peak RSS to 226 MB; 20k keep it at 114 MB).
        let (records, bytes) = if self.bulk {
            (2 * BATCH_RECORDS, BULK_FACTOR * BATCH_BYTES)
        } else {
            (BATCH_RECORDS, BATCH_BYTES)
        };
        self.records >= records || self.bytes >= bytes
    }

    fn flush(&mut self, store: &mut Store) -> Result<()> {
        if !self.empty_store {
            for chunk in self.chunks.iter_mut().filter(|c| c.restart) {
                chunk.forget_files = moved_away(store, chunk)?;
            }
        }
        if !self.chunks.is_empty() {
            store.apply_chunks(&self.chunks)?;
        }
        self.chunks.clear();
        self.records = 0;
        self.bytes = 0;
        Ok(())
    }
}

/// Files whose session `chunk` (read from its file's start) now holds, and whose own path is gone: the file
/// was moved (or copied and deleted) and maybe rewritten with new entry ids (pi's format migration), so its
/// old rows would count the same content twice. A file that still exists keeps its rows (a copy beside the
/// original is counted once through the deterministic ids); a deleted file without a successor keeps its
/// data.
fn moved_away(store: &Store, chunk: &Chunk) -> Result<Vec<i64>> {
    let mut out = Vec::new();
    // A Gemini session can span several chat files (a resumed chat starts a new one): a file that holds the
    // same session is no successor of a deleted one, and the deleted one's calls are not in it.
    if chunk.file.agent == crate::model::Agent::Gemini.as_str() {
        return Ok(out);
    }
    for record in &chunk.records {
        let Record::Session(s) = record else { continue };
        if s.secondary_file {
            continue;
        }
        if let Some((id, path)) = store.session_owner(&s.key)? {
            if path != chunk.file.path && !Path::new(&path).exists() && !out.contains(&id) {
                out.push(id);
            }
        }
    }
    Ok(out)
}

/// Enrichment applied to every record before it is stored: pricing, channel and user, then the privacy
/// layer (capture policy, redaction, path masking, caps).
pub struct Enricher {
    pricer: Pricer,
    privacy: Privacy,
    config: Config,
    home: Option<std::path::PathBuf>,
}

impl Enricher {
    /// Enrichment from the config and the environment the privacy layer reads (secret-looking variables are
    /// redacted wherever their values appear). Errors: an invalid capture policy or field override.
    pub fn try_new(
        config: Config,
        home: Option<std::path::PathBuf>,
        env: &HashMap<String, String>,
    ) -> Result<Enricher> {
        Ok(Enricher {
            pricer: Pricer::new(config.prices.clone()),
            privacy: Privacy::new(&config, env, home.clone())?,
            config,
            home,
        })
    }

    /// Enrichment without environment literals (tests, benchmarks). Panics on an invalid capture policy in
    /// `config`; user configs go through [`Enricher::try_new`].
    pub fn new(config: Config, home: Option<std::path::PathBuf>) -> Enricher {
        Enricher::try_new(config, home, &HashMap::new()).expect("valid privacy settings")
    }

    /// The config this enrichment was built from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The pricer applied to every generation (also used to re-price the store when prices change).
    pub fn pricer(&self) -> &Pricer {
        &self.pricer
    }

    /// Rejects impossible values, prices generations, sets channel and user, and applies the privacy layer.
    /// Returns the time the privacy layer took, ns.
    pub fn apply(&self, records: &mut [Record], redactions: &mut RedactionCounts) -> u64 {
        for record in records.iter_mut() {
            match record {
                Record::Observation(o) => {
                    reject_implausible(o);
                    self.pricer.price(o);
                }
                Record::Session(s) => {
                    // Channel rules match the real path, before it is masked.
                    s.channel = self
                        .config
                        .channel_for(s.cwd.as_deref(), self.home.as_deref());
                    s.user = self.config.user.clone();
                }
                Record::Trace(_) | Record::Drift(_) => {}
            }
        }
        let t = Instant::now();
        self.privacy.apply(records, redactions);
        t.elapsed().as_nanos() as u64
    }
}

/// Rejects token counts above [`crate::model::MAX_TOKENS_PER_CALL`] (or negative / not a number) and agent
/// costs that are negative or above [`crate::model::MAX_USD_PER_CALL`]: the record keeps its other values
/// and carries a flag saying what was rejected.
fn reject_implausible(o: &mut crate::model::Observation) {
    let mut reasons = Vec::new();
    if let Some(u) = o.usage.as_mut() {
        reasons.extend(u.reject_implausible());
    }
    if let Some(c) = o.agent_cost {
        let max = crate::model::usd_to_pico(crate::model::MAX_USD_PER_CALL);
        let parts = [c.input, c.output, c.cache_read, c.cache_write, c.total];
        if parts.iter().any(|p| *p < 0 || *p > max) {
            reasons.push(format!(
                "agent cost {} USD",
                crate::model::pico_to_usd(c.total)
            ));
            o.agent_cost = None;
        }
    }
    if !reasons.is_empty() {
        o.flag = Some(format!("rejected: {}", reasons.join(", ")));
    }
}

/// How many records of a chunk were flagged, and the first one's reason.
fn flagged(records: &[Record]) -> (u64, Option<String>) {
    let mut n = 0;
    let mut first = None;
    for r in records {
        if let Record::Observation(o) = r {
            if let Some(f) = &o.flag {
                n += 1;
                first.get_or_insert_with(|| f.clone());
            }
        }
    }
    (n, first)
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ImportSummary {
    pub files_seen: u64,
    /// Files whose stored row this import wrote: new, grown, rewritten or touched (each read from its stored
    /// offset), or renamed. 0: the import wrote nothing, and what was read from the store before it holds.
    pub files_changed: u64,
    /// Files that had new bytes.
    pub files_read: u64,
    /// Files re-read from the start because they were rewritten.
    pub files_restarted: u64,
    pub bytes_read: u64,
    pub records: u64,
    /// Line problems (corrupt JSON, invalid UTF-8) and unreadable files.
    pub warnings: u64,
    /// The first few warnings, as `path:offset: message`.
    pub warning_samples: Vec<String>,
    /// Session files or folders that could not be read (permission denied, I/O error).
    pub unreadable: u64,
    /// Records with a rejected (impossible) token count or cost.
    pub flagged: u64,
    /// `.jsonl` files in an agent's session folder that do not read as its sessions.
    pub unrecognized: u64,
    /// Secrets redacted, by kind.
    pub redactions: RedactionCounts,
    /// Time spent in the privacy layer (policy, redaction, masking, caps), ns.
    pub privacy_ns: u64,
    /// Wall time of the whole import, ns.
    pub total_ns: u64,
}

impl ImportSummary {
    /// Adds what discovery could not read or recognise: each a warning; unreadable ones also counted in
    /// [`ImportSummary::unreadable`] (reports say "N session files could not be read").
    pub fn add_problems(&mut self, problems: &[crate::sources::Problem]) {
        for p in problems {
            let what = match p.kind {
                crate::sources::ProblemKind::Unreadable => {
                    self.unreadable += 1;
                    "cannot read"
                }
                crate::sources::ProblemKind::Unrecognized => {
                    self.unrecognized += 1;
                    "not imported"
                }
            };
            self.warn(format!("{}: {what}: {}", p.path.display(), p.reason));
        }
    }

    /// Adds what reading one file found (its counts, warnings and redactions).
    fn absorb(&mut self, other: ImportSummary) {
        self.files_read += other.files_read;
        self.files_restarted += other.files_restarted;
        self.bytes_read += other.bytes_read;
        self.records += other.records;
        self.warnings += other.warnings;
        let room = 20usize.saturating_sub(self.warning_samples.len());
        self.warning_samples
            .extend(other.warning_samples.into_iter().take(room));
        self.unreadable += other.unreadable;
        self.flagged += other.flagged;
        self.unrecognized += other.unrecognized;
        for (kind, n) in other.redactions {
            *self.redactions.entry(kind).or_default() += n;
        }
        self.privacy_ns += other.privacy_ns;
    }

    fn warn(&mut self, text: String) {
        tracing::warn!("{text}");
        self.warnings += 1;
        if self.warning_samples.len() < 20 {
            self.warning_samples.push(text);
        }
    }
}

/// Progress display: hidden until the import has run for a moment, and only on a terminal.
struct Progress {
    bar: indicatif::ProgressBar,
    started: Instant,
    shown: bool,
    enabled: bool,
}

impl Progress {
    fn new(total_bytes: u64, enabled: bool) -> Progress {
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(total_bytes),
            indicatif::ProgressDrawTarget::hidden(),
        );
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} importing {msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} ({eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        Progress {
            bar,
            started: Instant::now(),
            shown: false,
            enabled,
        }
    }

    fn inc(&mut self, bytes: u64, what: &str) {
        self.bar.inc(bytes);
        if self.enabled && !self.shown && self.started.elapsed() > Duration::from_millis(300) {
            self.bar
                .set_draw_target(indicatif::ProgressDrawTarget::stderr());
            self.shown = true;
        }
        if self.shown {
            self.bar.set_message(what.to_string());
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

fn head_hash(file: &File, len: u64) -> std::io::Result<String> {
    range_hash(file, 0, len)
}

/// Checksum of the `len` bytes before `end` (CRC-32: it tells a rewrite from the bytes read, nothing more,
/// and costs a fraction of a SHA-256 over up to 64 KiB per file read — 2.8 % of a cold import before).
fn tail_hash(file: &File, end: u64, len: u64) -> std::io::Result<String> {
    let len = len.min(end);
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, end - len)?;
    Ok(format!("crc32:{:08x}", crc32fast::hash(&buf)))
}

fn range_hash(file: &File, start: u64, len: u64) -> std::io::Result<String> {
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, start)?;
    let digest = Sha256::digest(&buf);
    Ok(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
}

/// How an import runs; [`ImportOptions::default`] is what the commands use.
#[derive(Debug, Clone, Copy)]
pub struct ImportOptions {
    /// A progress bar on stderr once the import has run for a moment (only on a terminal).
    pub show_progress: bool,
    /// Parse threads; `None`: `TOKENTRACE_IMPORT_THREADS`, else the available cores (at most 4).
    pub threads: Option<usize>,
    /// Fold records of one chunk that share an id before writing them ([`crate::model::merge`]); off only to
    /// check that folding changes nothing.
    pub coalesce: bool,
    /// New bytes from which the import runs in bulk mode ([`Store::set_bulk`]; into an empty store also
    /// without secondary indexes until the end). Default 64 MB.
    pub bulk_bytes: u64,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            show_progress: false,
            threads: None,
            coalesce: true,
            bulk_bytes: BULK_BYTES,
        }
    }
}

/// Imports whatever is new in `files`. Problems with single files or lines are warnings; only store
/// errors abort.
pub fn import(
    store: &mut Store,
    files: &[DiscoveredFile],
    enricher: &Enricher,
    show_progress: bool,
) -> Result<ImportSummary> {
    let options = ImportOptions {
        show_progress,
        ..ImportOptions::default()
    };
    import_with(store, files, enricher, options)
}

/// [`import`] with explicit [`ImportOptions`].
pub fn import_with(
    store: &mut Store,
    files: &[DiscoveredFile],
    enricher: &Enricher,
    options: ImportOptions,
) -> Result<ImportSummary> {
    // A few files (one transcript): their own rows only; the whole table when renames must be looked for.
    const FEW: usize = 64;
    let mut known = if files.len() <= FEW {
        let paths: Vec<&str> = files.iter().filter_map(|f| f.path.to_str()).collect();
        store.file_stamps_at(&paths)?
    } else {
        store.file_stamps()?
    };
    if files.len() <= FEW && known.len() < files.len() {
        known = store.file_stamps()?;
    }
    import_known(store, files, known, enricher, options)
}

/// [`import_with`] given what the store knows of the files ([`Store::file_stamps`]: every known file, or at
/// least those of `files`, when none of them can be a renamed one), which discovery read already.
pub fn import_known(
    store: &mut Store,
    files: &[DiscoveredFile],
    mut known: FileStamps,
    enricher: &Enricher,
    options: ImportOptions,
) -> Result<ImportSummary> {
    let show_progress = options.show_progress;
    let started = Instant::now();
    let mut summary = ImportSummary::default();
    // What the store knows of each file: one lookup per file, the only one of the many unchanged files. A
    // path it does not know may be a known file under a new name.
    let lookup = |known: &FileStamps, f: &DiscoveredFile| {
        f.path.to_str().and_then(|p| known.get(p)).copied()
    };
    let mut stamps: Vec<Option<FileStamp>> = files.iter().map(|f| lookup(&known, f)).collect();
    if stamps.iter().any(Option::is_none) {
        summary.files_changed += follow_renames(store, files, &mut known)?;
        for (stamp, file) in stamps.iter_mut().zip(files) {
            *stamp = stamp.or_else(|| lookup(&known, file));
        }
    }
    // Stat everything first: the unchanged majority costs one stat each (taken by the walk), and the bar gets
    // a total. Only a file that changed needs its whole row and parser checkpoint.
    let mut jobs = Vec::with_capacity(files.len());
    let mut total = 0u64;
    for (file, stamp) in files.iter().zip(stamps) {
        summary.files_seen += 1;
        let stat = match file.stat() {
            Ok(m) => m,
            Err(e) => {
                summary.unreadable += 1;
                summary.warn(format!("{}: cannot read: {e}", file.path.display()));
                continue;
            }
        };
        if stamp.is_some_and(|stamp| unchanged(&stamp, &stat)) {
            continue;
        }
        let path = file.path.to_string_lossy().into_owned();
        let prev = match stamp {
            Some(_) => {
                let mut row = store.files_at(&[&path])?.remove(&path);
                if let Some(row) = &mut row {
                    row.checkpoint = store
                        .file_checkpoint(row.id)
                        .context("store error while importing")?;
                }
                row.map(Box::new)
            }
            None => None,
        };
        total += stat
            .size
            .saturating_sub(prev.as_ref().map_or(0, |p| p.offset));
        jobs.push(Job {
            file,
            path,
            stat,
            prev,
        });
    }
    summary.files_changed += jobs.len() as u64;
    if jobs.is_empty() {
        // Nothing to write, nor subagent traces to link: what a status bar's call finds most of the time.
        summary.total_ns = started.elapsed().as_nanos() as u64;
        return Ok(summary);
    }
    let mut progress = Progress::new(total, show_progress);
    let bulk = total >= options.bulk_bytes;
    if bulk {
        store
            .set_bulk(true)
            .context("store error while importing")?;
    }
    // A first import into an empty store builds the secondary indexes once at the end (see
    // `Store::drop_import_indexes`).
    let cold = bulk && known.is_empty();
    if cold {
        store
            .drop_import_indexes()
            .context("store error while importing")?;
    }
    let mut batch = Batch::new(bulk, known.is_empty());
    let prepared = started.elapsed();
    let mut store_time = Duration::ZERO;
    run_jobs(&jobs, enricher, options, |msg| match msg {
        Msg::Chunk(chunk, bytes, job) => {
            batch.push(chunk, bytes);
            if batch.full() {
                progress.inc(batch.bytes, &short_name(&job.file.path));
                let t = Instant::now();
                batch.flush(store).context("store error while importing")?;
                store_time += t.elapsed();
            }
            Ok(())
        }
        Msg::Done(delta) => {
            summary.absorb(delta);
            Ok(())
        }
    })?;
    progress.inc(batch.bytes, "");
    let t = Instant::now();
    batch.flush(store).context("store error while importing")?;
    // The orphan linking below looks for `trace_id IS NULL` through `observations_trace`.
    if cold {
        let t_index = Instant::now();
        store
            .create_import_indexes()
            .context("store error while indexing")?;
        tracing::debug!("indexed in {:?}", t_index.elapsed());
    }
    let t_link = Instant::now();
    store
        .link_orphan_traces()
        .context("store error while linking subagent traces")?;
    tracing::debug!("linked subagent traces in {:?}", t_link.elapsed());
    if bulk {
        store
            .set_bulk(false)
            .context("store error while importing")?;
    }
    store_time += t.elapsed();
    progress.finish();
    summary.total_ns = started.elapsed().as_nanos() as u64;
    if summary.files_read > 0 {
        tracing::info!(
            "imported {} file(s), {:.1} MB, {} records in {:.0} ms (stat pass and checkpoints {:.0} ms, store writes {:.0} ms); \
             privacy layer {:.0} ms ({:.1}%); redactions {:?}",
            summary.files_read,
            summary.bytes_read as f64 / 1e6,
            summary.records,
            summary.total_ns as f64 / 1e6,
            prepared.as_secs_f64() * 1e3,
            store_time.as_secs_f64() * 1e3,
            summary.privacy_ns as f64 / 1e6,
            100.0 * summary.privacy_ns as f64 / summary.total_ns.max(1) as f64,
            summary.redactions
        );
    }
    Ok(summary)
}

/// One file with new bytes, as the stat pass found it.
struct Job<'a> {
    file: &'a DiscoveredFile,
    path: String,
    stat: FileStat,
    /// What the store knows about it, with its parser checkpoint. Boxed: a cold import holds one job per
    /// file (32k for the 4 GB benchmark), nearly all without a row, and an inline row is 200 bytes.
    prev: Option<Box<FileRow>>,
}

/// What a parse worker hands to the writer.
enum Msg<'j, 'a> {
    /// A chunk of a file (records and the file state after them) and the input bytes it covers.
    Chunk(Chunk, u64, &'j Job<'a>),
    /// A file is done: what reading it found (counts, warnings, redactions).
    Done(ImportSummary),
}

/// Chunks a parse worker may have ready before the writer takes them: bounds memory (a chunk covers at most
/// [`crate::sources::reader::CHUNK_BYTES`] of input) while the writer is busy with another file.
const QUEUE_CHUNKS: usize = 4;

/// Parses `jobs` on worker threads and hands their chunks to `write` on this thread, in the order of `jobs`
/// and of the chunks within each file — the store sees exactly the sequence a single thread would produce,
/// so the result does not depend on the thread count. Files are dealt round-robin (worker `w` reads jobs
/// `w`, `w + n`, …) and each worker has its own bounded queue, so the writer always knows whose queue holds
/// the next file and a worker runs at most [`QUEUE_CHUNKS`] chunks ahead. Parsing, enrichment and redaction
/// are ~60 % of a cold import's CPU and the store writes the rest: the two overlap on two cores.
/// `TOKENTRACE_IMPORT_THREADS` sets the worker count (default: the available cores, at most 4).
fn run_jobs<'a>(
    jobs: &[Job<'a>],
    enricher: &Enricher,
    options: ImportOptions,
    mut write: impl FnMut(Msg<'_, 'a>) -> Result<()>,
) -> Result<()> {
    let workers = options
        .threads
        .unwrap_or_else(import_threads)
        .min(jobs.len())
        .max(1);
    let coalesce = options.coalesce;
    std::thread::scope(|scope| {
        let mut queues = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Msg<'_, 'a>>(QUEUE_CHUNKS);
            queues.push(rx);
            let worker = std::thread::Builder::new().name(format!("tt-parse-{w}"));
            let spawned = worker.spawn_scoped(scope, move || {
                for job in jobs.iter().skip(w).step_by(workers) {
                    let mut delta = ImportSummary::default();
                    let mut emit =
                        |chunk: Chunk, bytes: u64| tx.send(Msg::Chunk(chunk, bytes, job)).is_ok();
                    if let Err(e) = import_file(job, enricher, coalesce, &mut delta, &mut emit) {
                        if e.is::<Stopped>() {
                            return;
                        }
                        delta.unreadable += 1;
                        delta.warn(format!("{}: cannot read: {e:#}", job.path));
                    }
                    if tx.send(Msg::Done(delta)).is_err() {
                        return; // the writer stopped (a store error): nothing more is wanted
                    }
                }
            });
            spawned.context("cannot start an import thread")?;
        }
        for i in 0..jobs.len() {
            loop {
                let msg = queues[i % workers]
                    .recv()
                    .map_err(|_| anyhow::anyhow!("an import worker stopped unexpectedly"))?;
                let done = matches!(msg, Msg::Done(_));
                write(msg)?;
                if done {
                    break;
                }
            }
        }
        Ok(())
    })
}

/// Parse workers for an import: `TOKENTRACE_IMPORT_THREADS`, else the available cores (at most 4: one writer
/// keeps up with about that many).
fn import_threads() -> usize {
    std::env::var("TOKENTRACE_IMPORT_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(4)
        })
}

/// The writer is gone (it stopped on a store error): a worker stops reading.
#[derive(Debug)]
struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("import stopped")
    }
}

impl std::error::Error for Stopped {}

/// A file at a new path with the device and inode of a known file whose path is gone was renamed: the store
/// follows it (same offset, same rows), so a moved session is neither read again nor counted twice. Returns
/// how many it followed.
fn follow_renames(
    store: &mut Store,
    files: &[DiscoveredFile],
    known: &mut FileStamps,
) -> Result<u64> {
    // Only a path the store does not know can be a known file under a new name (the caller found some).
    // A known path the scan just found exists: only the others are looked at (one stat each). Checking
    // every known path cost a second stat per file: 40 % of a warm `status` on the 1 GB benchmark.
    let found: std::collections::HashSet<&str> =
        files.iter().filter_map(|f| f.path.to_str()).collect();
    let mut gone: HashMap<(u64, u64), String> = HashMap::new();
    for (path, row) in known.iter() {
        if !found.contains(path) && !Path::new(path).exists() {
            gone.insert((row.dev, row.ino), path.to_string());
        }
    }
    if gone.is_empty() {
        return Ok(0);
    }
    let mut renamed = 0;
    for file in files {
        let path = file.path.to_string_lossy().into_owned();
        if known.contains(&path) {
            continue;
        }
        let Ok(stat) = file.stat() else {
            continue;
        };
        if let Some(old) = gone.remove(&(stat.dev, stat.ino)) {
            store
                .rename_file(&old, &path)
                .context("store error while following a renamed file")?;
            renamed += 1;
            known.rename(&old, path);
        }
    }
    Ok(renamed)
}

/// Whether `stat` is the file the store last saw as `stamp` (same device, inode, size and mtime): an import
/// leaves it alone.
fn unchanged(stamp: &FileStamp, stat: &FileStat) -> bool {
    stamp.dev == stat.dev
        && stamp.ino == stat.ino
        && stamp.size == stat.size
        && stamp.mtime_ns == stat.mtime_ns
}

/// The files among `files` that the store does not know or that changed since it saw them (the import's own
/// check, [`unchanged`]), for a caller that builds the enrichment only when something is to be read (a
/// status bar's `statusline` call). Files that cannot be stat'ed are left for the import to report.
pub fn changed_files(store: &Store, files: Vec<DiscoveredFile>) -> Result<Vec<DiscoveredFile>> {
    let paths: Vec<&str> = files.iter().filter_map(|f| f.path.to_str()).collect();
    let known = store.file_stamps_at(&paths)?;
    Ok(files
        .into_iter()
        .filter(|f| {
            let stamp = f.path.to_str().and_then(|p| known.get(p));
            !matches!((stamp, f.stat()), (Some(stamp), Ok(stat)) if unchanged(stamp, &stat))
        })
        .collect())
}

/// Reads the new part of one file into chunks handed to `emit` (which answers false when the writer is gone:
/// the read stops with [`Stopped`]).
fn import_file(
    job: &Job<'_>,
    enricher: &Enricher,
    coalesce: bool,
    summary: &mut ImportSummary,
    emit: &mut dyn FnMut(Chunk, u64) -> bool,
) -> Result<()> {
    let Job {
        file,
        path,
        stat,
        prev,
    } = job;
    let prev = prev.as_deref();
    let handle = File::open(&file.path)?;
    let size = stat.size;
    // Decide where to start: the saved offset, unless the file was replaced, shrank or its head changed.
    let mut resume = prev.filter(|p| {
        p.dev == stat.dev
            && p.ino == stat.ino
            && p.agent == file.agent.as_str()
            && p.offset <= size
            && p.head_len <= size
            && head_hash(&handle, p.head_len).ok().as_deref() == Some(p.head_hash.as_str())
            // What was consumed must still be there: a same-size rewrite past the head changes this.
            && p.tail_hash.as_deref().is_none_or(|h| {
                tail_hash(&handle, p.offset, p.tail_len).ok().as_deref() == Some(h)
            })
    });
    let mut parser = match resume.and_then(|p| p.checkpoint.as_deref()) {
        Some(cp) => match Parser::resume(file.agent, &file.path, cp) {
            Some(parser) => parser,
            None => {
                resume = None;
                Parser::new(file.agent, &file.path)
            }
        },
        None => {
            resume = None;
            Parser::new(file.agent, &file.path)
        }
    };
    // Whole-document files are rewritten in place: always read them again from the start.
    let document = Parser::is_document(file.agent, &file.path);
    if document {
        resume = None;
        parser = Parser::new(file.agent, &file.path);
    }
    let mut restart = resume.is_none();
    if restart && prev.is_some() {
        summary.files_restarted += 1;
    }
    let start = resume.map_or(0, |p| p.offset);
    if document {
        return import_document(
            job, &handle, parser, restart, enricher, coalesce, summary, emit,
        );
    }
    let mut reader = ChunkReader::new(&handle, start)?;
    let mut lines = LineNumbers::default();
    let mut issues: Vec<LineIssue> = Vec::new();
    let mut read_any = false;
    loop {
        let mut records = Vec::new();
        issues.clear();
        let before = reader.offset();
        let more = reader.next_chunk(|line| parser.line(&line, &mut records, &mut issues))?;
        // Nothing complete to read (an empty file, or only a partial line) still saves size and mtime, so the
        // next run skips the file until it changes.
        if !more && read_any {
            break;
        }
        read_any |= more;
        finish_chunk(&mut parser, &mut records, path, enricher, coalesce, summary);
        let offset = reader.offset();
        let head_len = offset.min(HEAD_BYTES);
        let mut where_: Vec<String> = Vec::with_capacity(issues.len());
        for issue in &issues {
            let at = lines.at(&handle, issue.offset);
            summary.warn(format!("{path}:{at}: {}", issue.message));
            where_.push(at);
        }
        summary.records += records.len() as u64;
        summary.bytes_read += offset - before;
        let chunk = Chunk {
            file: FileUpdate {
                path: path.to_string(),
                agent: file.agent.as_str(),
                dev: stat.dev,
                ino: stat.ino,
                size,
                mtime_ns: stat.mtime_ns,
                head_len,
                head_hash: head_hash(&handle, head_len)?,
                tail_len: offset.min(TAIL_BYTES),
                tail_hash: tail_hash(&handle, offset, TAIL_BYTES)?,
                offset,
                checkpoint: Some(parser.checkpoint()),
                new_warnings: issues.len() as u64,
                last_warning: issues
                    .last()
                    .zip(where_.last())
                    .map(|(i, at)| format!("{at}: {}", i.message)),
            },
            restart,
            new_file: prev.is_none(),
            records,
            forget_files: Vec::new(),
        };
        if !emit(chunk, offset - before) {
            return Err(Stopped.into());
        }
        restart = false;
        if !more {
            break;
        }
    }
    if start < reader.offset() {
        summary.files_read += 1;
    }
    Ok(())
}

/// What every chunk goes through once its lines are read: the parser's end-of-chunk records, enrichment
/// (pricing, channel, privacy), a warning for rejected values, and folding of records that share an id.
fn finish_chunk(
    parser: &mut Parser,
    records: &mut Vec<Record>,
    path: &str,
    enricher: &Enricher,
    coalesce: bool,
    summary: &mut ImportSummary,
) {
    parser.end_chunk(records);
    summary.privacy_ns += enricher.apply(records, &mut summary.redactions);
    if let (n @ 1.., Some(why)) = flagged(records) {
        summary.flagged += n;
        summary.warn(format!(
            "{path}: {n} model call(s) with impossible values, counted without them ({why})"
        ));
    }
    if coalesce {
        crate::model::merge::coalesce(records);
    }
}

/// Reads a whole-document file (Gemini `session-*.json`) and replaces what was imported from it.
#[allow(clippy::too_many_arguments)]
fn import_document(
    job: &Job<'_>,
    handle: &File,
    mut parser: Parser,
    restart: bool,
    enricher: &Enricher,
    coalesce: bool,
    summary: &mut ImportSummary,
    emit: &mut dyn FnMut(Chunk, u64) -> bool,
) -> Result<()> {
    use std::io::Read;
    let Job {
        file, path, stat, ..
    } = job;
    let mut bytes = Vec::with_capacity(stat.size as usize);
    (&*handle).read_to_end(&mut bytes)?;
    let mut records = Vec::new();
    let mut issues = Vec::new();
    parser.line(
        &crate::sources::reader::Line {
            offset: 0,
            bytes: &bytes,
        },
        &mut records,
        &mut issues,
    );
    finish_chunk(&mut parser, &mut records, path, enricher, coalesce, summary);
    for issue in &issues {
        summary.warn(format!("{path}: {}", issue.message));
    }
    let size = bytes.len() as u64;
    let head_len = size.min(HEAD_BYTES);
    summary.records += records.len() as u64;
    summary.bytes_read += size;
    summary.files_read += 1;
    let sent = emit(
        Chunk {
            file: FileUpdate {
                path: path.to_string(),
                agent: file.agent.as_str(),
                dev: stat.dev,
                ino: stat.ino,
                size: stat.size,
                mtime_ns: stat.mtime_ns,
                head_len,
                head_hash: head_hash(handle, head_len)?,
                tail_len: size.min(TAIL_BYTES),
                tail_hash: tail_hash(handle, size, TAIL_BYTES)?,
                offset: size,
                checkpoint: None,
                new_warnings: issues.len() as u64,
                last_warning: issues.last().map(|i| i.message.clone()),
            },
            restart,
            new_file: job.prev.is_none(),
            records,
            forget_files: Vec::new(),
        },
        size,
    );
    if !sent {
        return Err(Stopped.into());
    }
    Ok(())
}

/// Line numbers for warnings: counted lazily (only files with a problem pay for it) by reading the file
/// from its start up to each problem's offset, once.
#[derive(Default)]
struct LineNumbers {
    counted_to: u64,
    newlines: u64,
}

impl LineNumbers {
    /// `line N (byte B)` for the line starting at `offset` (1-based); `byte B` alone if the file cannot be read.
    fn at(&mut self, file: &File, offset: u64) -> String {
        if offset < self.counted_to {
            *self = LineNumbers::default();
        }
        let mut buf = vec![0u8; 64 * 1024];
        while self.counted_to < offset {
            let want = ((offset - self.counted_to) as usize).min(buf.len());
            match file.read_at(&mut buf[..want], self.counted_to) {
                Ok(0) | Err(_) => return format!("byte {offset}"),
                Ok(n) => {
                    self.newlines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
                    self.counted_to += n as u64;
                }
            }
        }
        format!("line {} (byte {offset})", self.newlines + 1)
    }
}

fn short_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Store paths of files that are gone from disk: kept in the store (their data stays reportable).
pub fn missing_files(known: &HashMap<String, FileRow>) -> Vec<String> {
    known
        .keys()
        .filter(|p| !Path::new(p).exists())
        .cloned()
        .collect()
}
