//! Typed views of Claude Code transcript lines that read only the fields tokentrace needs.
//!
//! Source of the format: the transcripts Claude Code 2.1.197 (`@anthropic-ai/claude-code`) writes to
//! `~/.claude/projects/<project>/<sessionId>.jsonl`, checked against the recorded runs in
//! `../shared/corpus/claude` and `tests/fixtures/unseen/claude`; the message and usage objects are the
//! Anthropic Messages API's (`message.usage`). Every field is optional and nothing here may fail a line
//! that is valid JSON of the expected shape. Large payloads (tool inputs and outputs of a megabyte and more)
//! are read once; `toolUseResult` keeps only a few small fields.

use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// One transcript line. `type` is `user`, `assistant`, `system`, `attachment`, `summary`, `custom-title`,
/// `ai-title`, `queue-operation`, `last-prompt`, `mode`, `file-history-snapshot`, … (unknown types are kept
/// as events by the parser).
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct Line {
    #[serde(rename = "type")]
    pub kind: String,
    /// Id of this line in the conversation chain (user, assistant, system, attachment lines).
    pub uuid: Option<String>,
    /// The line before it in the chain (`null` at the start and after a compaction).
    #[serde(rename = "parentUuid")]
    pub parent_uuid: Option<String>,
    /// ISO 8601 (`2026-11-23T03:10:03.837Z`).
    pub timestamp: Option<String>,
    #[serde(rename = "sessionId")]
    pub session_id: Option<String>,
    /// Claude Code release that wrote the line (`2.1.197`).
    pub version: Option<String>,
    pub cwd: Option<String>,
    #[serde(rename = "gitBranch")]
    pub git_branch: Option<String>,
    /// `cli`, `sdk-cli`, …
    pub entrypoint: Option<String>,
    /// True on subagent (sidechain) lines.
    #[serde(rename = "isSidechain")]
    pub is_sidechain: Option<bool>,
    /// Subagent lines: the agent's id (`agent-<id>.jsonl`).
    #[serde(rename = "agentId")]
    pub agent_id: Option<String>,
    /// Lines the model sees but the user did not type (caveats, "Continue from where you left off.").
    #[serde(rename = "isMeta")]
    pub is_meta: Option<bool>,
    /// The user line holding a compaction summary.
    #[serde(rename = "isCompactSummary")]
    pub is_compact_summary: Option<bool>,
    /// A failed API call, written as a `<synthetic>` assistant message with zero usage.
    #[serde(rename = "isApiErrorMessage")]
    pub is_api_error_message: Option<bool>,
    /// HTTP status of a failed API call (`400`).
    #[serde(rename = "apiErrorStatus")]
    pub api_error_status: Option<Value>,
    /// Error kind of a failed API call (`"unknown"`, …).
    pub error: Option<Value>,
    /// The API request id of an assistant line (`req_…`); with `message.id` it identifies one model call.
    #[serde(rename = "requestId")]
    pub request_id: Option<String>,
    /// Shared by a prompt and the lines it caused.
    #[serde(rename = "promptId")]
    pub prompt_id: Option<String>,
    /// `user` / `assistant` lines: the message.
    pub message: Option<Message>,
    /// Tool result lines: the tool's structured result (only a few fields are read).
    #[serde(rename = "toolUseResult")]
    pub tool_use_result: Option<ToolUseResult>,
    /// A line copied from another session by a session fork (newer Claude Code releases).
    #[serde(rename = "forkedFrom")]
    pub forked_from: Option<Value>,

    /// `system` lines: `compact_boundary`, `api_error`, `turn_duration`, …
    pub subtype: Option<String>,
    /// `system` lines: `info`, `warning`, `error`.
    pub level: Option<String>,
    /// `system` lines: the text; `queue-operation`: the queued prompt.
    pub content: Option<Text>,
    /// `compact_boundary`: `{trigger, preTokens, postTokens, durationMs, …}` (context sizes, not usage).
    #[serde(rename = "compactMetadata")]
    pub compact_metadata: Option<Value>,

    /// `summary` lines: a title of the conversation.
    pub summary: Option<String>,
    /// `custom-title` lines: the title the user gave the session.
    #[serde(rename = "customTitle")]
    pub custom_title: Option<String>,
    /// `ai-title` lines: a generated title.
    #[serde(rename = "aiTitle")]
    pub ai_title: Option<String>,

    /// `attachment` lines: only the attachment's `type` is read.
    pub attachment: Option<Attachment>,

    /// `system`/`api_error` lines (2.1.3xx): which retry of the request failed (1 = the first retry).
    #[serde(rename = "retryAttempt")]
    pub retry_attempt: Option<u32>,
    /// `cost-state` lines (2.1.3xx): the agent's own cumulative cost of the session, USD (covers `--continue`
    /// runs, subagents and calls the transcript does not record, such as the `/compact` summary).
    #[serde(rename = "totalCostUSD")]
    pub total_cost_usd: Option<f64>,
    /// `cost-state` lines: the same, cumulative per model.
    #[serde(rename = "modelUsage")]
    pub model_usage: Option<std::collections::BTreeMap<String, ModelUsage>>,
}

/// One model's entry in a `cost-state` line's `modelUsage` (Claude Code ≥ 2.1.3xx), cumulative over the
/// session. `inputTokens` is uncached input; `outputTokens` includes `thinkingTokens`;
/// `cacheCreationInputTokens` = 5m + 1h writes.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(default, rename_all = "camelCase")]
pub struct ModelUsage {
    pub input_tokens: Option<f64>,
    pub output_tokens: Option<f64>,
    pub thinking_tokens: Option<f64>,
    pub cache_read_input_tokens: Option<f64>,
    pub cache_creation_input_tokens: Option<f64>,
    pub cache_creation_ephemeral5m_input_tokens: Option<f64>,
    pub cache_creation_ephemeral1h_input_tokens: Option<f64>,
    /// USD.
    #[serde(rename = "costUSD")]
    pub cost_usd: Option<f64>,
}

/// `message` of a `user` or `assistant` line (Anthropic Messages API shape).
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct Message {
    /// Assistant: the API response id (`msg_…`; a uuid on synthetic messages).
    pub id: Option<String>,
    /// `user` or `assistant`.
    pub role: Option<String>,
    /// `claude-opus-4-8`, … or `<synthetic>` for messages Claude Code made up itself.
    pub model: Option<String>,
    /// A string (user prompts) or content blocks.
    pub content: Option<Content>,
    /// `tool_use`, `end_turn`, `max_tokens`, `stop_sequence`, … (`null` on older partial lines).
    pub stop_reason: Option<String>,
    /// Assistant: the call's token usage, repeated on every line of the call.
    pub usage: Option<ClaudeUsage>,
}

/// `message.usage`: `input_tokens` excludes cache reads and writes; `output_tokens` includes thinking;
/// `cache_creation_input_tokens` = `cache_creation.ephemeral_5m_input_tokens + ephemeral_1h_input_tokens`.
/// Numbers are read as floats so that a `12.0` or a `null` never fails a line.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(default)]
pub struct ClaudeUsage {
    /// Uncached input tokens.
    pub input_tokens: Option<f64>,
    /// Input tokens read from the prompt cache.
    pub cache_read_input_tokens: Option<f64>,
    /// Input tokens written to the prompt cache, both lifetimes.
    pub cache_creation_input_tokens: Option<f64>,
    /// The same writes by lifetime.
    pub cache_creation: Option<CacheCreation>,
    /// All output tokens, thinking included (a partial count on a call's first streamed line).
    pub output_tokens: Option<f64>,
    /// `standard`, `priority`, `batch`.
    pub service_tier: Option<String>,
    /// `standard` or `fast`.
    pub speed: Option<String>,
    /// `{thinking_tokens}` (2.1.3xx): the thinking share of `output_tokens`.
    pub output_tokens_details: Option<OutputDetails>,
    /// `{web_search_requests, web_fetch_requests}`: server tool calls (billed per request, not per token).
    pub server_tool_use: Option<IgnoredAny>,
    /// Where the request was served (`""`, `us`), context of the price.
    pub inference_geo: Option<IgnoredAny>,
    /// Per-iteration usage of server-side loops (not added: the top-level counts are the totals).
    pub iterations: Option<IgnoredAny>,
    /// 2.1.3xx: a billing credit when the request fell back to another model (`null` in every recording; not
    /// a token count).
    pub fallback_credit: Option<IgnoredAny>,
    /// Fields this parser does not know (format drift; only their names are kept).
    #[serde(flatten)]
    pub unknown: std::collections::BTreeMap<String, IgnoredAny>,
}

/// `usage.output_tokens_details`.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(default)]
pub struct OutputDetails {
    /// Thinking tokens, counted inside `output_tokens`.
    pub thinking_tokens: Option<f64>,
    #[serde(flatten)]
    pub unknown: std::collections::BTreeMap<String, IgnoredAny>,
}

/// `usage.cache_creation`: cache writes by lifetime.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(default)]
pub struct CacheCreation {
    /// Tokens written with the default 5-minute lifetime.
    pub ephemeral_5m_input_tokens: Option<f64>,
    /// Tokens written with the 1-hour lifetime (billed at a higher rate).
    pub ephemeral_1h_input_tokens: Option<f64>,
    #[serde(flatten)]
    pub unknown: std::collections::BTreeMap<String, IgnoredAny>,
}

/// An `attachment` line's object; everything but its `type` is skipped.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct Attachment {
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

/// Message content: a plain string or a list of blocks.
#[derive(Debug)]
pub enum Content {
    /// A plain string.
    Text(String),
    /// Content blocks (anything else that is no string reads as no blocks).
    Blocks(Vec<Block>),
}

impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Content;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of content blocks")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Content, E> {
                Ok(Content::Text(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Content, E> {
                Ok(Content::Text(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Content, A::Error> {
                let mut blocks = Vec::new();
                while let Some(b) = seq.next_element::<Block>()? {
                    blocks.push(b);
                }
                Ok(Content::Blocks(blocks))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Content, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Content::Blocks(Vec::new()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Content, E> {
                Ok(Content::Blocks(Vec::new()))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Content, E> {
                Ok(Content::Blocks(Vec::new()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Content, E> {
                Ok(Content::Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Content, E> {
                Ok(Content::Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Content, E> {
                Ok(Content::Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// One content block: `text`, `thinking`, `redacted_thinking`, `tool_use`, `tool_result`, `image`, … ;
/// unknown types keep only their type.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct Block {
    #[serde(rename = "type")]
    pub kind: String,
    /// `text` blocks.
    pub text: Option<String>,
    /// `thinking` blocks (counted in `output_tokens`).
    pub thinking: Option<String>,
    /// `tool_use`: the call id (`toolu_…`), the tool (`Bash`, `Read`, `Agent`, …) and its arguments.
    pub id: Option<String>,
    pub name: Option<String>,
    pub input: Option<Value>,
    /// `tool_result`: the call it answers, whether it failed, and its output (string or blocks).
    pub tool_use_id: Option<String>,
    pub is_error: Option<bool>,
    pub content: Option<Content>,
    /// `image` blocks.
    pub source: Option<ImageSource>,
}

/// `source` of an `image` block; the base64 payload is only measured.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct ImageSource {
    /// `image/png`, …
    pub media_type: Option<String>,
    /// Base64 payload.
    pub data: Option<String>,
}

/// A string field that may hold something else in other releases (then it reads as `None`).
#[derive(Debug, Default)]
pub struct Text(pub Option<String>);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Ok(Text(match v {
            Value::String(s) => Some(s),
            _ => None,
        }))
    }
}

/// The small parts of a line's `toolUseResult` (a string for failed tools, an object otherwise; the object
/// can hold a whole file's content, which is skipped without being kept).
#[derive(Debug, Default)]
pub struct ToolUseResult {
    /// The user interrupted the tool (shell commands).
    pub interrupted: Option<bool>,
    /// Recorded exit code of a shell command, when a release records one.
    pub exit_code: Option<i64>,
    /// Claude Code's reading of a non-zero exit code that is no failure (`grep` without matches).
    pub return_code_interpretation: Option<String>,
    /// `Agent` / `Task` results: the subagent's id, type and state.
    pub agent_id: Option<String>,
    pub agent_type: Option<String>,
    pub status: Option<String>,
    /// The result was a string (e.g. `Error: Exit code 1 …`): its first 200 characters.
    pub text: Option<String>,
}

impl<'de> Deserialize<'de> for ToolUseResult {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ToolUseResult;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a tool result")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ToolUseResult, E> {
                Ok(ToolUseResult {
                    text: Some(v.chars().take(200).collect()),
                    ..Default::default()
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ToolUseResult, A::Error> {
                let mut r = ToolUseResult::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "interrupted" => r.interrupted = map.next_value::<Lenient<bool>>()?.0,
                        "exitCode" | "exit_code" => {
                            r.exit_code = map.next_value::<Lenient<i64>>()?.0
                        }
                        "returnCodeInterpretation" => {
                            r.return_code_interpretation = map.next_value::<Lenient<String>>()?.0
                        }
                        "agentId" => r.agent_id = map.next_value::<Lenient<String>>()?.0,
                        "agentType" => r.agent_type = map.next_value::<Lenient<String>>()?.0,
                        "status" => r.status = map.next_value::<Lenient<String>>()?.0,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(r)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ToolUseResult, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(ToolUseResult::default())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<ToolUseResult, E> {
                Ok(ToolUseResult::default())
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<ToolUseResult, E> {
                Ok(ToolUseResult::default())
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<ToolUseResult, E> {
                Ok(ToolUseResult::default())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<ToolUseResult, E> {
                Ok(ToolUseResult::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<ToolUseResult, E> {
                Ok(ToolUseResult::default())
            }
        }
        d.deserialize_any(V)
    }
}

/// A value of type `T`, or `None` when the field holds something else.
struct Lenient<T>(Option<T>);

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        Ok(Lenient(serde_json::from_value(v).ok()))
    }
}

/// The meta file of a subagent transcript, `agent-<id>.meta.json` beside `agent-<id>.jsonl`:
/// `{"agentType":"general-purpose","description":"…","toolUseId":"toolu_…","spawnDepth":1}`.
#[derive(Debug, Deserialize, Default, Clone, serde::Serialize, PartialEq)]
#[serde(default)]
pub struct AgentMeta {
    /// `general-purpose`, `Explore`, a custom agent's name, …
    #[serde(rename = "agentType")]
    pub agent_type: Option<String>,
    /// The short task description the model gave.
    pub description: Option<String>,
    /// The `tool_use` id of the `Agent` / `Task` call that spawned the subagent.
    #[serde(rename = "toolUseId")]
    pub tool_use_id: Option<String>,
    /// 1 for an agent the main conversation spawned, 2 for one a subagent spawned, …
    #[serde(rename = "spawnDepth")]
    pub spawn_depth: Option<u32>,
    /// The agent started from a copy of its parent's conversation.
    #[serde(rename = "isFork")]
    pub is_fork: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_use_result_reads_strings_and_objects() {
        let l: Line = serde_json::from_str(
            r#"{"type":"user","toolUseResult":"Error: Exit code 1\ncat: x: No such file"}"#,
        )
        .unwrap();
        assert_eq!(
            l.tool_use_result.unwrap().text.as_deref(),
            Some("Error: Exit code 1\ncat: x: No such file")
        );
        let l: Line = serde_json::from_str(
            r#"{"type":"user","toolUseResult":{"stdout":"x","interrupted":true,"file":{"content":"big"},"agentId":"a1","exitCode":2}}"#,
        )
        .unwrap();
        let r = l.tool_use_result.unwrap();
        assert_eq!(r.interrupted, Some(true));
        assert_eq!(r.agent_id.as_deref(), Some("a1"));
        assert_eq!(r.exit_code, Some(2));
        let l: Line = serde_json::from_str(r#"{"type":"user","toolUseResult":[1,2]}"#).unwrap();
        assert!(l.tool_use_result.unwrap().agent_id.is_none());
    }

    #[test]
    fn content_is_a_string_or_blocks() {
        let m: Message = serde_json::from_str(r#"{"content":"hi"}"#).unwrap();
        assert!(matches!(m.content, Some(Content::Text(ref s)) if s == "hi"));
        let m: Message = serde_json::from_str(
            r#"{"content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"ok"}],"is_error":true},{"type":"weird","x":1}]}"#,
        )
        .unwrap();
        let Some(Content::Blocks(b)) = m.content else {
            panic!()
        };
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].is_error, Some(true));
        assert!(
            matches!(b[0].content, Some(Content::Blocks(ref c)) if c[0].text.as_deref() == Some("ok"))
        );
    }
}
