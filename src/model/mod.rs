//! The trace model every source produces and every sink consumes (DESIGN §3). No I/O here.
//!
//! Shape: a [`Session`] (one agent session) holds [`Trace`]s (one per user prompt), each with a tree of
//! [`Observation`]s: `span` per agent turn, `generation` per model call, `tool` per tool call, `agent` per
//! subagent, `event` for markers (model change, retry, label, …).
//!
//! Units everywhere: timestamps in milliseconds since the Unix epoch (UTC), tokens as counts, money in
//! integer pico-USD ([`Pico`], 1 USD = 10^12) so sums are exact.
//!
//! Records are *upserts*: a later record with the same id fills in or replaces the fields it carries
//! (`Some`) and leaves the others (`None`) as stored. A tool call, for example, is written when the model
//! requests it and completed when its result arrives.

pub mod ids;
pub mod merge;
pub mod time;

use serde::{Deserialize, Serialize};

/// Money in pico-USD (10^-12 USD). Integer so that sums over millions of calls stay exact.
pub type Pico = i64;

/// Pico-USD per USD.
pub const PICO_PER_USD: f64 = 1e12;

/// Converts a USD float as agents record it (`0.0035175`) to pico-USD, rounding to the nearest pico.
pub fn usd_to_pico(usd: f64) -> Pico {
    (usd * PICO_PER_USD).round() as Pico
}

/// Converts pico-USD back to USD for display and JSON.
pub fn pico_to_usd(pico: Pico) -> f64 {
    pico as f64 / PICO_PER_USD
}

/// The agent programs tokentrace reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Agent {
    /// pi coding agent (`@mariozechner/pi-coding-agent`, `@earendil-works/pi-coding-agent`).
    Pi,
    /// oh-my-pi (`@oh-my-pi/pi-coding-agent`, CLI `omp`).
    Omp,
    /// Claude Code (`@anthropic-ai/claude-code`).
    Claude,
    /// OpenAI Codex CLI (`@openai/codex`).
    Codex,
    /// Gemini CLI (`@google/gemini-cli`).
    Gemini,
}

impl Agent {
    /// Every agent, in display order.
    pub const ALL: [Agent; 5] = [
        Agent::Pi,
        Agent::Omp,
        Agent::Claude,
        Agent::Codex,
        Agent::Gemini,
    ];

    /// The lowercase name used in ids, the store, reports and `--source`.
    pub fn as_str(self) -> &'static str {
        match self {
            Agent::Pi => "pi",
            Agent::Omp => "omp",
            Agent::Claude => "claude",
            Agent::Codex => "codex",
            Agent::Gemini => "gemini",
        }
    }

    /// Parses a `--source` value or a stored name.
    pub fn parse(name: &str) -> Option<Agent> {
        // Without lowercasing a copy: the store's file stamps call this once per file.
        const NAMES: [(&str, Agent); 8] = [
            ("pi", Agent::Pi),
            ("omp", Agent::Omp),
            ("oh-my-pi", Agent::Omp),
            ("claude", Agent::Claude),
            ("claude-code", Agent::Claude),
            ("codex", Agent::Codex),
            ("gemini", Agent::Gemini),
            ("gemini-cli", Agent::Gemini),
        ];
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, a)| *a)
    }
}

impl std::fmt::Display for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The most tokens one model call can plausibly report in one bucket (10^12): a larger value (a corrupt
/// field, an overflowed counter) is rejected for that record and the record flagged, never summed.
pub const MAX_TOKENS_PER_CALL: u64 = 1_000_000_000_000;

/// The most USD one model call can plausibly cost as the agent recorded it; above (or negative) is rejected.
pub const MAX_USD_PER_CALL: f64 = 1_000_000.0;

/// Reads a token count as the agents write it (a JSON number, maybe `12.0`): `0` for a missing or zero
/// value; `u64::MAX` (always rejected by [`Usage::reject_implausible`]) for a negative, NaN or infinite one, so
/// that a corrupt field is flagged rather than silently read as 0.
pub fn token_count(v: f64) -> u64 {
    if v == 0.0 {
        0
    } else if v.is_finite() && v > 0.0 {
        v.round() as u64
    } else {
        u64::MAX
    }
}

/// Token counts of one model call, in the canonical meaning shared by every agent (DESIGN §3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Uncached input tokens.
    pub input: u64,
    /// All output tokens, reasoning included.
    pub output: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read: u64,
    /// Input tokens written to the prompt cache with the default (5 minute) lifetime.
    pub cache_write_5m: u64,
    /// Input tokens written to the prompt cache with the 1 hour lifetime (Anthropic).
    pub cache_write_1h: u64,
    /// The part of `output` that was reasoning; informational, never added again.
    pub reasoning: u64,
}

impl Usage {
    /// All cache writes (5m + 1h).
    pub fn cache_write(&self) -> u64 {
        self.cache_write_5m + self.cache_write_1h
    }

    /// The whole prompt: uncached input + cache reads + cache writes (what tiers above 200k are measured on).
    pub fn prompt_tokens(&self) -> u64 {
        self.input + self.cache_read + self.cache_write()
    }

    /// Zeroes every bucket above [`MAX_TOKENS_PER_CALL`] (a corrupt or overflowed field: negative, NaN and
    /// infinite values read as `u64::MAX`); returns what was rejected (`input=18446744073709551615, …`), or
    /// `None` when every bucket is plausible.
    pub fn reject_implausible(&mut self) -> Option<String> {
        let mut bad = Vec::new();
        for (name, v) in [
            ("input", &mut self.input),
            ("output", &mut self.output),
            ("cache_read", &mut self.cache_read),
            ("cache_write_5m", &mut self.cache_write_5m),
            ("cache_write_1h", &mut self.cache_write_1h),
            ("reasoning", &mut self.reasoning),
        ] {
            if *v > MAX_TOKENS_PER_CALL {
                bad.push(if *v == u64::MAX {
                    format!("{name} negative or not a number")
                } else {
                    format!("{name}={v}")
                });
                *v = 0;
            }
        }
        self.reasoning = self.reasoning.min(self.output);
        (!bad.is_empty()).then(|| bad.join(", "))
    }

    /// True when every bucket is zero (failed attempts record such usage).
    pub fn is_zero(&self) -> bool {
        self.prompt_tokens() == 0 && self.output == 0
    }
}

/// Where a generation's cost came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CostSource {
    /// The agent recorded a non-zero cost itself (pi, oh-my-pi `usage.cost`).
    Agent,
    /// Computed from the bundled LiteLLM price table.
    Table,
    /// Computed from a price the user set in the config file.
    Override,
    /// Nothing to price (zero tokens) or no price found (then `unpriced` is set).
    None,
}

impl CostSource {
    /// Lowercase name as stored and reported.
    pub fn as_str(self) -> &'static str {
        match self {
            CostSource::Agent => "agent",
            CostSource::Table => "table",
            CostSource::Override => "override",
            CostSource::None => "none",
        }
    }

    /// Parses a stored name; unknown names read as `None`.
    pub fn parse(s: &str) -> CostSource {
        match s {
            "agent" => CostSource::Agent,
            "table" => CostSource::Table,
            "override" => CostSource::Override,
            _ => CostSource::None,
        }
    }
}

/// Cost of one generation in pico-USD, per bucket and in total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CostBreakdown {
    pub input: Pico,
    pub output: Pico,
    pub cache_read: Pico,
    pub cache_write: Pico,
    pub total: Pico,
}

/// The priced cost of a generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cost {
    pub breakdown: CostBreakdown,
    pub source: CostSource,
    /// Tokens were recorded but no price was found: shown loudly, never silently $0.
    pub unpriced: bool,
}

/// Observation types, named as Langfuse names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A unit of work without its own model call: an agent turn, a compaction.
    Span,
    /// One model call (failed attempts and summarization calls included).
    Generation,
    /// One tool call.
    Tool,
    /// A subagent run nested under the tool call that spawned it.
    Agent,
    /// A point in time: model change, thinking-level change, retry marker, label, unknown entry.
    Event,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Span => "span",
            Kind::Generation => "generation",
            Kind::Tool => "tool",
            Kind::Agent => "agent",
            Kind::Event => "event",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "span" => Kind::Span,
            "generation" => Kind::Generation,
            "tool" => Kind::Tool,
            "agent" => Kind::Agent,
            "event" => Kind::Event,
            _ => return None,
        })
    }
}

/// Severity of an observation, as Langfuse levels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Level {
    Debug,
    Default,
    /// E.g. a generation the user aborted.
    Warning,
    /// A failed model call or tool call.
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Default => "DEFAULT",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
        }
    }

    pub fn parse(s: &str) -> Level {
        match s {
            "DEBUG" => Level::Debug,
            "WARNING" => Level::Warning,
            "ERROR" => Level::Error,
            _ => Level::Default,
        }
    }
}

/// One agent session: a pi / oh-my-pi session file, a Claude `sessionId` (main transcript + subagent
/// transcripts), a Codex thread (rollout file), a Gemini chat.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Session {
    /// `agent:session_id`, unique across agents.
    pub key: String,
    pub agent: Option<Agent>,
    /// The agent's own session id (pi header `id`).
    pub session_id: String,
    /// The agent's release, when the files record it.
    pub agent_version: Option<String>,
    /// Working directory of the session; the project is derived from it.
    pub cwd: Option<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// Session this one was forked from (pi `parentSession`, v1 `branchedFrom`).
    pub parent_session: Option<String>,
    /// Display name (pi `session_info.name`, oh-my-pi title).
    pub name: Option<String>,
    /// Gateway channel (Telegram, Slack, …) from config rules or `TOKENTRACE_CHANNEL`.
    pub channel: Option<String>,
    /// End user from `TOKENTRACE_USER`.
    pub user: Option<String>,
    /// Format details (file format version, …).
    pub metadata: Option<serde_json::Value>,
    /// True when this record comes from a file that does not own the session (a Claude subagent
    /// transcript): the session stays attached to its main file.
    pub secondary_file: bool,
    /// The cost the agent itself recorded for the whole session, pico-USD (Claude Code's last `cost-state`
    /// `totalCostUSD`), kept beside tokentrace's own sum as a cross-check. `None` when the agent records
    /// no session figure (per-message agent costs live on the generations).
    pub agent_cost: Option<Pico>,
}

/// One user prompt and everything the agent did for it. The root observation (type `agent`) is implied by
/// the trace: its span id is `root_span_id`, its input the prompt, its output the final answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trace {
    /// 32 hex chars, see [`ids::trace_id`].
    pub id: String,
    /// 16 hex chars: the root `agent` span.
    pub root_span_id: String,
    pub session_key: String,
    /// The agent's key of the prompt (pi user entry id).
    pub key: String,
    /// False for activity that no user prompt started (e.g. entries before the first prompt).
    pub is_prompt: bool,
    pub name: Option<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// The prompt text.
    pub input: Option<String>,
    /// The final assistant text.
    pub output: Option<String>,
}

impl Trace {
    /// The record that opens a trace for the prompt `key` of a session: the trace id and the root span id are
    /// derived from agent, session id and key (DESIGN §4; root span key `root:<key>`), start = end = `start`.
    pub fn open(
        agent: &str,
        session_id: &str,
        key: &str,
        is_prompt: bool,
        name: String,
        start: Option<i64>,
        input: Option<String>,
    ) -> Trace {
        Trace {
            id: ids::trace_id(agent, session_id, key),
            root_span_id: ids::span_id(agent, session_id, &format!("root:{key}")),
            session_key: format!("{agent}:{session_id}"),
            key: key.to_string(),
            is_prompt,
            name: Some(name),
            start_ms: start,
            end_ms: start,
            input,
            output: None,
        }
    }
}

/// One node of a trace tree. `None` fields leave the stored value unchanged on upsert.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// 16 hex chars, see [`ids::span_id`].
    pub id: String,
    /// `None` for session-level observations outside any prompt (e.g. the system prompt entry).
    pub trace_id: Option<String>,
    /// Parent span id; `None` = child of the trace root.
    pub parent_id: Option<String>,
    pub session_key: String,
    pub kind: Kind,
    pub name: String,
    /// The agent's own key (entry id, tool call id).
    pub key: String,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// When the first token arrived (oh-my-pi `ttft`).
    pub completion_start_ms: Option<i64>,
    pub level: Option<Level>,
    pub status_message: Option<String>,
    /// Requested model id.
    pub model: Option<String>,
    /// Model id the provider answered with, when it differs.
    pub response_model: Option<String>,
    pub provider: Option<String>,
    pub usage: Option<Usage>,
    /// The cost the agent recorded, before pricing decides what to use.
    pub agent_cost: Option<CostBreakdown>,
    /// Filled in by pricing.
    pub cost: Option<Cost>,
    pub input: Option<String>,
    pub output: Option<String>,
    pub metadata: Option<serde_json::Value>,
    /// The agent's own id of a tool call (pi `toolCall.id`, Claude `tool_use.id`, Codex `call_id`, Gemini
    /// tool call `id`): what the model and the tool result refer to. Metadata, kept under every capture policy.
    pub tool_call_id: Option<String>,
    /// Why the model stopped (pi `stopReason`, Claude `stop_reason`, Gemini `finishReason`), as the agent
    /// wrote it. Metadata, kept under every capture policy.
    pub finish_reason: Option<String>,
    /// The provider's id of the response (pi `responseId`, Claude `message.id`, Codex `response_id`).
    /// Metadata, kept under every capture policy.
    pub response_id: Option<String>,
    /// Why some of the recorded values were rejected (an impossible token count or cost); the record is
    /// counted without them and reports mark its session.
    pub flag: Option<String>,
}

impl Observation {
    /// A new observation with every optional field unset.
    pub fn new(
        id: String,
        session_key: &str,
        kind: Kind,
        name: impl Into<String>,
        key: impl Into<String>,
    ) -> Self {
        Observation {
            id,
            trace_id: None,
            parent_id: None,
            session_key: session_key.to_string(),
            kind,
            name: name.into(),
            key: key.into(),
            start_ms: None,
            end_ms: None,
            completion_start_ms: None,
            level: None,
            status_message: None,
            model: None,
            response_model: None,
            provider: None,
            usage: None,
            agent_cost: None,
            cost: None,
            input: None,
            output: None,
            metadata: None,
            tool_call_id: None,
            finish_reason: None,
            response_id: None,
            flag: None,
        }
    }

    /// The model to price by: what the provider answered with, else what was requested.
    pub fn pricing_model(&self) -> Option<&str> {
        self.response_model.as_deref().or(self.model.as_deref())
    }
}

/// Something in a session file its parser does not know (see `sources::drift`): counted per file and agent
/// version so `doctor` can name it. Carries names only, never content.
#[derive(Debug, Clone, PartialEq)]
pub struct Drift {
    pub agent: Agent,
    /// The agent release that wrote the file, when recorded (`2.1.332`).
    pub agent_version: Option<String>,
    /// `line type` or `usage field`.
    pub what: String,
    /// The unknown type or field name (`atis-latch`, `output_tokens_details.cache_tokens`).
    pub name: String,
    /// Occurrences in the chunk.
    pub count: u64,
    /// A value-free outline of one example line.
    pub example: Option<String>,
}

/// What a source parser yields: normalized records, upserted in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Session(Session),
    Trace(Trace),
    Observation(Box<Observation>),
    /// Unknown line types and usage fields, added to the file's tally.
    Drift(Drift),
}
