//! Codex CLI rollout lines → trace records.
//!
//! The rules that make totals exact (checked against `../shared/corpus/codex`, see `README.md` here):
//! - one generation per model call: its usage is the call's `token_usage_record`, else the
//!   `token_count.info.last_token_usage` that follows it, else the delta of `total_token_usage`; a
//!   `token_count` that only repeats a record, re-emits an unchanged total, or carries the all-zero
//!   placeholder written after a compaction is no call; a file's last total is never used as such;
//! - a call's output items (`reasoning`, assistant `message`, `function_call`, …) open its generation, so
//!   its tool calls hang under it even though the usage arrives after them;
//! - a prompt is a `user_message` event or an `item_completed` `UserMessage` (both, when a release writes
//!   both, count once); a Codex turn (`turn_id`) is one trace, so a pre-turn compaction lands in the trace
//!   of the prompt it was made for;
//! - lines a fork copied from its parent (ordinal below `forked_from_ordinal_exclusive`, or stamped with
//!   another thread's id) update the running totals but are not counted again;
//! - ids come from Codex's own ids (item ids, call ids, response ids, turn ids) or, for lines without one,
//!   the line's ordinal / byte offset: importing the same content twice, in pieces, or from an archived copy
//!   upserts onto the same rows.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use crate::sources::drift;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::format::{
    content_text, str_of, tool_output, RolloutLine, SessionMeta, TokenUsage, TurnContext,
};
use crate::model::{
    ids, time::parse_iso_ms, Agent, Kind, Level, Observation, Record, Session, Trace,
};
use crate::sources::reader::{parse_json_line, Line, LineIssue};

const AGENT: &str = "codex";
/// Codex talks to OpenAI's Responses API; custom providers are recorded in the session metadata.
/// `event_msg` types kept as events as they are (not drift).
const KNOWN_EVENTS: &[&str] = &["stream_error", "background_event", "warning"];

const PROVIDER: &str = "openai";
/// Strings kept in session / event metadata are cut at this length (instructions can be 50k+ chars).
const META_CHARS: usize = 2_000;
/// Reasoning summary kept on a generation.
const REASONING_CHARS: usize = 4_000;
/// Header fields that hold whole instruction texts: only their size is kept.
const HUGE_META_FIELDS: [&str; 5] = [
    "base_instructions",
    "instructions",
    "user_instructions",
    "developer_instructions",
    "dynamic_tools",
];

/// A trace the parser has opened.
#[derive(Debug, Serialize, Deserialize, Clone)]
struct TraceRef {
    key: String,
    id: String,
    root: String,
    is_prompt: bool,
    /// Model calls so far (names the `turn N` spans).
    steps: u32,
    end_ms: Option<i64>,
}

/// The model call whose output items are being read; its usage has not arrived yet.
#[derive(Debug, Serialize, Deserialize, Clone)]
struct PendingGen {
    /// Key of its first output item (item id, else line position).
    key: String,
    /// Span id of the generation.
    id: String,
    /// Span id of its `turn N` (or `compaction`) span.
    span: String,
    trace: u32,
    compaction: bool,
    reasoning: Option<String>,
}

/// A tool call seen in the file.
#[derive(Debug, Serialize, Deserialize, Clone)]
struct ToolRef {
    span: String,
    trace: u32,
    step_span: String,
    turn: Option<String>,
    /// Its output was read.
    done: bool,
    failed: bool,
    /// Turn counter when it was called (old entries are pruned).
    seq: u32,
}

/// Everything needed to continue parsing after the last consumed line.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    session_id: String,
    /// The first `session_meta` was read (it fixes the session id).
    meta_seen: bool,
    session_emitted: bool,
    /// Read from `archived_sessions/`: the session row stays attached to a `sessions/` copy if there is one.
    secondary: bool,
    agent_version: Option<String>,
    cwd: Option<String>,
    start_ms: Option<i64>,
    end_ms: Option<i64>,
    parent_session: Option<String>,
    name: Option<String>,
    metadata: Option<Value>,
    forked: bool,
    /// Lines with an ordinal below this are the parent's history, copied by a fork.
    replay_before: Option<u64>,
    replayed_lines: u64,
    model: Option<String>,
    effort: Option<String>,
    /// The Codex turn in progress and when it started.
    turn_id: Option<String>,
    turn_start: Option<i64>,
    turn_seq: u32,
    traces: Vec<TraceRef>,
    /// Latest trace in file order.
    current: Option<u32>,
    trace_keys: HashMap<String, u32>,
    /// Codex turn id → the trace its activity joins.
    turn_traces: HashMap<String, u32>,
    /// Prompts counted in `prompt_turn`: [`user_message` events, `UserMessage` items].
    prompt_turn: Option<String>,
    prompt_counts: [u32; 2],
    prompts: u32,
    pending: Option<PendingGen>,
    /// The span of the latest compaction call, until its `compacted` line arrives.
    compaction_span: Option<(String, u32)>,
    tools: HashMap<String, ToolRef>,
    /// Latest `total_token_usage` (the running thread total).
    baseline: Option<TokenUsage>,
    /// A usage record was read since the last `token_count` (which then repeats it).
    usage_since_count: bool,
    /// The turn whose failure was already recorded as a failed generation (an `error` event before its
    /// `task_complete.error`).
    #[serde(default)]
    failed_turn: Option<String>,
    #[serde(skip)]
    session_dirty: bool,
    /// Unknown line types and usage fields of the current chunk.
    #[serde(skip)]
    drift: crate::sources::drift::DriftTally,
    #[serde(skip)]
    dirty_traces: BTreeSet<u32>,
}

/// Parser for one Codex rollout (`rollout-<ts>-<thread id>.jsonl`).
pub struct CodexParser {
    state: State,
}

impl CodexParser {
    /// A parser for a file read from its start. The session id defaults to the thread id at the end of the
    /// file name until the `session_meta` line says otherwise.
    pub fn new(path: &Path) -> CodexParser {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("unknown");
        let session_id = match stem.len().checked_sub(36).and_then(|i| stem.get(i..)) {
            Some(tail) if tail.chars().filter(|c| *c == '-').count() == 4 => tail.to_string(),
            _ => stem.to_string(),
        };
        CodexParser {
            state: State {
                session_id,
                meta_seen: false,
                session_emitted: false,
                secondary: is_archived(path),
                agent_version: None,
                cwd: None,
                start_ms: None,
                end_ms: None,
                parent_session: None,
                name: None,
                metadata: None,
                forked: false,
                replay_before: None,
                replayed_lines: 0,
                model: None,
                effort: None,
                turn_id: None,
                turn_start: None,
                turn_seq: 0,
                traces: Vec::new(),
                current: None,
                trace_keys: HashMap::new(),
                turn_traces: HashMap::new(),
                prompt_turn: None,
                prompt_counts: [0, 0],
                prompts: 0,
                pending: None,
                compaction_span: None,
                tools: HashMap::new(),
                baseline: None,
                usage_since_count: false,
                failed_turn: None,
                session_dirty: false,
                drift: Default::default(),
                dirty_traces: BTreeSet::new(),
            },
        }
    }

    /// Restores a parser from [`CodexParser::checkpoint`]; `None` if the checkpoint is unreadable.
    pub fn resume(path: &Path, checkpoint: &str) -> Option<CodexParser> {
        let mut state: State = serde_json::from_str(checkpoint).ok()?;
        state.secondary = is_archived(path);
        Some(CodexParser { state })
    }

    /// The state to persist with the file offset.
    pub fn checkpoint(&self) -> String {
        serde_json::to_string(&self.state).expect("parser state serializes")
    }

    fn session_key(&self) -> String {
        format!("{AGENT}:{}", self.state.session_id)
    }

    fn span(&self, key: &str) -> String {
        ids::span_id(AGENT, &self.state.session_id, key)
    }

    fn observation(&self, key: &str, trace: Option<u32>, kind: Kind, name: &str) -> Observation {
        let mut obs = Observation::new(self.span(key), &self.session_key(), kind, name, key);
        obs.trace_id = trace.map(|t| self.state.traces[t as usize].id.clone());
        obs
    }

    /// An upsert of an existing observation that only sets what the caller fills in.
    fn update(&self, id: &str, trace: u32, kind: Kind) -> Observation {
        let mut obs = Observation::new(id.to_string(), &self.session_key(), kind, "", "");
        obs.trace_id = Some(self.state.traces[trace as usize].id.clone());
        obs
    }

    /// Feeds one complete line.
    pub fn line(&mut self, line: &Line<'_>, out: &mut Vec<Record>, issues: &mut Vec<LineIssue>) {
        let rl: RolloutLine = match parse_json_line(line) {
            Ok((rl, issue)) => {
                issues.extend(issue);
                rl
            }
            Err(issue) => {
                issues.push(issue);
                return;
            }
        };
        let ts = rl.timestamp.as_deref().and_then(parse_iso_ms);
        // Codex's own position of the line when it has one (stable across a fork's copy), else the byte offset.
        let pos = match rl.ordinal {
            Some(o) => format!("o{o}"),
            None => format!("b{}", line.offset),
        };
        if rl.kind == "session_meta" {
            self.session_meta(&rl, ts, &pos, out);
            return;
        }
        if self.is_replayed(&rl) {
            self.replayed(&rl);
            return;
        }
        if let Some(t) = ts {
            self.touch(t);
        }
        self.ensure_session(out);
        match rl.kind.as_str() {
            "turn_context" => self.turn_context(&rl, ts, &pos, out),
            "response_item" => self.response_item(&rl, ts, &pos, out),
            "event_msg" => self.event_msg(&rl, ts, &pos, out),
            "compacted" => self.compacted(&rl, ts, &pos, out),
            "token_usage_record" => self.usage_record(&rl, ts, &pos, out),
            // Codex's snapshot of the environment (instructions, skills): nothing to count.
            "world_state" => {}
            other => {
                self.state
                    .drift
                    .note(drift::LINE_TYPE, other, || drift::skeleton(line.bytes));
                let meta = json!({ "type": other, "payload": trimmed(&rl.payload, 0) });
                self.event(&pos, other, ts, None, meta, out);
            }
        }
    }

    /// Pushes the records that summarize this chunk: session times, trace ends.
    pub fn end_chunk(&mut self, out: &mut Vec<Record>) {
        let version = self.state.agent_version.clone();
        self.state
            .drift
            .drain(crate::model::Agent::Codex, version.as_deref(), out);
        if self.state.session_dirty && self.state.session_emitted {
            out.push(Record::Session(self.session_record()));
        }
        self.state.session_dirty = false;
        let session_key = self.session_key();
        for index in std::mem::take(&mut self.state.dirty_traces) {
            let t = &self.state.traces[index as usize];
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
                output: None,
            }));
        }
    }

    // ---- session -------------------------------------------------------------------------------------

    fn touch(&mut self, t: i64) {
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
        Session {
            key: self.session_key(),
            agent: Some(Agent::Codex),
            session_id: s.session_id.clone(),
            agent_version: s.agent_version.clone(),
            cwd: s.cwd.clone(),
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            parent_session: s.parent_session.clone(),
            name: s.name.clone(),
            channel: None,
            user: None,
            metadata: s.metadata.clone(),
            secondary_file: s.secondary,
            agent_cost: None,
        }
    }

    /// A file without a readable `session_meta` still gets its session (id from the file name).
    fn ensure_session(&mut self, out: &mut Vec<Record>) {
        if !self.state.session_emitted {
            self.state.session_emitted = true;
            self.state.session_dirty = false;
            out.push(Record::Session(self.session_record()));
        }
    }

    fn session_meta(
        &mut self,
        rl: &RolloutLine,
        ts: Option<i64>,
        pos: &str,
        out: &mut Vec<Record>,
    ) {
        let meta = SessionMeta::deserialize(&rl.payload).unwrap_or_default();
        let id = meta.id.clone().or_else(|| meta.session_id.clone());
        if self.state.meta_seen && id.as_deref() != Some(self.state.session_id.as_str()) {
            // Another thread's header inside this file: a legacy fork copies its parent's lines, header
            // included. It names the parent; it does not change this session.
            self.state.replayed_lines += 1;
            let meta = json!({ "thread_id": id, "forked_from_id": meta.forked_from_id });
            self.event(pos, "foreign_session_meta", ts, None, meta, out);
            return;
        }
        let s = &mut self.state;
        if let Some(id) = id {
            s.session_id = id;
        }
        s.meta_seen = true;
        s.agent_version = meta.cli_version.clone().or(s.agent_version.take());
        s.cwd = meta.cwd.clone().or(s.cwd.take());
        if meta.model.is_some() && s.model.is_none() {
            s.model = meta.model.clone();
        }
        let subagent_parent = rl
            .payload
            .pointer("/source/subagent/thread_spawn/parent_thread_id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .or_else(|| meta.parent_thread_id.clone());
        s.parent_session = subagent_parent
            .clone()
            .or_else(|| meta.forked_from_id.clone())
            .or(s.parent_session.take());
        s.forked = meta.forked_from_id.is_some();
        let own = s.session_id.clone();
        s.replay_before = meta.forked_from_ordinal_exclusive.or_else(|| {
            meta.history_base
                .as_ref()
                .filter(|h| h.thread_id.as_deref().is_some_and(|t| t != own))
                .and_then(|h| h.end_ordinal_exclusive)
        });
        s.metadata = Some(header_metadata(&rl.payload));
        for t in [ts, meta.timestamp.as_deref().and_then(parse_iso_ms)]
            .into_iter()
            .flatten()
        {
            if s.start_ms.is_none_or(|v| t < v) {
                s.start_ms = Some(t);
            }
            if s.end_ms.is_none_or(|v| t > v) {
                s.end_ms = Some(t);
            }
        }
        s.session_emitted = true;
        s.session_dirty = false;
        out.push(Record::Session(self.session_record()));
        let is_subagent =
            rl.payload.pointer("/source/subagent").is_some() || subagent_parent.is_some();
        if is_subagent {
            // A subagent thread: one `agent` observation, so the run counts as a subagent.
            let spawn = rl.payload.pointer("/source/subagent/thread_spawn");
            let name = spawn
                .and_then(|s| str_of(s, "agent_nickname").or_else(|| str_of(s, "agent_role")))
                .unwrap_or("subagent")
                .to_string();
            let mut obs = self.observation("subagent", None, Kind::Agent, &name);
            obs.start_ms = ts;
            obs.metadata = Some(json!({
                "source": trimmed(&rl.payload["source"], 0),
                "parent_thread_id": self.state.parent_session,
            }));
            out.push(Record::Observation(Box::new(obs)));
        }
    }

    // ---- replayed parent history ---------------------------------------------------------------------

    /// True for a line a fork copied from its parent: an ordinal below the fork point, or a usage record /
    /// item event stamped with another thread's id.
    fn is_replayed(&self, rl: &RolloutLine) -> bool {
        if let (Some(o), Some(before)) = (rl.ordinal, self.state.replay_before) {
            if o < before {
                return true;
            }
        }
        let stamped = rl.kind == "token_usage_record"
            || (rl.kind == "event_msg" && str_of(&rl.payload, "type") == Some("item_completed"));
        stamped
            && self.state.meta_seen
            && str_of(&rl.payload, "thread_id").is_some_and(|t| t != self.state.session_id)
    }

    /// A copied line: its totals move the baseline (the fork's own totals continue them); nothing is counted.
    fn replayed(&mut self, rl: &RolloutLine) {
        self.state.replayed_lines += 1;
        match rl.kind.as_str() {
            "token_usage_record" => self.state.usage_since_count = true,
            "event_msg" if str_of(&rl.payload, "type") == Some("token_count") => {
                if let Some(total) = rl
                    .payload
                    .pointer("/info/total_token_usage")
                    .and_then(TokenUsage::from_value)
                {
                    self.state.baseline = Some(total);
                }
                self.state.usage_since_count = false;
            }
            "turn_context" => {
                if let Some(m) = str_of(&rl.payload, "model") {
                    self.state.model = Some(m.to_string());
                }
            }
            _ => {}
        }
    }

    // ---- traces --------------------------------------------------------------------------------------

    fn open_trace(
        &mut self,
        key: &str,
        is_prompt: bool,
        start: Option<i64>,
        input: Option<String>,
        out: &mut Vec<Record>,
    ) -> u32 {
        if let Some(&i) = self.state.trace_keys.get(key) {
            return i;
        }
        let name = if is_prompt {
            self.state.prompts += 1;
            format!("{AGENT} prompt {}", self.state.prompts)
        } else if key == "session" {
            format!("{AGENT} session activity")
        } else {
            format!("{AGENT} turn")
        };
        let trace = Trace::open(
            AGENT,
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
            steps: 0,
            end_ms: start,
        });
        let index = (self.state.traces.len() - 1) as u32;
        self.state.trace_keys.insert(key.to_string(), index);
        self.state.current = Some(index);
        index
    }

    /// The trace of a Codex turn (opened when its first activity arrives), else the latest trace, else a
    /// non-prompt trace for activity before any prompt.
    fn trace_for(&mut self, turn: Option<&str>, ts: Option<i64>, out: &mut Vec<Record>) -> u32 {
        let turn = turn
            .map(str::to_string)
            .or_else(|| self.state.turn_id.clone());
        match turn {
            Some(t) => {
                if let Some(&i) = self.state.turn_traces.get(&t) {
                    return i;
                }
                let start = if self.state.turn_id.as_deref() == Some(t.as_str()) {
                    self.state.turn_start.or(ts)
                } else {
                    ts
                };
                let i = self.open_trace(&format!("turn:{t}"), false, start, None, out);
                self.state.turn_traces.insert(t, i);
                i
            }
            None => match self.state.current {
                Some(i) => i,
                None => self.open_trace("session", false, ts, None, out),
            },
        }
    }

    /// The trace an event joins, without opening one.
    fn trace_hint(&self) -> Option<u32> {
        self.state
            .turn_id
            .as_ref()
            .and_then(|t| self.state.turn_traces.get(t).copied())
            .or(self.state.current)
    }

    fn extend_trace(&mut self, index: u32, end: Option<i64>) {
        let t = &mut self.state.traces[index as usize];
        if let Some(end) = end {
            if t.end_ms.is_none_or(|e| end > e) {
                t.end_ms = Some(end);
                self.state.dirty_traces.insert(index);
            }
        }
    }

    fn set_output(&mut self, index: u32, text: String, out: &mut Vec<Record>) {
        let t = &self.state.traces[index as usize];
        out.push(Record::Trace(Trace {
            id: t.id.clone(),
            root_span_id: t.root.clone(),
            session_key: self.session_key(),
            key: t.key.clone(),
            is_prompt: t.is_prompt,
            name: None,
            start_ms: None,
            end_ms: None,
            input: None,
            output: Some(text),
        }));
    }

    fn set_turn(&mut self, turn: &str, ts: Option<i64>) {
        if self.state.turn_id.as_deref() == Some(turn) {
            return;
        }
        self.state.turn_id = Some(turn.to_string());
        self.state.turn_start = ts;
        self.state.turn_seq += 1;
        // Tool calls two turns back are complete: forget them (their rows stay in the store).
        let seq = self.state.turn_seq;
        self.state.tools.retain(|_, t| t.seq + 2 > seq);
    }

    /// A user prompt. `kind` 0 = `user_message` event, 1 = `item_completed` `UserMessage`: a release that
    /// writes both writes the same inputs in the same order, so the n-th of each in a turn is one prompt.
    fn prompt(
        &mut self,
        kind: usize,
        turn: Option<String>,
        text: Option<String>,
        ts: Option<i64>,
        pos: &str,
        out: &mut Vec<Record>,
    ) {
        let Some(turn) = turn.or_else(|| self.state.turn_id.clone()) else {
            // No turn ids (old releases): every prompt opens its trace, later activity joins the latest.
            // The calls of earlier prompts are complete: forget them.
            self.state.tools.retain(|_, t| !t.done);
            self.open_trace(&format!("prompt:{pos}"), true, ts, text, out);
            return;
        };
        if self.state.prompt_turn.as_deref() != Some(turn.as_str()) {
            self.state.prompt_turn = Some(turn.clone());
            self.state.prompt_counts = [0, 0];
        }
        self.state.prompt_counts[kind] += 1;
        let n = self.state.prompt_counts[kind];
        if n == 1 {
            let i = self.trace_for(Some(&turn), ts, out);
            if !self.state.traces[i as usize].is_prompt {
                self.state.prompts += 1;
                let t = &mut self.state.traces[i as usize];
                t.is_prompt = true;
                let record = Trace {
                    id: t.id.clone(),
                    root_span_id: t.root.clone(),
                    session_key: String::new(),
                    key: t.key.clone(),
                    is_prompt: true,
                    name: Some(format!("{AGENT} prompt {}", self.state.prompts)),
                    start_ms: ts,
                    end_ms: ts,
                    input: text,
                    output: None,
                };
                out.push(Record::Trace(Trace {
                    session_key: self.session_key(),
                    ..record
                }));
                self.state.current = Some(i);
            }
        } else {
            // A further input inside a running turn (steering): its own prompt trace, which the rest of the
            // turn joins.
            let key = format!("prompt:{turn}:{n}");
            if self.state.trace_keys.contains_key(&key) {
                return;
            }
            let i = self.open_trace(&key, true, ts, text, out);
            self.state.turn_traces.insert(turn, i);
        }
    }

    // ---- lines ---------------------------------------------------------------------------------------

    fn turn_context(
        &mut self,
        rl: &RolloutLine,
        ts: Option<i64>,
        pos: &str,
        out: &mut Vec<Record>,
    ) {
        let tc = TurnContext::deserialize(&rl.payload).unwrap_or_default();
        if let Some(t) = tc.turn_id.as_deref() {
            self.set_turn(t, ts);
        }
        if self.state.cwd.is_none() && tc.cwd.is_some() {
            self.state.cwd = tc.cwd.clone();
            self.state.session_dirty = true;
        }
        if let Some(model) = tc.model {
            let changed = self.state.model.as_ref().is_some_and(|m| *m != model);
            self.state.model = Some(model.clone());
            if changed {
                let meta = json!({ "model": model, "effort": tc.effort });
                self.event(pos, "model_change", ts, None, meta, out);
            }
        }
        if tc.effort.is_some() {
            self.state.effort = tc.effort;
        }
    }

    fn event_msg(&mut self, rl: &RolloutLine, ts: Option<i64>, pos: &str, out: &mut Vec<Record>) {
        let p = &rl.payload;
        let kind = str_of(p, "type").unwrap_or("");
        match kind {
            "task_started" | "turn_started" => {
                if let Some(t) = str_of(p, "turn_id") {
                    self.set_turn(t, ts);
                }
            }
            "task_complete" | "turn_complete" => {
                if let Some(err) = p.get("error").filter(|e| !e.is_null()) {
                    self.turn_failed(err, str_of(p, "turn_id"), ts, pos, out);
                }
                let turn = str_of(p, "turn_id").or(self.state.turn_id.as_deref());
                if let Some(i) = turn.and_then(|t| self.state.turn_traces.get(t).copied()) {
                    self.extend_trace(i, ts);
                    if let Some(text) = str_of(p, "last_agent_message") {
                        self.set_output(i, text.to_string(), out);
                    }
                }
            }
            "turn_aborted" => self.turn_aborted(p, ts, pos, out),
            "user_message" => {
                let text = str_of(p, "message").map(str::to_string);
                let injected = matches!(
                    str_of(p, "kind"),
                    Some("environment_context" | "user_instructions")
                ) || text.as_deref().is_some_and(is_injected);
                if !injected {
                    let turn = str_of(p, "turn_id").map(str::to_string);
                    self.prompt(0, turn, text, ts, pos, out);
                }
            }
            "item_completed" => {
                let item = &p["item"];
                let turn = str_of(p, "turn_id").map(str::to_string);
                match str_of(item, "type") {
                    Some("UserMessage") => {
                        let text = content_text(item.get("content"));
                        self.prompt(1, turn, text, ts, pos, out);
                    }
                    Some("CommandExecution") => {
                        let exit = item.get("exit_code").and_then(Value::as_i64);
                        let status = str_of(item, "status");
                        let reason = match (status, exit) {
                            (_, Some(c)) if c != 0 => Some(format!("exit code {c}")),
                            (Some(s @ ("failed" | "declined")), _) => Some(format!("command {s}")),
                            _ => None,
                        };
                        if let (Some(id), Some(reason)) = (str_of(item, "id"), reason) {
                            self.tool_failed(id, reason, ts, out);
                        }
                    }
                    // Reasoning, AgentMessage, ContextCompaction, …: the same content as the response items.
                    _ => {}
                }
            }
            "token_count" => self.token_count(p, ts, pos, out),
            "exec_command_end" => {
                if let (Some(id), Some(c)) = (
                    str_of(p, "call_id"),
                    p.get("exit_code").and_then(Value::as_i64),
                ) {
                    if c != 0 {
                        self.tool_failed(id, format!("exit code {c}"), ts, out);
                    }
                }
            }
            "patch_apply_end" => {
                if let (Some(id), Some(false)) = (
                    str_of(p, "call_id"),
                    p.get("success").and_then(Value::as_bool),
                ) {
                    self.tool_failed(id, "patch failed".into(), ts, out);
                }
            }
            "mcp_tool_call_end" => {
                let result = &p["result"];
                let failed = result.get("Err").is_some()
                    || result.pointer("/Ok/isError").and_then(Value::as_bool) == Some(true);
                if let (Some(id), true) = (str_of(p, "call_id"), failed) {
                    self.tool_failed(id, "MCP tool failed".into(), ts, out);
                }
            }
            "thread_name_updated" | "session_name_updated" => {
                let name = str_of(p, "thread_name").or_else(|| str_of(p, "name"));
                if let Some(name) = name.filter(|n| !n.trim().is_empty()) {
                    self.state.name = Some(name.to_string());
                    self.state.session_dirty = true;
                }
            }
            "error" => {
                // A failed turn: a model call still waiting for its usage failed with it.
                let message = str_of(p, "message").map(str::to_string);
                self.state.failed_turn = self.state.turn_id.clone();
                if let Some(pending) = self.state.pending.take() {
                    let mut gen = self.update(&pending.id, pending.trace, Kind::Generation);
                    gen.level = Some(Level::Error);
                    gen.status_message = message.clone();
                    gen.end_ms = ts;
                    out.push(Record::Observation(Box::new(gen)));
                }
                let meta = json!({ "message": message });
                self.event(pos, "error", ts, Some(Level::Error), meta, out);
                if let Some(Record::Observation(obs)) = out.last_mut() {
                    obs.status_message = message;
                }
            }
            // Duplicates of response items, UI bookkeeping and streaming progress: nothing to count or keep.
            "agent_message"
            | "agent_reasoning"
            | "agent_reasoning_raw_content"
            | "agent_reasoning_section_break"
            | "thread_settings_applied"
            | "item_started"
            | "exec_command_begin"
            | "exec_command_output_delta"
            | "patch_apply_begin"
            | "mcp_tool_call_begin"
            | "web_search_begin"
            | "session_configured" => {}
            other => {
                if !KNOWN_EVENTS.contains(&other) {
                    self.state
                        .drift
                        .note(drift::LINE_TYPE, &format!("event_msg/{other}"), || None);
                }
                let level = (other == "stream_error").then_some(Level::Warning);
                self.event(pos, other, ts, level, trimmed(p, 0), out);
            }
        }
    }

    fn response_item(
        &mut self,
        rl: &RolloutLine,
        ts: Option<i64>,
        pos: &str,
        out: &mut Vec<Record>,
    ) {
        let p = &rl.payload;
        let kind = str_of(p, "type").unwrap_or("");
        let item_key = str_of(p, "id")
            .map(str::to_string)
            .unwrap_or_else(|| pos.to_string());
        let compaction = rl
            .metadata
            .get("compaction_output")
            .and_then(Value::as_bool)
            == Some(true);
        match kind {
            "message" => {
                if str_of(p, "role") != Some("assistant") {
                    // user / developer / system messages: the injected context, and the prompt's copy (the
                    // prompt itself is the `user_message` / `UserMessage` event).
                    return;
                }
                self.ensure_gen(&item_key, ts, compaction, out);
                let Some(text) = content_text(p.get("content")) else {
                    return;
                };
                let pending = self.state.pending.clone().expect("opened above");
                let mut gen = self.update(&pending.id, pending.trace, Kind::Generation);
                gen.output = Some(text.clone());
                out.push(Record::Observation(Box::new(gen)));
                if !pending.compaction {
                    self.set_output(pending.trace, text, out);
                }
            }
            "reasoning" => {
                self.ensure_gen(&item_key, ts, compaction, out);
                let summary = p
                    .get("summary")
                    .and_then(Value::as_array)
                    .map(|items| {
                        items
                            .iter()
                            .filter_map(|s| str_of(s, "text"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .filter(|s| !s.is_empty());
                if let (Some(pending), Some(summary)) = (self.state.pending.as_mut(), summary) {
                    let all = match pending.reasoning.take() {
                        Some(before) => format!("{before}\n{summary}"),
                        None => summary,
                    };
                    pending.reasoning = Some(all.chars().take(REASONING_CHARS).collect());
                }
            }
            "function_call" | "custom_tool_call" | "tool_search_call" | "local_shell_call" => {
                let call_id = str_of(p, "call_id")
                    .map(str::to_string)
                    .unwrap_or_else(|| item_key.clone());
                let name = str_of(p, "name").unwrap_or(match kind {
                    "local_shell_call" => "local_shell",
                    "tool_search_call" => "tool_search",
                    _ => "tool",
                });
                let input = match p
                    .get("arguments")
                    .or_else(|| p.get("input"))
                    .or_else(|| p.get("action"))
                {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(v) if !v.is_null() => Some(v.to_string()),
                    _ => None,
                };
                self.tool_call(&call_id, &item_key, name, input, ts, compaction, out);
            }
            "web_search_call" | "image_generation_call" => {
                // Run by the provider inside the call: complete as soon as it is written.
                let name = if kind == "web_search_call" {
                    "web_search"
                } else {
                    "image_generation"
                };
                let input = p
                    .get("action")
                    .or_else(|| p.get("revised_prompt"))
                    .filter(|v| !v.is_null())
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string())
                    });
                self.tool_call(&item_key, &item_key, name, input, ts, compaction, out);
                let failed = str_of(p, "status") == Some("failed");
                if failed {
                    self.tool_failed(&item_key, format!("{name} failed"), ts, out);
                } else if let Some(tool) = self.state.tools.get_mut(&item_key) {
                    tool.done = true;
                }
            }
            "function_call_output"
            | "custom_tool_call_output"
            | "tool_search_output"
            | "local_shell_call_output" => {
                let call_id = str_of(p, "call_id").unwrap_or("").to_string();
                self.tool_result(&call_id, p.get("output"), ts, pos, out);
            }
            // History bookkeeping: remote compaction payloads, undo snapshots, tool lists.
            "compaction" | "context_compaction" | "ghost_snapshot" | "additional_tools" => {}
            other => {
                let meta = json!({ "type": other, "payload": trimmed(p, 0) });
                self.event(pos, other, ts, None, meta, out);
            }
        }
    }

    // ---- generations ---------------------------------------------------------------------------------

    /// Opens the generation of the model call whose output item `item_key` is, unless one is open.
    fn ensure_gen(
        &mut self,
        item_key: &str,
        ts: Option<i64>,
        compaction: bool,
        out: &mut Vec<Record>,
    ) {
        if let Some(p) = self.state.pending.as_mut() {
            p.compaction |= compaction;
            return;
        }
        self.open_gen(item_key, None, ts, compaction, out);
    }

    fn open_gen(
        &mut self,
        item_key: &str,
        turn: Option<&str>,
        ts: Option<i64>,
        compaction: bool,
        out: &mut Vec<Record>,
    ) {
        let t = self.trace_for(turn, ts, out);
        let step = {
            let tr = &mut self.state.traces[t as usize];
            if !compaction {
                tr.steps += 1;
            }
            tr.steps
        };
        let (span_key, span_name) = if compaction {
            (format!("compaction:{item_key}"), "compaction".to_string())
        } else {
            (format!("step:{item_key}"), format!("turn {step}"))
        };
        let mut span = self.observation(&span_key, Some(t), Kind::Span, &span_name);
        span.start_ms = ts;
        span.end_ms = ts;
        let model = self.state.model.clone();
        let gen_key = format!("gen:{item_key}");
        let mut gen = self.observation(
            &gen_key,
            Some(t),
            Kind::Generation,
            model.as_deref().unwrap_or("unknown"),
        );
        gen.parent_id = Some(span.id.clone());
        gen.start_ms = ts;
        gen.end_ms = ts;
        gen.level = Some(Level::Default);
        gen.model = model;
        gen.provider = Some(PROVIDER.to_string());
        self.state.pending = Some(PendingGen {
            key: item_key.to_string(),
            id: gen.id.clone(),
            span: span.id.clone(),
            trace: t,
            compaction,
            reasoning: None,
        });
        self.state.compaction_span = None;
        out.push(Record::Observation(Box::new(span)));
        out.push(Record::Observation(Box::new(gen)));
        self.extend_trace(t, ts);
    }

    /// The usage of the open model call arrived: it completes the generation (a usage without output items
    /// is a generation of its own, keyed by the response id or the line).
    #[allow(clippy::too_many_arguments)]
    fn close_gen(
        &mut self,
        usage: TokenUsage,
        source: &str,
        response_id: Option<&str>,
        turn: Option<&str>,
        ts: Option<i64>,
        pos: &str,
        out: &mut Vec<Record>,
    ) {
        if self.state.pending.is_none() {
            let key = response_id.unwrap_or(pos).to_string();
            self.open_gen(&key, turn, ts, false, out);
        }
        let pending = self.state.pending.take().expect("opened above");
        let model = self.state.model.clone();
        let mut gen = self.update(&pending.id, pending.trace, Kind::Generation);
        gen.name = model.clone().unwrap_or_default();
        gen.end_ms = ts;
        gen.model = model;
        gen.provider = Some(PROVIDER.to_string());
        gen.usage = Some(usage.canonical());
        gen.response_id = response_id.map(str::to_string);
        gen.metadata = Some(json!({
            "response_id": response_id,
            "turn_id": turn.or(self.state.turn_id.as_deref()),
            "usage_source": source,
            "compaction": pending.compaction,
            "reasoning_effort": self.state.effort,
            "reasoning": pending.reasoning,
        }));
        out.push(Record::Observation(Box::new(gen)));
        let mut span = self.update(&pending.span, pending.trace, Kind::Span);
        span.end_ms = ts;
        out.push(Record::Observation(Box::new(span)));
        if pending.compaction {
            self.state.compaction_span = Some((pending.span.clone(), pending.trace));
        }
        self.extend_trace(pending.trace, ts);
    }

    /// `token_usage_record`: the usage of one model response (Codex ≥ 0.16x).
    fn usage_record(
        &mut self,
        rl: &RolloutLine,
        ts: Option<i64>,
        pos: &str,
        out: &mut Vec<Record>,
    ) {
        let p = &rl.payload;
        if let Some(u) = p.get("usage") {
            for k in TokenUsage::unknown_fields(u) {
                self.state.drift.note(drift::USAGE_FIELD, &k, || None);
            }
        }
        let Some(usage) = p.get("usage").and_then(TokenUsage::from_value) else {
            self.event(pos, "token_usage_record", ts, None, trimmed(p, 0), out);
            return;
        };
        let turn = str_of(p, "turn_id");
        self.close_gen(
            usage,
            "token_usage_record",
            str_of(p, "response_id"),
            turn,
            ts,
            pos,
            out,
        );
        self.state.usage_since_count = true;
    }

    /// `token_count`: per-call usage when no usage record preceded it (see the module rules).
    fn token_count(&mut self, p: &Value, ts: Option<i64>, pos: &str, out: &mut Vec<Record>) {
        let Some(info) = p.get("info").filter(|i| i.is_object()) else {
            return; // `info: null`: rate limits only
        };
        let total = info
            .get("total_token_usage")
            .and_then(TokenUsage::from_value);
        let last = info
            .get("last_token_usage")
            .and_then(TokenUsage::from_value);
        if std::mem::take(&mut self.state.usage_since_count) {
            // Repeats the usage record(s) just read.
            if total.is_some() {
                self.state.baseline = total;
            }
            return;
        }
        let previous = self.state.baseline;
        if total.is_some() {
            self.state.baseline = total;
        }
        if let (Some(t), Some(p)) = (total, previous) {
            if t == p {
                return; // re-emitted unchanged total (a resumed session starts with one)
            }
        }
        let call = match (last, total, previous) {
            // All-zero `last_token_usage` (with an estimated total) right after a compaction: no call.
            (Some(l), _, _) if l.is_zero() => None,
            (Some(l), _, _) => Some((l, "last_token_usage")),
            (None, Some(t), Some(p)) if t.decreased_from(&p) => {
                Some((t, "total_token_usage after reset"))
            }
            (None, Some(t), Some(p)) => Some((t.minus(&p), "total_token_usage delta")),
            // A fork's totals continue its parent's: without a baseline the first delta is unknown.
            (None, Some(t), None) if !self.state.forked => Some((t, "total_token_usage")),
            _ => None,
        };
        if let Some((usage, source)) = call.filter(|(u, _)| !u.is_zero()) {
            self.close_gen(usage, source, None, None, ts, pos, out);
        }
    }

    // ---- tools ---------------------------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn tool_call(
        &mut self,
        call_id: &str,
        item_key: &str,
        name: &str,
        input: Option<String>,
        ts: Option<i64>,
        compaction: bool,
        out: &mut Vec<Record>,
    ) {
        self.ensure_gen(item_key, ts, compaction, out);
        let pending = self.state.pending.clone().expect("opened above");
        let key = format!("tool:{}:{call_id}", pending.key);
        let mut tool = self.observation(&key, Some(pending.trace), Kind::Tool, name);
        tool.parent_id = Some(pending.id.clone());
        tool.start_ms = ts;
        tool.input = input;
        tool.tool_call_id = (!call_id.is_empty()).then(|| call_id.to_string());
        tool.metadata = Some(json!({ "call_id": call_id, "item_id": item_key }));
        self.state.tools.insert(
            call_id.to_string(),
            ToolRef {
                span: tool.id.clone(),
                trace: pending.trace,
                step_span: pending.span.clone(),
                turn: self.state.turn_id.clone(),
                done: false,
                failed: false,
                seq: self.state.turn_seq,
            },
        );
        out.push(Record::Observation(Box::new(tool)));
        self.extend_trace(pending.trace, ts);
    }

    fn tool_result(
        &mut self,
        call_id: &str,
        output: Option<&Value>,
        ts: Option<i64>,
        pos: &str,
        out: &mut Vec<Record>,
    ) {
        let parsed = tool_output(output);
        let Some(tool) = self.state.tools.get_mut(call_id) else {
            // The call is not in this file (a fork's parent made it): keep the output, count no tool call.
            let meta = json!({ "call_id": call_id, "failed": parsed.failed() });
            self.event(pos, "orphan_tool_output", ts, None, meta, out);
            return;
        };
        tool.done = true;
        let failed = parsed.failed();
        tool.failed |= failed;
        let tool = tool.clone();
        let mut obs = self.update(&tool.span, tool.trace, Kind::Tool);
        obs.end_ms = ts;
        obs.output = parsed.text.clone();
        if failed {
            obs.level = Some(Level::Error);
            obs.status_message = parsed.reason();
        }
        out.push(Record::Observation(Box::new(obs)));
        let mut step = self.update(&tool.step_span, tool.trace, Kind::Span);
        step.end_ms = ts;
        out.push(Record::Observation(Box::new(step)));
        self.extend_trace(tool.trace, ts);
    }

    /// Marks a tool call failed (non-zero exit code from an item event, interrupted turn, …).
    fn tool_failed(
        &mut self,
        call_id: &str,
        reason: String,
        ts: Option<i64>,
        out: &mut Vec<Record>,
    ) {
        let Some(tool) = self.state.tools.get_mut(call_id) else {
            return;
        };
        if tool.failed {
            return;
        }
        tool.failed = true;
        let tool = tool.clone();
        let mut obs = self.update(&tool.span, tool.trace, Kind::Tool);
        obs.level = Some(Level::Error);
        obs.status_message = Some(reason);
        obs.end_ms = ts;
        out.push(Record::Observation(Box::new(obs)));
    }

    /// `task_complete` with an `error` (`{message, codex_error_info}`): the turn failed. When nothing recorded
    /// the failed model call yet (a request that failed without retries writes no other line: Codex ≥
    /// 0.169), it is a failed generation of its own (level ERROR, no usage).
    fn turn_failed(
        &mut self,
        err: &Value,
        turn: Option<&str>,
        ts: Option<i64>,
        pos: &str,
        out: &mut Vec<Record>,
    ) {
        let turn = turn
            .map(str::to_string)
            .or_else(|| self.state.turn_id.clone());
        let message = str_of(err, "message")
            .map(str::to_string)
            .or_else(|| err.as_str().map(str::to_string))
            .unwrap_or_else(|| "turn failed".to_string());
        let info = err.get("codex_error_info").cloned();
        if self.state.failed_turn.is_some() && self.state.failed_turn == turn {
            return;
        }
        self.state.failed_turn = turn.clone();
        if self.state.pending.is_none() {
            let key = format!("failed:{}", turn.as_deref().unwrap_or(pos));
            self.open_gen(&key, turn.as_deref(), ts, false, out);
        }
        let pending = self.state.pending.take().expect("opened above");
        let mut gen = self.update(&pending.id, pending.trace, Kind::Generation);
        gen.level = Some(Level::Error);
        gen.status_message = Some(message);
        gen.end_ms = ts;
        gen.metadata = Some(json!({ "codex_error_info": info, "turn_id": turn }));
        out.push(Record::Observation(Box::new(gen)));
        let mut span = self.update(&pending.span, pending.trace, Kind::Span);
        span.end_ms = ts;
        out.push(Record::Observation(Box::new(span)));
    }

    fn turn_aborted(&mut self, p: &Value, ts: Option<i64>, pos: &str, out: &mut Vec<Record>) {
        let turn = str_of(p, "turn_id")
            .map(str::to_string)
            .or_else(|| self.state.turn_id.clone());
        let reason = str_of(p, "reason").unwrap_or("interrupted").to_string();
        if let Some(pending) = self.state.pending.take() {
            // The call was cut before its usage arrived: a user abort, not an error.
            let mut gen = self.update(&pending.id, pending.trace, Kind::Generation);
            gen.level = Some(Level::Warning);
            gen.status_message = Some(aborted_message(&reason));
            gen.end_ms = ts;
            out.push(Record::Observation(Box::new(gen)));
        }
        let mut open: Vec<String> = self
            .state
            .tools
            .iter()
            .filter(|(_, t)| !t.done && !t.failed && (turn.is_none() || t.turn == turn))
            .map(|(id, _)| id.clone())
            .collect();
        open.sort();
        for id in open {
            self.tool_failed(&id, format!("interrupted ({reason})"), ts, out);
        }
        let meta = json!({ "reason": reason, "turn_id": turn });
        self.event(pos, "turn_aborted", ts, Some(Level::Warning), meta, out);
        // The marker says why the turn ended (Langfuse shows a WARNING's status message).
        if let Some(Record::Observation(obs)) = out.last_mut() {
            obs.status_message = Some(aborted_message(&reason));
        }
    }

    /// `compacted`: the history was replaced by a summary. The span of the compaction call (when its items
    /// were recorded) gets the summary; otherwise the marker is a span of its own.
    fn compacted(&mut self, rl: &RolloutLine, ts: Option<i64>, pos: &str, out: &mut Vec<Record>) {
        let p = &rl.payload;
        let message = str_of(p, "message").map(str::to_string);
        let meta = json!({
            "replacement_history_items": p.get("replacement_history").and_then(Value::as_array).map(Vec::len),
        });
        let (mut span, trace) = match self.state.compaction_span.take() {
            Some((id, trace)) => (self.update(&id, trace, Kind::Span), trace),
            None => {
                let trace = self.trace_for(None, ts, out);
                let mut span = self.observation(
                    &format!("compacted:{pos}"),
                    Some(trace),
                    Kind::Span,
                    "compaction",
                );
                span.start_ms = ts;
                (span, trace)
            }
        };
        span.end_ms = ts;
        span.output = message;
        span.metadata = Some(meta);
        out.push(Record::Observation(Box::new(span)));
        self.extend_trace(trace, ts);
    }

    fn event(
        &mut self,
        pos: &str,
        name: &str,
        ts: Option<i64>,
        level: Option<Level>,
        meta: Value,
        out: &mut Vec<Record>,
    ) {
        self.ensure_session(out);
        let trace = self.trace_hint();
        let mut obs = self.observation(&format!("event:{pos}"), trace, Kind::Event, name);
        obs.start_ms = ts;
        obs.end_ms = ts;
        obs.level = level;
        obs.metadata = Some(meta);
        out.push(Record::Observation(Box::new(obs)));
    }
}

/// The status message of a turn Codex recorded as aborted (`turn_aborted.reason`, `interrupted` when the user
/// pressed Esc / Ctrl-C).
fn aborted_message(reason: &str) -> String {
    if reason == "interrupted" {
        "aborted by the user".to_string()
    } else {
        format!("aborted ({reason})")
    }
}

/// True for a file under Codex's `archived_sessions/`.
fn is_archived(path: &Path) -> bool {
    path.components()
        .any(|c| c.as_os_str() == "archived_sessions")
}

/// Context Codex injects as user messages in some releases: not prompts.
fn is_injected(text: &str) -> bool {
    let t = text.trim_start();
    [
        "<environment_context>",
        "<user_instructions>",
        "<turn_aborted>",
        "# AGENTS.md instructions",
    ]
    .iter()
    .any(|p| t.starts_with(p))
}

/// The header's fields as session metadata: everything but the instruction texts (only their size), with
/// long strings and lists cut.
fn header_metadata(payload: &Value) -> Value {
    let mut map = Map::new();
    if let Some(obj) = payload.as_object() {
        for (k, v) in obj {
            if HUGE_META_FIELDS.contains(&k.as_str()) {
                let size = match v {
                    Value::String(s) => s.chars().count(),
                    Value::Null => continue,
                    other => other.to_string().len(),
                };
                map.insert(format!("{k}_chars"), json!(size));
            } else {
                map.insert(k.clone(), trimmed(v, 1));
            }
        }
    }
    Value::Object(map)
}

/// A copy of `v` small enough for metadata: strings cut at [`META_CHARS`], lists at 50 items, depth at 6.
fn trimmed(v: &Value, depth: usize) -> Value {
    match v {
        Value::String(s) if s.len() > META_CHARS => {
            let kept: String = s.chars().take(META_CHARS).collect();
            let cut = s.chars().count() - kept.chars().count();
            Value::String(if cut > 0 {
                format!("{kept}…[truncated {cut} chars]")
            } else {
                kept
            })
        }
        Value::Array(items) if depth < 6 => {
            let mut list: Vec<Value> = items
                .iter()
                .take(50)
                .map(|i| trimmed(i, depth + 1))
                .collect();
            if items.len() > 50 {
                list.push(json!(format!("[… {} more items]", items.len() - 50)));
            }
            Value::Array(list)
        }
        Value::Object(map) if depth < 6 => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), trimmed(v, depth + 1)))
                .collect(),
        ),
        Value::Array(_) | Value::Object(_) => json!("[nested too deep]"),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[Value]) -> (Vec<Record>, CodexParser) {
        let mut p = CodexParser::new(Path::new(
            "/h/.codex/sessions/2026/11/23/rollout-2026-11-23T03-10-16-01a20662-01d0-7d92-aaf6-4f5f4fe6e7d8.jsonl",
        ));
        let mut out = Vec::new();
        let mut issues = Vec::new();
        let mut offset = 0u64;
        for l in lines {
            let bytes = l.to_string().into_bytes();
            p.line(
                &Line {
                    offset,
                    bytes: &bytes,
                },
                &mut out,
                &mut issues,
            );
            offset += bytes.len() as u64 + 1;
        }
        p.end_chunk(&mut out);
        assert!(issues.is_empty(), "{issues:?}");
        (out, p)
    }

    fn generations(out: &[Record]) -> HashMap<String, crate::model::Usage> {
        let mut m = HashMap::new();
        for r in out {
            if let Record::Observation(o) = r {
                if o.kind == Kind::Generation {
                    if let Some(u) = o.usage {
                        m.insert(o.id.clone(), u);
                    }
                }
            }
        }
        m
    }

    fn usage(input: u64, cached: u64, output: u64) -> Value {
        json!({"input_tokens": input, "cached_input_tokens": cached, "output_tokens": output,
               "reasoning_output_tokens": 0, "total_tokens": input + output})
    }

    fn meta() -> Value {
        json!({"timestamp": "2026-11-23T03:10:16.087Z", "type": "session_meta",
               "payload": {"id": "01a20662-01d0-7d92-aaf6-4f5f4fe6e7d8", "cwd": "/p", "cli_version": "0.50.0",
                           "base_instructions": {"text": "x".repeat(50_000)}}})
    }

    fn count(total: Value, last: Value) -> Value {
        json!({"timestamp": "2026-11-23T03:10:17.000Z", "type": "event_msg",
               "payload": {"type": "token_count", "info": {"total_token_usage": total, "last_token_usage": last}}})
    }

    #[test]
    fn token_counts_without_records_follow_the_rules() {
        let (out, p) = parse(&[
            meta(),
            json!({"timestamp": "2026-11-23T03:10:16.100Z", "type": "event_msg",
                   "payload": {"type": "user_message", "message": "hi"}}),
            json!({"timestamp": "2026-11-23T03:10:16.200Z", "type": "event_msg",
                   "payload": {"type": "token_count", "info": null}}),
            count(usage(100, 60, 10), usage(100, 60, 10)),
            // re-emitted unchanged total
            count(usage(100, 60, 10), usage(100, 60, 10)),
            // all-zero last with an estimated total
            count(
                usage(100, 60, 10),
                json!({"input_tokens": 0, "total_tokens": 999}),
            ),
            // no last: delta of totals
            json!({"timestamp": "2026-11-23T03:10:18.000Z", "type": "event_msg",
                   "payload": {"type": "token_count", "info": {"total_token_usage": usage(150, 80, 15)}}}),
            // non-monotonic: counted from zero
            json!({"timestamp": "2026-11-23T03:10:19.000Z", "type": "event_msg",
                   "payload": {"type": "token_count", "info": {"total_token_usage": usage(30, 0, 3)}}}),
        ]);
        let gens = generations(&out);
        let mut inputs: Vec<u64> = gens.values().map(|u| u.input).collect();
        inputs.sort();
        assert_eq!(inputs, vec![30, 30, 40]);
        assert_eq!(p.state.prompts, 1);
        let huge = out.iter().any(|r| match r {
            Record::Session(s) => s
                .metadata
                .as_ref()
                .is_some_and(|m| m.to_string().len() > 10_000),
            _ => false,
        });
        assert!(!huge, "instructions are not stored");
        let session = out.iter().find_map(|r| match r {
            Record::Session(s) => Some(s.clone()),
            _ => None,
        });
        assert_eq!(session.unwrap().agent_version.as_deref(), Some("0.50.0"));
    }

    #[test]
    fn legacy_rollouts_without_records_or_ids() {
        // Shape of older releases: no ordinals, no turn ids, no usage records, JSON-string shell outputs.
        let ev = |t: &str, p: Value| json!({"timestamp": t, "type": "event_msg", "payload": p});
        let ri = |t: &str, p: Value| json!({"timestamp": t, "type": "response_item", "payload": p});
        let (out, p) = parse(&[
            meta(),
            json!({"timestamp": "2026-11-23T03:10:16.090Z", "type": "turn_context",
                   "payload": {"cwd": "/p", "model": "gpt-5-codex", "approval_policy": "never"}}),
            ri(
                "2026-11-23T03:10:16.091Z",
                json!({"type": "message", "role": "user",
                "content": [{"type": "input_text", "text": "<environment_context>x</environment_context>"}]}),
            ),
            ev(
                "2026-11-23T03:10:16.092Z",
                json!({"type": "user_message",
                "message": "<environment_context>x</environment_context>", "kind": "environment_context"}),
            ),
            ev(
                "2026-11-23T03:10:16.100Z",
                json!({"type": "user_message", "message": "fix it", "images": []}),
            ),
            ri(
                "2026-11-23T03:10:16.200Z",
                json!({"type": "reasoning", "id": "rs_1",
                "summary": [{"type": "summary_text", "text": "thinking"}]}),
            ),
            ri(
                "2026-11-23T03:10:16.300Z",
                json!({"type": "function_call", "name": "shell",
                "arguments": "{\"command\":[\"false\"]}", "call_id": "call_1"}),
            ),
            count(usage(100, 60, 10), usage(100, 60, 10)),
            ri(
                "2026-11-23T03:10:16.400Z",
                json!({"type": "function_call_output", "call_id": "call_1",
                "output": "{\"output\":\"\",\"metadata\":{\"exit_code\":1,\"duration_seconds\":0.0}}"}),
            ),
            ri(
                "2026-11-23T03:10:16.500Z",
                json!({"type": "message", "role": "assistant",
                "content": [{"type": "output_text", "text": "done"}]}),
            ),
            count(usage(230, 160, 25), usage(130, 100, 15)),
            ev(
                "2026-11-23T03:10:16.600Z",
                json!({"type": "agent_message", "message": "done"}),
            ),
            json!({"timestamp": "2026-11-23T03:10:16.700Z", "type": "unknown_future_line", "payload": {"x": 1}}),
        ]);
        assert_eq!(p.state.prompts, 1);
        let gens = generations(&out);
        assert_eq!(gens.len(), 2);
        let total: u64 = gens
            .values()
            .map(|u| u.input + u.cache_read + u.output)
            .sum();
        assert_eq!(total, 100 + 10 + 130 + 15);
        let obs = |kind: Kind| -> Vec<&Observation> {
            out.iter()
                .filter_map(|r| match r {
                    Record::Observation(o) if o.kind == kind => Some(o.as_ref()),
                    _ => None,
                })
                .collect()
        };
        let tools = obs(Kind::Tool);
        assert!(tools
            .iter()
            .any(|t| t.level == Some(Level::Error)
                && t.status_message.as_deref() == Some("exit code 1")));
        // The tool hangs under the generation its call opened (the one the first token_count completed).
        let gen_ids: Vec<&str> = obs(Kind::Generation)
            .iter()
            .map(|g| g.id.as_str())
            .collect();
        assert!(tools
            .iter()
            .all(|t| t.parent_id.is_none() || gen_ids.contains(&t.parent_id.as_deref().unwrap())));
        assert!(obs(Kind::Event)
            .iter()
            .any(|e| e.name == "unknown_future_line"));
        assert!(obs(Kind::Generation)
            .iter()
            .filter(|g| g.usage.is_some())
            .all(|g| g.model.as_deref() == Some("gpt-5-codex")));
    }

    #[test]
    fn checkpoint_round_trips() {
        let (_, p) = parse(&[meta(), count(usage(100, 60, 10), usage(100, 60, 10))]);
        let cp = p.checkpoint();
        let q = CodexParser::resume(Path::new("/x/archived_sessions/r.jsonl"), &cp).unwrap();
        assert_eq!(q.state.baseline, p.state.baseline);
        assert!(q.state.secondary);
        assert!(CodexParser::resume(Path::new("/x"), "{").is_none());
    }
}
