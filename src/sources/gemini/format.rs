//! Read-only views of Gemini CLI chat records that read only the fields tokentrace needs.
//!
//! Source of the format: Gemini CLI 0.61.0, `packages/core/src/services/chatRecordingService.ts`
//! (`ChatRecordingService`, `loadConversationRecord`) and `geminiChat.ts`, as shipped in the npm bundle of
//! `@google/gemini-cli@0.61.0`, checked against the recorded runs in `../shared/corpus/gemini` and
//! `tests/fixtures/unseen/gemini`. Summary and examples: `README.md` in this folder.
//!
//! The views wrap a parsed [`serde_json::Value`] instead of deserializing into structs: every field is
//! optional and may have an unexpected type in another release, and nothing here may fail a line that is
//! valid JSON. A field of the wrong type reads as absent.

use serde_json::{Map, Value};

use crate::model::Usage;

/// What one line (or one whole-document chat) is, classified in the order Gemini's own loader
/// (`loadConversationRecord`) tests it.
pub enum RecordKind<'a> {
    /// `{"$rewindTo": "<message id>"}`: the user rewound the conversation to before that message.
    Rewind(&'a str),
    /// A message record: any object with a string `id` (`type` = `user`, `gemini`, `info`, `error`,
    /// `warning`, …).
    Message(Message<'a>),
    /// `{"$set": {…}}`: a metadata update (`lastUpdated`, `sessionId`, `summary`, `directories`,
    /// `memoryScratchpad`) or a history rewrite (`messages`).
    Set(&'a Map<String, Value>),
    /// The session header `{sessionId, projectHash, startTime, lastUpdated, kind, directories?, summary?}`,
    /// written first and again by every resume; the whole-document `.json` chat is a header with `messages`.
    Header(Header<'a>),
    /// Anything else (kept as an event, never fatal).
    Unknown,
}

/// Classifies a parsed record.
pub fn classify(v: &Value) -> RecordKind<'_> {
    if let Some(id) = v.get("$rewindTo").and_then(Value::as_str) {
        return RecordKind::Rewind(id);
    }
    if v.get("id").is_some_and(Value::is_string) {
        return RecordKind::Message(Message(v));
    }
    if let Some(set) = v.get("$set").and_then(Value::as_object) {
        return RecordKind::Set(set);
    }
    if v.get("sessionId").is_some_and(Value::is_string)
        && v.get("projectHash").is_some_and(Value::is_string)
    {
        return RecordKind::Header(Header(v));
    }
    RecordKind::Unknown
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn ms_of(v: &Value, key: &str) -> Option<i64> {
    str_of(v, key).and_then(crate::model::time::parse_iso_ms)
}

/// The session header (also the top level of a whole-document `session-*.json`).
#[derive(Clone, Copy)]
pub struct Header<'a>(pub &'a Value);

impl<'a> Header<'a> {
    /// The chat's session id (a uuid; for a subagent chat, its agent id).
    pub fn session_id(&self) -> Option<&'a str> {
        str_of(self.0, "sessionId")
    }

    /// sha256 (hex) of the project root path.
    pub fn project_hash(&self) -> Option<&'a str> {
        str_of(self.0, "projectHash")
    }

    /// `startTime`, ms since the epoch.
    pub fn start_ms(&self) -> Option<i64> {
        ms_of(self.0, "startTime")
    }

    /// `lastUpdated`, ms since the epoch.
    pub fn last_updated_ms(&self) -> Option<i64> {
        ms_of(self.0, "lastUpdated")
    }

    /// `main` or `subagent` (absent before 0.5x).
    pub fn kind(&self) -> Option<&'a str> {
        str_of(self.0, "kind")
    }

    /// A generated session summary (`$set.summary` or in the header).
    pub fn summary(&self) -> Option<&'a str> {
        str_of(self.0, "summary")
    }

    /// The messages of a whole-document chat (or of a header that carries them).
    pub fn messages(&self) -> Option<&'a Vec<Value>> {
        self.0.get("messages").and_then(Value::as_array)
    }
}

/// A message record (`ConversationRecord.messages[]`): `{id, timestamp, type, content, displayContent?}` plus,
/// for `type: "gemini"`, `thoughts`, `tokens`, `model`, `toolCalls`.
#[derive(Clone, Copy)]
pub struct Message<'a>(pub &'a Value);

impl<'a> Message<'a> {
    /// The message id (a uuid; a constant hash for the `<session_context>` setup message). Unique per message,
    /// repeated by every rewrite of the same message.
    pub fn id(&self) -> Option<&'a str> {
        str_of(self.0, "id")
    }

    /// `user`, `gemini`, `info`, `error`, `warning` (empty when absent).
    pub fn kind(&self) -> &'a str {
        str_of(self.0, "type").unwrap_or("")
    }

    /// `timestamp` (when the record was made: for a `gemini` message, the end of the model's stream), ms.
    pub fn timestamp_ms(&self) -> Option<i64> {
        ms_of(self.0, "timestamp")
    }

    /// The model id (`gemini` messages written for a model response; absent on synthetic messages).
    pub fn model(&self) -> Option<&'a str> {
        str_of(self.0, "model").filter(|m| !m.is_empty())
    }

    /// Why the model stopped (`finishReason`, the Gemini API's name), when a release records it; 0.61
    /// does not.
    pub fn finish_reason(&self) -> Option<&'a str> {
        str_of(self.0, "finishReason").filter(|r| !r.is_empty())
    }

    /// The API's response id (`responseId`), when a release records it; 0.61 does not.
    pub fn response_id(&self) -> Option<&'a str> {
        str_of(self.0, "responseId").filter(|r| !r.is_empty())
    }

    /// Names in `tokens` this parser does not know (format drift).
    pub fn unknown_token_fields(&self) -> Vec<String> {
        const KNOWN: &[&str] = &["input", "output", "cached", "thoughts", "tool", "total"];
        self.0
            .get("tokens")
            .and_then(Value::as_object)
            .map(|t| {
                t.keys()
                    .filter(|k| !KNOWN.contains(&k.as_str()))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `tokens` of a `gemini` message, or `None` when absent or `null` (not yet known).
    pub fn tokens(&self) -> Option<Tokens> {
        let t = self.0.get("tokens")?.as_object()?;
        let n = |k: &str| {
            t.get(k)
                .and_then(Value::as_f64)
                .map_or(0, crate::model::token_count)
        };
        Some(Tokens {
            input: n("input"),
            output: n("output"),
            cached: n("cached"),
            thoughts: n("thoughts"),
            tool: n("tool"),
            total: n("total"),
        })
    }

    /// The visible text of `content` (a string, or parts whose non-thought `text`s are joined by newlines).
    pub fn text(&self) -> Option<String> {
        self.0.get("content").and_then(content_text)
    }

    /// The text the user typed when it differs from what was sent (`displayContent`, e.g. before `@file`
    /// expansion).
    pub fn display_text(&self) -> Option<String> {
        self.0.get("displayContent").and_then(content_text)
    }

    /// `functionResponse` parts of a `user` message: the results of tool calls sent back to the model.
    pub fn function_responses(&self) -> Vec<FunctionResponse<'a>> {
        parts(self.0.get("content"))
            .filter_map(|p| p.get("functionResponse"))
            .map(FunctionResponse)
            .collect()
    }

    /// `toolCalls` of a `gemini` message.
    pub fn tool_calls(&self) -> Vec<ToolCall<'a>> {
        self.0
            .get("toolCalls")
            .and_then(Value::as_array)
            .map(|calls| {
                calls
                    .iter()
                    .filter(|c| c.is_object())
                    .map(ToolCall)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// `thoughts` of a `gemini` message as `subject: description` lines.
    pub fn thoughts(&self) -> Option<String> {
        let list = self.0.get("thoughts")?.as_array()?;
        let lines: Vec<String> = list
            .iter()
            .filter_map(|t| {
                let s = str_of(t, "subject").unwrap_or("");
                let d = str_of(t, "description").unwrap_or("");
                match (s.is_empty(), d.is_empty()) {
                    (true, true) => None,
                    (false, true) => Some(s.to_string()),
                    (true, false) => Some(d.to_string()),
                    (false, false) => Some(format!("{s}: {d}")),
                }
            })
            .collect();
        (!lines.is_empty()).then(|| lines.join("\n"))
    }
}

/// Gemini's `tokens` (from the API's `usageMetadata`): `input` = `promptTokenCount` (INCLUDES `cached`),
/// `output` = `candidatesTokenCount` (EXCLUDES `thoughts`), `cached` = `cachedContentTokenCount`,
/// `thoughts` = `thoughtsTokenCount`, `tool` = `toolUsePromptTokenCount`, `total` = `totalTokenCount`
/// (= input + output + thoughts + tool).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Prompt tokens, cached ones included.
    pub input: u64,
    /// Visible output tokens, thoughts excluded.
    pub output: u64,
    /// Prompt tokens read from the cache (part of `input`).
    pub cached: u64,
    /// Thinking tokens, billed as output.
    pub thoughts: u64,
    /// Tool-use prompt tokens (0 in every recording; kept as metadata).
    pub tool: u64,
    /// Everything: input + output + thoughts + tool.
    pub total: u64,
}

impl Tokens {
    /// Canonical usage (DESIGN §3): `input = input − cached`, `cache_read = cached`,
    /// `output = output + thoughts`, `reasoning = thoughts`; Gemini reports no cache writes.
    pub fn usage(&self) -> Usage {
        Usage {
            input: self.input.saturating_sub(self.cached),
            output: self.output.saturating_add(self.thoughts),
            cache_read: self.cached,
            cache_write_5m: 0,
            cache_write_1h: 0,
            reasoning: self.thoughts,
        }
    }
}

/// One entry of `toolCalls`: `{id, name, args, result: [{functionResponse}], status, timestamp, agentId?,
/// resultDisplay?, description?, displayName?}`. `status` is `success`, `error` or `cancelled`; `timestamp` is
/// when the call completed.
#[derive(Clone, Copy)]
pub struct ToolCall<'a>(pub &'a Value);

impl<'a> ToolCall<'a> {
    /// The call id (`<tool name>__<id>` for calls the API named, else Gemini's own), also on its
    /// `functionResponse`.
    pub fn id(&self) -> Option<&'a str> {
        str_of(self.0, "id")
    }

    /// The tool's name as the model called it (`run_shell_command`, `read_file`, an agent name, …).
    pub fn name(&self) -> Option<&'a str> {
        str_of(self.0, "name")
    }

    /// The arguments object the model sent.
    pub fn args(&self) -> Option<&'a Value> {
        self.0.get("args").filter(|a| !a.is_null())
    }

    /// `success`, `error` or `cancelled`.
    pub fn status(&self) -> Option<&'a str> {
        str_of(self.0, "status")
    }

    /// Completion time, ms.
    pub fn timestamp_ms(&self) -> Option<i64> {
        ms_of(self.0, "timestamp")
    }

    /// The session id of the subagent this call ran (Gemini ≥ 0.5x agent tools): its chat is
    /// `chats/<main session id>/<agentId>.jsonl`.
    pub fn agent_id(&self) -> Option<&'a str> {
        str_of(self.0, "agentId").filter(|a| !a.is_empty())
    }

    /// The tool's display name (`Shell`, `ReadFile`, …).
    pub fn display_name(&self) -> Option<&'a str> {
        str_of(self.0, "displayName")
    }

    /// What the model was sent back: the `functionResponse` texts of `result`, else `resultDisplay`.
    pub fn result_text(&self) -> Option<String> {
        let from_result: Vec<String> = parts(self.0.get("result"))
            .filter_map(|p| p.get("functionResponse"))
            .filter_map(|f| FunctionResponse(f).text())
            .collect();
        if !from_result.is_empty() {
            return Some(from_result.join("\n"));
        }
        match self.0.get("resultDisplay") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(v @ Value::Object(_)) => Some(v.to_string()),
            _ => None,
        }
    }

    /// True for Gemini's shell tool (`run_shell_command`), whose result text carries `Exit Code: N`.
    pub fn is_shell(&self) -> bool {
        self.name().is_some_and(|n| n.contains("shell"))
            || self.display_name().is_some_and(|n| n == "Shell")
    }
}

/// A `functionResponse` part: `{id, name, response: {output} | {error}}`.
#[derive(Clone, Copy)]
pub struct FunctionResponse<'a>(pub &'a Value);

impl<'a> FunctionResponse<'a> {
    /// The tool call id it answers.
    pub fn id(&self) -> Option<&'a str> {
        str_of(self.0, "id")
    }

    /// The tool's name.
    pub fn name(&self) -> Option<&'a str> {
        str_of(self.0, "name")
    }

    /// `response.output`, else `response.error`, else the response as JSON.
    pub fn text(&self) -> Option<String> {
        let r = self.0.get("response")?;
        if let Some(s) = str_of(r, "output") {
            return Some(s.to_string());
        }
        if let Some(s) = str_of(r, "error") {
            return Some(s.to_string());
        }
        match r {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    /// `response.error` is set (the tool failed).
    pub fn is_error(&self) -> bool {
        self.0
            .get("response")
            .and_then(|r| r.get("error"))
            .is_some_and(|e| !e.is_null())
    }
}

/// The parts of a `content` value (a list of parts, or `{parts: [...]}`); nothing for a plain string.
fn parts(content: Option<&Value>) -> impl Iterator<Item = &Value> {
    let list = match content {
        Some(Value::Array(a)) => Some(a),
        Some(Value::Object(o)) => o.get("parts").and_then(Value::as_array),
        _ => None,
    };
    list.into_iter().flatten()
}

/// Text of a `content` / `displayContent` value: a string as is; the non-thought `text` parts joined with
/// newlines (`None` when there are none).
pub fn content_text(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => (!s.is_empty()).then(|| s.clone()),
        Value::Object(o) if o.contains_key("text") && !o.contains_key("parts") => {
            o.get("text").and_then(Value::as_str).map(str::to_string)
        }
        _ => {
            let texts: Vec<&str> = parts(Some(content))
                .filter(|p| p.get("thought").and_then(Value::as_bool) != Some(true))
                .filter_map(|p| str_of(p, "text"))
                .collect();
            (!texts.is_empty()).then(|| texts.join("\n"))
        }
    }
}

/// The exit code a shell tool result reports: the last line `Exit Code: N` (Gemini appends it only when the
/// command failed; older releases write `Exit Code: (none)`, which reads as `None`).
pub fn exit_code(text: &str) -> Option<i64> {
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("Exit Code:"))
        .and_then(|rest| rest.trim().parse::<i64>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tokens_follow_the_gemini_rules() {
        let v = json!({"id":"a","type":"gemini","tokens":{"input":12123,"output":34,"cached":12002,"thoughts":11,"tool":0,"total":12168}});
        let u = Message(&v).tokens().unwrap().usage();
        assert_eq!(
            (
                u.input,
                u.cache_read,
                u.output,
                u.reasoning,
                u.cache_write()
            ),
            (121, 12002, 45, 11, 0)
        );
        let null = json!({"id":"a","type":"gemini","tokens":null});
        assert!(Message(&null).tokens().is_none());
    }

    #[test]
    fn exit_codes_are_read_from_the_last_exit_code_line() {
        let out = "<untrusted_context>\nOutput: cat: x: No such file\nExit Code: 1\nProcess Group PGID: 7\n</untrusted_context>";
        assert_eq!(exit_code(out), Some(1));
        assert_eq!(exit_code("Output: ok\nProcess Group PGID: 7"), None);
        assert_eq!(
            exit_code("Error: (none)\nExit Code: (none)\nSignal: (none)"),
            None
        );
    }

    #[test]
    fn records_are_classified_like_gemini_does() {
        assert!(matches!(
            classify(&json!({"$rewindTo":"m1"})),
            RecordKind::Rewind("m1")
        ));
        assert!(matches!(
            classify(&json!({"id":"m1","type":"user"})),
            RecordKind::Message(_)
        ));
        assert!(matches!(
            classify(&json!({"$set":{"lastUpdated":"x"}})),
            RecordKind::Set(_)
        ));
        assert!(matches!(
            classify(&json!({"sessionId":"s","projectHash":"h"})),
            RecordKind::Header(_)
        ));
        assert!(matches!(
            classify(&json!({"something":"else"})),
            RecordKind::Unknown
        ));
    }

    #[test]
    fn content_text_skips_thoughts_and_function_calls() {
        let c = json!([{"text":"**Planning** x","thought":true},{"functionCall":{"name":"ls"}},{"text":"Done."}]);
        assert_eq!(content_text(&c).as_deref(), Some("Done."));
        assert_eq!(content_text(&json!("hi")).as_deref(), Some("hi"));
        assert_eq!(content_text(&json!([])), None);
    }
}
