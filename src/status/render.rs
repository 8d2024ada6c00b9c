//! Text forms of a [`Snapshot`]: the `status` screen and the one-line `statusline` template.

use std::fmt::Write as _;

use super::budget::BudgetLevel;
use super::{BlockStatus, SessionStatus, Snapshot};

/// Dollars for a glance: cents from $1 up, else 3 decimals (`$0.042`).
pub fn dollars(usd: f64) -> String {
    if usd.abs() >= 1.0 || usd == 0.0 {
        format!("${usd:.2}")
    } else {
        format!("${usd:.3}")
    }
}

/// `2h05m`, `45m`.
pub fn minutes(total: i64) -> String {
    let (h, m) = (total / 60, total % 60);
    if h > 0 {
        format!("{h}h{m:02}m")
    } else {
        format!("{m}m")
    }
}

/// `1.2M`, `45.3k`, `812`.
pub fn count(n: u64) -> String {
    match n {
        0..=999 => n.to_string(),
        1_000..=999_999 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// How long ago `then` (RFC 3339) was, from `now` (RFC 3339): `12s`, `4m`, `2h`.
fn ago(then: &str, now: &str) -> String {
    let parse = |s: &str| s.parse::<jiff::Timestamp>().ok();
    let Some(secs) = parse(now)
        .zip(parse(then))
        .map(|(n, t)| (n - t).get_seconds())
    else {
        return "?".into();
    };
    match secs.max(0) {
        s @ 0..=59 => format!("{s}s"),
        s @ 60..=3599 => format!("{}m", s / 60),
        s => format!("{}h", s / 3600),
    }
}

/// The `status` screen: spend, budgets, blocks, then one line per session written to lately.
pub fn screen(snap: &Snapshot, active_minutes: i64) -> String {
    let mut out = String::new();
    let s = &snap.spend;
    let _ = writeln!(
        out,
        "Spend  today {}  ·  week {}  ·  month {}",
        dollars(s.today_usd),
        dollars(s.week_usd),
        dollars(s.month_usd)
    );
    for c in &snap.budgets {
        let what = match &c.session {
            Some(key) => format!("session {}", short_id(key)),
            None => format!("{} {}", c.scope, c.period),
        };
        let mark = match c.level {
            BudgetLevel::Ok => "ok",
            BudgetLevel::Near => "NEAR",
            BudgetLevel::Over => "OVER",
        };
        let _ = writeln!(
            out,
            "Budget {what}: {} of {} ({:.0} %) {mark}",
            dollars(c.spent_usd),
            dollars(c.limit_usd),
            c.share * 100.0
        );
    }
    for b in &snap.blocks {
        let _ = writeln!(out, "{}", block_line(b));
    }
    out.push('\n');
    if snap.sessions.is_empty() {
        let _ = writeln!(
            out,
            "No session written to in the last {active_minutes} minutes."
        );
        return out;
    }
    let rows: Vec<[String; 8]> = snap
        .sessions
        .iter()
        .map(|r| session_cells(r, &snap.now))
        .collect();
    let header = [
        "AGENT", "PROJECT", "MODEL", "STATE", "PROMPTS", "COST", "$/H", "LAST",
    ];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            let pad = w.saturating_sub(cell.chars().count());
            // Numbers right-aligned, words left-aligned.
            if (4..7).contains(&i) {
                l.push_str(&" ".repeat(pad));
                l.push_str(cell);
            } else {
                l.push_str(cell);
                l.push_str(&" ".repeat(pad));
            }
            l.push_str("  ");
        }
        l.trim_end().to_string()
    };
    let _ = writeln!(out, "{}", line(&header.map(str::to_string)));
    for r in &rows {
        let _ = writeln!(out, "{}", line(r));
    }
    for s in &snap.sessions {
        for a in &s.anomalies {
            let _ = writeln!(
                out,
                "⚠ {} {}: {}",
                s.agent,
                short_id(&s.spend.session_key),
                a.message
            );
        }
    }
    out
}

fn session_cells(r: &SessionStatus, now: &str) -> [String; 8] {
    [
        r.agent.clone(),
        r.project.clone().unwrap_or_else(|| "-".into()),
        r.model.clone().unwrap_or_else(|| "-".into()),
        serde_json::to_value(r.state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        r.prompts.to_string(),
        dollars(r.cost_usd),
        dollars(r.burn_rate_usd_per_hour),
        format!("{} ago", ago(&r.last_write, now)),
    ]
}

/// `Block claude  20:00–01:00 UTC, 2h30m left  ·  $4.10  ·  1.2M tokens  ·  $1.64/h → $8.20 at the end`.
pub fn block_line(b: &BlockStatus) -> String {
    let hm = |iso: &str| iso.get(11..16).unwrap_or("?").to_string();
    format!(
        "Block {}  {}–{} UTC, {} left  ·  {}  ·  {} tokens  ·  {}/h → {} at the end",
        b.agent,
        hm(&b.start),
        hm(&b.end),
        minutes(b.remaining_minutes),
        dollars(b.cost_usd),
        count(b.total_tokens),
        dollars(b.burn.cost_per_hour_usd),
        dollars(b.projected.cost_usd)
    )
}

fn short_id(key: &str) -> &str {
    let id = key.split_once(':').map_or(key, |(_, id)| id);
    id.get(..8).unwrap_or(id)
}

/// The placeholders of a `statusline --format` template.
pub const PLACEHOLDERS: &[&str] = &[
    "model",
    "session_cost",
    "today_cost",
    "week_cost",
    "month_cost",
    "block_left",
    "block_cost",
    "burn",
    "context",
    "state",
    "project",
    "agent",
    "status",
];

/// Fills `{name}` placeholders from `value` (an unknown or empty one prints `-`); `{{` and `}}` are braces.
pub fn fill(template: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
        } else if let (true, Some(end)) = (tail.starts_with('{'), tail.find('}')) {
            let name = &tail[1..end];
            out.push_str(
                &value(name)
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| "-".into()),
            );
            rest = &tail[end + 1..];
        } else {
            out.push_str(&tail[..1]);
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_and_figures() {
        let v = |name: &str| match name {
            "model" => Some("Opus".to_string()),
            "context" => Some(String::new()),
            _ => None,
        };
        assert_eq!(
            fill("{model} | {context} | {{x}} | {nope", v),
            "Opus | - | {x} | {nope"
        );
        assert_eq!(dollars(12.345), "$12.35");
        assert_eq!(dollars(0.0421), "$0.042");
        assert_eq!(minutes(125), "2h05m");
        assert_eq!(minutes(7), "7m");
        assert_eq!(count(1_234_567), "1.2M");
        assert_eq!(ago("2026-12-02T04:00:00Z", "2026-12-02T04:03:10Z"), "3m");
    }
}
