//! Typed views of pi / oh-my-pi session lines that read only the fields tokentrace needs.
//!
//! Source of the format: pi's `packages/coding-agent/src/core/session-manager.ts` and
//! `packages/ai/src/types.ts` (see `../shared/formats/pi.md`), checked against the recorded corpus.
//! Every field is optional: old formats lack ids, new releases add fields, and nothing here may fail a line
//! that is valid JSON.

use serde::Deserialize;
use serde_json::Value;

/// A timestamp as pi writes it: ISO 8601 on entries, epoch milliseconds on messages.
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum Ts {
    Millis(f64),
    Iso(String),
}

impl Ts {
    pub fn ms(&self) -> Option<i64> {
        match self {
            Ts::Millis(v) if v.is_finite() => Some(*v as i64),
            Ts::Millis(_) => None,
            Ts::Iso(s) => crate::model::time::parse_iso_ms(s),
        }
    }
}

/// One line of a session file: the header, oh-my-pi's title slot, or an entry.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct Entry {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: Option<String>,
    #[serde(rename = "parentId")]
    pub parent_id: Option<String>,
    pub timestamp: Option<Ts>,

    // header (`session`): v1 has no `version`
    pub version: Option<u32>,
    pub cwd: Option<String>,
    #[serde(rename = "parentSession")]
    pub parent_session: Option<String>,
    #[serde(rename = "branchedFrom")]
    pub branched_from: Option<String>,
    // oh-my-pi title slot / header
    pub title: Option<String>,

    pub message: Option<Message>,

    // model_change: pi `provider` + `modelId`, oh-my-pi `model: "provider/id"`; `usage` entries: `provider`, `model`
    pub provider: Option<String>,
    #[serde(rename = "modelId")]
    pub model_id: Option<String>,
    pub model: Option<String>,
    #[serde(rename = "thinkingLevel")]
    pub thinking_level: Option<Value>,

    // compaction, branch_summary, usage (0.81+ / 0.86+)
    pub usage: Option<PiUsage>,
    pub summary: Option<String>,
    #[serde(rename = "tokensBefore")]
    pub tokens_before: Option<u64>,
    #[serde(rename = "firstKeptEntryId")]
    pub first_kept_entry_id: Option<String>,
    #[serde(rename = "fromId")]
    pub from_id: Option<String>,
    /// `usage` entries: why the call was made (`cache_warm`).
    #[serde(rename = "kind")]
    pub usage_kind: Option<String>,

    // custom, custom_message, label, session_info, context_edit
    #[serde(rename = "customType")]
    pub custom_type: Option<String>,
    pub data: Option<Value>,
    pub label: Option<String>,
    #[serde(rename = "targetId")]
    pub target_id: Option<String>,
    pub name: Option<String>,
    pub replacement: Option<Value>,
}

/// `message` of a `message` entry (pi `AgentMessage`).
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct Message {
    pub role: String,
    pub content: Option<Content>,
    pub timestamp: Option<Ts>,

    // assistant
    pub api: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    #[serde(rename = "responseModel")]
    pub response_model: Option<String>,
    #[serde(rename = "responseId")]
    pub response_id: Option<String>,
    pub usage: Option<PiUsage>,
    #[serde(rename = "stopReason")]
    pub stop_reason: Option<String>,
    #[serde(rename = "errorMessage")]
    pub error_message: Option<String>,
    /// oh-my-pi: request duration and time to first token, ms.
    pub duration: Option<f64>,
    pub ttft: Option<f64>,

    // toolResult
    #[serde(rename = "toolCallId")]
    pub tool_call_id: Option<String>,
    #[serde(rename = "toolName")]
    pub tool_name: Option<String>,
    #[serde(rename = "isError")]
    pub is_error: Option<bool>,
    pub details: Option<Value>,

    // bashExecution
    pub command: Option<String>,
    pub output: Option<String>,
    #[serde(rename = "exitCode")]
    pub exit_code: Option<i64>,
    pub cancelled: Option<bool>,

    // custom
    #[serde(rename = "customType")]
    pub custom_type: Option<String>,
    /// oh-my-pi: `user` or `agent`.
    pub attribution: Option<String>,
}

/// Message content: a plain string or a list of blocks.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Blocks(Vec<Block>),
    Other(Value),
}

/// One content block (`text`, `thinking`, `toolCall`, `image`, …); unknown types keep only their type.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct Block {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
    pub thinking: Option<String>,
    pub id: Option<String>,
    pub name: Option<String>,
    pub arguments: Option<Value>,
    #[serde(rename = "mimeType")]
    pub mime_type: Option<String>,
    pub data: Option<String>,
}

/// pi `Usage` (`packages/ai/src/types.ts`): `input` excludes cache; `output` includes reasoning;
/// `cacheWrite1h` ⊂ `cacheWrite`; `reasoning` (pi ≥ 0.80.3) / `reasoningTokens` (oh-my-pi) ⊂ `output`.
/// Numbers are read as floats so that a `12.0` never fails a line.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(default)]
pub struct PiUsage {
    pub input: f64,
    pub output: f64,
    #[serde(rename = "cacheRead")]
    pub cache_read: f64,
    #[serde(rename = "cacheWrite")]
    pub cache_write: f64,
    #[serde(rename = "cacheWrite1h")]
    pub cache_write_1h: Option<f64>,
    pub reasoning: Option<f64>,
    #[serde(rename = "reasoningTokens")]
    pub reasoning_tokens: Option<f64>,
    pub cost: Option<PiCost>,
    /// `input + output + cacheRead + cacheWrite` (not used: derived).
    #[serde(rename = "totalTokens")]
    pub total_tokens: Option<serde::de::IgnoredAny>,
    /// Fields this parser does not know (format drift; only their names are kept).
    #[serde(flatten)]
    pub unknown: std::collections::BTreeMap<String, serde::de::IgnoredAny>,
}

/// pi `usage.cost`, USD, computed by pi from its model catalog or `models.json`.
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(default)]
pub struct PiCost {
    pub input: f64,
    pub output: f64,
    #[serde(rename = "cacheRead")]
    pub cache_read: f64,
    #[serde(rename = "cacheWrite")]
    pub cache_write: f64,
    pub total: f64,
    /// pi ≥ 1.6: the cost the provider reported itself, when it does (not used: `total` is pi's figure).
    #[serde(rename = "totalFromProvider")]
    pub total_from_provider: Option<serde::de::IgnoredAny>,
    /// Breakdown entries this parser does not know.
    #[serde(flatten)]
    pub unknown: std::collections::BTreeMap<String, serde::de::IgnoredAny>,
}
