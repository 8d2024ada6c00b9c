//! Gemini CLI chat records → trace records.
//!
//! The rules that make totals exact (checked against `../shared/corpus/gemini`, see `README.md` here):
//! - one generation per `type: "gemini"` message **id**: Gemini writes the same message several times (first
//!   with its tokens, again with its `toolCalls`); every write is upserted under the same observation id, so
//!   the last record wins and a field it leaves out (`None`) keeps the stored value;
//! - usage from `tokens`: `input` includes `cached` (→ `input − cached`), `output` excludes `thoughts`
//!   (→ `output + thoughts`, reasoning = `thoughts`), no cache writes;
//! - `$set.messages` lines re-list (resume) or rewrite (chat compression) the history without tokens: they
//!   never create prompts, generations or tools (a compression summary becomes a `compression` span);
//! - a prompt is a `type: "user"` message with text that is not the `<session_context>` setup message, a
//!   `<hook_context>` message or a `<state_snapshot>` compression summary; `functionResponse` messages are
//!   tool results;
//! - a tool call is an error when its `status` is `error` or `cancelled`, or when a shell command's result
//!   says `Exit Code: N` with N ≠ 0 (Gemini marks those `success`);
//! - a subagent chat (`chats/<main session id>/<agent id>.jsonl`) belongs to the main session: its records
//!   hang under an `agent` observation that the main chat's tool call (`toolCalls[].agentId`) parents.
//!
//! Side calls (model routing, next-speaker checks, chat compression) leave no record in the chat file: a
//! known gap, marked in the session's metadata (`known_gaps`), never estimated.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::format::{classify, exit_code, Header, Message, RecordKind, ToolCall};
use crate::model::{ids, Agent, Kind, Level, Observation, Record, Session, Trace};
use crate::sources::reader::{parse_json_line, Line, LineIssue};

/// What Gemini's chat files do not record, as stored in `Session.metadata.known_gaps`.
pub const KNOWN_GAP_SIDE_CALLS: &str =
    "gemini side calls (routing, next-speaker checks, chat compression) are not recorded in chat files";

/// Provider of every Gemini CLI model call.
const PROVIDER: &str = "google";

/// Prefixes of `user` message texts that are setup or summaries, not prompts.
const SETUP_PREFIXES: [&str; 2] = ["<session_context>", "<hook_context>"];
const COMPRESSION_PREFIX: &str = "<state_snapshot>";

/// A trace the parser has opened.
#[derive(Debug, Serialize, Deserialize, Clone)]
struct TraceRef {
    key: String,
    id: String,
    root: String,
    is_prompt: bool,
    turns: u32,
    end_ms: Option<i64>,
    /// Final answer not yet written to the store (flushed at the end of each chunk).
    #[serde(skip)]
    output: Option<String>,
}

/// A `gemini` message already seen: later records of the same id reuse its trace, turn and start.
#[derive(Debug, Serialize, Deserialize, Clone)]
struct GenRef {
    trace: Option<u32>,
    turn: u32,
    start_ms: Option<i64>,
}

/// A tool call, by call id, so that its `functionResponse` message can complete it.
#[derive(Debug, Serialize, Deserialize, Clone)]
struct CallRef {
    trace: Option<u32>,
    span: String,
    turn: String,
}

/// Everything needed to continue parsing after the last consumed line.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    /// The session the records belong to: the chat's `sessionId`, or for a subagent chat the main session's
    /// id (its folder name).
    session_id: String,
    /// Subagent chats: their own `sessionId` (the `agentId` of the spawning tool call).
    agent_id: Option<String>,
    /// The session id may no longer change (records were written under it).
    id_fixed: bool,
    /// Header lines seen (a resume appends one).
    headers: u32,
    kind: Option<String>,
    project_hash: Option<String>,
    cwd: Option<String>,
    start_ms: Option<i64>,
    end_ms: Option<i64>,
    name: Option<String>,
    traces: Vec<TraceRef>,
    /// Latest trace in file order.
    current: Option<u32>,
    prompts: u32,
    /// User message id → its trace (a prompt written twice opens one trace).
    prompt_ids: HashMap<String, u32>,
    gens: HashMap<String, GenRef>,
    calls: HashMap<String, CallRef>,
    /// Turn counter of a subagent chat (which has no traces of its own).
    sub_turns: u32,
    /// Time of the last user record (prompt or tool results): when the next model call started.
    last_input_ms: Option<i64>,
    /// Last model seen, for a message that has tokens but no `model`.
    model: Option<String>,
    /// Compression summaries already seen (message ids).
    compressions: BTreeSet<String>,
    #[serde(skip)]
    session_dirty: bool,
    /// Unknown line types and usage fields of the current chunk.
    #[serde(skip)]
    drift: crate::sources::drift::DriftTally,
    #[serde(skip)]
    dirty_traces: BTreeSet<u32>,
}

/// Parser for one Gemini chat file (`.jsonl` records, or a whole `.json` document fed as one line).
pub struct GeminiParser {
    state: State,
    path: PathBuf,
}

impl GeminiParser {
    /// A parser for a file read from its start. The session id defaults to the file stem until the header
    /// says otherwise.
    pub fn new(path: &Path) -> GeminiParser {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("unknown")
            .to_string();
        GeminiParser {
            state: State {
                session_id: stem,
                agent_id: None,
                id_fixed: false,
                headers: 0,
                kind: None,
                project_hash: None,
                cwd: None,
                start_ms: None,
                end_ms: None,
                name: None,
                traces: Vec::new(),
                current: None,
                prompts: 0,
                prompt_ids: HashMap::new(),
                gens: HashMap::new(),
                calls: HashMap::new(),
                sub_turns: 0,
                last_input_ms: None,
                model: None,
                compressions: BTreeSet::new(),
                session_dirty: false,
                drift: Default::default(),
                dirty_traces: BTreeSet::new(),
            },
            path: path.to_path_buf(),
        }
    }

    /// Restores a parser from [`GeminiParser::checkpoint`]; `None` if the checkpoint is unreadable.
    pub fn resume(path: &Path, checkpoint: &str) -> Option<GeminiParser> {
        serde_json::from_str(checkpoint)
            .ok()
            .map(|state| GeminiParser {
                state,
                path: path.to_path_buf(),
            })
    }

    /// The state to persist with the file offset.
    pub fn checkpoint(&self) -> String {
        serde_json::to_string(&self.state).expect("parser state serializes")
    }

    /// Feeds one complete line (for a `.json` chat: the whole document).
    pub fn line(&mut self, line: &Line<'_>, out: &mut Vec<Record>, issues: &mut Vec<LineIssue>) {
        let value: Value = match parse_json_line(line) {
            Ok((v, issue)) => {
                issues.extend(issue);
                v
            }
            Err(issue) => {
                issues.push(issue);
                return;
            }
        };
        // Keys of records without an id: the file (a resumed session can leave two chat files with the same
        // session id) and the byte offset (stable: chat files are append-only).
        let at = format!("{}@{}", self.file_tag(), line.offset);
        match classify(&value) {
            RecordKind::Header(h) => self.header(h, &at, out),
            RecordKind::Message(m) => {
                self.ensure_session(out);
                self.message(m, out);
            }
            RecordKind::Set(set) => {
                self.ensure_session(out);
                self.set(set, &at, out);
            }
            RecordKind::Rewind(target) => {
                self.ensure_session(out);
                let t = self.state.current;
                self.event(
                    &format!("rewind:{at}"),
                    "rewind",
                    t,
                    None,
                    None,
                    None,
                    json!({ "rewindTo": target }),
                    out,
                );
            }
            RecordKind::Unknown => {
                let name = value
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("record without type")
                    .to_string();
                self.state
                    .drift
                    .note(crate::sources::drift::LINE_TYPE, &name, || {
                        crate::sources::drift::skeleton(line.bytes)
                    });
                // Before the header there is no session to attach it to yet (and it must not fix the id).
                if !self.state.id_fixed {
                    return;
                }
                self.ensure_session(out);
                let t = self.state.current;
                self.event(
                    &at,
                    "unknown_record",
                    t,
                    None,
                    None,
                    None,
                    json!({ "record": value }),
                    out,
                );
            }
        }
    }

    /// Pushes the records that summarize this chunk: session times, trace ends and answers.
    pub fn end_chunk(&mut self, out: &mut Vec<Record>) {
        self.state
            .drift
            .drain(crate::model::Agent::Gemini, None, out);
        if self.state.session_dirty && self.state.id_fixed {
            out.push(Record::Session(self.session_record()));
            if let Some(agent_id) = &self.state.agent_id {
                // A subagent chat: its `agent` observation lasts until its last record.
                let mut agent = Observation::new(
                    self.agent_span(agent_id),
                    &self.session_key(),
                    Kind::Agent,
                    "",
                    format!("subagent:{agent_id}"),
                );
                agent.start_ms = self.state.start_ms;
                agent.end_ms = self.state.end_ms;
                out.push(Record::Observation(Box::new(agent)));
            }
        }
        self.state.session_dirty = false;
        let session_key = self.session_key();
        for index in std::mem::take(&mut self.state.dirty_traces) {
            let t = &mut self.state.traces[index as usize];
            out.push(Record::Trace(Trace {
                id: t.id.clone(),
                root_span_id: t.root.clone(),
                session_key: session_key.clone(),
                key: t.key.clone(),
                is_prompt: t.is_prompt,
                name: None,
                start_ms: None,
                end_ms: t.end_ms,
                input: None,
                output: t.output.take(),
            }));
        }
    }

    // ---- session ------------------------------------------------------------------------------------

    fn session_key(&self) -> String {
        format!("{}:{}", Agent::Gemini, self.state.session_id)
    }

    /// The file's stem (`session-2026-11-23T03-10-a1704cb2`), part of the keys of records without an id.
    fn file_tag(&self) -> String {
        self.path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn is_subagent(&self) -> bool {
        self.state.agent_id.is_some()
    }

    /// Observation key: a subagent chat's keys are prefixed with its agent id (they share the main
    /// session's id space).
    fn key(&self, key: &str) -> String {
        match &self.state.agent_id {
            Some(a) => format!("sub:{a}:{key}"),
            None => key.to_string(),
        }
    }

    fn span(&self, key: &str) -> String {
        ids::span_id(Agent::Gemini.as_str(), &self.state.session_id, key)
    }

    /// The `agent` observation of a subagent, in the main session's id space.
    fn agent_span(&self, agent_id: &str) -> String {
        self.span(&format!("subagent:{agent_id}"))
    }

    fn touch(&mut self, t: Option<i64>) {
        let Some(t) = t else { return };
        let s = &mut self.state;
        if s.end_ms.is_none_or(|e| t > e) {
            s.end_ms = Some(t);
            s.session_dirty = true;
        }
        if s.start_ms.is_none_or(|e| t < e) {
            s.start_ms = Some(t);
            s.session_dirty = true;
        }
    }

    fn session_record(&self) -> Session {
        let s = &self.state;
        let subagent = self.is_subagent();
        Session {
            key: self.session_key(),
            agent: Some(Agent::Gemini),
            session_id: s.session_id.clone(),
            // Chat files do not record the Gemini CLI release.
            agent_version: None,
            cwd: s.cwd.clone(),
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            parent_session: None,
            name: if subagent { None } else { s.name.clone() },
            channel: None,
            user: None,
            metadata: (!subagent).then(|| {
                // Per session, not per file: a session's files (a `.json` and the `.jsonl` it was converted
                // to, a resume's startup-only file) must not disagree.
                json!({
                    "kind": s.kind,
                    "projectHash": s.project_hash,
                    "known_gaps": [KNOWN_GAP_SIDE_CALLS],
                })
            }),
            secondary_file: subagent,
            agent_cost: None,
        }
    }

    /// Emits the session before the first record when the file has no header.
    fn ensure_session(&mut self, out: &mut Vec<Record>) {
        if !self.state.id_fixed {
            self.state.id_fixed = true;
            self.state.session_dirty = true;
            out.push(Record::Session(self.session_record()));
        }
    }

    fn header(&mut self, h: Header<'_>, at: &str, out: &mut Vec<Record>) {
        self.state.headers += 1;
        let first = !self.state.id_fixed;
        if first {
            let kind = h.kind().map(str::to_string);
            let folder = self
                .path
                .parent()
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned());
            match (h.session_id(), kind.as_deref(), folder) {
                // chats/<main session id>/<agent id>.jsonl
                (Some(own), Some("subagent"), Some(main)) if main != "chats" => {
                    self.state.agent_id = Some(own.to_string());
                    self.state.session_id = main;
                }
                (Some(own), _, _) => self.state.session_id = own.to_string(),
                (None, _, _) => {}
            }
            self.state.kind = kind;
            self.state.project_hash = h.project_hash().map(str::to_string);
            self.state.cwd = super::paths::project_cwd(&self.path, h.project_hash());
            if let Some(summary) = h.summary() {
                self.state.name = Some(summary.to_string());
            }
        }
        self.touch(h.start_ms());
        self.touch(h.last_updated_ms());
        if first {
            self.state.id_fixed = true;
            self.state.session_dirty = false;
            out.push(Record::Session(self.session_record()));
            if let Some(agent_id) = self.state.agent_id.clone() {
                // The subagent's own end of its `agent` observation (the main chat's tool call parents it).
                let mut agent = Observation::new(
                    self.agent_span(&agent_id),
                    &self.session_key(),
                    Kind::Agent,
                    "",
                    format!("subagent:{agent_id}"),
                );
                agent.start_ms = h.start_ms();
                agent.end_ms = h.last_updated_ms().or(h.start_ms());
                agent.metadata = Some(json!({ "agentId": agent_id }));
                out.push(Record::Observation(Box::new(agent)));
            }
        } else {
            self.state.session_dirty = true;
            // A resumed chat appends a second header.
            let t = self.state.current;
            self.event(
                &format!("resume:{at}"),
                "resume",
                t,
                h.start_ms(),
                None,
                None,
                json!({ "sessionId": h.session_id(), "header": self.state.headers }),
                out,
            );
        }
        // The whole-document format: a header holding every message.
        if let Some(messages) = h.messages() {
            for (i, m) in messages.iter().enumerate() {
                match classify(m) {
                    RecordKind::Message(m) => self.message(m, out),
                    _ => {
                        let t = self.state.current;
                        self.event(
                            &format!("{at}#{i}"),
                            "unknown_record",
                            t,
                            None,
                            None,
                            None,
                            json!({ "record": m }),
                            out,
                        );
                    }
                }
            }
        }
    }

    fn set(&mut self, set: &serde_json::Map<String, Value>, at: &str, out: &mut Vec<Record>) {
        let updated = set
            .get("lastUpdated")
            .and_then(Value::as_str)
            .and_then(crate::model::time::parse_iso_ms);
        self.touch(updated);
        if let Some(summary) = set.get("summary").and_then(Value::as_str) {
            if !self.is_subagent() && self.state.name.as_deref() != Some(summary) {
                self.state.name = Some(summary.to_string());
                self.state.session_dirty = true;
            }
        }
        if let Some(messages) = set.get("messages").and_then(Value::as_array) {
            self.history_rewrite(messages, updated, at, out);
        }
        let other: serde_json::Map<String, Value> = set
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "lastUpdated" | "sessionId" | "messages"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !other.is_empty() {
            let t = self.state.current;
            self.event(
                &format!("set:{at}"),
                "metadata_update",
                t,
                None,
                None,
                None,
                Value::Object(other),
                out,
            );
        }
    }

    /// `$set.messages`: the history as Gemini now sends it (on resume, and after chat compression, when old
    /// turns are replaced by a `<state_snapshot>` summary). Messages here carry no tokens and may carry
    /// fresh ids for old turns: they are never prompts, generations or tools. A summary not seen before is
    /// a `compression` span.
    fn history_rewrite(
        &mut self,
        messages: &[Value],
        ts: Option<i64>,
        at: &str,
        out: &mut Vec<Record>,
    ) {
        let mut summaries = 0;
        for m in messages {
            let RecordKind::Message(m) = classify(m) else {
                continue;
            };
            if m.kind() != "user" {
                continue;
            }
            if let (Some(id), Some(text)) = (m.id(), m.text()) {
                if text.trim_start().starts_with(COMPRESSION_PREFIX) {
                    summaries += 1;
                    self.compression(id, m.timestamp_ms(), text, out);
                }
            }
        }
        let t = self.state.current;
        self.event(
            &format!("rewrite:{at}"),
            "history_rewrite",
            t,
            ts,
            None,
            None,
            json!({ "messages": messages.len(), "compressionSummaries": summaries }),
            out,
        );
    }

    // ---- traces ---------------------------------------------------------------------------------------

    fn open_trace(
        &mut self,
        key: &str,
        is_prompt: bool,
        start: Option<i64>,
        input: Option<String>,
        out: &mut Vec<Record>,
    ) -> u32 {
        let agent = Agent::Gemini.as_str();
        let name = if is_prompt {
            self.state.prompts += 1;
            format!("{agent} prompt {}", self.state.prompts)
        } else {
            format!("{agent} session activity")
        };
        let trace = Trace::open(
            agent,
            &self.state.session_id,
            key,
            is_prompt,
            name,
            start,
            input,
        );
        let (id, root) = (trace.id.clone(), trace.root_span_id.clone());
        out.push(Record::Trace(trace));
        self.state.traces.push(TraceRef {
            key: key.to_string(),
            id,
            root,
            is_prompt,
            turns: 0,
            end_ms: start,
            output: None,
        });
        let index = (self.state.traces.len() - 1) as u32;
        self.state.current = Some(index);
        index
    }

    /// The trace a model call joins: the latest, or a non-prompt trace for activity before any prompt.
    /// Subagent chats have none (their records hang under the `agent` observation).
    fn ensure_trace(&mut self, start: Option<i64>, out: &mut Vec<Record>) -> Option<u32> {
        if self.is_subagent() {
            return None;
        }
        Some(match self.state.current {
            Some(t) => t,
            None => self.open_trace("session", false, start, None, out),
        })
    }

    fn extend_trace(&mut self, index: Option<u32>, end: Option<i64>) {
        let (Some(index), Some(end)) = (index, end) else {
            return;
        };
        let t = &mut self.state.traces[index as usize];
        if t.end_ms.is_none_or(|e| end > e) {
            t.end_ms = Some(end);
            self.state.dirty_traces.insert(index);
        }
    }

    /// A new observation in `trace`; in a subagent chat, a child of the subagent's `agent` observation
    /// (`parent_id` may be replaced by the caller).
    fn observation(&self, key: &str, trace: Option<u32>, kind: Kind, name: &str) -> Observation {
        let key = self.key(key);
        let mut obs = Observation::new(self.span(&key), &self.session_key(), kind, name, key);
        obs.trace_id = trace.map(|t| self.state.traces[t as usize].id.clone());
        if let Some(a) = &self.state.agent_id {
            obs.parent_id = Some(self.agent_span(a));
        }
        obs
    }

    #[allow(clippy::too_many_arguments)]
    fn event(
        &mut self,
        key: &str,
        name: &str,
        trace: Option<u32>,
        ts: Option<i64>,
        level: Option<Level>,
        input: Option<String>,
        meta: Value,
        out: &mut Vec<Record>,
    ) {
        let mut obs = self.observation(key, trace, Kind::Event, name);
        obs.start_ms = ts;
        obs.end_ms = ts;
        obs.level = level;
        obs.input = input;
        obs.metadata = Some(meta);
        self.extend_trace(trace, ts);
        out.push(Record::Observation(Box::new(obs)));
    }

    // ---- messages -------------------------------------------------------------------------------------

    fn message(&mut self, m: Message<'_>, out: &mut Vec<Record>) {
        let Some(id) = m.id() else { return };
        let ts = m.timestamp_ms();
        self.touch(ts);
        match m.kind() {
            "user" => self.user(id, ts, m, out),
            "gemini" => self.gemini(id, ts, m, out),
            kind @ ("info" | "error" | "warning") => {
                let level = match kind {
                    "error" => Level::Error,
                    "warning" => Level::Warning,
                    _ => Level::Default,
                };
                let t = self.state.current;
                self.event(
                    id,
                    kind,
                    t,
                    ts,
                    Some(level),
                    m.text(),
                    json!({ "type": kind }),
                    out,
                );
            }
            other => {
                self.state
                    .drift
                    .note(crate::sources::drift::LINE_TYPE, other, || None);
                let t = self.state.current;
                let name = if other.is_empty() {
                    "message".to_string()
                } else {
                    format!("{other}_message")
                };
                self.event(
                    id,
                    &name,
                    t,
                    ts,
                    None,
                    m.text(),
                    json!({ "record": m.0 }),
                    out,
                );
            }
        }
    }

    fn user(&mut self, id: &str, ts: Option<i64>, m: Message<'_>, out: &mut Vec<Record>) {
        let responses = m.function_responses();
        if !responses.is_empty() {
            self.state.last_input_ms = ts;
            self.tool_responses(id, ts, &responses, out);
            return;
        }
        let text = m.text().unwrap_or_default();
        let trimmed = text.trim_start();
        if trimmed.starts_with(COMPRESSION_PREFIX) {
            self.compression(id, ts, text, out);
            return;
        }
        if trimmed.is_empty() || SETUP_PREFIXES.iter().any(|p| trimmed.starts_with(p)) {
            let t = self.state.current;
            self.event(
                id,
                "context",
                t,
                ts,
                None,
                Some(text),
                json!({ "type": "user" }),
                out,
            );
            return;
        }
        self.state.last_input_ms = ts;
        if let Some(agent_id) = self.state.agent_id.clone() {
            // A subagent's task, sent by the main agent: not a user prompt.
            let mut obs = self.observation(id, None, Kind::Event, "subagent_task");
            obs.start_ms = ts;
            obs.end_ms = ts;
            obs.input = Some(text);
            obs.metadata = Some(json!({ "agentId": agent_id }));
            out.push(Record::Observation(Box::new(obs)));
            return;
        }
        if self.state.prompt_ids.contains_key(id) {
            return;
        }
        let input = m.display_text().unwrap_or(text);
        let t = self.open_trace(id, true, ts, Some(input), out);
        self.state.prompt_ids.insert(id.to_string(), t);
    }

    /// A chat compression: the summary replaces old turns. The calls that made it are not in the file.
    fn compression(&mut self, id: &str, ts: Option<i64>, text: String, out: &mut Vec<Record>) {
        self.state.compressions.insert(id.to_string());
        let t = self.state.current;
        let mut span = self.observation(&format!("compression:{id}"), t, Kind::Span, "compression");
        span.start_ms = ts;
        span.end_ms = ts;
        span.output = Some(text);
        span.metadata = Some(json!({
            "summaryMessageId": id,
            "known_gap": "the compression calls (summary and verification) are not recorded in the chat file",
        }));
        self.extend_trace(t, ts);
        out.push(Record::Observation(Box::new(span)));
    }

    /// `functionResponse` parts sent back to the model: they complete the tool calls of the previous
    /// `gemini` message (whose `toolCalls` already hold the result and status).
    fn tool_responses(
        &mut self,
        id: &str,
        ts: Option<i64>,
        responses: &[super::format::FunctionResponse<'_>],
        out: &mut Vec<Record>,
    ) {
        for r in responses {
            let call_id = r.id().unwrap_or_default().to_string();
            let known = self.state.calls.get(&call_id).cloned();
            match known {
                Some(call) => {
                    let mut tool =
                        Observation::new(call.span, &self.session_key(), Kind::Tool, "", "");
                    tool.trace_id = call.trace.map(|t| self.state.traces[t as usize].id.clone());
                    tool.end_ms = ts;
                    out.push(Record::Observation(Box::new(tool)));
                    let mut turn =
                        Observation::new(call.turn, &self.session_key(), Kind::Span, "", "");
                    turn.trace_id = call.trace.map(|t| self.state.traces[t as usize].id.clone());
                    turn.end_ms = ts;
                    out.push(Record::Observation(Box::new(turn)));
                    self.extend_trace(call.trace, ts);
                }
                None => {
                    // A result without a recorded call: keep it as its own tool observation.
                    let t = self.ensure_trace(ts, out);
                    let name = r.name().unwrap_or("tool");
                    let mut tool =
                        self.observation(&format!("tool:{id}:{call_id}"), t, Kind::Tool, name);
                    let output = r.text();
                    let code = output
                        .as_deref()
                        .filter(|_| name.contains("shell"))
                        .and_then(exit_code)
                        .filter(|c| *c != 0);
                    let failed = r.is_error() || code.is_some();
                    tool.start_ms = ts;
                    tool.end_ms = ts;
                    tool.level = Some(if failed { Level::Error } else { Level::Default });
                    if failed {
                        tool.status_message = Some(match code {
                            Some(c) => format!("exit code {c}"),
                            None => "error".into(),
                        });
                    }
                    tool.output = output;
                    tool.tool_call_id = (!call_id.is_empty()).then(|| call_id.clone());
                    tool.metadata = Some(json!({ "callId": call_id, "orphan": true }));
                    self.extend_trace(t, ts);
                    out.push(Record::Observation(Box::new(tool)));
                }
            }
        }
    }

    fn gemini(&mut self, id: &str, ts: Option<i64>, m: Message<'_>, out: &mut Vec<Record>) {
        let tokens = m.tokens();
        for k in m.unknown_token_fields() {
            self.state
                .drift
                .note(crate::sources::drift::USAGE_FIELD, &k, || None);
        }
        let calls = m.tool_calls();
        let text = m.text();
        if m.model().is_none() && tokens.is_none() && calls.is_empty() {
            // A synthetic model turn Gemini adds to the history itself (no model call).
            let t = self.state.current;
            self.event(
                &format!("synthetic:{id}"),
                "synthetic_model_message",
                t,
                ts,
                None,
                text,
                json!({ "type": "gemini" }),
                out,
            );
            return;
        }
        if let Some(model) = m.model() {
            self.state.model = Some(model.to_string());
        }
        let (t, turn_no, start) = match self.state.gens.get(id) {
            Some(g) => (g.trace, g.turn, g.start_ms),
            None => {
                let t = self.ensure_trace(ts, out);
                let turn_no = match t {
                    Some(t) => {
                        let tr = &mut self.state.traces[t as usize];
                        tr.turns += 1;
                        tr.turns
                    }
                    None => {
                        self.state.sub_turns += 1;
                        self.state.sub_turns
                    }
                };
                let start = match (self.state.last_input_ms, ts) {
                    (Some(s), Some(e)) if s <= e => Some(s),
                    _ => ts,
                };
                self.state.gens.insert(
                    id.to_string(),
                    GenRef {
                        trace: t,
                        turn: turn_no,
                        start_ms: start,
                    },
                );
                (t, turn_no, start)
            }
        };
        let end = ts.or(start);

        let mut turn = self.observation(
            &format!("turn:{id}"),
            t,
            Kind::Span,
            &format!("turn {turn_no}"),
        );
        turn.start_ms = start;
        turn.end_ms = end;

        let model = m
            .model()
            .map(str::to_string)
            .or_else(|| self.state.model.clone());
        let mut gen = self.observation(
            id,
            t,
            Kind::Generation,
            model.as_deref().unwrap_or("unknown"),
        );
        gen.parent_id = Some(turn.id.clone());
        gen.start_ms = start;
        gen.end_ms = end;
        gen.level = Some(Level::Default);
        gen.model = model;
        gen.provider = Some(PROVIDER.to_string());
        gen.usage = tokens.map(|tk| tk.usage());
        gen.output = text.clone();
        gen.finish_reason = m.finish_reason().map(str::to_string);
        gen.response_id = m.response_id().map(str::to_string);
        gen.metadata = Some(json!({
            "tokens": tokens.map(|tk| json!({
                "input": tk.input, "output": tk.output, "cached": tk.cached,
                "thoughts": tk.thoughts, "tool": tk.tool, "total": tk.total,
            })),
            "reasoning": m.thoughts(),
        }));
        let gen_id = gen.id.clone();
        let turn_id = turn.id.clone();
        let mut turn_end = end;

        let mut tools = Vec::new();
        for call in &calls {
            let (tool, agent) = self.tool_call(id, t, &gen_id, end, call);
            if let Some(done) = tool.end_ms {
                turn_end = Some(turn_end.map_or(done, |e| e.max(done)));
            }
            self.state.calls.insert(
                call.id().unwrap_or_default().to_string(),
                CallRef {
                    trace: t,
                    span: tool.id.clone(),
                    turn: turn_id.clone(),
                },
            );
            tools.push(tool);
            tools.extend(agent);
        }
        turn.end_ms = turn_end;
        out.push(Record::Observation(Box::new(turn)));
        out.push(Record::Observation(Box::new(gen)));
        out.extend(tools.into_iter().map(|o| Record::Observation(Box::new(o))));

        if let (Some(ti), true) = (t, calls.is_empty()) {
            if let Some(text) = text.filter(|s| !s.trim().is_empty()) {
                self.state.traces[ti as usize].output = Some(text);
                self.state.dirty_traces.insert(ti);
            }
        }
        self.extend_trace(t, turn_end);
    }

    /// One `toolCalls` entry: the tool observation (child of the generation), and the `agent` observation of
    /// the subagent it ran, if any.
    fn tool_call(
        &self,
        msg_id: &str,
        t: Option<u32>,
        gen_id: &str,
        start: Option<i64>,
        call: &ToolCall<'_>,
    ) -> (Observation, Option<Observation>) {
        let call_id = call.id().unwrap_or_default();
        let name = call.name().unwrap_or("tool");
        let mut tool = self.observation(&format!("tool:{msg_id}:{call_id}"), t, Kind::Tool, name);
        tool.parent_id = Some(gen_id.to_string());
        tool.start_ms = start;
        tool.end_ms = call.timestamp_ms().or(start);
        tool.input = call.args().map(Value::to_string);
        tool.tool_call_id = (!call_id.is_empty()).then(|| call_id.to_string());
        let output = call.result_text();
        let status = call.status();
        let code = output
            .as_deref()
            .filter(|_| call.is_shell())
            .and_then(exit_code)
            .filter(|c| *c != 0);
        let failed = matches!(status, Some("error" | "cancelled")) || code.is_some();
        tool.level = Some(if failed { Level::Error } else { Level::Default });
        if failed {
            tool.status_message = Some(match (status, code) {
                (Some(s @ ("error" | "cancelled")), _) => match output.as_deref() {
                    Some(o) if !o.is_empty() => format!("{s}: {}", first_line(o)),
                    _ => s.to_string(),
                },
                (_, Some(c)) => format!("exit code {c}"),
                _ => "error".into(),
            });
        }
        tool.output = output.clone();
        tool.metadata = Some(json!({
            "callId": call_id,
            "status": status,
            "displayName": call.display_name(),
            "agentId": call.agent_id(),
        }));
        let agent = call.agent_id().map(|agent_id| {
            let mut agent = Observation::new(
                self.agent_span(agent_id),
                &self.session_key(),
                Kind::Agent,
                name,
                format!("subagent:{agent_id}"),
            );
            agent.trace_id = tool.trace_id.clone();
            agent.parent_id = Some(tool.id.clone());
            agent.start_ms = tool.start_ms;
            agent.end_ms = tool.end_ms;
            agent.level = tool.level;
            agent.input = tool.input.clone();
            agent.output = output;
            agent.metadata = Some(json!({ "agentId": agent_id }));
            agent
        });
        (tool, agent)
    }
}

fn first_line(s: &str) -> &str {
    let line = s
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('<'))
        .unwrap_or("");
    match line.char_indices().nth(200) {
        Some((i, _)) => &line[..i],
        None => line,
    }
}
