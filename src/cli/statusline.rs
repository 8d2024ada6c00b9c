//! `tokentrace statusline`: one line for Claude Code's status bar (or tmux, waybar, polybar), from the JSON
//! Claude Code passes on stdin. It never fails the bar: any error prints a short fallback line and exits 0.
//!
//! Claude Code's `statusLine` command input (documented at code.claude.com/docs/en/statusline) carries, among
//! others: `session_id`, `transcript_path`, `cwd`, `model.{id,display_name}`, `workspace.{current_dir,
//! project_dir}`, `cost.total_cost_usd`, and `context_window.{used_percentage,context_window_size,
//! current_usage}`. Every field is optional here: without stdin (tmux, waybar) the line shows today's spend
//! and the current block.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use serde_json::Value;

use super::Context;
use crate::model::{pico_to_usd, Agent};
use crate::sources::{DiscoveredFile, FileStat};
use crate::status::{self, render, state, BLOCK_AGENTS};
use crate::store::live::SessionSpend;
use crate::store::Store;

/// The default template.
pub const DEFAULT_FORMAT: &str =
    "{model} · {session_cost} session · {today_cost} today · {block_left} left · ctx {context}";

/// Largest stdin document read (bytes); Claude Code's is ~1 KB.
const MAX_INPUT: u64 = 1 << 20;

#[derive(Debug, Args)]
#[command(after_help = "\
Placeholders: {model} {session_cost} {today_cost} {week_cost} {month_cost} {block_left} {block_cost}
  {burn} {context} {state} {project} {agent} {status}
{{ and }} print braces; a value that is not known prints -.

Claude Code (~/.claude/settings.json):
  \"statusLine\": {\"type\": \"command\", \"command\": \"tokentrace statusline\"}
tmux (~/.tmux.conf):
  set -g status-right '#(tokentrace statusline --format \"{today_cost} today · {block_left} left\")'
waybar (config, a custom module):
  \"custom/tokentrace\": {\"exec\": \"tokentrace statusline --format '{today_cost} · {block_left}'\", \"interval\": 10}

Without a running `tokentrace watch`, it imports the transcript Claude Code names (nothing else); with one, it
reads the store only.")]
pub struct StatuslineArgs {
    /// The line's template (placeholders below).
    #[arg(long, value_name = "TEMPLATE", default_value = DEFAULT_FORMAT)]
    pub format: String,
    /// Time zone of "today" (IANA name or UTC). Default: local.
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,
}

/// Prints the line; errors become a short fallback line (the status bar must never break).
pub fn run(ctx: Result<Context>, args: StatuslineArgs) -> Result<()> {
    let input = read_input();
    let line = ctx
        .and_then(|ctx| line(&ctx, &args, &input))
        .unwrap_or_else(|e| fallback(&input, &e));
    println!("{line}");
    Ok(())
}

/// `Opus · tokentrace: store busy`: the model Claude Code named, and the first words of the error.
fn fallback(input: &Value, err: &anyhow::Error) -> String {
    let model = input["model"]["display_name"]
        .as_str()
        .unwrap_or("tokentrace");
    let msg: String = format!("{err}").chars().take(60).collect();
    format!("{model} · tokentrace: {msg}")
}

/// Claude Code's JSON from stdin; `null` when stdin is a terminal, empty or not JSON.
fn read_input() -> Value {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Value::Null;
    }
    let mut buf = Vec::new();
    if stdin.lock().take(MAX_INPUT).read_to_end(&mut buf).is_err() {
        return Value::Null;
    }
    serde_json::from_slice(&buf).unwrap_or(Value::Null)
}

fn line(ctx: &Context, args: &StatuslineArgs, input: &Value) -> Result<String> {
    let now = super::status::now_ms();
    let transcript = input["transcript_path"]
        .as_str()
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    let watched = !ctx.ephemeral && crate::watch::lock::running(&ctx.data_dir).is_some();
    let store = match &transcript {
        Some(path) if !watched && path.is_file() => {
            let mut store = ctx.open_store()?;
            // A transcript's new lines touch a few hundred pages: 4 MB of cache keeps the call small.
            store.set_cache_kib(4_096)?;
            import_transcript(ctx, &mut store, path)?;
            store
        }
        _ => ctx.open_store_read_only()?,
    };
    let session = match input["session_id"].as_str() {
        Some(id) => store.session(&format!("claude:{id}"))?,
        None => None,
    };
    let session = match (session, &transcript) {
        (Some(s), _) => Some(s),
        (None, Some(p)) => store.session_of_file(&p.to_string_lossy())?.map(|(s, _)| s),
        (None, None) => None,
    };
    let calls = match &session {
        Some(s) => Some(store.session_calls(&s.key, None)?),
        None => None,
    };
    let marks = match &session {
        Some(s) => Some(store.turn_marks(&s.key)?),
        None => None,
    };
    let tz = super::report::time_zone(args.tz.as_deref())?;
    let starts = status::period_starts(now, &tz);
    // Only the periods the line shows are read (a month of calls costs more than a day of them).
    let month_too = !ctx.config.budgets.is_empty()
        || ["{week_cost}", "{month_cost}"]
            .iter()
            .any(|p| args.format.contains(p));
    let periods = if month_too {
        [starts.day, starts.week, starts.month]
    } else {
        [starts.day; 3]
    };
    let (totals, spend) =
        status::period_spend(&store, &ctx.config.budgets, periods, starts.next_day)?;
    let totals = totals.map(pico_to_usd);
    // The block of the session's agent (Claude Code's, when stdin says nothing).
    let agent = session.as_ref().map_or("claude", |s| s.agent.as_str());
    let block = if BLOCK_AGENTS.contains(&agent) {
        status::current_block(&store, agent, now)?
    } else {
        None
    };
    let level = if ctx.config.budgets.is_empty() {
        None
    } else {
        let per_session: Vec<_> = session
            .iter()
            .zip(calls.iter())
            .map(|(s, c)| SessionSpend::whole_session(s, c.cost_pico))
            .collect();
        Some(status::budget::worst(
            &ctx.config.budgets.evaluate(&spend, &per_session),
        ))
    };
    let text = |v: &Value| v.as_str().map(str::to_string);
    let value = |name: &str| -> Option<String> {
        match name {
            "model" => {
                text(&input["model"]["display_name"]).or_else(|| marks.as_ref()?.model.clone())
            }
            "session_cost" => calls.map(|c| render::dollars(pico_to_usd(c.cost_pico))),
            "today_cost" => Some(render::dollars(totals[0])),
            "week_cost" => Some(render::dollars(totals[1])),
            "month_cost" => Some(render::dollars(totals[2])),
            "block_left" => block.as_ref().map(|b| render::minutes(b.remaining_minutes)),
            "block_cost" => block.as_ref().map(|b| render::dollars(b.cost_usd)),
            "burn" => block
                .as_ref()
                .map(|b| format!("{}/h", render::dollars(b.burn.cost_per_hour_usd))),
            "context" => context_use(input),
            "state" => {
                let (s, m) = (session.as_ref()?, marks.as_ref()?);
                let written = store
                    .session_of_file(s.file.as_deref()?)
                    .ok()
                    .flatten()
                    .map_or(now, |(_, w)| w);
                let st =
                    state::turn_state(&s.agent, m, written, now, status::ENDED_AFTER_MIN * 60_000);
                serde_json::to_value(st).ok().and_then(|v| text(&v))
            }
            "project" => text(&input["workspace"]["project_dir"])
                .or_else(|| text(&input["cwd"]))
                .or_else(|| session.as_ref()?.cwd.clone())
                .and_then(|p| Some(Path::new(&p).file_name()?.to_string_lossy().into_owned())),
            "agent" => Some(agent.to_string()),
            "status" => level
                .and_then(|l| serde_json::to_value(l).ok())
                .and_then(|v| text(&v)),
            _ => None,
        }
    };
    Ok(render::fill(&args.format, value))
}

/// Imports the transcript (and its subagents' transcripts) when it changed since the store saw it: one stat
/// and one file-row lookup each when nothing did (the import's own check, without building the enrichment),
/// which is what keeps a status bar cheap.
fn import_transcript(ctx: &Context, store: &mut Store, path: &Path) -> Result<()> {
    let mut files = vec![path.to_path_buf()];
    if let Ok(dir) = std::fs::read_dir(path.with_extension("").join("subagents")) {
        files.extend(
            dir.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "jsonl")),
        );
    }
    let files: Vec<DiscoveredFile> = files
        .into_iter()
        .filter_map(|file| {
            let stat = FileStat::of(&file).ok()?;
            Some(DiscoveredFile {
                path: file,
                agent: Agent::Claude,
                stat: Some(stat),
            })
        })
        .collect();
    let changed = crate::ingest::changed_files(store, files)?;
    if !changed.is_empty() {
        crate::ingest::import(store, &changed, &ctx.enricher()?, false)?;
    }
    Ok(())
}

/// Context use from Claude Code's input: `used_percentage`, else the current usage over the window size.
fn context_use(input: &Value) -> Option<String> {
    let cw = &input["context_window"];
    if let Some(p) = cw["used_percentage"].as_f64() {
        return Some(format!("{p:.0}%"));
    }
    let size = cw["context_window_size"].as_f64().filter(|s| *s > 0.0)?;
    let u = &cw["current_usage"];
    let used: f64 = [
        "input_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    ]
    .iter()
    .filter_map(|k| u[*k].as_f64())
    .sum();
    Some(format!("{:.0}%", used / size * 100.0))
}
