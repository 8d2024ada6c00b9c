//! Langfuse scores (`POST /api/public/scores`, DESIGN §6), each meaning what its name says:
//!
//! | score | level | value |
//! |---|---|---|
//! | `tool_call_count` | trace | tool calls of the prompt (subagents' included) |
//! | `total_tool_errors` | trace | those that failed |
//! | `tool_success_rate` | trace | succeeded / all, only when the prompt made tool calls |
//! | `turn_count` | trace | the main agent's turns (its `turn N` spans: one model call and the tools it asked for) |
//! | `generation_count` | trace | model calls (failed attempts, compactions and subagents' calls included) |
//! | `tool_is_error` | observation | 1 on each failed tool call |
//! | `session_had_errors` | session | 1 when any observation of the session is an ERROR |
//! | `session_cost_usd` | session | the session's cost as tokentrace prices it (USD) |
//! | `anomaly_repeated_tool_call`, `anomaly_cost_window`, `anomaly_model_calls`, `anomaly_budget` | trace | the measured number of a runaway or budget anomaly on the prompt (calls in a row, USD, model calls, USD spent) |
//!
//! Score ids are deterministic (from the trace / observation or the session, and the name), so a re-sent score
//! replaces the earlier one: a session's scores are posted once per session (with `sessionId`) and updated in
//! place as the session grows. Scores are queued in the store when their trace is acknowledged and sent by
//! [`super::deliver`].

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::model::{pico_to_usd, Kind, Level, Pico};
use crate::store::outbox::ExportTrace;

/// One score body, as Langfuse's `PostScoresBody` names the fields. Exactly one of `trace_id` (with an
/// optional `observation_id`) and `session_id` is set.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Score {
    pub id: String,
    pub name: &'static str,
    pub value: f64,
    /// `NUMERIC` or `BOOLEAN` (value 0 or 1).
    pub data_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observation_id: Option<String>,
    /// The agent's session id, as the spans' `session.id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

impl Score {
    /// What the score is attached to, for the outbox: the trace id, or `session:<agent>:<id>`.
    pub fn target(&self) -> String {
        match (&self.trace_id, &self.session_id) {
            (Some(t), _) => t.clone(),
            (None, Some(s)) => format!("session:{s}"),
            (None, None) => String::new(),
        }
    }
}

fn hex_id(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

fn score_id(trace_id: &str, observation: Option<&str>, name: &str) -> String {
    hex_id(&format!(
        "tokentrace/v1|score|{trace_id}|{}|{name}",
        observation.unwrap_or("")
    ))
}

/// The scores of one trace (and of its failed tool calls).
pub fn for_trace(trace: &ExportTrace, environment: Option<&str>) -> Vec<Score> {
    let tools: Vec<_> = trace
        .observations
        .iter()
        .filter(|o| o.kind == Kind::Tool)
        .collect();
    let tool_errors = tools.iter().filter(|o| o.level == Level::Error).count();
    // The main agent's turns: `turn N` spans not under a subagent.
    let agents: std::collections::HashSet<&str> = trace
        .observations
        .iter()
        .filter(|o| o.kind == Kind::Agent)
        .map(|o| o.id.as_str())
        .collect();
    let parent_of: std::collections::HashMap<&str, Option<&str>> = trace
        .observations
        .iter()
        .map(|o| (o.id.as_str(), o.parent_id.as_deref()))
        .collect();
    let turns = trace
        .observations
        .iter()
        .filter(|o| o.kind == Kind::Span && o.name.starts_with("turn "))
        .filter(|o| !in_subagent(o.parent_id.as_deref(), &agents, &parent_of))
        .count();
    let generations = trace
        .observations
        .iter()
        .filter(|o| o.kind == Kind::Generation)
        .count();
    let make = |name: &'static str, value: f64, data_type: &'static str, obs: Option<&str>| Score {
        id: score_id(&trace.id, obs, name),
        name,
        value,
        data_type,
        trace_id: Some(trace.id.clone()),
        observation_id: obs.map(str::to_string),
        session_id: None,
        environment: environment.map(str::to_string),
    };
    let mut out = vec![
        make("tool_call_count", tools.len() as f64, "NUMERIC", None),
        make("total_tool_errors", tool_errors as f64, "NUMERIC", None),
        make("turn_count", turns as f64, "NUMERIC", None),
        make("generation_count", generations as f64, "NUMERIC", None),
    ];
    if !tools.is_empty() {
        let rate = (tools.len() - tool_errors) as f64 / tools.len() as f64;
        out.push(make("tool_success_rate", rate, "NUMERIC", None));
    }
    for t in tools.iter().filter(|o| o.level == Level::Error) {
        out.push(make("tool_is_error", 1.0, "BOOLEAN", Some(&t.id)));
    }
    for a in &trace.anomalies {
        let name = match a.kind.as_str() {
            "repeated_tool_call" => "anomaly_repeated_tool_call",
            "cost_window" => "anomaly_cost_window",
            "model_calls" => "anomaly_model_calls",
            _ => "anomaly_budget",
        };
        // One score per kind and trace: the largest number when several anomalies of a kind share a prompt.
        match out.iter_mut().find(|s| s.name == name) {
            Some(s) => s.value = s.value.max(a.value),
            None => out.push(make(name, a.value, "NUMERIC", None)),
        }
    }
    out
}

/// True when an `agent` observation (a subagent) is at or above `p`.
fn in_subagent<'a>(
    mut p: Option<&'a str>,
    agents: &std::collections::HashSet<&'a str>,
    parent_of: &std::collections::HashMap<&'a str, Option<&'a str>>,
) -> bool {
    let mut hops = 0;
    while let Some(id) = p {
        if agents.contains(id) {
            return true;
        }
        p = parent_of.get(id).copied().flatten();
        hops += 1;
        if hops > 1000 {
            break;
        }
    }
    false
}

/// What the session scores are computed from (the whole session as stored, not one trace).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SessionFacts {
    /// Any observation of the session has level ERROR.
    pub had_errors: bool,
    /// The sum of the session's generation costs, pico-USD.
    pub cost: Pico,
}

/// The session-level scores of the agent's session `session_id` (as the spans' `session.id`).
pub fn for_session(
    agent: &str,
    session_id: &str,
    facts: SessionFacts,
    environment: Option<&str>,
) -> Vec<Score> {
    let make = |name: &'static str, value: f64, data_type: &'static str| Score {
        id: hex_id(&format!(
            "tokentrace/v1|score|session|{agent}|{session_id}|{name}"
        )),
        name,
        value,
        data_type,
        trace_id: None,
        observation_id: None,
        session_id: Some(session_id.to_string()),
        environment: environment.map(str::to_string),
    };
    vec![
        make(
            "session_had_errors",
            if facts.had_errors { 1.0 } else { 0.0 },
            "BOOLEAN",
        ),
        make("session_cost_usd", pico_to_usd(facts.cost), "NUMERIC"),
    ]
}
