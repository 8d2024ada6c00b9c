//! `tokentrace report [GROUPING]`: import what is new, then print totals per group.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use clap::Args;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use super::{print_import_warnings, Context, SourceArgs};
use crate::report::blocks::{BlockDetail, BlockIndex, TokenLimit};
use crate::report::layout::{terminal_width, use_color, ColorChoice};
use crate::report::{
    render_json, render_table, Aggregate, Grouping, Selection, TableOptions, Window,
};
use crate::store::read::{FactKind, Filter, SessionRow};
use crate::store::Store;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// How to group rows.
    #[arg(value_enum, default_value = "daily")]
    pub grouping: Grouping,
    /// First day to include (YYYY-MM-DD or YYYYMMDD, in --tz).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub since: Option<Date>,
    /// Last day to include (inclusive).
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub until: Option<Date>,
    /// Time zone for days, weeks and months (IANA name such as Europe/Berlin, or UTC). Default: local.
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,
    /// Only sessions whose working directory contains this text.
    #[arg(long, value_name = "TEXT")]
    pub project: Option<String>,
    #[command(flatten)]
    pub sources: SourceArgs,
    /// Print JSON instead of a table (one shape for every grouping: docs/report.schema.json).
    #[arg(long)]
    pub json: bool,
    /// A row per model under each row (its model calls, tokens and cost).
    #[arg(long)]
    pub breakdown: bool,
    /// Row order: asc (oldest first; default) or desc (newest first).
    #[arg(long, value_enum, default_value = "asc")]
    pub order: Order,
    /// Only the N most recent periods or sessions (the last N rows otherwise).
    #[arg(long, value_name = "N")]
    pub last: Option<usize>,
    /// At most N rows, after ordering.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Leave out the secondary columns (cache, models, project) whatever the terminal width.
    #[arg(long)]
    pub compact: bool,
    /// With `blocks`: only the blocks running now, with their burn rate and projected end-of-block usage.
    #[arg(long)]
    pub active: bool,
    /// With `blocks`: compare each block's (projected) tokens with N, or with `max`, the most tokens any
    /// finished block used; warns past 80 % and over the limit.
    #[arg(long, value_name = "N|max")]
    pub token_limit: Option<TokenLimit>,
    /// Colours: auto (on a terminal, unless NO_COLOR is set), always, never.
    #[arg(long, value_enum, default_value = "auto", value_name = "WHEN")]
    pub color: ColorChoice,
}

/// `--order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Order {
    Asc,
    Desc,
}

/// Parses `2026-11-23` or `20261123`.
pub fn parse_date(s: &str) -> Result<Date, String> {
    let normalized = if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
        format!("{}-{}-{}", &s[..4], &s[4..6], &s[6..])
    } else {
        s.to_string()
    };
    normalized
        .parse::<Date>()
        .map_err(|e| format!("'{s}' is not a date (YYYY-MM-DD or YYYYMMDD): {e}"))
}

pub fn time_zone(name: Option<&str>) -> Result<TimeZone> {
    match name {
        None => Ok(TimeZone::system()),
        Some(n) if n.eq_ignore_ascii_case("utc") => Ok(TimeZone::UTC),
        Some(n) if n.eq_ignore_ascii_case("local") => Ok(TimeZone::system()),
        Some(n) => TimeZone::get(n).with_context(|| {
            format!("unknown time zone '{n}' (use an IANA name like Europe/Berlin, or UTC)")
        }),
    }
}

/// Differences between an agent's own session cost and tokentrace's sum below this are rounding (1e-9 USD).
pub const COST_TOLERANCE_PICO: i64 = 1_000;

/// "claude 2.1.332 reports $0.52 for session 3f2a…; its calls price at $0.42: $0.10 unattributed …".
pub fn describe_mismatch(m: &crate::store::read::CostMismatch) -> String {
    use crate::model::pico_to_usd;
    let id = m
        .session_key
        .split_once(':')
        .map_or(m.session_key.as_str(), |(_, id)| id);
    let diff = m.agent_cost - m.ours;
    format!(
        "{} {}reports ${:.6} for session {}; its calls price at ${:.6}: ${:.6} {}",
        m.agent,
        m.agent_version
            .as_deref()
            .map(|v| format!("{v} "))
            .unwrap_or_default(),
        pico_to_usd(m.agent_cost),
        id,
        pico_to_usd(m.ours),
        pico_to_usd(diff.abs()),
        if diff > 0 {
            "unattributed (calls the transcript does not record, such as a subagent's whose transcript is elsewhere)"
        } else {
            "more than the agent's figure (tokentrace's price table differs from the agent's)"
        }
    )
}

pub fn run(ctx: &Context, args: ReportArgs) -> Result<()> {
    let window = Window {
        tz: time_zone(args.tz.as_deref())?,
        since: args.since,
        until: args.until,
    };
    if let (Some(s), Some(u)) = (args.since, args.until) {
        anyhow::ensure!(s <= u, "--since {s} is after --until {u}");
    }
    anyhow::ensure!(
        args.grouping == Grouping::Blocks || (!args.active && args.token_limit.is_none()),
        "--active and --token-limit apply to `report blocks` only"
    );
    // Blocks are the billing windows of subscription plans: Claude Code's and Codex's unless asked otherwise.
    let agents = if args.grouping == Grouping::Blocks && args.sources.source.is_empty() {
        vec![crate::model::Agent::Claude, crate::model::Agent::Codex]
    } else {
        args.sources.agents()?
    };
    let filter = Filter {
        agents: agents.iter().map(|a| a.as_str().to_string()).collect(),
        project: args.project.clone(),
        path_prefixes: args
            .sources
            .paths()?
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
    };
    let opts = TableOptions {
        width: terminal_width(),
        color: use_color(args.color),
        breakdown: args.breakdown,
        compact: args.compact,
        select: Selection {
            descending: args.order == Order::Desc,
            last: args.last,
            limit: args.limit,
        },
    };
    if args.sources.no_import {
        let store = ctx.open_store_read_only()?;
        let mut read = read(&store, &args, &window, &filter)?;
        print!(
            "{}",
            render(&store, &args, &window, &filter, &opts, &mut read, 0)?
        );
        return Ok(());
    }
    let enricher = ctx.enricher()?;
    // Blocks depend on the time now, not only on the stored data: they are not kept.
    let key = (args.grouping != Grouping::Blocks).then(|| {
        cache_key(
            &args,
            &filter,
            &window,
            &opts,
            &enricher.pricer().fingerprint(),
        )
    });
    let mut store = ctx.open_store()?;
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // The report is read (or found kept) while the directory walk looks for changes, and read again only if
    // the import wrote: on the 1 GB benchmark a re-run that finds nothing new prints a kept report instead
    // of aggregating 37k facts again (a warm daily report 85 → 26 ms).
    let (summary, early) =
        ctx.import_using_meanwhile(&mut store, &args.sources, &enricher, interactive, |store| {
            let version = store.content_version()?;
            if let Some(key) = key.as_deref() {
                if let Some(body) = store.cached_report(key, version)? {
                    return Ok(Early::Kept(body));
                }
            }
            Ok(Early::Read(
                version,
                Box::new(read(store, &args, &window, &filter)?),
            ))
        })?;
    print_import_warnings(&summary);
    let unreadable = summary.unreadable;
    let (version, mut read) = match early {
        // A kept report has no note of unreadable files: read again when there are some.
        Early::Kept(body) if summary.files_changed == 0 && unreadable == 0 => {
            print!("{body}");
            return Ok(());
        }
        Early::Read(version, read) if summary.files_changed == 0 => (version, *read),
        _ => {
            let version = store.content_version()?;
            (version, read(&store, &args, &window, &filter)?)
        }
    };
    let text = render(
        &store, &args, &window, &filter, &opts, &mut read, unreadable,
    )?;
    print!("{text}");
    if let Some(key) = key.filter(|_| unreadable == 0) {
        // A report that cannot be kept is still a report: say why at debug level only.
        if let Err(e) = store.save_report(&key, version, &text) {
            tracing::debug!("report not kept: {e:#}");
        }
    }
    Ok(())
}

/// What the meanwhile read of a report found: the report kept for this key at the current data version,
/// or the data read at `version`.
enum Early {
    Kept(String),
    /// Boxed: an `Aggregate` is ~460 bytes.
    Read(i64, Box<Read>),
}

/// The key a report is kept under: a hash of everything its output depends on besides the stored data (the
/// binary, the arguments, the filter they resolve to (`--path` relative to the working directory is made
/// absolute there), the time zone, width and colours, the prices). Of the config only the prices count
/// when a report is read (the rest applies on import, and reaches the report through the stored data); they
/// enter through their fingerprint, which is canonical (a `HashMap`'s `Debug` order changes per process).
fn cache_key(
    args: &ReportArgs,
    filter: &Filter,
    window: &Window,
    opts: &TableOptions,
    prices: &crate::pricing::PriceFingerprint,
) -> String {
    use sha2::{Digest, Sha256};
    // The binary by its path, size and mtime: a new build renders differently without a new version number.
    let exe = std::env::current_exe()
        .and_then(|p| crate::sources::FileStat::of(&p).map(|s| (p, s)))
        .map(|(p, s)| format!("{} {} {}", p.display(), s.size, s.mtime_ns))
        .unwrap_or_default();
    let described = format!(
        "{} {exe}\n{args:?}\n{filter:?}\n{:?}\n{:?} {:?}\n{}",
        env!("CARGO_PKG_VERSION"),
        window.tz,
        opts.width,
        opts.color,
        prices.encode()
    );
    let digest = Sha256::digest(described.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The report as printed on stdout: the JSON document, or the table with its notes.
fn render(
    store: &Store,
    args: &ReportArgs,
    window: &Window,
    filter: &Filter,
    opts: &TableOptions,
    read: &mut Read,
    unreadable: u64,
) -> Result<String> {
    use std::fmt::Write as _;
    let Read {
        sessions,
        agg,
        block_notes,
    } = read;
    if args.grouping == Grouping::Session && !window.is_bounded() {
        // Sessions without any prompt or call still exist.
        for key in sessions.keys() {
            agg.rows.entry(key.clone()).or_default();
        }
    }
    let mut out = String::new();
    if args.json {
        let mut doc = render_json(args.grouping, window, agg, sessions, opts);
        // Blocks rows carry their bounds, burn rate, projection and limit status.
        if let Some(rows) = doc["rows"].as_array_mut() {
            for row in rows {
                let key = row["key"].as_str().unwrap_or_default().to_string();
                if let Some((_, detail)) = block_notes.iter().find(|(k, _)| *k == key) {
                    row["block"] = serde_json::to_value(detail)?;
                }
            }
        }
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    } else if agg.rows.is_empty() && args.active {
        writeln!(out, "No block is running now.")?;
    } else if agg.rows.is_empty() {
        writeln!(
            out,
            "No agent sessions found{}. Run `tokentrace doctor` to see where tokentrace looked.",
            if window.is_bounded() {
                " in this date range"
            } else {
                ""
            }
        )?;
    } else {
        writeln!(
            out,
            "{}",
            render_table(args.grouping, window, agg, sessions, opts)
        )?;
        // Notes under the table, wrapped to its width like the table's own.
        let mut note = |text: String| writeln!(out, "{}", crate::report::wrap(&text, opts.width));
        for (key, d) in block_notes.iter() {
            if let Some(line) = block_line(key, d) {
                note(line)?;
            }
        }
        for (gap, n) in store.known_gaps(filter)? {
            note(format!(
                "Note ({n} session(s)): {gap}; their totals cover only what the files record."
            ))?;
        }
        if unreadable > 0 {
            note(format!(
                "⚠ {unreadable} session file(s) or folder(s) could not be read (permissions?); their sessions \
                 are missing above. `tokentrace doctor` lists them."
            ))?;
        }
        for m in store.cost_mismatches(COST_TOLERANCE_PICO)? {
            if sessions.contains_key(&m.session_key) {
                note(format!("Note: {}", describe_mismatch(&m)))?;
            }
        }
    }
    Ok(out)
}

/// What a report shows, read from the store: the sessions its filter keeps, their facts aggregated, and for
/// blocks each block's detail.
struct Read {
    sessions: BTreeMap<String, SessionRow>,
    agg: Aggregate,
    block_notes: Vec<(String, BlockDetail)>,
}

/// Reads the sessions that `filter` keeps and aggregates their facts by `args.grouping` within `window`.
fn read(store: &Store, args: &ReportArgs, window: &Window, filter: &Filter) -> Result<Read> {
    let sessions: BTreeMap<String, _> = store
        .sessions(filter)?
        .into_iter()
        .map(|s| (s.key.clone(), s))
        .collect();
    let mut agg = Aggregate::default();
    if args.grouping == Grouping::Blocks {
        // A first pass over the model calls places the blocks; the second keys every fact by its block.
        let mut calls = Vec::new();
        store.for_each_fact(
            |key| sessions.contains_key(key),
            |f| {
                if let (FactKind::Generation, Some(ts), Some(s)) =
                    (f.kind, f.ts_ms, sessions.get(&f.session_key))
                {
                    calls.push((s.agent.clone(), ts));
                }
            },
        )?;
        agg.blocks = Some(BlockIndex::build(calls));
    }
    store.for_each_fact(
        |key| sessions.contains_key(key),
        |f| agg.add(args.grouping, window, &sessions, f),
    )?;
    let mut block_notes = Vec::new();
    if let Some(index) = agg.blocks.clone() {
        let now = super::status::now_ms();
        // `max`: the most any finished block used (all blocks are aggregated before `--active` narrows them).
        let limit = match args.token_limit {
            Some(TokenLimit::Tokens(n)) => Some(n),
            Some(TokenLimit::Max) => Some(
                index
                    .all()
                    .filter(|(_, b)| !b.is_active(now))
                    .filter_map(|(a, b)| agg.rows.get(&BlockIndex::key(a, b)))
                    .map(|t| t.tokens.total())
                    .max()
                    .unwrap_or(0),
            ),
            None => None,
        };
        if args.active {
            agg = Aggregate::default();
            agg.blocks = Some(index.only_active(now));
            store.for_each_fact(
                |key| sessions.contains_key(key),
                |f| agg.add(args.grouping, window, &sessions, f),
            )?;
        }
        block_notes = block_details(&agg, now, limit);
    }
    Ok(Read {
        sessions,
        agg,
        block_notes,
    })
}

/// Each block row with its detail (bounds, burn rate and projection when running, limit check).
fn block_details(agg: &Aggregate, now: i64, limit: Option<u64>) -> Vec<(String, BlockDetail)> {
    let Some(index) = &agg.blocks else {
        return Vec::new();
    };
    index
        .all()
        .filter_map(|(agent, b)| {
            let key = BlockIndex::key(agent, b);
            let t = agg.rows.get(&key)?;
            let detail = b.detail(t.tokens.total(), t.cost_pico, now, limit);
            Some((key, detail))
        })
        .collect()
}

/// The note under a blocks table for a running block or one past its token limit.
fn block_line(key: &str, d: &BlockDetail) -> Option<String> {
    use crate::status::render::{count, dollars, minutes};
    let limit_text = d.token_limit.map(|l| {
        format!(
            " · {} of {} tokens ({:.0} %, {:.0} % projected){}",
            count(d.total_tokens),
            count(l.limit),
            l.used_share * 100.0,
            l.projected_share * 100.0,
            match l.status {
                "exceeds" => " ⚠ exceeds the limit",
                "warning" => " ⚠ near the limit",
                _ => "",
            }
        )
    });
    if let (Some(burn), Some(p)) = (d.burn, d.projection) {
        return Some(format!(
            "Running block {key}: {} left · {} tokens/min · {}/h · projected {} tokens, {}{}",
            minutes(p.remaining_minutes),
            count(burn.tokens_per_minute as u64),
            dollars(burn.cost_per_hour_usd),
            count(p.total_tokens),
            dollars(p.cost_usd),
            limit_text.unwrap_or_default()
        ));
    }
    d.token_limit
        .filter(|l| l.status == "exceeds")
        .map(|_| format!("Block {key}{}", limit_text.unwrap_or_default()))
}
