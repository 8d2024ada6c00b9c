//! `tokentrace status`: the sessions running now, their cost so far, the current 5-hour block and spend
//! against budgets; `--json` for scripts, `--write-state` for panels, exit codes 10 / 11 near / over a budget.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::Args;

use super::{Context, SourceArgs};
use crate::status::{self, render, Options, Snapshot};
use crate::store::Store;

#[derive(Debug, Args)]
#[command(after_help = "\
States: working = a turn is open (the model answers, a tool runs, or a tool's result waits for the model);
idle = the last turn is over, the agent waits for the user; ended = nothing written for --ended-after minutes.
Exit codes: 0 ok, 10 near a budget (warn_at, 80 % by default), 11 over a budget ([budgets] in the config).
With `tokentrace watch` running on the same store, status reads the store only (the watch keeps it current).")]
pub struct StatusArgs {
    /// Print JSON (the shape is in the README, "Live status").
    #[arg(long)]
    pub json: bool,
    /// List sessions written to in the last MIN minutes.
    #[arg(long, value_name = "MIN", default_value_t = 60)]
    pub active: i64,
    /// A session quiet for more than MIN minutes is `ended`.
    #[arg(long, value_name = "MIN", default_value_t = status::ENDED_AFTER_MIN)]
    pub ended_after: i64,
    /// Time zone of today, this week and this month (IANA name or UTC). Default: local.
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,
    /// Redraw every --interval seconds until Ctrl-C.
    #[arg(long)]
    pub watch: bool,
    /// Seconds between redraws with --watch.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    pub interval: f64,
    /// Also write the JSON to FILE, atomically (for desktop panels and tray apps).
    #[arg(long, value_name = "FILE")]
    pub write_state: Option<PathBuf>,
    #[command(flatten)]
    pub sources: SourceArgs,
}

pub fn run(ctx: &Context, args: StatusArgs) -> Result<()> {
    anyhow::ensure!(args.active > 0, "--active must be at least 1 minute");
    anyhow::ensure!(
        args.interval >= 0.1,
        "--interval must be at least 0.1 seconds"
    );
    // The zone is looked up where the options are made, which the first time is while the directory walk
    // runs: jiff reads its zone database's folders first (~1 ms).
    let opts = |now_ms| -> Result<Options> {
        Ok(Options {
            now_ms,
            tz: super::report::time_zone(args.tz.as_deref())?,
            active_ms: args.active * 60_000,
            ended_after_ms: args.ended_after.max(0) * 60_000,
            burn_window_ms: status::BURN_WINDOW_MS,
            budgets: ctx.config.budgets.clone(),
        })
    };
    let (mut store, import) = open(ctx, &args.sources)?;
    let enricher = if import { Some(ctx.enricher()?) } else { None };
    loop {
        let snap = match &enricher {
            Some(enricher) => {
                let interactive =
                    !args.watch && std::io::IsTerminal::is_terminal(&std::io::stderr());
                // The answer is read while the walk looks for changes, and read again only if the import
                // wrote: status bars mostly find nothing new (1 GB benchmark: ~10 ms of a 50 ms call).
                let (summary, snap) = ctx.import_using_meanwhile(
                    &mut store,
                    &args.sources,
                    enricher,
                    interactive,
                    |store| status::snapshot(store, &opts(now_ms())?),
                )?;
                if !args.watch {
                    super::print_import_warnings(&summary);
                }
                if summary.files_changed == 0 {
                    snap
                } else {
                    status::snapshot(&store, &opts(now_ms())?)?
                }
            }
            None => status::snapshot(&store, &opts(now_ms())?)?,
        };
        if let Some(path) = &args.write_state {
            write_atomically(path, &serde_json::to_vec_pretty(&snap)?)?;
        }
        let text = if args.json {
            serde_json::to_string_pretty(&snap)? + "\n"
        } else {
            render::screen(&snap, args.active)
        };
        let mut out = std::io::stdout().lock();
        if args.watch {
            // Home and clear: redraw in place.
            write!(out, "\x1b[H\x1b[J")?;
        }
        out.write_all(text.as_bytes())?;
        out.flush()?;
        if !args.watch {
            return exit_with(&snap);
        }
        drop(out);
        std::thread::sleep(std::time::Duration::from_secs_f64(args.interval));
    }
}

/// The store, and whether to import first: not when a `watch` keeps the store current (unless `--path` asks
/// for other files), nor with `--no-import`.
pub fn open(ctx: &Context, src: &SourceArgs) -> Result<(Store, bool)> {
    let watched = !ctx.ephemeral && crate::watch::lock::running(&ctx.data_dir).is_some();
    if src.no_import || (watched && src.path.is_empty()) {
        return Ok((ctx.open_store_read_only()?, false));
    }
    let store = ctx.open_store()?;
    // The walk's stamps and the status queries read ~600 pages once each: a small page cache keeps a status
    // bar's call small (peak RSS on the 1 GB benchmark −2 MB) and still holds what a few new lines write.
    store.set_cache_kib(1_024)?;
    Ok((store, true))
}

/// Exits with the budget status (0 ok, 10 near, 11 over) once the output is out.
fn exit_with(snap: &Snapshot) -> Result<()> {
    let code = snap.status.exit_code();
    if code != 0 {
        std::process::exit(code);
    }
    Ok(())
}

/// Now, ms since the epoch (`TOKENTRACE_NOW`, RFC 3339, overrides it for tests and replays).
pub fn now_ms() -> i64 {
    std::env::var("TOKENTRACE_NOW")
        .ok()
        .and_then(|v| v.parse::<jiff::Timestamp>().ok())
        .unwrap_or_else(jiff::Timestamp::now)
        .as_millisecond()
}

/// Writes `bytes` to a temporary file beside `path` and renames it over `path`: readers see the old or the
/// new file, never half of one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .context("--write-state needs a file name")?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))
}
