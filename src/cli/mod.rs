//! Command line: one file per command; this file holds the options they share and the common setup
//! (data directory, config, discovery, import).

mod doctor;
mod metrics;
pub use status::now_ms;

pub(crate) mod prices;
pub(crate) mod report;
mod reprice;
mod show;
mod status;
mod statusline;
mod store;
mod sync;
mod ui;
mod watch;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};

use crate::config::{config_path, Config};
use crate::ingest::{self, Enricher, ImportSummary};
use crate::model::Agent;
use crate::sources::{self, DiscoveredFile, Env, Root};
use crate::store::{Store, DB_FILE};

const AFTER_HELP: &str = "\
Examples:
  tokentrace                                   the daily report (same as `tokentrace report daily`)
  tokentrace report daily                      cost and tokens per day, all agents
  tokentrace report session --since 2026-11-01 one row per session since November
  tokentrace report model --json               per-model totals as JSON
  tokentrace report session --path examples    sessions read from a folder instead of the agents' own
  tokentrace show 01a2065e                     the trace tree of a session (id prefix) or trace
  tokentrace status                            what runs now: sessions, cost so far, 5-hour block, budgets
  tokentrace report blocks --active            the running 5-hour block with burn rate and projection
  tokentrace prices claude-sonnet-4-5          which price applies to a model, and why
  tokentrace doctor                            what was found where
  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 tokentrace sync
                                               deliver traces to an OTLP backend (Langfuse: LANGFUSE_* keys)
  tokentrace sync --dry-run out/               write the OTLP/JSON requests instead of sending
  tokentrace report --path examples --ephemeral  try it on a folder without writing a store
  tokentrace store rebuild                     re-import everything into a fresh store
  tokentrace completions zsh > ~/.zfunc/_tokentrace   shell completions (bash, zsh, fish)

Data lives in $XDG_DATA_HOME/tokentrace (override: --data-dir, TOKENTRACE_DATA_DIR).
Config: $XDG_CONFIG_HOME/tokentrace/config.toml (override: --config, TOKENTRACE_CONFIG).";

/// Full visibility into what your AI coding agents do and what they cost.
///
/// tokentrace reads the session files your agents already write (pi, oh-my-pi, Claude Code, Codex CLI,
/// Gemini CLI), models every run as a
/// trace tree (prompt → turn → model call / tool call), prices it, keeps it in a local store and reports
/// on it — no backend needed.
#[derive(Debug, Parser)]
#[command(name = "tokentrace", version, about, long_about, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    /// What to do; without one, tokentrace prints the daily report (`report daily`), as ccusage does.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options every command accepts.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Directory of the store (default: $XDG_DATA_HOME/tokentrace).
    #[arg(long, global = true, env = "TOKENTRACE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Config file (default: $XDG_CONFIG_HOME/tokentrace/config.toml). A file given here (or in
    /// TOKENTRACE_CONFIG) must exist.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Use a throwaway in-memory store: nothing is written anywhere (try-outs, one-off reports of a folder;
    /// every run reads everything again).
    #[arg(long, global = true)]
    pub ephemeral: bool,
    /// Log more (-v: info, -vv: debug). Also: TOKENTRACE_DEBUG=1.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import what is new, then report tokens and cost grouped by day, session, model, …
    #[command(after_help = crate::report::LEGEND)]
    Report(report::ReportArgs),
    /// Import what is new, then deliver pending traces to every configured backend (OTLP, Langfuse).
    Sync(sync::SyncArgs),
    /// The sessions running now (working / idle), their cost so far, the current 5-hour block and spend
    /// against budgets; exit code 10 near a budget, 11 over one.
    Status(status::StatusArgs),
    /// One line for a status bar: Claude Code's `statusLine` command (reads its JSON on stdin), tmux, waybar;
    /// never fails the bar.
    Statusline(statusline::StatuslineArgs),
    /// Print the trace tree of a session or trace (id or unique prefix).
    Show(show::ShowArgs),
    /// Show what was discovered where, the config in effect, the store and unpriced models.
    Doctor(doctor::DoctorArgs),
    /// Print the metrics (tokens, cost, calls, errors, durations by agent, model, tool, …) in the Prometheus
    /// text format, computed from the store.
    Metrics(metrics::MetricsArgs),
    /// Show the price tokentrace uses for a model and where it comes from.
    Prices(prices::PricesArgs),
    /// Price every stored generation again with the prices in effect (table and config overrides).
    Reprice(reprice::RepriceArgs),
    /// Stay running: import what the agents write as they write it and deliver it to the configured
    /// backends within a second (Ctrl-C stops; run it as a service, see the README).
    Watch(watch::WatchArgs),
    /// Import what is new, then serve a local dashboard (overview, sessions, trace trees, models and prices)
    /// at http://127.0.0.1:7878; read-only, no account, nothing leaves the machine.
    Ui(ui::UiArgs),
    /// Maintain the store: `store rebuild` re-imports everything from the session files.
    Store(store::StoreArgs),
    /// Print a shell completion script: `tokentrace completions bash > ~/.local/share/bash-completion/completions/tokentrace`
    /// (zsh: into a directory on $fpath as `_tokentrace`; fish: `~/.config/fish/completions/tokentrace.fish`).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// Where sessions are read from: `--source` and `--path`, shared by commands that import.
#[derive(Debug, Args, Clone, Default)]
pub struct SourceArgs {
    /// Only these agents (repeatable or comma-separated): pi, omp, claude, codex, gemini.
    #[arg(long, value_delimiter = ',', value_name = "AGENT")]
    pub source: Vec<String>,
    /// Read sessions from DIR (searched recursively; the agent is detected from each file) instead of the
    /// agents' default locations. Repeatable. Reports then cover only sessions from these paths.
    #[arg(long, value_name = "DIR")]
    pub path: Vec<PathBuf>,
    /// Do not import before reporting: use the store as it is.
    #[arg(long)]
    pub no_import: bool,
}

impl SourceArgs {
    /// The agents selected by `--source` (all when empty). Errors name the unknown agent.
    pub fn agents(&self) -> Result<Vec<Agent>> {
        if self.source.is_empty() {
            return Ok(Agent::ALL.to_vec());
        }
        self.source
            .iter()
            .map(|s| {
                Agent::parse(s).with_context(|| {
                    format!(
                        "unknown --source '{s}': expected one of {}",
                        Agent::ALL.map(|a| a.as_str()).join(", ")
                    )
                })
            })
            .collect()
    }

    /// `--path` values made absolute (so store paths are stable whatever the working directory).
    pub fn paths(&self) -> Result<Vec<PathBuf>> {
        self.path
            .iter()
            .map(|p| {
                std::fs::canonicalize(p)
                    .with_context(|| format!("--path {}: no such directory", p.display()))
            })
            .collect()
    }
}

/// Everything a command needs: environment, config, data directory.
pub struct Context {
    pub env: Env,
    pub config: Config,
    pub config_path: Option<PathBuf>,
    pub data_dir: PathBuf,
    /// `--ephemeral`: an in-memory store.
    pub ephemeral: bool,
    /// Why the config could not be used (only `doctor` runs with a broken config, to explain it).
    pub config_error: Option<String>,
}

impl Context {
    pub fn new(global: &Global) -> Result<Context> {
        let env = Env::from_process();
        let config_path = config_path(global.config.as_deref(), &env);
        let explicit = global.config.is_some() || env.var("TOKENTRACE_CONFIG").is_some();
        if let (true, Some(p)) = (explicit, &config_path) {
            anyhow::ensure!(
                p.exists(),
                "config file {} does not exist (given by {}); create it or leave the option out",
                p.display(),
                if global.config.is_some() {
                    "--config"
                } else {
                    "TOKENTRACE_CONFIG"
                }
            );
        }
        let config = Config::load(config_path.as_deref())?.with_env(&env)?;
        let data_dir = match &global.data_dir {
            Some(d) => d.clone(),
            None => default_data_dir(&env)?,
        };
        Ok(Context {
            env,
            config,
            config_path,
            data_dir,
            ephemeral: global.ephemeral,
            config_error: None,
        })
    }

    /// Like [`Context::new`], but a config that cannot be used is kept as an error message (with the default
    /// config in effect) instead of failing: `doctor` is the command that explains it.
    pub fn new_lenient(global: &Global) -> Result<Context> {
        match Context::new(global) {
            Ok(ctx) => Ok(ctx),
            Err(e) => {
                let env = Env::from_process();
                let data_dir = match &global.data_dir {
                    Some(d) => d.clone(),
                    None => default_data_dir(&env)?,
                };
                Ok(Context {
                    config_path: config_path(global.config.as_deref(), &env),
                    config: Config::default(),
                    env,
                    data_dir,
                    ephemeral: global.ephemeral,
                    config_error: Some(format!("{e:#}")),
                })
            }
        }
    }

    pub fn store_path(&self) -> PathBuf {
        self.data_dir.join(DB_FILE)
    }

    pub fn open_store(&self) -> Result<Store> {
        if self.ephemeral {
            return Store::open_in_memory();
        }
        Store::open(&self.store_path())
    }

    /// The store for a command that only reads (works on a read-only or full disk; see
    /// [`Store::open_read_only`]).
    pub fn open_store_read_only(&self) -> Result<Store> {
        if self.ephemeral {
            return Store::open_in_memory();
        }
        Store::open_read_only(&self.store_path())
    }

    /// The roots to search: `--path` directories, else the agents' default locations.
    pub fn roots(&self, src: &SourceArgs) -> Result<Vec<Root>> {
        let agents = src.agents()?;
        let paths = src.paths()?;
        if paths.is_empty() {
            return Ok(sources::default_roots(&self.env, &agents));
        }
        Ok(paths
            .into_iter()
            .map(|dir| Root {
                agent: None,
                dir,
                origin: "--path".into(),
            })
            .collect())
    }

    /// Discovers and imports; returns the summary.
    pub fn import(&self, store: &mut Store, src: &SourceArgs) -> Result<ImportSummary> {
        let interactive = std::io::IsTerminal::is_terminal(&std::io::stderr());
        self.import_using(store, src, &self.enricher()?, interactive)
    }

    /// The metric compatibility names in effect: the config's and the environment's `metrics_compat`, plus
    /// `extra` (`--metrics-compat`). Errors: an unknown name.
    pub fn metrics_compat(&self, extra: &[String]) -> Result<crate::metrics::collect::Compat> {
        let names: Vec<&String> = self.config.metrics_compat.iter().chain(extra).collect();
        let mut compat = crate::metrics::collect::Compat::parse(&names)?;
        compat.project = self.config.metrics_project_label;
        if compat.claude_code {
            if let Some(place) = self.claude_telemetry_on() {
                eprintln!(
                    "tokentrace: warning: Claude Code's own telemetry is on ({place}): with --metrics-compat claude_code a \
                     backend that also receives it counts the same tokens and cost twice"
                );
            }
        }
        Ok(compat)
    }

    /// Where Claude Code's own OpenTelemetry export is switched on (`CLAUDE_CODE_ENABLE_TELEMETRY=1` in this
    /// environment or in the `env` of its `settings.json`), if it is.
    fn claude_telemetry_on(&self) -> Option<String> {
        let on = |v: &str| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false");
        if self.env.var("CLAUDE_CODE_ENABLE_TELEMETRY").is_some_and(on) {
            return Some("CLAUDE_CODE_ENABLE_TELEMETRY in the environment".into());
        }
        let dir = match self.env.var("CLAUDE_CONFIG_DIR") {
            Some(d) => PathBuf::from(d),
            None => self.env.home.as_ref()?.join(".claude"),
        };
        let path = dir.join("settings.json");
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
        let value = &doc["env"]["CLAUDE_CODE_ENABLE_TELEMETRY"];
        let enabled = value.as_str().is_some_and(on) || value.as_i64().is_some_and(|n| n != 0);
        enabled.then(|| format!("CLAUDE_CODE_ENABLE_TELEMETRY in {}", path.display()))
    }

    /// The enrichment (prices, privacy) the config and environment ask for. Errors: an invalid capture
    /// policy or field override.
    pub fn enricher(&self) -> Result<Enricher> {
        Enricher::try_new(self.config.clone(), self.env.home.clone(), &self.env.vars)
    }

    /// [`Context::import`] with a given enricher (a long-running `watch` builds it once) and progress bar
    /// choice.
    pub fn import_using(
        &self,
        store: &mut Store,
        src: &SourceArgs,
        enricher: &Enricher,
        show_progress: bool,
    ) -> Result<ImportSummary> {
        let (summary, ()) =
            self.import_using_meanwhile(store, src, enricher, show_progress, |_| Ok(()))?;
        Ok(summary)
    }

    /// [`Context::import_using`] that also runs `meanwhile` on the store while the directory walk runs (the
    /// store as it was before this import, prices brought up to date). What `meanwhile` read is still
    /// current when the import changed nothing ([`ImportSummary::files_changed`] is 0): a `status` call
    /// reads its answer there and only reads it again after an import that wrote.
    pub fn import_using_meanwhile<T>(
        &self,
        store: &mut Store,
        src: &SourceArgs,
        enricher: &Enricher,
        show_progress: bool,
        meanwhile: impl FnOnce(&Store) -> Result<T>,
    ) -> Result<(ImportSummary, T)> {
        let started = jiff::Timestamp::now().as_millisecond();
        let (summary, _, read) = import_roots(
            store,
            &self.roots(src)?,
            &src.agents()?,
            enricher,
            show_progress,
            meanwhile,
        )?;
        after_import(store, &summary, enricher.config(), started, false)?;
        Ok((summary, read))
    }
}

/// Discovers the session files of `agents` under `roots` (files the store knows are not opened to detect
/// their agent) and imports what is new; returns the summary, the files found and what `meanwhile` read
/// (see [`Context::import_using_meanwhile`]).
fn import_roots<T>(
    store: &mut Store,
    roots: &[Root],
    agents: &[Agent],
    enricher: &Enricher,
    show_progress: bool,
    meanwhile: impl FnOnce(&Store) -> Result<T>,
) -> Result<(ImportSummary, Vec<DiscoveredFile>, T)> {
    // The walk runs while this thread reads the store: the file stamps (4 ms of a `status` call that found
    // nothing new) and the caller's `meanwhile` (the status queries, ~10 ms).
    let (walks, prepared) = std::thread::scope(|scope| {
        let walking = scope.spawn(|| sources::walk_roots(roots));
        let prepared = store.file_stamps().and_then(|known| {
            // Prices follow the config: costs imported under other prices are re-priced first.
            reprice::follow_prices(store, enricher.pricer())?;
            Ok((known, meanwhile(store)?))
        });
        let walks = walking.join().expect("the directory walk does not panic");
        (walks, prepared)
    });
    let (known, read) = prepared?;
    let found = sources::classify(roots, walks, agents, |path| {
        known.get(path.to_str()?).and_then(|stamp| stamp.agent)
    });
    let options = ingest::ImportOptions {
        show_progress,
        ..Default::default()
    };
    let mut summary = ingest::import_known(store, &found.files, known, enricher, options)?;
    summary.add_problems(&found.problems);
    Ok((summary, found.files, read))
}

/// What follows an import that wrote, in every driver (`report`, `sync`, `status` and `watch`): the 5-hour
/// block anchors move up to now (so `status` and `statusline` calls that read a `watch`'s store without
/// writing it find them current), and the runaway and budget checks run on what was read.
fn after_import(
    store: &mut Store,
    summary: &ImportSummary,
    config: &Config,
    since_ms: i64,
    service: bool,
) -> Result<()> {
    if summary.files_changed > 0 {
        crate::status::keep_block_anchors(store, status::now_ms())?;
    }
    if summary.files_read > 0 {
        detect_anomalies(store, config, since_ms, service)?;
    }
    Ok(())
}

/// Runs the runaway and budget checks ([`crate::status::anomaly`]) on the sessions imported since `since_ms`
/// (wall clock) and logs what they find for the first time (through `tracing` in a `service`, else on stderr).
fn detect_anomalies(
    store: &mut Store,
    config: &Config,
    since_ms: i64,
    service: bool,
) -> Result<()> {
    let found = crate::status::anomaly::detect(
        store,
        &config.runaway,
        &config.budgets,
        &jiff::tz::TimeZone::system(),
        since_ms,
        status::now_ms(),
    )?;
    for a in found {
        let session = a
            .session_key
            .split_once(':')
            .map_or(a.session_key.as_str(), |(_, id)| id);
        let what = a.kind.replace('_', " ");
        if service {
            tracing::warn!("{what} in session {session}: {}", a.message);
        } else {
            eprintln!(
                "tokentrace: warning: {what} in session {session}: {}",
                a.message
            );
        }
    }
    Ok(())
}

/// `$XDG_DATA_HOME/tokentrace`, else `~/.local/share/tokentrace`.
fn default_data_dir(env: &Env) -> Result<PathBuf> {
    if let Some(x) = env.var("XDG_DATA_HOME") {
        return Ok(Path::new(x).join("tokentrace"));
    }
    let home = env.home.clone().context(
        "cannot tell where to keep data: neither $XDG_DATA_HOME nor $HOME is set; pass --data-dir",
    )?;
    Ok(home.join(".local/share/tokentrace"))
}

/// Prints import warnings in short form on stderr, and a note when the size caps cut or replaced content.
pub fn print_import_warnings(summary: &ImportSummary) {
    use crate::privacy::truncate::{IMAGE, TRUNCATED};
    let count = |kind: &str| summary.redactions.get(kind).copied().unwrap_or(0);
    let (cut, images) = (count(TRUNCATED), count(IMAGE));
    if cut + images > 0 {
        eprintln!(
            "tokentrace: note: {cut} text field(s) over the size cap were truncated and {images} inline image(s) \
             replaced by a marker (`max_field_chars` in the config; `tokentrace doctor --privacy`)"
        );
    }
    if summary.warnings == 0 {
        return;
    }
    eprintln!(
        "tokentrace: {} warning(s) while importing; affected lines were skipped or repaired, nothing else was lost:",
        summary.warnings
    );
    for w in summary.warning_samples.iter().take(5) {
        eprintln!("  {w}");
    }
    if summary.warnings > 5 {
        eprintln!("  … (`tokentrace doctor` lists files with warnings; -v prints every one)");
    }
}

/// Runs the command line; returns the process exit code.
pub fn run() -> Result<()> {
    // Without a subcommand tokentrace is `report` (daily by default), as ccusage is: `tokentrace`,
    // `tokentrace --since 2026-11-01`, `tokentrace session --json` all work.
    let as_report = || {
        let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        args.insert(1.min(args.len()), "report".into());
        Cli::try_parse_from(args)
    };
    let cli = match Cli::try_parse() {
        Ok(cli) if cli.command.is_none() => as_report().unwrap_or_else(|e| e.exit()),
        Ok(cli) => cli,
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::UnknownArgument | clap::error::ErrorKind::InvalidSubcommand
            ) =>
        {
            as_report().unwrap_or_else(|_| e.exit())
        }
        Err(e) => e.exit(),
    };
    let command = cli.command.expect("a command");
    // A service's log says what it does (info); a one-shot command only what went wrong.
    init_logging(cli.global.verbose, matches!(command, Command::Watch(_)));
    if let Command::Completions { shell } = command {
        use clap::CommandFactory;
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "tokentrace",
            &mut std::io::stdout(),
        );
        return Ok(());
    }
    if let Command::Statusline(args) = command {
        // Whatever goes wrong (config included), the bar gets a line.
        return statusline::run(Context::new(&cli.global), args);
    }
    if let Command::Doctor(args) = command {
        // doctor runs with a broken config: it is the command that explains it.
        let ctx = Context::new_lenient(&cli.global)?;
        return doctor::run(&ctx, args);
    }
    let ctx = Context::new(&cli.global)?;
    match command {
        Command::Report(args) => report::run(&ctx, args),
        Command::Show(args) => show::run(&ctx, args),
        Command::Status(args) => status::run(&ctx, args),
        Command::Ui(args) => ui::run(&cli.global, &ctx, args),
        Command::Sync(args) => sync::run(&ctx, args),
        Command::Prices(args) => prices::run(&ctx, args),
        Command::Metrics(args) => metrics::run(&ctx, args),
        Command::Reprice(args) => reprice::run(&ctx, args),
        Command::Store(args) => store::run(&ctx, args),
        Command::Watch(args) => watch::run(&cli.global, ctx, args),
        Command::Doctor(_) | Command::Completions { .. } | Command::Statusline(_) => {
            unreachable!("handled above")
        }
    }
}

fn init_logging(verbose: u8, service: bool) {
    let debug_env = std::env::var("TOKENTRACE_DEBUG").is_ok_and(|v| !v.is_empty() && v != "0");
    let level = match (verbose, debug_env) {
        (_, true) | (2.., _) => "debug",
        (1, _) => "info",
        _ if service => "info",
        // Import warnings are summarized by the commands; -v shows each one as it happens.
        _ => "error",
    };
    // `watch` imports on every change: its per-import lines are for -v.
    let quiet_imports = if service && verbose == 0 && !debug_env {
        ",tokentrace::ingest=warn"
    } else {
        ""
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("TOKENTRACE_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(format!("tokentrace={level}{quiet_imports}"))
        });
    // Colour codes only on a terminal (never in pipes or log files), and never with NO_COLOR.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}
