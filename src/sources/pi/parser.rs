//! pi / oh-my-pi session lines → trace records.
//!
//! The rules that make totals exact (checked against `../shared/corpus`, see `README.md` here):
//! - every `assistant` message is a generation, on every branch of the tree, failed attempts
//!   (`stopReason:"error"`, level ERROR) and user aborts (`"aborted"`, level WARNING) included;
//! - `compaction.usage`, `branch_summary.usage` (pi ≥ 0.81), `usage` entries (pi ≥ 0.86) and
//!   `toolResult.usage` are one generation each;
//! - a `user` message starts a trace; everything else joins the trace of its `parentId` (so retries, which
//!   chain through error entries, stay in the prompt's trace and abandoned branches keep theirs);
//!   session-level operations (compaction, branch summary, labels, model changes) join the latest trace;
//! - model and provider come from each assistant message, not from `model_change` (pi does not write one
//!   when a session is resumed with `--model`).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::format::{Block, Content, Entry, Message, PiUsage, Ts};
use crate::model::{
    ids, usd_to_pico, Agent, CostBreakdown, Kind, Level, Observation, Record, Session, Trace, Usage,
};
use crate::sources::drift;
use crate::sources::reader::{parse_json_line, Line, LineIssue};

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

/// A tool call whose result has not been read yet.
#[derive(Debug, Serialize, Deserialize, Clone)]
struct PendingTool {
    trace: u32,
    span: String,
    turn: String,
}

/// Everything needed to continue parsing after the last consumed line.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    agent: Agent,
    session_id: String,
    header_seen: bool,
    format_version: Option<u32>,
    cwd: Option<String>,
    start_ms: Option<i64>,
    end_ms: Option<i64>,
    name: Option<String>,
    parent_session: Option<String>,
    traces: Vec<TraceRef>,
    /// Latest trace in file order.
    current: Option<u32>,
    /// Entry id → index in `traces`.
    entry_trace: HashMap<String, u32>,
    /// v1 files have no ids: each entry's parent is the line before.
    last_entry: Option<String>,
    pending_tools: HashMap<String, PendingTool>,
    provider: Option<String>,
    model: Option<String>,
    prompts: u32,
    #[serde(skip)]
    session_dirty: bool,
    /// Unknown line types and usage fields of the current chunk.
    #[serde(skip)]
    drift: crate::sources::drift::DriftTally,
    #[serde(skip)]
    dirty_traces: BTreeSet<u32>,
}

/// Parser for one pi or oh-my-pi session file.
pub struct PiParser {
    state: State,
}

impl PiParser {
    /// A parser for a file read from its start. The session id defaults to the uuid in the file name
    /// (`<timestamp>_<uuid>.jsonl`) until the header says otherwise.
    pub fn new(agent: Agent, path: &Path) -> PiParser {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("unknown");
        let session_id = stem
            .rsplit_once('_')
            .map(|(_, id)| id)
            .unwrap_or(stem)
            .to_string();
        PiParser {
            state: State {
                agent,
                session_id,
                header_seen: false,
                format_version: None,
                cwd: None,
                start_ms: None,
                end_ms: None,
                name: None,
                parent_session: None,
                traces: Vec::new(),
                current: None,
                entry_trace: HashMap::new(),
                last_entry: None,
                pending_tools: HashMap::new(),
                provider: None,
                model: None,
                prompts: 0,
                session_dirty: false,
                drift: Default::default(),
                dirty_traces: BTreeSet::new(),
            },
        }
    }

    /// Restores a parser from [`PiParser::checkpoint`]; `None` if the checkpoint is unreadable.
    pub fn resume(agent: Agent, _path: &Path, checkpoint: &str) -> Option<PiParser> {
        let state: State = serde_json::from_str(checkpoint).ok()?;
        (state.agent == agent).then_some(PiParser { state })
    }

    /// The state to persist with the file offset.
    pub fn checkpoint(&self) -> String {
        serde_json::to_string(&self.state).expect("parser state serializes")
    }

    fn session_key(&self) -> String {
        format!("{}:{}", self.state.agent, self.state.session_id)
    }

    fn span(&self, key: &str) -> String {
        ids::span_id(self.state.agent.as_str(), &self.state.session_id, key)
    }

    /// Feeds one line.
    pub fn line(&mut self, line: &Line<'_>, out: &mut Vec<Record>, issues: &mut Vec<LineIssue>) {
        let entry: Entry = match parse_json_line(line) {
            Ok((entry, issue)) => {
                issues.extend(issue);
                entry
            }
            Err(issue) => {
                issues.push(issue);
                return;
            }
        };
        let ts = entry.timestamp.as_ref().and_then(Ts::ms);
        if let Some(t) = ts {
            self.touch(t);
        }
        // v3 entries carry `id`/`parentId`; v1 entries carry neither and follow the line before.
        let id = entry
            .id
            .clone()
            .unwrap_or_else(|| format!("@{}", line.offset));
        let parent = if entry.id.is_some() {
            entry.parent_id.clone()
        } else {
            self.state.last_entry.clone()
        };
        match entry.kind.as_str() {
            "session" => {
                self.header(&entry, ts, out);
                return;
            }
            "title" => {
                if let Some(title) = entry.title.as_deref().filter(|t| !t.trim().is_empty()) {
                    self.state.name = Some(title.to_string());
                    self.state.session_dirty = true;
                }
                return;
            }
            _ => {}
        }
        if !self.state.header_seen && !super::ENTRY_TYPES.contains(&entry.kind.as_str()) {
            // An unknown line before the header (a newer release's, or damage) must not start the session
            // under another id than the header's.
            self.state.drift.note(drift::LINE_TYPE, &entry.kind, || {
                drift::skeleton(line.bytes)
            });
            return;
        }
        if !self.state.header_seen {
            self.state.header_seen = true;
            self.state.session_dirty = true;
            out.push(Record::Session(self.session_record()));
        }
        match entry.kind.as_str() {
            "message" => self.message(
                &id,
                parent.as_deref(),
                ts,
                entry.message.unwrap_or_default(),
                out,
            ),
            "model_change" => self.model_change(&id, ts, &entry, out),
            "thinking_level_change" => {
                let level = entry.thinking_level.clone().unwrap_or(Value::Null);
                self.event(
                    &id,
                    None,
                    "thinking_level_change",
                    ts,
                    json!({ "thinkingLevel": level }),
                    out,
                );
            }
            "compaction" | "branch_summary" => self.summary(&id, ts, &entry, out),
            "usage" => self.usage_entry(&id, ts, &entry, out),
            "label" => {
                let meta = json!({ "targetId": entry.target_id, "label": entry.label });
                self.event(&id, None, "label", ts, meta, out);
            }
            "session_info" => {
                if let Some(name) = entry.name.clone() {
                    self.state.name = Some(name);
                    self.state.session_dirty = true;
                }
                self.event(
                    &id,
                    None,
                    "session_info",
                    ts,
                    json!({ "name": entry.name }),
                    out,
                );
            }
            "context_edit" => {
                // pi ≥ 0.87 writes one after each failed attempt before retrying.
                let meta = json!({ "targetId": entry.target_id, "replacement": entry.replacement });
                self.event(&id, parent.as_deref(), "context_edit", ts, meta, out);
            }
            "custom" | "custom_message" => {
                let name = entry
                    .custom_type
                    .clone()
                    .unwrap_or_else(|| entry.kind.clone());
                let meta = json!({ "type": entry.kind, "customType": entry.custom_type, "data": entry.data });
                self.event(&id, parent.as_deref(), &name, ts, meta, out);
            }
            other => {
                // Unknown entry types are kept as events with the whole line as metadata, and tallied as drift.
                self.state
                    .drift
                    .note(drift::LINE_TYPE, other, || drift::skeleton(line.bytes));
                let raw = serde_json::from_slice::<Value>(line.bytes).unwrap_or_else(|_| {
                    Value::String(String::from_utf8_lossy(line.bytes).into_owned())
                });
                let name = other.to_string();
                self.event(
                    &id,
                    parent.as_deref(),
                    &name,
                    ts,
                    json!({ "entry": raw }),
                    out,
                );
            }
        }
        self.state.last_entry = Some(id);
    }

    /// Pushes the records that summarize this chunk: session end time and name, trace ends and answers.
    pub fn end_chunk(&mut self, out: &mut Vec<Record>) {
        let agent = self.state.agent;
        self.state.drift.drain(agent, None, out);
        if self.state.session_dirty && self.state.header_seen {
            out.push(Record::Session(self.session_record()));
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
            agent: Some(s.agent),
            session_id: s.session_id.clone(),
            agent_version: None,
            cwd: s.cwd.clone(),
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            parent_session: s.parent_session.clone(),
            name: s.name.clone(),
            channel: None,
            user: None,
            metadata: Some(json!({ "format_version": s.format_version.unwrap_or(1) })),
            secondary_file: false,
            agent_cost: None,
        }
    }

    fn header(&mut self, entry: &Entry, ts: Option<i64>, out: &mut Vec<Record>) {
        let s = &mut self.state;
        if let Some(id) = entry.id.clone() {
            s.session_id = id;
        }
        s.format_version = entry.version;
        s.cwd = entry.cwd.clone();
        s.parent_session = entry
            .parent_session
            .clone()
            .or_else(|| entry.branched_from.clone());
        if let Some(title) = entry.title.as_deref().filter(|t| !t.trim().is_empty()) {
            s.name = Some(title.to_string());
        }
        if let Some(t) = ts {
            s.start_ms = Some(s.start_ms.map_or(t, |v| v.min(t)));
        }
        // v1 headers may carry the initial model.
        if let Some(model) = entry.model_id.clone() {
            s.model = Some(model);
            s.provider = entry.provider.clone();
        }
        s.header_seen = true;
        s.session_dirty = false;
        out.push(Record::Session(self.session_record()));
    }

    /// Opens a new trace and returns its index.
    fn open_trace(
        &mut self,
        key: &str,
        is_prompt: bool,
        start: Option<i64>,
        input: Option<String>,
        out: &mut Vec<Record>,
    ) -> u32 {
        let agent = self.state.agent.as_str();
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

    /// The trace an entry belongs to: its parent's, else the latest.
    fn trace_of(&self, parent: Option<&str>) -> Option<u32> {
        parent
            .and_then(|p| self.state.entry_trace.get(p).copied())
            .or(self.state.current)
    }

    /// Like [`Self::trace_of`], but opens a non-prompt trace for model calls made before any prompt.
    fn ensure_trace(
        &mut self,
        parent: Option<&str>,
        start: Option<i64>,
        out: &mut Vec<Record>,
    ) -> u32 {
        match self.trace_of(parent) {
            Some(t) => t,
            None => self.open_trace("session", false, start, None, out),
        }
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

    fn observation(&self, key: &str, trace: Option<u32>, kind: Kind, name: &str) -> Observation {
        let mut obs = Observation::new(self.span(key), &self.session_key(), kind, name, key);
        obs.trace_id = trace.map(|t| self.state.traces[t as usize].id.clone());
        obs
    }

    fn event(
        &mut self,
        id: &str,
        parent: Option<&str>,
        name: &str,
        ts: Option<i64>,
        meta: Value,
        out: &mut Vec<Record>,
    ) {
        let trace = self.trace_of(parent);
        let mut obs = self.observation(id, trace, Kind::Event, name);
        obs.start_ms = ts;
        obs.end_ms = ts;
        obs.metadata = Some(meta);
        if let Some(t) = trace {
            self.state.entry_trace.insert(id.to_string(), t);
            self.extend_trace(t, ts);
        }
        out.push(Record::Observation(Box::new(obs)));
    }

    fn message(
        &mut self,
        id: &str,
        parent: Option<&str>,
        ts: Option<i64>,
        msg: Message,
        out: &mut Vec<Record>,
    ) {
        match msg.role.as_str() {
            "user" => {
                let start = ts.or_else(|| msg.timestamp.as_ref().and_then(Ts::ms));
                let t = self.open_trace(id, true, start, text_of(msg.content.as_ref()), out);
                self.state.entry_trace.insert(id.to_string(), t);
                if msg.attribution.as_deref() == Some("agent") {
                    let mut obs = self.observation(id, Some(t), Kind::Event, "agent_prompt");
                    obs.start_ms = start;
                    obs.metadata = Some(json!({ "attribution": "agent" }));
                    out.push(Record::Observation(Box::new(obs)));
                }
            }
            "assistant" => self.assistant(id, parent, ts, msg, out),
            "toolResult" => self.tool_result(id, parent, ts, msg, out),
            "bashExecution" => {
                // A shell command the user ran (`!cmd`): no model call, prompt or tool call.
                let trace = self.trace_of(parent);
                let mut obs = self.observation(id, trace, Kind::Event, "bash");
                obs.start_ms = msg.timestamp.as_ref().and_then(Ts::ms).or(ts);
                obs.end_ms = ts;
                obs.input = msg.command.clone();
                obs.output = msg.output.clone();
                obs.metadata =
                    Some(json!({ "exitCode": msg.exit_code, "cancelled": msg.cancelled }));
                if let Some(t) = trace {
                    self.state.entry_trace.insert(id.to_string(), t);
                    self.extend_trace(t, ts);
                }
                out.push(Record::Observation(Box::new(obs)));
            }
            role => {
                // system (pi ≥ 0.86), custom, developer, pythonExecution, fileMention, hookMessage, …
                let trace = self.trace_of(parent);
                let name = msg
                    .custom_type
                    .clone()
                    .unwrap_or_else(|| format!("{role}_message"));
                let mut obs = self.observation(id, trace, Kind::Event, &name);
                obs.start_ms = ts;
                obs.end_ms = ts;
                obs.input = text_of(msg.content.as_ref());
                obs.metadata = Some(json!({ "role": role }));
                if let Some(t) = trace {
                    self.state.entry_trace.insert(id.to_string(), t);
                }
                out.push(Record::Observation(Box::new(obs)));
            }
        }
    }

    fn assistant(
        &mut self,
        id: &str,
        parent: Option<&str>,
        ts: Option<i64>,
        msg: Message,
        out: &mut Vec<Record>,
    ) {
        let start = msg.timestamp.as_ref().and_then(Ts::ms).or(ts);
        let end = match (start, msg.duration) {
            (Some(s), Some(d)) if d.is_finite() && d >= 0.0 => Some(s + d as i64),
            _ => ts.or(start),
        };
        let t = self.ensure_trace(parent, start, out);
        self.state.entry_trace.insert(id.to_string(), t);
        if msg.provider.is_some() || msg.model.is_some() {
            self.state.provider = msg.provider.clone();
            self.state.model = msg.model.clone();
        }
        let turn_no = {
            let tr = &mut self.state.traces[t as usize];
            tr.turns += 1;
            tr.turns
        };
        let turn_key = format!("turn:{id}");
        let mut turn = self.observation(&turn_key, Some(t), Kind::Span, &format!("turn {turn_no}"));
        turn.start_ms = start;
        turn.end_ms = end;

        let stop = msg.stop_reason.as_deref().unwrap_or("");
        let model_name = msg.model.clone().unwrap_or_else(|| "unknown".into());
        let mut gen = self.observation(id, Some(t), Kind::Generation, &model_name);
        gen.parent_id = Some(turn.id.clone());
        gen.start_ms = start;
        gen.end_ms = end;
        gen.completion_start_ms = match (start, msg.ttft) {
            (Some(s), Some(ttft)) if ttft.is_finite() && ttft >= 0.0 => Some(s + ttft as i64),
            _ => None,
        };
        gen.level = Some(match stop {
            "error" => Level::Error,
            "aborted" => Level::Warning,
            _ => Level::Default,
        });
        gen.status_message = msg.error_message.clone();
        gen.model = msg.model.clone();
        gen.response_model = msg
            .response_model
            .clone()
            .filter(|m| Some(m) != msg.model.as_ref());
        gen.provider = msg.provider.clone();
        if let Some(u) = &msg.usage {
            note_usage_drift(&mut self.state.drift, u);
            gen.usage = Some(usage_of(u));
            gen.agent_cost = u.cost.as_ref().map(cost_of);
        }
        let text = text_of(msg.content.as_ref());
        gen.output = text.clone();
        let thinking = blocks(msg.content.as_ref())
            .filter_map(|b| b.thinking.as_deref())
            .collect::<Vec<_>>()
            .join("\n");
        gen.finish_reason = msg.stop_reason.clone();
        gen.response_id = msg.response_id.clone();
        gen.metadata = Some(json!({
            "api": msg.api,
            "responseId": msg.response_id,
            "stopReason": msg.stop_reason,
            "reasoning": (!thinking.is_empty()).then_some(thinking),
        }));
        let gen_id = gen.id.clone();
        let turn_id = turn.id.clone();
        out.push(Record::Observation(Box::new(turn)));
        out.push(Record::Observation(Box::new(gen)));

        for block in blocks(msg.content.as_ref()).filter(|b| b.kind == "toolCall") {
            let call_id = block.id.clone().unwrap_or_default();
            let key = format!("tool:{id}:{call_id}");
            let mut tool = self.observation(
                &key,
                Some(t),
                Kind::Tool,
                block.name.as_deref().unwrap_or("tool"),
            );
            tool.parent_id = Some(gen_id.clone());
            tool.start_ms = end;
            tool.input = block.arguments.as_ref().map(Value::to_string);
            tool.tool_call_id = (!call_id.is_empty()).then(|| call_id.clone());
            tool.metadata = Some(json!({ "toolCallId": call_id }));
            self.state.pending_tools.insert(
                call_id,
                PendingTool {
                    trace: t,
                    span: tool.id.clone(),
                    turn: turn_id.clone(),
                },
            );
            out.push(Record::Observation(Box::new(tool)));
        }

        if stop != "toolUse" && text.is_some() {
            self.state.traces[t as usize].output = text;
            self.state.dirty_traces.insert(t);
        }
        self.extend_trace(t, end);
    }

    fn tool_result(
        &mut self,
        id: &str,
        parent: Option<&str>,
        ts: Option<i64>,
        msg: Message,
        out: &mut Vec<Record>,
    ) {
        let end = msg.timestamp.as_ref().and_then(Ts::ms).or(ts);
        let call_id = msg.tool_call_id.clone().unwrap_or_default();
        let pending = self.state.pending_tools.remove(&call_id);
        let (t, span, turn) = match pending {
            Some(p) => (p.trace, p.span, Some(p.turn)),
            None => {
                // A result without a recorded call: keep it as its own tool observation.
                let t = self.ensure_trace(parent, end, out);
                (t, self.span(&format!("tool:{id}")), None)
            }
        };
        self.state.entry_trace.insert(id.to_string(), t);
        let name = msg.tool_name.clone().unwrap_or_default();
        let mut tool = Observation::new(
            span,
            &self.session_key(),
            Kind::Tool,
            name,
            format!("tool:{call_id}"),
        );
        tool.trace_id = Some(self.state.traces[t as usize].id.clone());
        tool.tool_call_id = (!call_id.is_empty()).then(|| call_id.clone());
        if turn.is_none() {
            tool.start_ms = end;
            tool.metadata = Some(json!({ "toolCallId": call_id, "orphan": true }));
        }
        tool.end_ms = end;
        let output = text_of(msg.content.as_ref());
        let exit_code = msg
            .details
            .as_ref()
            .and_then(|d| d.get("exitCode"))
            .and_then(Value::as_i64);
        let failed = msg.is_error == Some(true) || exit_code.is_some_and(|c| c != 0);
        tool.level = Some(if failed { Level::Error } else { Level::Default });
        if failed {
            tool.status_message = Some(match exit_code {
                Some(c) if c != 0 => format!("exit code {c}"),
                _ => output
                    .as_deref()
                    .map(first_line)
                    .unwrap_or("tool failed")
                    .to_string(),
            });
        }
        tool.output = output;
        let tool_id = tool.id.clone();
        out.push(Record::Observation(Box::new(tool)));
        if let Some(turn_id) = turn {
            let mut turn = Observation::new(turn_id, &self.session_key(), Kind::Span, "", "");
            turn.trace_id = Some(self.state.traces[t as usize].id.clone());
            turn.end_ms = end;
            out.push(Record::Observation(Box::new(turn)));
        }
        // pi ≥ 0.81: LLM usage spent inside the tool (subagents etc.).
        if let Some(u) = msg.usage.as_ref().filter(|u| !usage_of(u).is_zero()) {
            let mut gen = self.observation(
                &format!("tool-usage:{id}"),
                Some(t),
                Kind::Generation,
                "tool usage",
            );
            gen.parent_id = Some(tool_id);
            gen.start_ms = end;
            gen.end_ms = end;
            gen.provider = msg.provider.clone().or_else(|| self.state.provider.clone());
            gen.model = msg.model.clone().or_else(|| self.state.model.clone());
            gen.usage = Some(usage_of(u));
            gen.agent_cost = u.cost.as_ref().map(cost_of);
            out.push(Record::Observation(Box::new(gen)));
        }
        self.extend_trace(t, end);
    }

    fn model_change(&mut self, id: &str, ts: Option<i64>, entry: &Entry, out: &mut Vec<Record>) {
        // pi: `provider` + `modelId`; oh-my-pi: `model: "provider/id"`.
        let (provider, model) = match (&entry.model_id, &entry.model) {
            (Some(m), _) => (entry.provider.clone(), Some(m.clone())),
            (None, Some(pm)) => match pm.split_once('/') {
                Some((p, m)) => (Some(p.to_string()), Some(m.to_string())),
                None => (entry.provider.clone(), Some(pm.clone())),
            },
            (None, None) => (entry.provider.clone(), None),
        };
        if model.is_some() {
            self.state.provider = provider.clone();
            self.state.model = model.clone();
        }
        self.event(
            id,
            None,
            "model_change",
            ts,
            json!({ "provider": provider, "model": model }),
            out,
        );
    }

    /// `compaction` and `branch_summary`: a span, with a generation child when pi recorded the call's usage.
    fn summary(&mut self, id: &str, ts: Option<i64>, entry: &Entry, out: &mut Vec<Record>) {
        let kind = entry.kind.as_str();
        let trace = self.state.current;
        let mut span = self.observation(&format!("{kind}:{id}"), trace, Kind::Span, kind);
        span.start_ms = ts;
        span.end_ms = ts;
        span.output = entry.summary.clone();
        span.metadata = Some(json!({
            "tokensBefore": entry.tokens_before,
            "firstKeptEntryId": entry.first_kept_entry_id,
            "fromId": entry.from_id,
        }));
        let span_id = span.id.clone();
        out.push(Record::Observation(Box::new(span)));
        if let Some(u) = &entry.usage {
            let mut gen = self.observation(id, trace, Kind::Generation, kind);
            gen.parent_id = Some(span_id);
            gen.start_ms = ts;
            gen.end_ms = ts;
            gen.provider = self.state.provider.clone();
            gen.model = self.state.model.clone();
            gen.usage = Some(usage_of(u));
            gen.agent_cost = u.cost.as_ref().map(cost_of);
            out.push(Record::Observation(Box::new(gen)));
        }
        if let Some(t) = trace {
            self.state.entry_trace.insert(id.to_string(), t);
            self.extend_trace(t, ts);
        }
    }

    /// `usage` entries (pi ≥ 0.86): a billed call outside the context, e.g. cache warming.
    fn usage_entry(&mut self, id: &str, ts: Option<i64>, entry: &Entry, out: &mut Vec<Record>) {
        let trace = self.state.current;
        let name = entry.usage_kind.clone().unwrap_or_else(|| "usage".into());
        let mut gen = self.observation(id, trace, Kind::Generation, &name);
        gen.start_ms = ts;
        gen.end_ms = ts;
        gen.provider = entry
            .provider
            .clone()
            .or_else(|| self.state.provider.clone());
        gen.model = entry.model.clone().or_else(|| self.state.model.clone());
        if let Some(u) = &entry.usage {
            note_usage_drift(&mut self.state.drift, u);
            gen.usage = Some(usage_of(u));
            gen.agent_cost = u.cost.as_ref().map(cost_of);
        }
        out.push(Record::Observation(Box::new(gen)));
        if let Some(t) = trace {
            self.state.entry_trace.insert(id.to_string(), t);
            self.extend_trace(t, ts);
        }
    }
}

fn tokens(v: f64) -> u64 {
    crate::model::token_count(v)
}

/// pi usage → canonical usage (DESIGN §3: `input` already uncached, `cacheWrite1h` ⊂ `cacheWrite`).
fn usage_of(u: &PiUsage) -> Usage {
    let cache_write = tokens(u.cache_write);
    let cache_write_1h = tokens(u.cache_write_1h.unwrap_or(0.0)).min(cache_write);
    Usage {
        input: tokens(u.input),
        output: tokens(u.output),
        cache_read: tokens(u.cache_read),
        cache_write_5m: cache_write - cache_write_1h,
        cache_write_1h,
        reasoning: tokens(u.reasoning.or(u.reasoning_tokens).unwrap_or(0.0)),
    }
}

fn cost_of(c: &super::format::PiCost) -> CostBreakdown {
    CostBreakdown {
        input: usd_to_pico(c.input),
        output: usd_to_pico(c.output),
        cache_read: usd_to_pico(c.cache_read),
        cache_write: usd_to_pico(c.cache_write),
        total: usd_to_pico(c.total),
    }
}

fn blocks(content: Option<&Content>) -> impl Iterator<Item = &Block> {
    match content {
        Some(Content::Blocks(b)) => b.iter(),
        _ => [].iter(),
    }
}

/// The text of a message: text blocks joined by newlines; images become `[image: type, N bytes]` markers.
fn text_of(content: Option<&Content>) -> Option<String> {
    match content? {
        Content::Text(s) => Some(s.clone()),
        Content::Blocks(blocks) => {
            let mut parts = Vec::new();
            for b in blocks {
                match b.kind.as_str() {
                    "text" => parts.extend(b.text.clone()),
                    "image" => parts.push(format!(
                        "[image: {}, {} bytes]",
                        b.mime_type.as_deref().unwrap_or("unknown"),
                        b.data.as_deref().map_or(0, |d| d.len() * 3 / 4)
                    )),
                    _ => {}
                }
            }
            (!parts.is_empty()).then(|| parts.join("\n"))
        }
        Content::Other(v) => Some(v.to_string()),
    }
}

fn first_line(s: &str) -> &str {
    let line = s.lines().next().unwrap_or("");
    match line.char_indices().nth(200) {
        Some((i, _)) => &line[..i],
        None => line,
    }
}

/// Tallies usage fields (and cost fields) this parser does not read.
fn note_usage_drift(tally: &mut drift::DriftTally, u: &PiUsage) {
    for k in u.unknown.keys() {
        tally.note(drift::USAGE_FIELD, k, || None);
    }
    for k in u.cost.iter().flat_map(|c| c.unknown.keys()) {
        tally.note(drift::USAGE_FIELD, &format!("cost.{k}"), || None);
    }
}
