//! Privacy layer, applied on import before anything is stored or sent (DESIGN §7): the store never holds
//! what must not leave the machine.
//!
//! Per record, in this order:
//! 1. **Capture policy** ([`Capture`]): which content fields are kept at all. `metadata` keeps names, sizes,
//!    tokens, cost, timings and errors only; `prompts` adds user prompts and final answers; `full` (default)
//!    keeps everything. Per-field overrides come from the config file (`[capture_fields]`).
//! 2. **Redaction** ([`redact::Redactor`]) of every remaining string, metadata included.
//! 3. **Path masking**: the home directory becomes `~` in every string and in the project path; with
//!    `TOKENTRACE_HASH_PATHS=1` project paths are replaced by a stable hash.
//! 4. **Truncation** ([`truncate`]): strings capped (default 20,000 chars) with a marker, data URIs replaced
//!    by `[image: mime, N bytes]`, JSON nesting and array length capped.

pub mod redact;
pub mod truncate;

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::{Config, DEFAULT_MAX_FIELD_CHARS};
use crate::model::{Kind, Observation, Record};
pub use redact::{Counts, Redactor};
pub use truncate::{cap, cap_field, cap_json};

/// The capture policy (`TOKENTRACE_CAPTURE`, config `capture`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capture {
    /// No prompt, answer, reasoning or tool content.
    Metadata,
    /// User prompts and final answers; no tool I/O, reasoning or intermediate answers.
    Prompts,
    /// All content, redacted.
    Full,
}

impl Capture {
    pub fn parse(s: &str) -> Option<Capture> {
        match s.trim().to_ascii_lowercase().as_str() {
            "metadata" | "none" => Some(Capture::Metadata),
            "prompts" => Some(Capture::Prompts),
            "full" | "all" => Some(Capture::Full),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Capture::Metadata => "metadata",
            Capture::Prompts => "prompts",
            Capture::Full => "full",
        }
    }
}

/// Content fields a policy decides on. Config keys are the lowercase names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// The user's prompt (trace input).
    Prompt,
    /// The final answer of a prompt (trace output).
    Answer,
    /// Text of each model response (generation output).
    Response,
    /// Reasoning / thinking text.
    Reasoning,
    /// Tool call arguments.
    ToolInput,
    /// Tool call results.
    ToolOutput,
    /// Content of other entries: system prompt, user shell commands, summaries, extension messages.
    Other,
}

impl Field {
    pub const ALL: [Field; 7] = [
        Field::Prompt,
        Field::Answer,
        Field::Response,
        Field::Reasoning,
        Field::ToolInput,
        Field::ToolOutput,
        Field::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Field::Prompt => "prompt",
            Field::Answer => "answer",
            Field::Response => "response",
            Field::Reasoning => "reasoning",
            Field::ToolInput => "tool_input",
            Field::ToolOutput => "tool_output",
            Field::Other => "other",
        }
    }

    fn default_for(self, capture: Capture) -> bool {
        match capture {
            Capture::Full => true,
            Capture::Prompts => matches!(self, Field::Prompt | Field::Answer),
            Capture::Metadata => false,
        }
    }
}

/// Metadata keys kept under every policy: identifiers, names and numbers, never content.
const METADATA_KEYS: &[&str] = &[
    "api",
    "responseId",
    "stopReason",
    "toolCallId",
    // Claude Code, Codex and Gemini names of the same identifiers (the typed fields `tool_call_id`,
    // `finish_reason`, `response_id` carry them too; these keep the metadata copies consistent).
    "messageId",
    "requestId",
    "stop_reason",
    "toolUseId",
    "call_id",
    "item_id",
    "response_id",
    "turn_id",
    "callId",
    "finishReason",
    "provider",
    "model",
    "thinkingLevel",
    "customType",
    "type",
    "role",
    "exitCode",
    "cancelled",
    "tokensBefore",
    "firstKeptEntryId",
    "fromId",
    "targetId",
    "attribution",
    "format_version",
    "orphan",
    "known_gaps",
];

/// Redactions done during an import, by kind (`github-token`, …), and the caps applied
/// ([`truncate::TRUNCATED`], [`truncate::IMAGE`]).
pub type RedactionCounts = Counts;

/// The privacy settings in effect, built once per import.
pub struct Privacy {
    pub capture: Capture,
    fields: HashMap<Field, bool>,
    redactor: Redactor,
    home: Option<String>,
    hash_paths: bool,
    max_chars: usize,
}

/// JSON nesting depth and array length kept in metadata and tool arguments.
pub const MAX_JSON_DEPTH: usize = 16;
pub const MAX_JSON_ARRAY: usize = 1000;

impl Privacy {
    /// Settings from the config (already merged with `TOKENTRACE_*` variables), the process environment
    /// (for the values of secret-looking variables and the backends' credentials: OTLP header values, URL
    /// passwords) and the home directory.
    pub fn new(
        config: &Config,
        env: &HashMap<String, String>,
        home: Option<PathBuf>,
    ) -> anyhow::Result<Privacy> {
        let capture = match config.capture.as_deref() {
            None => Capture::Full,
            Some(s) => Capture::parse(s).ok_or_else(|| {
                anyhow::anyhow!("unknown capture policy '{s}': expected metadata, prompts or full")
            })?,
        };
        let mut fields: HashMap<Field, bool> = Field::ALL
            .iter()
            .map(|f| (*f, f.default_for(capture)))
            .collect();
        for (name, keep) in &config.capture_fields {
            let field = Field::ALL
                .iter()
                .find(|f| f.as_str() == name)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "unknown field '{name}' in [capture_fields]: expected one of {}",
                        Field::ALL.map(|f| f.as_str()).join(", ")
                    )
                })?;
            fields.insert(*field, *keep);
        }
        let hash_paths = config.hash_paths
            || env
                .get("TOKENTRACE_HASH_PATHS")
                .is_some_and(|v| !v.is_empty() && v != "0");
        Ok(Privacy {
            capture,
            fields,
            // The credentials of the configured backends (OTLP header values, URL passwords) whatever
            // their variables are called, like the values of secret-looking variables.
            redactor: Redactor::with_credentials(
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())),
                &config.redact,
                &crate::sinks::endpoint::credential_values(env),
            ),
            home: home
                .map(|h| h.to_string_lossy().trim_end_matches('/').to_string())
                .filter(|h| h.len() > 1),
            hash_paths,
            max_chars: config.max_field_chars.unwrap_or(DEFAULT_MAX_FIELD_CHARS),
        })
    }

    /// Whether a content field is kept.
    pub fn keeps(&self, field: Field) -> bool {
        self.fields.get(&field).copied().unwrap_or(false)
    }

    /// Applies the policy, redaction, path masking and caps to every record.
    pub fn apply(&self, records: &mut [Record], counts: &mut RedactionCounts) {
        for record in records {
            match record {
                Record::Observation(o) => self.observation(o, counts),
                Record::Trace(t) => {
                    self.text(&mut t.input, Field::Prompt, counts);
                    self.text(&mut t.output, Field::Answer, counts);
                }
                Record::Session(s) => {
                    if let Some(cwd) = s.cwd.as_mut() {
                        *cwd = self.project_path(cwd);
                    }
                    if let Some(p) = s.parent_session.as_mut() {
                        *p = self.mask_home(p).into_owned();
                    }
                    if let Some(m) = s.metadata.as_mut() {
                        self.json(m, counts);
                    }
                }
                // Names and value-free outlines only.
                Record::Drift(_) => {}
            }
        }
    }

    fn observation(&self, o: &mut Observation, counts: &mut RedactionCounts) {
        let (input, output) = match o.kind {
            Kind::Tool => (Field::ToolInput, Field::ToolOutput),
            Kind::Generation => (Field::Other, Field::Response),
            _ => (Field::Other, Field::Other),
        };
        self.text(&mut o.input, input, counts);
        self.text(&mut o.output, output, counts);
        // Errors are kept under every policy (they are metadata), but redacted.
        if let Some(msg) = o.status_message.as_mut() {
            *msg = self.clean(msg, counts);
        }
        if let Some(meta) = o.metadata.as_mut() {
            if let Value::Object(map) = meta {
                if !self.keeps(Field::Reasoning) {
                    map.remove("reasoning");
                }
                if !self.keeps(Field::Other) {
                    map.retain(|k, _| METADATA_KEYS.contains(&k.as_str()) || k == "reasoning");
                }
            }
            self.json(meta, counts);
        }
    }

    /// Drops a field the policy excludes; otherwise redacts, masks and caps it.
    fn text(&self, value: &mut Option<String>, field: Field, counts: &mut RedactionCounts) {
        if !self.keeps(field) {
            *value = None;
            return;
        }
        if let Some(text) = value.as_mut() {
            *text = self.clean(text, counts);
        }
    }

    fn clean(&self, text: &str, counts: &mut RedactionCounts) -> String {
        let redacted = self.redactor.redact(text, counts);
        let text = redacted.as_deref().unwrap_or(text);
        let masked = self.mask_home(text);
        if masked.len() > self.max_chars || masked.contains("data:") {
            truncate::cap_counting(&masked, self.max_chars, counts)
        } else {
            masked.into_owned()
        }
    }

    fn json(&self, value: &mut Value, counts: &mut RedactionCounts) {
        truncate::limit_json(value, MAX_JSON_DEPTH, MAX_JSON_ARRAY);
        self.json_strings(value, counts);
    }

    fn json_strings(&self, value: &mut Value, counts: &mut RedactionCounts) {
        match value {
            Value::String(s) => *s = self.clean(s, counts),
            Value::Array(items) => items.iter_mut().for_each(|v| self.json_strings(v, counts)),
            Value::Object(map) => map.values_mut().for_each(|v| self.json_strings(v, counts)),
            _ => {}
        }
    }

    /// Replaces the home directory prefix of every path in `text` with `~`.
    pub fn mask_home<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        match &self.home {
            Some(home) if text.contains(home.as_str()) => {
                std::borrow::Cow::Owned(text.replace(home.as_str(), "~"))
            }
            _ => std::borrow::Cow::Borrowed(text),
        }
    }

    /// A project path as stored: home masked, or a stable hash (`project-<12 hex>`) with hashing on.
    pub fn project_path(&self, path: &str) -> String {
        if self.hash_paths {
            let digest = Sha256::digest(path.as_bytes());
            let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
            format!("project-{hex}")
        } else {
            self.mask_home(path).into_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Kind, Observation, Trace};

    fn privacy(capture: &str, fields: &[(&str, bool)]) -> Privacy {
        let config = Config {
            capture: Some(capture.to_string()),
            capture_fields: fields.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            ..Config::default()
        };
        Privacy::new(&config, &HashMap::new(), Some(PathBuf::from("/home/alice"))).unwrap()
    }

    fn sample() -> Vec<Record> {
        let mut gen = Observation::new("g".into(), "pi:s", Kind::Generation, "model", "g");
        gen.output = Some("Let me look in /home/alice/proj.".into());
        gen.status_message = Some("401: key sk-proj-AbCdEfGhIjKlMnOpQrStUvWx rejected".into());
        gen.metadata =
            Some(serde_json::json!({ "stopReason": "stop", "reasoning": "think", "note": "x" }));
        let mut tool = Observation::new("t".into(), "pi:s", Kind::Tool, "bash", "t");
        tool.input = Some(r#"{"command":"cat .env"}"#.into());
        tool.output = Some("OPENAI_API_KEY=sk-proj-AbCdEfGhIjKlMnOpQrStUvWx".into());
        let trace = Trace {
            input: Some("what is in /home/alice/proj?".into()),
            output: Some("Two files.".into()),
            ..Trace::default()
        };
        vec![
            Record::Observation(Box::new(gen)),
            Record::Observation(Box::new(tool)),
            Record::Trace(trace),
        ]
    }

    /// What survives of [`sample`] under a policy.
    #[derive(Debug, PartialEq, Default)]
    struct Survivors {
        response: Option<String>,
        reasoning: bool,
        other_metadata: bool,
        tool_input: Option<String>,
        tool_output: Option<String>,
        prompt: Option<String>,
        answer: Option<String>,
    }

    fn survivors(p: &Privacy) -> Survivors {
        let mut records = sample();
        p.apply(&mut records, &mut Counts::new());
        let (Record::Observation(g), Record::Observation(t), Record::Trace(tr)) =
            (&records[0], &records[1], &records[2])
        else {
            unreachable!()
        };
        let meta = g.metadata.as_ref().unwrap();
        assert_eq!(
            meta["stopReason"], "stop",
            "identifiers survive every policy"
        );
        assert_eq!(
            g.status_message.as_deref(),
            Some("401: key [REDACTED:openai-key] rejected"),
            "errors survive, redacted"
        );
        Survivors {
            response: g.output.clone(),
            reasoning: meta.get("reasoning").is_some(),
            other_metadata: meta.get("note").is_some(),
            tool_input: t.input.clone(),
            tool_output: t.output.clone(),
            prompt: tr.input.clone(),
            answer: tr.output.clone(),
        }
    }

    #[test]
    fn metadata_policy_keeps_no_content() {
        assert_eq!(survivors(&privacy("metadata", &[])), Survivors::default());
    }

    #[test]
    fn prompts_policy_keeps_prompts_and_final_answers() {
        let expected = Survivors {
            prompt: Some("what is in ~/proj?".into()),
            answer: Some("Two files.".into()),
            ..Survivors::default()
        };
        assert_eq!(survivors(&privacy("prompts", &[])), expected);
    }

    #[test]
    fn full_policy_keeps_everything_redacted_and_masked() {
        let expected = Survivors {
            response: Some("Let me look in ~/proj.".into()),
            reasoning: true,
            other_metadata: true,
            tool_input: Some(r#"{"command":"cat .env"}"#.into()),
            tool_output: Some("OPENAI_API_KEY=[REDACTED:openai-key]".into()),
            prompt: Some("what is in ~/proj?".into()),
            answer: Some("Two files.".into()),
        };
        assert_eq!(survivors(&privacy("full", &[])), expected);
    }

    #[test]
    fn field_overrides_win_over_the_policy() {
        let s = survivors(&privacy(
            "prompts",
            &[("tool_output", true), ("answer", false)],
        ));
        assert_eq!(
            (s.tool_output.as_deref(), s.answer),
            (Some("OPENAI_API_KEY=[REDACTED:openai-key]"), None)
        );
        let bad = Config {
            capture_fields: [("tool_outptu".to_string(), true)].into_iter().collect(),
            ..Config::default()
        };
        let err = Privacy::new(&bad, &HashMap::new(), None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("tool_outptu"), "{err}");
    }

    #[test]
    fn project_paths_are_masked_or_hashed() {
        let p = privacy("full", &[]);
        assert_eq!(p.project_path("/home/alice/code/x"), "~/code/x");
        let config = Config {
            hash_paths: true,
            ..Config::default()
        };
        let hashed = Privacy::new(&config, &HashMap::new(), None).unwrap();
        let h = hashed.project_path("/home/alice/code/x");
        assert!(h.starts_with("project-") && h.len() == 20, "{h}");
        assert_eq!(h, hashed.project_path("/home/alice/code/x"), "stable");
    }
}
