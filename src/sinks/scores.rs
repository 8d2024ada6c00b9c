//! Langfuse scores (`POST /api/public/scores`, DESIGN §6): per trace `tool_call_count`, `turn_count`,
//! `total_tool_errors`, `tool_success_rate`, `session_had_errors`; per failed tool observation
//! `tool_is_error = 1`. Score ids are deterministic, so a re-sent score replaces the earlier one.
//! Scores are queued in the store when their trace is acknowledged and sent by [`super::deliver`].

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::model::{Kind, Level};
use crate::store::outbox::ExportTrace;

/// One score body, as Langfuse's `PostScoresBody` names the fields.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Score {
    pub id: String,
    pub name: &'static str,
    pub value: f64,
    /// `NUMERIC` or `BOOLEAN` (value 0 or 1).
    pub data_type: &'static str,
    pub trace_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observation_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

fn score_id(trace_id: &str, observation: Option<&str>, name: &str) -> String {
    let digest = Sha256::digest(
        format!(
            "tokentrace/v1|score|{trace_id}|{}|{name}",
            observation.unwrap_or("")
        )
        .as_bytes(),
    );
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// The scores of one trace.
pub fn for_trace(trace: &ExportTrace, environment: Option<&str>) -> Vec<Score> {
    let tools: Vec<_> = trace
        .observations
        .iter()
        .filter(|o| o.kind == Kind::Tool)
        .collect();
    let tool_errors = tools.iter().filter(|o| o.level == Level::Error).count();
    let turns = trace
        .observations
        .iter()
        .filter(|o| o.kind == Kind::Span && o.name.starts_with("turn "))
        .count();
    let turns = if turns > 0 {
        turns
    } else {
        trace
            .observations
            .iter()
            .filter(|o| o.kind == Kind::Generation)
            .count()
    };
    let had_errors = trace.observations.iter().any(|o| o.level == Level::Error);
    let success = if tools.is_empty() {
        1.0
    } else {
        (tools.len() - tool_errors) as f64 / tools.len() as f64
    };
    let make = |name: &'static str, value: f64, data_type: &'static str, obs: Option<&str>| Score {
        id: score_id(&trace.id, obs, name),
        name,
        value,
        data_type,
        trace_id: trace.id.clone(),
        observation_id: obs.map(str::to_string),
        environment: environment.map(str::to_string),
    };
    let mut out = vec![
        make("tool_call_count", tools.len() as f64, "NUMERIC", None),
        make("turn_count", turns as f64, "NUMERIC", None),
        make("total_tool_errors", tool_errors as f64, "NUMERIC", None),
        make("tool_success_rate", success, "NUMERIC", None),
        make(
            "session_had_errors",
            if had_errors { 1.0 } else { 0.0 },
            "BOOLEAN",
            None,
        ),
    ];
    for t in tools.iter().filter(|o| o.level == Level::Error) {
        out.push(make("tool_is_error", 1.0, "BOOLEAN", Some(&t.id)));
    }
    out
}
