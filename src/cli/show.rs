//! `tokentrace show SESSION_OR_TRACE`: the trace tree in the terminal.

use std::collections::HashMap;
use std::fmt::Write as _;

use anyhow::{bail, Result};
use clap::Args;

use super::{print_import_warnings, Context, SourceArgs};
use crate::model::{pico_to_usd, Kind, Level};
use crate::report::printable;
use crate::store::read::{ObservationRow, TraceRow};
use crate::store::Store;

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// A session id, a trace id, or a unique prefix of either.
    pub id: String,
    /// Also list events (model changes, labels, retry markers, …).
    #[arg(long)]
    pub events: bool,
    /// Time zone of the times shown (IANA name such as Europe/Berlin, or UTC). Default: local.
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,
    #[command(flatten)]
    pub sources: SourceArgs,
}

pub fn run(ctx: &Context, args: ShowArgs) -> Result<()> {
    let tz = super::report::time_zone(args.tz.as_deref())?;
    // Like `report`, show imports what is new first (a session still running shows its latest turns);
    // `--no-import` reads the store as it is, read-only.
    let store = if args.sources.no_import {
        ctx.open_store_read_only()?
    } else {
        let mut store = ctx.open_store()?;
        let summary = ctx.import(&mut store, &args.sources)?;
        print_import_warnings(&summary);
        store
    };
    print!("{}", render(&store, &args.id, args.events, &tz)?);
    Ok(())
}

/// `ms` as a local time in `tz` (`2026-11-23 17:49:22 CET`).
fn when(ms: Option<i64>, tz: &jiff::tz::TimeZone) -> String {
    ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|t| {
            t.to_zoned(tz.clone())
                .strftime("%Y-%m-%d %H:%M:%S %Z")
                .to_string()
        })
        .unwrap_or_else(|| "-".into())
}

/// Sums over a session's observations for its total line.
#[derive(Default)]
struct Total {
    prompts: u64,
    calls: u64,
    call_errors: u64,
    tools: u64,
    tool_errors: u64,
    usage: crate::model::Usage,
    cost: i64,
}

impl Total {
    fn add(&mut self, is_prompt: bool, obs: &[ObservationRow]) {
        self.prompts += u64::from(is_prompt);
        for o in obs {
            match o.kind {
                Kind::Generation => {
                    self.calls += 1;
                    self.call_errors += u64::from(o.level == Level::Error);
                    if let Some(u) = o.usage {
                        self.usage.input += u.input;
                        self.usage.output += u.output;
                        self.usage.cache_read += u.cache_read;
                        self.usage.cache_write_5m += u.cache_write();
                        self.usage.reasoning += u.reasoning;
                    }
                    self.cost = self.cost.saturating_add(o.cost_pico.unwrap_or(0));
                }
                Kind::Tool => {
                    self.tools += 1;
                    self.tool_errors += u64::from(o.level == Level::Error);
                }
                _ => {}
            }
        }
    }

    fn line(&self) -> String {
        format!(
            "total: {} prompt(s), {} model call(s) ({} failed), {} tool call(s) ({} failed); tokens in {} out {} \
             cache r/w {}/{}; ${:.6}",
            self.prompts,
            self.calls,
            self.call_errors,
            self.tools,
            self.tool_errors,
            self.usage.input,
            self.usage.output,
            self.usage.cache_read,
            self.usage.cache_write_5m,
            pico_to_usd(self.cost)
        )
    }
}

/// The tree of the session or trace `id` as text, times in `tz`.
pub fn render(store: &Store, id: &str, events: bool, tz: &jiff::tz::TimeZone) -> Result<String> {
    let id = id.trim();
    if id.is_empty() {
        bail!("give a session or trace id (see `tokentrace report session`)");
    }
    let sessions = store.find_sessions(id)?;
    let traces = store.find_traces(id)?;
    let mut out = String::new();
    match (sessions.len(), traces.len()) {
        (1, _) => {
            let s = &sessions[0];
            let _ = writeln!(
                out,
                "session {} ({}{})  {} → {}",
                printable(&s.session_id),
                printable(&s.agent),
                s.cwd
                    .as_deref()
                    .map(|c| format!(", {}", printable(c)))
                    .unwrap_or_default(),
                when(s.start_ms, tz),
                when(s.end_ms, tz),
            );
            let traces = store.traces_of(&s.key)?;
            let mut total = Total::default();
            for (i, t) in traces.iter().enumerate() {
                let last = i + 1 == traces.len();
                let obs = trace_tree(store, t, events, last, &mut out)?;
                total.add(t.is_prompt, &obs);
            }
            let _ = writeln!(out, "{}", total.line());
        }
        (0, 1) => {
            let obs = trace_tree(store, &traces[0], events, true, &mut out)?;
            let mut total = Total::default();
            total.add(traces[0].is_prompt, &obs);
            let _ = writeln!(out, "{}", total.line());
        }
        (0, 0) => bail!(
            "no session or trace matches '{id}' (ids come from `tokentrace report session --json`)"
        ),
        _ => bail!(
            "'{id}' is ambiguous: it matches {} session(s) and {} trace(s); give more characters",
            sessions.len(),
            traces.len()
        ),
    }
    Ok(out)
}

fn duration(start: Option<i64>, end: Option<i64>) -> String {
    match (start, end) {
        (Some(s), Some(e)) if e >= s => format!("{:.2}s", (e - s) as f64 / 1000.0),
        _ => "-".into(),
    }
}

/// `text` on one line (whitespace runs become one space), at most `max` chars, control characters shown
/// ([`printable`]).
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let flat = if flat.chars().count() > max {
        format!("{}…", flat.chars().take(max).collect::<String>())
    } else {
        flat
    };
    printable(&flat).into_owned()
}

/// Writes one trace as a branch of the session (`last`: the session's last trace) and returns its
/// observations (events included).
fn trace_tree(
    store: &Store,
    t: &TraceRow,
    events: bool,
    last: bool,
    out: &mut String,
) -> Result<Vec<ObservationRow>> {
    let _ = writeln!(
        out,
        "{} {} [trace {}]  {}  {}",
        if last { "└─" } else { "├─" },
        printable(t.name.as_deref().unwrap_or("trace")),
        &t.id[..12],
        duration(t.start_ms, t.end_ms),
        t.input
            .as_deref()
            .map(|i| format!("“{}”", one_line(i, 60)))
            .unwrap_or_default()
    );
    let all: Vec<ObservationRow> = store.observations_of(&t.id)?;
    let obs: Vec<&ObservationRow> = all
        .iter()
        .filter(|o| events || o.kind != Kind::Event)
        .collect();
    let known: std::collections::HashSet<&str> = obs.iter().map(|o| o.id.as_str()).collect();
    let mut children: HashMap<Option<&str>, Vec<&ObservationRow>> = HashMap::new();
    for o in &obs {
        let parent = o.parent_id.as_deref().filter(|p| known.contains(p));
        children.entry(parent).or_default().push(o);
    }
    walk(&children, None, if last { "   " } else { "│  " }, out);
    Ok(all)
}

fn walk(
    children: &HashMap<Option<&str>, Vec<&ObservationRow>>,
    parent: Option<&str>,
    indent: &str,
    out: &mut String,
) {
    let Some(kids) = children.get(&parent) else {
        return;
    };
    for (i, o) in kids.iter().enumerate() {
        let last = i + 1 == kids.len();
        let _ = writeln!(
            out,
            "{indent}{} {}",
            if last { "└─" } else { "├─" },
            describe(o)
        );
        let next = format!("{indent}{}", if last { "   " } else { "│  " });
        walk(children, Some(o.id.as_str()), &next, out);
    }
}

fn describe(o: &ObservationRow) -> String {
    let mut s = format!(
        "{} {}  {}",
        o.kind.as_str(),
        printable(&o.name),
        duration(o.start_ms, o.end_ms)
    );
    if let Some(u) = o.usage {
        let _ = write!(
            s,
            "  in {} out {} cache r/w {}/{}",
            u.input,
            u.output,
            u.cache_read,
            u.cache_write()
        );
    }
    if o.kind == Kind::Generation {
        if o.unpriced {
            s.push_str("  UNPRICED");
        } else if let Some(c) = o.cost_pico {
            let _ = write!(
                s,
                "  ${:.6} ({})",
                pico_to_usd(c),
                printable(o.cost_source.as_deref().unwrap_or("none"))
            );
        }
    }
    match o.level {
        Level::Error => {
            let _ = write!(
                s,
                "  ERROR {}",
                one_line(o.status_message.as_deref().unwrap_or(""), 80)
            );
        }
        Level::Warning => s.push_str("  WARNING"),
        _ => {}
    }
    s
}
