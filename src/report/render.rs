//! Report output: JSON documents and terminal tables.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, ContentArrangement, Table};
use serde_json::{json, Value};

use super::aggregate::{Aggregate, Grouping, Totals, Window};
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
    if grouping == Grouping::Tool {
        m.insert("duration_ms".into(), json!(t.tool_duration_ms));
    }
    m.insert("cost_source".into(), json!(t.cost_source()));
    m.insert("unpriced_models".into(), json!(t.unpriced_models));
    m
}

/// The JSON document of a report. Daily, weekly and monthly rows carry `"agents"`: the same row split by
/// agent program.
pub fn render_json(
    grouping: Grouping,
    window: &Window,
    agg: &Aggregate,
    sessions: &BTreeMap<String, SessionRow>,
) -> Value {
    if grouping == Grouping::Session {
        let rows: Vec<Value> = ordered_rows(grouping, agg, sessions)
            .into_iter()
            .map(|(key, t)| {
                let s = sessions.get(key);
                let mut m = serde_json::Map::new();
                m.insert("agent".into(), json!(s.map(|s| s.agent.clone())));
                m.insert(
                    "agent_version".into(),
                    json!(s.and_then(|s| s.agent_version.clone())),
                );
                m.insert("session_id".into(), json!(s.map(|s| s.session_id.clone())));
                m.insert("project".into(), json!(s.and_then(|s| s.cwd.clone())));
                m.insert("start".into(), time(window, s.and_then(|s| s.start_ms)));
                m.insert("end".into(), time(window, s.and_then(|s| s.end_ms)));
                m.extend(counters(t));
                m.insert("cost_source".into(), json!(t.cost_source()));
                m.insert("unpriced_models".into(), json!(t.unpriced_models));
                // The agent's own figure for the session (Claude Code `cost-state`) and what tokentrace could
                // not attribute to a recorded or recovered call.
                let agent_cost = s.and_then(|s| s.agent_cost);
                m.insert("agent_cost_usd".into(), json!(agent_cost.map(pico_to_usd)));
                m.insert(
                    "unattributed_usd".into(),
                    json!(agent_cost.map(|a| pico_to_usd(a - t.cost_pico))),
                );
                Value::Object(m)
            })
            .collect();
        return json!({ "sessions": rows, "totals": counters(&agg.totals) });
    }
    let rows: Vec<Value> = agg
        .rows
        .iter()
        .map(|(key, t)| {
            let mut m = group_row("key", key, grouping, t);
            if let Some(split) = agg.by_agent.get(key) {
                let agents: Vec<Value> = split
                    .iter()
                    .map(|(agent, t)| Value::Object(group_row("agent", agent, grouping, t)))
                    .collect();
                m.insert("agents".into(), Value::Array(agents));
            }
            Value::Object(m)
        })
        .collect();
    let mut totals = counters(&agg.totals);
    totals.insert("sessions".into(), json!(agg.totals.sessions.len()));
    json!({ "grouping": grouping.as_str(), "rows": rows, "totals": totals })
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

fn usd(pico: i64) -> String {
    let v = pico_to_usd(pico);
    if v != 0.0 && v.abs() < 1.0 {
        format!("${v:.4}")
    } else {
        format!("${v:.2}")
    }
}

fn cost_cell(t: &Totals) -> Cell {
    let mut text = usd(t.cost_pico);
    if !t.unpriced_models.is_empty() {
        text.push_str(" ⚠");
    }
    Cell::new(text).set_alignment(CellAlignment::Right)
}

fn right(s: String) -> Cell {
    Cell::new(s).set_alignment(CellAlignment::Right)
}

fn session_label(key: &str, sessions: &BTreeMap<String, SessionRow>, window: &Window) -> String {
    match sessions.get(key) {
        Some(s) => {
            let id: String = s.session_id.chars().take(13).collect();
            let when = time(window, s.start_ms);
            let when = when
                .as_str()
                .map(|w| w.get(..16).unwrap_or(w).replace('T', " "))
                .unwrap_or_default();
            let project = s.cwd.as_deref().map(short_project).unwrap_or("");
            format!(
                "{when} {} {}\n{}",
                printable(&s.agent),
                printable(&id),
                printable(project)
            )
        }
        None => printable(key).into_owned(),
    }
}

fn short_project(cwd: &str) -> &str {
    let trimmed = cwd.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some((_, last)) if !last.is_empty() => last,
        _ => trimmed,
    }
}

/// The terminal table of a report, with a footnote for unpriced models.
pub fn render_table(
    grouping: Grouping,
    window: &Window,
    agg: &Aggregate,
    sessions: &BTreeMap<String, SessionRow>,
) -> String {
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    if grouping == Grouping::Tool {
        table.set_header(vec![
            "Tool",
            "Calls",
            "Errors",
            "Error rate",
            "Total time",
            "Avg time",
        ]);
        let mut rows: Vec<_> = agg.rows.iter().collect();
        rows.sort_by(|a, b| b.1.tool_calls.cmp(&a.1.tool_calls).then(a.0.cmp(b.0)));
        for (key, t) in rows {
            table.add_row(tool_row(key, t));
        }
        table.add_row(tool_row("Total", &agg.totals));
        return table.to_string();
    }
    let first = match grouping {
        Grouping::Daily => "Date",
        Grouping::Weekly => "Week of",
        Grouping::Monthly => "Month",
        Grouping::Session => "Session",
        Grouping::Model => "Model",
        Grouping::Project => "Project",
        Grouping::Channel => "Channel",
        Grouping::Agent => "Agent",
        Grouping::Tool => unreachable!(),
    };
    table.set_header(vec![
        first,
        "Prompts",
        "Calls",
        "Errors",
        "Tools",
        "Input",
        "Output",
        "Cache read",
        "Cache write",
        "Cost (USD)",
    ]);
    // Periods on which several agents ran get a line per agent, when the report covers more than one.
    let agents: BTreeSet<&String> = agg.by_agent.values().flat_map(|m| m.keys()).collect();
    for (key, t) in ordered_rows(grouping, agg, sessions) {
        let label = if grouping == Grouping::Session {
            session_label(key, sessions, window)
        } else {
            printable(key).into_owned()
        };
        // Flagged: some recorded value of this row was impossible and left out.
        let label = if t.flagged > 0 {
            format!("{label} ⚑")
        } else {
            label
        };
        table.add_row(usage_row(grouping, label, t));
        if agents.len() > 1 {
            for (agent, t) in agg.by_agent.get(key).into_iter().flatten() {
                table.add_row(usage_row(grouping, format!("  └ {}", printable(agent)), t));
            }
        }
    }
    table.add_row(usage_row(grouping, "Total".into(), &agg.totals));
    let mut out = table.to_string();
    if agg.totals.flagged > 0 {
        out.push_str(&format!(
            "\n⚠ {} model call(s) recorded impossible token counts or costs (negative, not a number, over 10^12 \
             tokens); they are counted without those values. The import warnings name the files.",
            agg.totals.flagged
        ));
    }
    if !agg.totals.unpriced_models.is_empty() {
        out.push_str(&format!(
            "\n⚠ unpriced: tokens of {} have no price (cost shown excludes them). Add a [prices.\"MODEL\"] entry to the config file, see `tokentrace prices MODEL`.",
            agg.totals.unpriced_models.iter().map(|m| printable(m).into_owned()).collect::<Vec<_>>().join(", ")
        ));
    }
    out
}

fn usage_row(grouping: Grouping, label: String, t: &Totals) -> Vec<Cell> {
    // A prompt spans models; per-model prompt counts would be made up.
    let prompts = if grouping == Grouping::Model {
        "-".into()
    } else {
        thousands(t.prompts)
    };
    vec![
        Cell::new(label),
        right(prompts),
        right(thousands(t.generations)),
        right(thousands(t.generation_errors + t.tool_errors)),
        right(thousands(t.tool_calls)),
        right(thousands(t.tokens.input)),
        right(thousands(t.tokens.output)),
        right(thousands(t.tokens.cache_read)),
        right(thousands(t.tokens.cache_write)),
        cost_cell(t),
    ]
}

fn tool_row(label: &str, t: &Totals) -> Vec<Cell> {
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
        Cell::new(printable(label)),
        right(thousands(t.tool_calls)),
        right(thousands(t.tool_errors)),
        right(format!("{rate:.1}%")),
        right(format!("{:.1}s", t.tool_duration_ms as f64 / 1000.0)),
        right(format!("{avg}ms")),
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
        assert_eq!(short_project("/tmp/pi-new/proj-tree"), "proj-tree");
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
