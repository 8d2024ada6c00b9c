//! `tokentrace show SESSION_OR_TRACE`: the trace tree in the terminal.

use std::collections::HashMap;
use std::fmt::Write as _;

use anyhow::{bail, Result};
use clap::Args;

use super::Context;
use crate::model::{pico_to_usd, time::format_utc_ms, Kind, Level};
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
}

pub fn run(ctx: &Context, args: ShowArgs) -> Result<()> {
    let store = ctx.open_store_read_only()?;
    print!("{}", render(&store, &args.id, args.events)?);
    Ok(())
}

/// The tree of the session or trace `id` as text.
pub fn render(store: &Store, id: &str, events: bool) -> Result<String> {
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
                s.start_ms.map(format_utc_ms).unwrap_or_default(),
                s.end_ms.map(format_utc_ms).unwrap_or_default(),
            );
            for t in store.traces_of(&s.key)? {
                trace_tree(store, &t, events, &mut out)?;
            }
        }
        (0, 1) => trace_tree(store, &traces[0], events, &mut out)?,
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

fn trace_tree(store: &Store, t: &TraceRow, events: bool, out: &mut String) -> Result<()> {
    let _ = writeln!(
        out,
        "└─ {} [trace {}]  {}  {}",
        printable(t.name.as_deref().unwrap_or("trace")),
        &t.id[..12],
        duration(t.start_ms, t.end_ms),
        t.input
            .as_deref()
            .map(|i| format!("“{}”", one_line(i, 60)))
            .unwrap_or_default()
    );
    let obs: Vec<ObservationRow> = store
        .observations_of(&t.id)?
        .into_iter()
        .filter(|o| events || o.kind != Kind::Event)
        .collect();
    let known: std::collections::HashSet<&str> = obs.iter().map(|o| o.id.as_str()).collect();
    let mut children: HashMap<Option<&str>, Vec<&ObservationRow>> = HashMap::new();
    for o in &obs {
        let parent = o.parent_id.as_deref().filter(|p| known.contains(p));
        children.entry(parent).or_default().push(o);
    }
    walk(&children, None, "   ", out);
    Ok(())
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
