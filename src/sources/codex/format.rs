//! Typed views of Codex CLI rollout lines that read only the fields tokentrace needs.
//!
//! Source of the format: `codex-rs/protocol/src/protocol.rs` (`RolloutLine`, `RolloutItem`, `SessionMeta`,
//! `TokenUsage`, `EventMsg`) and `codex-rs/rollout/src/policy.rs` (what is persisted), checked against the
//! recorded runs in `../shared/corpus/codex` (Codex CLI 0.169.0). Every line is
//! `{"timestamp": ISO 8601, "ordinal"?: u64, "type": …, "payload": {…}}`; `ordinal` exists only in rollouts
//! written in the paginated history mode. Every field is optional here: old releases lack fields, new ones
//! add them, and nothing may fail a line that is valid JSON.

use serde::Deserialize;
use serde_json::Value;

/// One line of a rollout (`RolloutLine`): the envelope; the payload is read per `type`.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct RolloutLine {
    /// When Codex wrote the line (ISO 8601, UTC); a fork rewrites the times of the lines it copies.
    pub timestamp: Option<String>,
    /// Position of the line in the thread (paginated history mode only). A fork continues its parent's
    /// numbering, so copied parent lines keep ordinals below the fork point.
    pub ordinal: Option<u64>,
    /// `session_meta`, `turn_context`, `response_item`, `event_msg`, `compacted`, `token_usage_record`,
    /// `world_state`, or a type this version does not know.
    #[serde(rename = "type")]
    pub kind: String,
    pub payload: Value,
    /// Line-level metadata of newer releases (`compaction_output: true` on the items of a compaction call,
    /// `history_sequence`, …).
    pub metadata: Value,
}

/// `session_meta` payload (`SessionMeta` + `git`): the thread header, first line of every rollout.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct SessionMeta {
    /// The thread id (the rollout file name ends with it).
    pub id: Option<String>,
    /// Session id shared by a thread and its subagents (equals `id` for a top-level thread).
    pub session_id: Option<String>,
    pub timestamp: Option<String>,
    pub cwd: Option<String>,
    /// `codex_exec`, `codex_cli_rs`, `codex_vscode`, …
    pub originator: Option<String>,
    /// The Codex CLI release that wrote the file (`0.169.0`).
    pub cli_version: Option<String>,
    /// `"exec"`, `"cli"`, `"vscode"`, or `{"subagent": {"thread_spawn": {"parent_thread_id": …}}}`.
    pub source: Value,
    pub model_provider: Option<String>,
    /// The thread this one was forked from (`codex exec fork`, TUI fork/backtrack).
    pub forked_from_id: Option<String>,
    /// Ordinals below this number belong to the parent thread (a fork continues the parent's numbering).
    pub forked_from_ordinal_exclusive: Option<u64>,
    /// Paginated forks point at the parent's file instead of copying it.
    pub history_base: Option<HistoryBase>,
    /// Parent of a subagent thread (newer releases also put it here, not only in `source`).
    pub parent_thread_id: Option<String>,
    /// `legacy` (no ordinals) or `paginated`.
    pub history_mode: Option<String>,
    /// Model, when a release records it in the header.
    pub model: Option<String>,
}

/// `session_meta.history_base`: the part of another thread's rollout this thread's history starts from.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(default)]
pub struct HistoryBase {
    pub thread_id: Option<String>,
    pub end_ordinal_exclusive: Option<u64>,
    pub end_byte_offset: Option<u64>,
}

/// `turn_context` payload: the settings of one turn; `model` is the model every call of the turn uses.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct TurnContext {
    pub turn_id: Option<String>,
    pub model: Option<String>,
    pub cwd: Option<String>,
    /// Reasoning effort (`low`, `medium`, `high`, …).
    pub effort: Option<String>,
}

/// Codex `TokenUsage` (`token_usage_record.payload.usage`, `token_count.info.{last,total}_token_usage`).
///
/// `input_tokens` INCLUDES `cached_input_tokens`; `output_tokens` INCLUDES `reasoning_output_tokens`;
/// `cache_write_input_tokens` (0.169+, 0 on OpenAI) is reported separately. `total_tokens` is not used
/// (after a compaction it carries an estimate of the context size, not billed tokens). Numbers are read
/// leniently (a float or a missing field reads as 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_input_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_output_tokens: u64,
}

impl TokenUsage {
    /// Reads a usage object; `None` when `v` is not an object.
    pub fn from_value(v: &Value) -> Option<TokenUsage> {
        let obj = v.as_object()?;
        let n = |k: &str| -> u64 {
            match obj.get(k) {
                Some(Value::Number(n)) => n
                    .as_u64()
                    .unwrap_or_else(|| n.as_f64().map_or(0, crate::model::token_count)),
                _ => 0,
            }
        };
        Some(TokenUsage {
            input_tokens: n("input_tokens"),
            cached_input_tokens: n("cached_input_tokens"),
            cache_write_input_tokens: n("cache_write_input_tokens"),
            output_tokens: n("output_tokens"),
            reasoning_output_tokens: n("reasoning_output_tokens"),
        })
    }

    /// Names of the fields of a usage object this parser does not know (format drift).
    pub fn unknown_fields(v: &Value) -> Vec<String> {
        const KNOWN: &[&str] = &[
            "input_tokens",
            "cached_input_tokens",
            "cache_write_input_tokens",
            "output_tokens",
            "reasoning_output_tokens",
            "total_tokens",
        ];
        v.as_object()
            .map(|o| {
                o.keys()
                    .filter(|k| !KNOWN.contains(&k.as_str()))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// True when every billed bucket is zero (the placeholder Codex writes right after a compaction).
    pub fn is_zero(&self) -> bool {
        *self == TokenUsage::default()
    }

    /// True when some bucket is below `earlier`'s: a running total that went backwards was reset.
    pub fn decreased_from(&self, earlier: &TokenUsage) -> bool {
        self.input_tokens < earlier.input_tokens
            || self.cached_input_tokens < earlier.cached_input_tokens
            || self.cache_write_input_tokens < earlier.cache_write_input_tokens
            || self.output_tokens < earlier.output_tokens
            || self.reasoning_output_tokens < earlier.reasoning_output_tokens
    }

    /// `self − earlier`, bucket by bucket (callers check [`Self::decreased_from`] first).
    pub fn minus(&self, earlier: &TokenUsage) -> TokenUsage {
        TokenUsage {
            input_tokens: self.input_tokens.saturating_sub(earlier.input_tokens),
            cached_input_tokens: self
                .cached_input_tokens
                .saturating_sub(earlier.cached_input_tokens),
            cache_write_input_tokens: self
                .cache_write_input_tokens
                .saturating_sub(earlier.cache_write_input_tokens),
            output_tokens: self.output_tokens.saturating_sub(earlier.output_tokens),
            reasoning_output_tokens: self
                .reasoning_output_tokens
                .saturating_sub(earlier.reasoning_output_tokens),
        }
    }

    /// The canonical usage (DESIGN §3): `input = input_tokens − cached_input_tokens`,
    /// `cache_read = cached_input_tokens`, `cache_write_5m = cache_write_input_tokens`,
    /// `output = output_tokens` (reasoning included), `reasoning = reasoning_output_tokens`.
    pub fn canonical(&self) -> crate::model::Usage {
        crate::model::Usage {
            input: self.input_tokens.saturating_sub(self.cached_input_tokens),
            output: self.output_tokens,
            cache_read: self.cached_input_tokens,
            cache_write_5m: self.cache_write_input_tokens,
            cache_write_1h: 0,
            reasoning: self.reasoning_output_tokens,
        }
    }
}

/// A string field of a JSON object.
pub fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// The text of a message `content` (a string, or a list of `input_text` / `output_text` / `text` blocks);
/// images become `[image]` markers.
pub fn content_text(content: Option<&Value>) -> Option<String> {
    match content? {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => {
            let mut parts = Vec::new();
            for item in items {
                match item {
                    Value::String(s) => parts.push(s.clone()),
                    Value::Object(_) => {
                        if let Some(t) = str_of(item, "text") {
                            parts.push(t.to_string());
                        } else if str_of(item, "type").is_some_and(|t| t.contains("image")) {
                            parts.push("[image]".to_string());
                        }
                    }
                    _ => {}
                }
            }
            (!parts.is_empty()).then(|| parts.join("\n"))
        }
        _ => None,
    }
}

/// The output of a `function_call_output` / `custom_tool_call_output` / `mcp_tool_call_end`, with what it says
/// about failure.
#[derive(Debug, Default, PartialEq)]
pub struct ToolOutput {
    pub text: Option<String>,
    /// Exit code of a shell command, when the output records one.
    pub exit_code: Option<i64>,
    /// `success: false` (structured outputs).
    pub success: Option<bool>,
    /// The user interrupted the call (`aborted by user`).
    pub aborted: bool,
}

impl ToolOutput {
    /// True when the call failed: non-zero exit code, `success: false`, or interrupted by the user.
    pub fn failed(&self) -> bool {
        self.aborted || self.success == Some(false) || self.exit_code.is_some_and(|c| c != 0)
    }

    /// Why it failed, for the observation's status message.
    pub fn reason(&self) -> Option<String> {
        if self.aborted {
            Some("aborted by user".into())
        } else if let Some(c) = self.exit_code.filter(|c| *c != 0) {
            Some(format!("exit code {c}"))
        } else if self.success == Some(false) {
            Some(
                self.text
                    .as_deref()
                    .and_then(|t| t.lines().next())
                    .map(|l| l.chars().take(200).collect())
                    .unwrap_or_else(|| "tool failed".into()),
            )
        } else {
            None
        }
    }
}

/// Reads a tool output in any of the shapes Codex wrote over time:
/// - 0.169 unified exec: `"Chunk ID: …\nWall time: …\nProcess exited with code N\n…\nOutput:\n…"`;
/// - freeform shell: `"Exit code: N\nWall time: …\nOutput:\n…"`;
/// - legacy shell: a JSON string `{"output": "…", "metadata": {"exit_code": N, "duration_seconds": …}}`;
/// - structured: `{"content": "…" | [items], "success": bool}`, or a list of content items;
/// - an interrupted call: `"…\naborted by user"`.
pub fn tool_output(output: Option<&Value>) -> ToolOutput {
    let mut out = ToolOutput::default();
    match output {
        Some(Value::String(s)) => {
            if s.starts_with('{') {
                if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(s) {
                    if v.get("output").is_some() || v.get("metadata").is_some() {
                        out.text = v.get("output").and_then(Value::as_str).map(str::to_string);
                        out.exit_code = v
                            .get("metadata")
                            .and_then(|m| m.get("exit_code"))
                            .and_then(Value::as_i64);
                        out.aborted = out.text.as_deref().is_some_and(header_says_aborted);
                        return out;
                    }
                }
            }
            out.text = Some(s.clone());
        }
        Some(v @ Value::Object(_)) => {
            out.success = v.get("success").and_then(Value::as_bool);
            out.text = content_text(v.get("content"))
                .or_else(|| content_text(v.get("content_items")))
                .or_else(|| str_of(v, "output").map(str::to_string));
        }
        Some(v @ Value::Array(_)) => out.text = content_text(Some(v)),
        _ => {}
    }
    if let Some(text) = out.text.as_deref() {
        out.exit_code = out.exit_code.or_else(|| header_exit_code(text));
        out.aborted = header_says_aborted(text);
    }
    out
}

/// The header lines of a shell output: those before `Output:`, or the first three when there is none
/// (so that a command's own output never decides the status).
fn header(text: &str) -> impl Iterator<Item = &str> {
    let has_marker = text.lines().any(|l| l.trim_end() == "Output:");
    text.lines()
        .take_while(|l| l.trim_end() != "Output:")
        .take(if has_marker { 16 } else { 3 })
        .map(str::trim)
}

fn header_exit_code(text: &str) -> Option<i64> {
    header(text).find_map(|l| {
        l.strip_prefix("Process exited with code ")
            .or_else(|| l.strip_prefix("Exit code: "))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    })
}

fn header_says_aborted(text: &str) -> bool {
    header(text).any(|l| l.starts_with("aborted by user"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn usage_normalizes_codex_semantics() {
        let u = TokenUsage::from_value(&json!({"input_tokens": 11113, "cached_input_tokens": 11002,
            "cache_write_input_tokens": 0, "output_tokens": 37, "reasoning_output_tokens": 8, "total_tokens": 11150}))
        .unwrap();
        let c = u.canonical();
        assert_eq!(
            (c.input, c.cache_read, c.output, c.reasoning),
            (111, 11002, 37, 8)
        );
        assert!(
            TokenUsage::from_value(&json!({"input_tokens": 0, "total_tokens": 6905}))
                .unwrap()
                .is_zero()
        );
    }

    #[test]
    fn tool_outputs_in_every_shape() {
        let t = tool_output(Some(&json!(
            "Chunk ID: d1\nWall time: 0.0000 seconds\nProcess exited with code 1\nOriginal token count: 15\nOutput:\ncat: x"
        )));
        assert_eq!(t.exit_code, Some(1));
        assert!(t.failed());
        let t = tool_output(Some(&json!("Wall time: 3.1 seconds\naborted by user")));
        assert!(t.aborted && t.failed());
        let t = tool_output(Some(&json!(
            "{\"output\":\"boom\",\"metadata\":{\"exit_code\":2,\"duration_seconds\":0.1}}"
        )));
        assert_eq!((t.text.as_deref(), t.exit_code), (Some("boom"), Some(2)));
        let t = tool_output(Some(&json!(
            "Exit code: 0\nWall time: 1 s\nOutput:\nProcess exited with code 7"
        )));
        assert_eq!(t.exit_code, Some(0), "only the header decides");
        let t = tool_output(Some(&json!({"content": "nope", "success": false})));
        assert!(t.failed());
        assert_eq!(t.reason().as_deref(), Some("nope"));
        assert!(!tool_output(Some(&json!("plain text result"))).failed());
    }
}
