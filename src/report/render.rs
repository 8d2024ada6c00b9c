//! Report output: JSON documents and terminal tables.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::aggregate::{Aggregate, Grouping, Totals, Window};
use super::layout::{Column, Layout, RowStyle};
use crate::model::pico_to_usd;
use crate::store::read::SessionRow;

/// Rows in display order: sessions by start time, everything else by key.
fn ordered_rows<'a>(
    grouping: Grouping,
    agg: &'a Aggregate,
    sessions: &BTreeMap<String, SessionRow>,
) -> Vec<(&'a String, &'a Totals)> {
    let mut rows: Vec<_> = agg.rows.iter().collect();
    if grouping == Grouping::Session {
        rows.sort_by_key(|(key, _)| (sessions.get(*key).and_then(|s| s.start_ms), (*key).clone()));
    }
    rows
}

fn counters(t: &Totals) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("prompts".into(), json!(t.prompts));
    m.insert("generations".into(), json!(t.generations));
    m.insert("generation_errors".into(), json!(t.generation_errors));
    m.insert("tool_calls".into(), json!(t.tool_calls));
    m.insert("tool_errors".into(), json!(t.tool_errors));
    m.insert("subagents".into(), json!(t.subagents));
    m.insert("tokens".into(), json!(t.tokens));
    m.insert("cost_usd".into(), json!(pico_to_usd(t.cost_pico)));
    m.insert("flagged_calls".into(), json!(t.flagged));
    m
}

fn time(window: &Window, ms: Option<i64>) -> Value {
    match ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok()) {
        Some(t) => Value::String(
            t.to_zoned(window.tz.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%.3f%:z")
                .to_string(),
        ),
        None => Value::Null,
    }
}

/// One row of a grouped report: `{<name>: key, "sessions", …counters, ["duration_ms"], "cost_source",
/// "unpriced_models"}`.
fn group_row(
    name: &str,
    key: &str,
    grouping: Grouping,
    t: &Totals,
) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert(name.into(), json!(key));
    m.insert("sessions".into(), json!(t.sessions.len()));
    m.extend(counters(t));
    m.insert("models".into(), json!(t.models));
    if grouping == Grouping::Tool {
        m.insert("duration_ms".into(), json!(t.tool_duration_ms));
    }
    m.insert("cost_source".into(), json!(t.cost_source()));
    m.insert("unpriced_models".into(), json!(t.unpriced_models));
    m
}

/// The JSON document of a report, one shape for every grouping (schema: `docs/report.schema.json`):
/// `{"grouping", "rows": [...], "totals": {...}}`. Rows carry the counters (`prompts`, `generations`,
/// `generation_errors`, `tool_calls`, `tool_errors`, `subagents`, `tokens{input, cache_read, cache_write,
/// output, reasoning}`, `cost_usd` (USD), `flagged_calls`), `models`, `cost_source`, `unpriced_models`;
/// grouped rows name their group in `key` (and split by agent in `agents` for periods), session rows carry
/// the session's fields. `--breakdown` adds `breakdown: [{model, …counters}]` per row. For one release the
/// session grouping also repeats its rows under `sessions` (the shape before 0.2; deprecated).
pub fn render_json(
    grouping: Grouping,
    window: &Window,
    agg: &Aggregate,
    sessions: &BTreeMap<String, SessionRow>,
    opts: &TableOptions,
) -> Value {
    let breakdown = |key: &str| -> Option<Value> {
        opts.breakdown.then(|| {
            Value::Array(
                agg.by_model
                    .get(key)
                    .into_iter()
                    .flatten()
                    .map(|(model, t)| {
                        let mut m = serde_json::Map::new();
                        m.insert("model".into(), json!(model));
                        m.extend(counters(t));
                        Value::Object(m)
                    })
                    .collect(),
            )
        })
    };
    let rows: Vec<Value> = select_rows(grouping, agg, sessions, opts.select)
        .into_iter()
        .map(|(key, t)| {
            let mut m = if grouping == Grouping::Session {
                session_row(window, sessions.get(key), key, t)
            } else {
                group_row("key", key, grouping, t)
            };
            if grouping != Grouping::Session {
                if let Some(split) = agg.by_agent.get(key) {
                    let agents: Vec<Value> = split
                        .iter()
                        .map(|(agent, t)| Value::Object(group_row("agent", agent, grouping, t)))
                        .collect();
                    m.insert("agents".into(), Value::Array(agents));
                }
            }
            if let Some(b) = breakdown(key) {
                m.insert("breakdown".into(), b);
            }
            Value::Object(m)
        })
        .collect();
    let mut totals = counters(&agg.totals);
    totals.insert("sessions".into(), json!(agg.totals.sessions.len()));
    totals.insert("cost_source".into(), json!(agg.totals.cost_source()));
    totals.insert("unpriced_models".into(), json!(agg.totals.unpriced_models));
    let mut doc = serde_json::Map::new();
    doc.insert("grouping".into(), json!(grouping.as_str()));
    if grouping == Grouping::Session {
        doc.insert("sessions".into(), Value::Array(rows.clone()));
    }
    doc.insert("rows".into(), Value::Array(rows));
    doc.insert("totals".into(), Value::Object(totals));
    Value::Object(doc)
}

/// A session row: the session's fields and its counters.
fn session_row(
    window: &Window,
    s: Option<&SessionRow>,
    key: &str,
    t: &Totals,
) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("key".into(), json!(key));
    m.insert("agent".into(), json!(s.map(|s| s.agent.clone())));
    m.insert(
        "agent_version".into(),
        json!(s.and_then(|s| s.agent_version.clone())),
    );
    m.insert("session_id".into(), json!(s.map(|s| s.session_id.clone())));
    m.insert("project".into(), json!(s.and_then(|s| s.cwd.clone())));
    m.insert("start".into(), time(window, s.and_then(|s| s.start_ms)));
    m.insert("end".into(), time(window, s.and_then(|s| s.end_ms)));
    m.insert("sessions".into(), json!(1));
    m.extend(counters(t));
    m.insert("models".into(), json!(t.models));
    m.insert("cost_source".into(), json!(t.cost_source()));
    m.insert("unpriced_models".into(), json!(t.unpriced_models));
    // The agent's own figure for the session (Claude Code `cost-state`) and what tokentrace could not
    // attribute to a recorded or recovered call.
    let agent_cost = s.and_then(|s| s.agent_cost);
    m.insert("agent_cost_usd".into(), json!(agent_cost.map(pico_to_usd)));
    m.insert(
        "unattributed_usd".into(),
        json!(agent_cost.map(|a| pico_to_usd(a - t.cost_pico))),
    );
    m
}

/// `text` with its control characters made visible, for a terminal: session files are untrusted, and an
/// escape sequence in a prompt or a tool name (`\e]0;title\a`, `\e[2J`) must not reach the terminal.
/// ESC becomes `␛`, the other C0 controls and DEL their Unicode control pictures (U+2400–U+2421: `␇`, `␊`,
/// `␉`, …), C1 controls and bidirectional overrides `\u{9b}`-style escapes. Borrowed when there is
/// nothing to replace. Not for JSON output: JSON escapes control characters itself.
pub fn printable(text: &str) -> Cow<'_, str> {
    fn bad(c: char) -> bool {
        c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if !text.chars().any(bad) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c as u32 {
            n @ 0x00..=0x1f => out.push(char::from_u32(0x2400 + n).expect("control picture")),
            0x7f => out.push('\u{2421}'),
            _ if bad(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `1234567` → `1,234,567`.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
fn usd(pico: i64) -> String {
    let v = pico_to_usd(pico);
    if v != 0.0 && v.abs() < 1.0 {
        format!("${v:.4}")
    } else {
        format!("${v:.2}")
    }
}

/// How a table is drawn: the width to fit, colours, split rows, which rows.
#[derive(Debug, Clone, Default)]
pub struct TableOptions {
    /// Columns available (`None`: as wide as needed).
    pub width: Option<usize>,
    pub color: bool,
    /// A row per model under each row (`--breakdown`).
    pub breakdown: bool,
    /// Leave out the secondary columns (cache, models, project) whatever the width (`--compact`).
    pub compact: bool,
    pub select: Selection,
}

/// Which rows, in which order (`--order`, `--last`, `--limit`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Selection {
    /// Newest (or last key) first.
    pub descending: bool,
    /// Only the N most recent periods or sessions (the last N keys otherwise).
    pub last: Option<usize>,
    /// At most N rows, after ordering.
    pub limit: Option<usize>,
}

/// The rows a report shows, in order: sessions by start time, periods by date, everything else by key;
/// `--last` keeps the latest N, `--order desc` reverses, `--limit` cuts.
pub fn select_rows<'a>(
    grouping: Grouping,
    agg: &'a Aggregate,
    sessions: &BTreeMap<String, SessionRow>,
    sel: Selection,
) -> Vec<(&'a String, &'a Totals)> {
    let mut rows = ordered_rows(grouping, agg, sessions);
    if let Some(n) = sel.last {
        let skip = rows.len().saturating_sub(n);
        rows.drain(..skip);
    }
    if sel.descending {
        rows.reverse();
    }
    if let Some(n) = sel.limit {
        rows.truncate(n);
    }
    rows
}

/// Cost with the decimals of its column: cents when any value in the column reaches $1, else 4 decimals
/// (one rule per column, so the figures line up).
fn usd_in(pico: i64, cents: bool) -> String {
    let v = pico_to_usd(pico);
    if cents {
        format!("${v:.2}")
    } else {
        format!("${v:.4}")
    }
}

/// The shortest path suffix that tells each project apart (`proj-tree`, `a/proj` vs `b/proj`).
fn project_labels<'a>(cwds: impl Iterator<Item = &'a str>) -> BTreeMap<String, String> {
    let cwds: BTreeSet<&str> = cwds.collect();
    let parts = |c: &str| -> Vec<String> {
        c.trim_end_matches('/')
            .split('/')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mut out = BTreeMap::new();
    for c in &cwds {
        let mine = parts(c);
        let mut n = 1;
        while n < mine.len() {
            let suffix = &mine[mine.len() - n..];
            let clash = cwds
                .iter()
                .filter(|o| *o != c)
                .any(|o| parts(o).ends_with(suffix));
            if !clash {
                break;
            }
            n += 1;
        }
        let label = if n >= mine.len() {
            c.to_string()
        } else {
            mine[mine.len() - n..].join("/")
        };
        out.insert(c.to_string(), label);
    }
    out
}

/// Column headers and what they mean (the table's legend and `report --help`).
pub const LEGEND: &str = "Calls: model calls, failed attempts included · Failed calls / Failed tools: model calls / \
tool calls that failed · Input: uncached input tokens · Output: output tokens, reasoning included · Total tokens: \
input + output + cache read + cache write · ⚠ unpriced model · ⚑ impossible values left out";

/// The terminal table of a report, fitted to `opts.width`, with footnotes for unpriced models, left-out
/// columns and flagged calls.
pub fn render_table(
    grouping: Grouping,
    window: &Window,
    agg: &Aggregate,
    sessions: &BTreeMap<String, SessionRow>,
    opts: &TableOptions,
) -> String {
    if grouping == Grouping::Tool {
        return tool_table(agg, opts);
    }
    let rows = select_rows(grouping, agg, sessions, opts.select);
    let is_session = grouping == Grouping::Session;
    let per_model = grouping == Grouping::Model;
    let first = match grouping {
        Grouping::Daily => "Date",
        Grouping::Weekly => "Week of",
        Grouping::Monthly => "Month",
        Grouping::Session => "Session",
        Grouping::Model => "Model",
        Grouping::Project => "Project",
        Grouping::Channel => "Channel",
        Grouping::Agent => "Agent",
        Grouping::Blocks => "Block (start, UTC)",
        Grouping::Tool => unreachable!(),
    };
    // (column, value of a row) — built once so headers and cells cannot drift apart.
    type Value<'v> = Box<dyn Fn(&Totals, bool) -> String + 'v>;
    // Counts that belong to a row, not to its per-model or per-agent sub-rows (left blank there).
    let row_only = |count: fn(&Totals) -> u64| -> Value<'static> {
        Box::new(move |t: &Totals, sub| {
            if sub {
                String::new()
            } else {
                thousands(count(t))
            }
        })
    };
    let cents = rows
        .iter()
        .map(|(_, t)| t.cost_pico)
        .chain([agg.totals.cost_pico])
        .any(|c| c.abs() >= 1_000_000_000_000);
    let mut cols: Vec<(Column, Value)> = Vec::new();
    let names_truncate = matches!(
        grouping,
        Grouping::Model | Grouping::Project | Grouping::Channel
    );
    cols.push((
        Column::text(first, 0, names_truncate),
        Box::new(|_, _| String::new()),
    ));
    if is_session {
        cols.push((
            Column::text("Started", 5, false),
            Box::new(|_, _| String::new()),
        ));
        cols.push((
            Column::text("Agent", 4, false),
            Box::new(|_, _| String::new()),
        ));
        cols.push((
            Column::text("Project", 7, true),
            Box::new(|_, _| String::new()),
        ));
    }
    if grouping.is_period() || is_session {
        cols.push((
            Column::text("Models", 8, true),
            Box::new(|t: &Totals, _| {
                t.models
                    .iter()
                    .map(|m| printable(m).into_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            }),
        ));
    }
    if !per_model {
        cols.push((Column::new("Prompts", 3), row_only(|t| t.prompts)));
    }
    cols.push((
        Column::new("Calls", 2),
        Box::new(|t: &Totals, _| thousands(t.generations)),
    ));
    cols.push((
        Column::new("Failed calls", 3),
        Box::new(|t: &Totals, _| thousands(t.generation_errors)),
    ));
    if !per_model {
        cols.push((Column::new("Tool calls", 4), row_only(|t| t.tool_calls)));
        cols.push((Column::new("Failed tools", 5), row_only(|t| t.tool_errors)));
    }
    cols.push((
        Column::new("Input", 1),
        Box::new(|t: &Totals, _| thousands(t.tokens.input)),
    ));
    cols.push((
        Column::new("Output", 1),
        Box::new(|t: &Totals, _| thousands(t.tokens.output)),
    ));
    cols.push((
        Column::new("Cache read", 6),
        Box::new(|t: &Totals, _| thousands(t.tokens.cache_read)),
    ));
    cols.push((
        Column::new("Cache write", 6),
        Box::new(|t: &Totals, _| thousands(t.tokens.cache_write)),
    ));
    cols.push((
        Column::new("Total tokens", 4),
        Box::new(|t: &Totals, _| thousands(t.tokens.total())),
    ));
    cols.push((
        Column::new("Cost (USD)", 0),
        Box::new(move |t: &Totals, _| {
            let mut s = usd_in(t.cost_pico, cents);
            if !t.unpriced_models.is_empty() {
                s.push_str(" ⚠");
            }
            s
        }),
    ));
    let cost_col = cols.len() - 1;
    let projects = if grouping == Grouping::Project {
        project_labels(rows.iter().map(|(k, _)| k.as_str()))
    } else {
        project_labels(
            rows.iter()
                .filter_map(|(k, _)| sessions.get(*k).and_then(|s| s.cwd.as_deref())),
        )
    };
    let mut layout = Layout {
        columns: cols.iter().map(|(c, _)| c.clone()).collect(),
        ..Layout::default()
    };
    // `model_row`: a `--breakdown` line, which has no prompts or tool calls of its own.
    let push =
        |layout: &mut Layout, style: RowStyle, label: Vec<String>, t: &Totals, model_row: bool| {
            let mut cells: Vec<String> = cols.iter().map(|(_, f)| f(t, model_row)).collect();
            for (i, l) in label.into_iter().enumerate() {
                cells[i] = l;
            }
            let r = layout.rows.len();
            if !t.unpriced_models.is_empty() || t.flagged > 0 {
                layout.alerts.push((r, cost_col));
            }
            layout.rows.push((style, cells));
        };
    let agents: BTreeSet<&String> = agg.by_agent.values().flat_map(|m| m.keys()).collect();
    for (key, t) in &rows {
        let mut label = if is_session {
            match sessions.get(*key) {
                Some(s) => vec![
                    printable(&s.session_id.chars().take(13).collect::<String>()).into_owned(),
                    time(window, s.start_ms)
                        .as_str()
                        .map(|w| w.get(..16).unwrap_or(w).replace('T', " "))
                        .unwrap_or_default(),
                    printable(&s.agent).into_owned(),
                    s.cwd
                        .as_deref()
                        .and_then(|c| projects.get(c))
                        .map(|p| printable(p).into_owned())
                        .unwrap_or_default(),
                ],
                None => vec![printable(key).into_owned()],
            }
        } else if grouping == Grouping::Project {
            vec![printable(projects.get(key.as_str()).unwrap_or(key)).into_owned()]
        } else {
            vec![printable(key).into_owned()]
        };
        // Flagged: some recorded value of this row was impossible and left out.
        if t.flagged > 0 {
            label[0].push_str(" ⚑");
        }
        push(&mut layout, RowStyle::Normal, label, t, false);
        if opts.breakdown {
            for (model, t) in agg.by_model.get(*key).into_iter().flatten() {
                push(
                    &mut layout,
                    RowStyle::Sub,
                    vec![format!("  └ {}", printable(model))],
                    t,
                    true,
                );
            }
        } else if agents.len() > 1 {
            for (agent, t) in agg.by_agent.get(*key).into_iter().flatten() {
                push(
                    &mut layout,
                    RowStyle::Sub,
                    vec![format!("  └ {}", printable(agent))],
                    t,
                    false,
                );
            }
        }
    }
    let mut label = vec!["Total".to_string()];
    if agg.totals.flagged > 0 {
        label[0].push_str(" ⚑");
    }
    push(&mut layout, RowStyle::Total, label, &agg.totals, false);
    if opts.compact {
        let keep: Vec<bool> = layout.columns.iter().map(|c| c.priority < 6).collect();
        let mut i = 0;
        layout.columns.retain(|_| {
            i += 1;
            keep[i - 1]
        });
        for (_, cells) in layout.rows.iter_mut() {
            let mut j = 0;
            cells.retain(|_| {
                j += 1;
                keep[j - 1]
            });
        }
        let cost = layout.columns.len() - 1;
        for a in layout.alerts.iter_mut() {
            a.1 = cost;
        }
    }
    let fitted = layout.fit(opts.width, opts.color);
    let mut notes = String::new();
    let hidden = rows.len() < agg.rows.len();
    if hidden {
        notes.push_str(&format!(
            "\n{} of {} row(s) shown (--last / --limit); the total covers them all.",
            rows.len(),
            agg.rows.len()
        ));
    }
    if !fitted.dropped.is_empty() {
        let mut names = fitted.dropped.clone();
        names.reverse();
        notes.push_str(&format!(
            "\nNot shown to fit {} columns: {} (widen the terminal, set COLUMNS, or use --json).",
            opts.width.unwrap_or(0),
            names.join(", ")
        ));
    }
    if agg.totals.flagged > 0 {
        notes.push_str(&format!(
            "\n⚑ {} model call(s) recorded impossible token counts or costs (negative, not a number, over 10^12 \
             tokens); they are counted without those values. The import warnings name the files.",
            agg.totals.flagged
        ));
    }
    if !agg.totals.unpriced_models.is_empty() {
        notes.push_str(&format!(
            "\n⚠ unpriced: tokens of {} have no price (cost shown excludes them). Add a [prices.\"MODEL\"] entry to the config file, see `tokentrace prices MODEL`.",
            agg.totals.unpriced_models.iter().map(|m| printable(m).into_owned()).collect::<Vec<_>>().join(", ")
        ));
    }
    let marks = agg.totals.generation_errors + agg.totals.tool_errors > 0
        || !agg.totals.unpriced_models.is_empty()
        || agg.totals.flagged > 0;
    if marks {
        notes.push('\n');
        notes.push_str(LEGEND);
    }
    // Notes are prose: wrapped at word boundaries to the width (cells never are).
    let mut out = fitted.text;
    for line in notes.lines().filter(|l| !l.is_empty()) {
        out.push('\n');
        out.push_str(&wrap(line, opts.width));
    }
    out
}

/// `text` wrapped at spaces to `width` columns (unchanged when the width is unknown).
pub fn wrap(text: &str, width: Option<usize>) -> String {
    use unicode_width::UnicodeWidthStr;
    let Some(width) = width.filter(|w| *w >= 20) else {
        return text.to_string();
    };
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split(' ') {
        if !line.is_empty() && line.width() + 1 + word.width() > width {
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out
}

fn tool_table(agg: &Aggregate, opts: &TableOptions) -> String {
    let mut layout = Layout {
        columns: vec![
            Column::text("Tool", 0, true),
            Column::new("Tool calls", 0),
            Column::new("Failed tools", 1),
            Column::new("Error rate", 2),
            Column::new("Total time", 3),
            Column::new("Avg time", 3),
        ],
        ..Layout::default()
    };
    let mut rows: Vec<_> = agg.rows.iter().collect();
    rows.sort_by(|a, b| b.1.tool_calls.cmp(&a.1.tool_calls).then(a.0.cmp(b.0)));
    if opts.select.descending {
        rows.reverse();
    }
    if let Some(n) = opts.select.limit.or(opts.select.last) {
        rows.truncate(n);
    }
    for (key, t) in rows {
        layout.rows.push((RowStyle::Normal, tool_row(key, t)));
    }
    layout
        .rows
        .push((RowStyle::Total, tool_row("Total", &agg.totals)));
    layout.fit(opts.width, opts.color).text
}

fn tool_row(label: &str, t: &Totals) -> Vec<String> {
    let rate = if t.tool_calls == 0 {
        0.0
    } else {
        t.tool_errors as f64 * 100.0 / t.tool_calls as f64
    };
    let avg = if t.tool_calls == 0 {
        0
    } else {
        t.tool_duration_ms / t.tool_calls as i64
    };
    vec![
        printable(label).into_owned(),
        thousands(t.tool_calls),
        thousands(t.tool_errors),
        format!("{rate:.1}%"),
        format!("{:.1}s", t.tool_duration_ms as f64 / 1000.0),
        format!("{avg}ms"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_numbers_and_money() {
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
        assert_eq!(usd(3_405_000_000), "$0.0034");
        assert_eq!(usd(12_500_000_000_000), "$12.50");
        assert_eq!(usd(12_120_000_000), "$0.0121");
        assert_eq!(usd_in(12_120_000_000, false), "$0.0121");
        assert_eq!(usd_in(12_120_000_000, true), "$0.01");
    }

    #[test]
    fn projects_are_named_by_their_shortest_unique_suffix() {
        let labels =
            project_labels(["/tmp/a/proj", "/tmp/b/proj", "/tmp/x/tree", "~/code/app"].into_iter());
        assert_eq!(labels["/tmp/a/proj"], "a/proj");
        assert_eq!(labels["/tmp/b/proj"], "b/proj");
        assert_eq!(labels["/tmp/x/tree"], "tree");
        assert_eq!(labels["~/code/app"], "app");
    }

    /// Item 15: escape sequences from session files (`\e]0;…\a` sets the terminal title, `\e[2J` clears
    /// the screen) reached the terminal through table cells.
    #[test]
    fn escape_sequences_from_sessions_are_shown_not_executed() {
        assert_eq!(
            printable("a\u{1b}]0;pwned\u{7}b\u{1b}[2J"),
            "a␛]0;pwned␇b␛[2J"
        );
        assert_eq!(printable("x\ty\nz\u{7f}"), "x␉y␊z␡");
        assert_eq!(
            printable("c1\u{9b}31m \u{202e}rtl"),
            "c1\\u{9b}31m \\u{202e}rtl"
        );
        assert!(matches!(printable("plain ✓ text"), Cow::Borrowed(_)));
    }
}
