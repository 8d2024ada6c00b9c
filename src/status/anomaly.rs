//! Runaway detection (ADR-0135) and budget alerts: after every import, the sessions it touched are checked for
//! a tool called again and again with the same arguments, a burst of cost, a prompt with too many model calls,
//! and spend past a budget. What is found is stored ([`crate::store::anomalies`]): `status` shows it, sinks
//! export it with its trace (a `tokentrace.anomaly` span event on the root span and a Langfuse score), and
//! `watch` / `sync` send the configured alerts ([`crate::sinks::alerts`]).
//!
//! ```toml
//! [runaway]
//! repeat_tool_calls = 5     # the same tool with the same arguments this many times in a row (0: off)
//! window_minutes = 10       # with window_usd: a session's cost within any 10 minutes …
//! window_usd = 5.0          # … above $5 (unset: off)
//! max_model_calls = 100     # model calls for one prompt (unset: off)
//!
//! [alerts]
//! notify = true             # a desktop notification (notify-send)
//! webhook = "https://hooks.slack.com/services/…"   # JSON POST: {"text", "content", "anomaly"} (Slack, Discord)
//! ```

use anyhow::Result;
use serde::Deserialize;

use super::budget::{BudgetLevel, Budgets};
use crate::model::{pico_to_usd, Pico};
use crate::store::anomalies::{Anomaly, SessionCall};
use crate::store::live::SessionSpend;
use crate::store::Store;

/// The `[runaway]` table.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Runaway {
    /// The same tool with the same arguments this many times in a row is a runaway loop (0: off).
    pub repeat_tool_calls: u32,
    /// The window of `window_usd`, minutes.
    pub window_minutes: u32,
    /// A session whose cost within any `window_minutes` passes this (USD).
    pub window_usd: Option<f64>,
    /// A prompt with more model calls than this.
    pub max_model_calls: Option<u32>,
}

impl Default for Runaway {
    fn default() -> Self {
        Runaway {
            repeat_tool_calls: 5,
            window_minutes: 10,
            window_usd: None,
            max_model_calls: None,
        }
    }
}

/// The `[alerts]` table: where anomalies are sent besides the log.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Alerts {
    /// A desktop notification through `notify-send`.
    #[serde(default)]
    pub notify: bool,
    /// A URL that receives a JSON POST per anomaly (Slack- and Discord-compatible body).
    pub webhook: Option<String>,
}

impl Alerts {
    /// True when an alert channel is configured.
    pub fn any(&self) -> bool {
        self.notify || self.webhook.is_some()
    }
}

/// Runs of the same tool call (name and stored arguments) at least `k` long: one anomaly per run, keyed by
/// its first call (a run that grows updates it). Calls whose arguments are not stored never match.
pub fn repeated_tool_calls(session_key: &str, calls: &[SessionCall], k: u32) -> Vec<Anomaly> {
    let mut out = Vec::new();
    if k < 2 {
        return out;
    }
    let tools: Vec<&SessionCall> = calls.iter().filter(|c| c.is_tool).collect();
    let mut i = 0;
    while i < tools.len() {
        let first = tools[i];
        let mut j = i + 1;
        while j < tools.len()
            && first.input.is_some()
            && tools[j].name == first.name
            && tools[j].input == first.input
        {
            j += 1;
        }
        let n = (j - i) as u32;
        if n >= k {
            let last = tools[j - 1];
            out.push(Anomaly {
                key: format!(
                    "repeated_tool_call|{session_key}|{}|{}",
                    first.trace_id.as_deref().unwrap_or(""),
                    first.start_ms.unwrap_or(0)
                ),
                kind: "repeated_tool_call".into(),
                session_key: session_key.to_string(),
                trace_id: last.trace_id.clone(),
                at_ms: last.start_ms,
                value: f64::from(n),
                limit: f64::from(k),
                message: format!(
                    "{} called {n} times in a row with the same arguments (limit {k})",
                    first.name
                ),
            });
        }
        i = j;
    }
    out
}

/// Prompts (traces) with more than `max` model calls.
pub fn model_calls(session_key: &str, calls: &[SessionCall], max: u32) -> Vec<Anomaly> {
    let mut per_trace: Vec<(&str, u32, Option<i64>)> = Vec::new();
    for c in calls.iter().filter(|c| !c.is_tool) {
        let Some(t) = c.trace_id.as_deref() else {
            continue;
        };
        match per_trace.iter_mut().find(|(id, _, _)| *id == t) {
            Some(e) => {
                e.1 += 1;
                e.2 = c.start_ms.or(e.2);
            }
            None => per_trace.push((t, 1, c.start_ms)),
        }
    }
    per_trace
        .into_iter()
        .filter(|(_, n, _)| *n > max)
        .map(|(trace, n, at)| Anomaly {
            key: format!("model_calls|{trace}"),
            kind: "model_calls".into(),
            session_key: session_key.to_string(),
            trace_id: Some(trace.to_string()),
            at_ms: at,
            value: f64::from(n),
            limit: f64::from(max),
            message: format!("{n} model calls for one prompt (limit {max})"),
        })
        .collect()
}

/// Bursts of cost: the most a session spent within any `minutes`-long window, where it passes `limit_usd`;
/// one anomaly per prompt in which a window ended above the limit.
pub fn cost_windows(
    session_key: &str,
    calls: &[SessionCall],
    minutes: u32,
    limit_usd: f64,
) -> Vec<Anomaly> {
    let gens: Vec<&SessionCall> = calls
        .iter()
        .filter(|c| !c.is_tool && c.start_ms.is_some())
        .collect();
    let span = i64::from(minutes.max(1)) * 60_000;
    let mut out: Vec<Anomaly> = Vec::new();
    let (mut lo, mut sum): (usize, Pico) = (0, 0);
    for hi in 0..gens.len() {
        let t = gens[hi].start_ms.unwrap_or(0);
        sum += gens[hi].cost_pico;
        while gens[lo].start_ms.unwrap_or(0) <= t - span {
            sum -= gens[lo].cost_pico;
            lo += 1;
        }
        let usd = pico_to_usd(sum);
        if usd <= limit_usd {
            continue;
        }
        let trace = gens[hi].trace_id.clone();
        let key = format!(
            "cost_window|{session_key}|{}",
            trace.as_deref().unwrap_or("")
        );
        match out.iter_mut().find(|a| a.key == key) {
            Some(a) if a.value >= usd => {}
            Some(a) => {
                a.value = usd;
                a.message = window_message(usd, minutes, limit_usd);
            }
            None => out.push(Anomaly {
                key,
                kind: "cost_window".into(),
                session_key: session_key.to_string(),
                trace_id: trace,
                at_ms: Some(t),
                value: usd,
                limit: limit_usd,
                message: window_message(usd, minutes, limit_usd),
            }),
        }
    }
    out
}

fn window_message(usd: f64, minutes: u32, limit: f64) -> String {
    format!("${usd:.2} spent within {minutes} minutes (limit ${limit:.2})")
}

/// How recent a session's last record must be for the checks (ms): a day.
pub const RECENT_MS: i64 = 24 * 3_600_000;

/// Checks the sessions imported at or after `since_ms` (wall clock) whose last record is less than a day
/// before `now_ms`, and stores what they show; returns the anomalies found for the first time (for the log).
/// `now_ms` also dates the budget periods (in `tz`).
pub fn detect(
    store: &mut Store,
    runaway: &Runaway,
    budgets: &Budgets,
    tz: &jiff::tz::TimeZone,
    since_ms: i64,
    now_ms: i64,
) -> Result<Vec<Anomaly>> {
    let sessions = store.sessions_imported_since(since_ms)?;
    let mut found = Vec::new();
    let mut session_totals = Vec::new();
    for key in &sessions {
        // Only sessions active in the last day: the checks are about what runs now. A first import of a long
        // history reads none of its old sessions' calls, and alerts nobody about last month's loops.
        let Some(row) = store.session(key)? else {
            continue;
        };
        if row
            .end_ms
            .or(row.start_ms)
            .is_none_or(|t| t < now_ms - RECENT_MS)
        {
            continue;
        }
        let calls = store.session_calls_in_order(key)?;
        found.extend(repeated_tool_calls(key, &calls, runaway.repeat_tool_calls));
        if let Some(max) = runaway.max_model_calls {
            found.extend(model_calls(key, &calls, max));
        }
        if let Some(limit) = runaway.window_usd {
            found.extend(cost_windows(key, &calls, runaway.window_minutes, limit));
        }
        if !budgets.is_empty() {
            let total: Pico = calls
                .iter()
                .filter(|c| !c.is_tool)
                .map(|c| c.cost_pico)
                .sum();
            session_totals.push(SessionSpend::whole_session(&row, total));
        }
    }
    if !budgets.is_empty() && !session_totals.is_empty() {
        found.extend(budget_anomalies(
            store,
            budgets,
            tz,
            now_ms,
            &session_totals,
        )?);
    }
    let mut new = Vec::new();
    for a in found {
        if store.record_anomaly(&a, now_ms)? {
            new.push(a);
        }
    }
    Ok(new)
}

/// Budgets passed: the period limits at `now_ms`, reported on the latest prompt of the touched session that
/// spent last; per-session limits on that session.
fn budget_anomalies(
    store: &Store,
    budgets: &Budgets,
    tz: &jiff::tz::TimeZone,
    now_ms: i64,
    touched: &[SessionSpend],
) -> Result<Vec<Anomaly>> {
    let starts = super::period_starts(now_ms, tz);
    let spend = store.spend_since([starts.day, starts.week, starts.month], starts.next_day)?;
    let mut out = Vec::new();
    for check in budgets.evaluate(&spend, touched) {
        if check.level != BudgetLevel::Over {
            continue;
        }
        let (session_key, period_key) = match &check.session {
            Some(s) => (s.clone(), format!("session|{s}")),
            None => {
                let start = match check.period {
                    "day" => starts.day,
                    "week" => starts.week,
                    _ => starts.month,
                };
                // Reported on a touched session in the scope (the budget covers it).
                let Some(s) = touched
                    .iter()
                    .find(|s| super::budget::covers(&check.scope, s))
                else {
                    continue;
                };
                (
                    s.session_key.clone(),
                    format!("{}|{}|{start}", check.scope, check.period),
                )
            }
        };
        let Some((trace, at)) = store.last_trace_of(&session_key)? else {
            continue;
        };
        out.push(Anomaly {
            key: format!("budget|{period_key}"),
            kind: "budget".into(),
            session_key,
            trace_id: Some(trace),
            at_ms: at,
            value: check.spent_usd,
            limit: check.limit_usd,
            message: format!(
                "{} budget{} passed: ${:.2} spent of ${:.2}",
                check.scope,
                match check.period {
                    "session" => " of the session".to_string(),
                    p => format!(" for the {p}"),
                },
                check.spent_usd,
                check.limit_usd
            ),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(trace: &str, t: i64, name: &str, input: &str) -> SessionCall {
        SessionCall {
            trace_id: Some(trace.into()),
            start_ms: Some(t),
            is_tool: true,
            name: name.into(),
            input: Some(input.into()),
            cost_pico: 0,
        }
    }

    fn gen(trace: &str, t: i64, usd: f64) -> SessionCall {
        SessionCall {
            trace_id: Some(trace.into()),
            start_ms: Some(t),
            is_tool: false,
            name: "m".into(),
            input: None,
            cost_pico: (usd * 1e12) as i64,
        }
    }

    #[test]
    fn runs_of_the_same_call_bursts_and_busy_prompts() {
        let mut calls = vec![tool("a", 0, "bash", "ls")];
        for i in 1..=6 {
            calls.push(gen("a", i * 10, 0.5));
            calls.push(tool("a", i * 10 + 1, "bash", "cat x"));
        }
        calls.push(tool("a", 100, "bash", "cat y"));
        let found = repeated_tool_calls("pi:s", &calls, 5);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].value, 6.0);
        assert_eq!(found[0].at_ms, Some(61));
        assert!(repeated_tool_calls("pi:s", &calls, 7).is_empty());
        // Model calls in between do not break a run; other arguments do. No arguments stored: no match.
        let mut blind = calls.clone();
        blind.iter_mut().for_each(|c| c.input = None);
        assert!(repeated_tool_calls("pi:s", &blind, 2).is_empty());

        assert_eq!(model_calls("pi:s", &calls, 5)[0].value, 6.0);
        assert!(model_calls("pi:s", &calls, 6).is_empty());

        // $3 within 60 ms: past $2 in a one-minute window; spread over hours it is not.
        let burst = cost_windows("pi:s", &calls, 1, 2.0);
        assert_eq!(burst.len(), 1);
        assert_eq!(burst[0].value, 3.0);
        let spread: Vec<SessionCall> = (0..6).map(|i| gen("b", i * 3_600_000, 0.5)).collect();
        assert!(cost_windows("pi:s", &spread, 10, 0.9).is_empty());
        assert_eq!(cost_windows("pi:s", &spread, 120, 0.9)[0].value, 1.0);
    }
}
