//! Claude Code transcript lines → trace records.
//!
//! The rules that make totals exact (checked against `../shared/corpus/claude`, see `README.md` here):
//! - Claude writes one `assistant` line per content block, each repeating the message's usage (the first
//!   line can carry a partial `output_tokens`): every line of a model call upserts the same generation,
//!   keyed `msg:<message.id>:<requestId>`, with that line's usage, so the LAST line's usage wins; text and
//!   tool_use blocks of the call are accumulated in parser state;
//! - `isApiErrorMessage` assistant lines are failed generations (level ERROR, no usage); other
//!   `<synthetic>` lines ("No response requested.") are no model call;
//! - real user prompts start traces; tool results, `isMeta`, compaction summaries, slash-command and
//!   local-command lines do not (a slash command that makes the model answer does);
//! - a subagent transcript (`<session>/subagents/agent-<id>.jsonl`) carries the parent's `sessionId`: its
//!   lines form an `agent` observation under the spawning tool call (`tool:<toolUseId>` from the sibling
//!   `.meta.json`), without a trace id (the store links it after the import);
//! - lines copied into a forked session (`--fork-session`: older timestamps than the file's first line, or
//!   `forkedFrom`) were billed in the original session and are skipped.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::cost_state::{CostLedger, Recovered};
use super::format::{AgentMeta, Block, ClaudeUsage, Content, Line};
use super::{IGNORED_LINE_TYPES, SUBAGENT_TOOLS};
use crate::model::time::parse_iso_ms;
use crate::model::{ids, Agent, Kind, Level, Observation, Record, Session, Trace, Usage};
use crate::sources::drift::{self, DriftTally};
use crate::sources::reader::{parse_json_line, Line as RawLine, LineIssue};

const AGENT: &str = "claude";
/// Provider recorded on every generation (Claude Code's files record no provider).
const PROVIDER: &str = "anthropic";
/// Model calls whose lines may still arrive (their text is accumulated); older ones are forgotten.
const OPEN_MESSAGES: usize = 16;
/// Tool calls waiting for their result; the oldest are forgotten beyond this.
const PENDING_TOOLS: usize = 512;
/// Bytes of text and thinking kept per open model call (the privacy layer caps stored fields anyway).
const MAX_TEXT: usize = 100_000;

/// The trace lines currently join.
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
    #[serde(skip)]
    dirty: bool,
}

/// A model call whose lines may still arrive.
#[derive(Debug, Serialize, Deserialize, Clone)]
struct OpenMessage {
    /// `<message.id>:<requestId>`.
    key: String,
    message_id: Option<String>,
    request_id: Option<String>,
    gen: String,
    turn: String,
    turn_no: u32,
    trace: Option<String>,
    text: String,
    thinking: String,
    /// The usage of the call's last line so far (its model, for the cost ledger).
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    model: Option<String>,
}

/// A tool call whose result has not been read yet.
#[derive(Debug, Serialize, Deserialize, Clone)]
struct PendingTool {
    id: String,
    name: String,
    turn: String,
    trace: Option<String>,
    message_id: Option<String>,
}

/// A slash command line (`<command-name>/review</command-name>`): a prompt if the model answers it.
#[derive(Debug, Serialize, Deserialize, Clone)]
struct PendingCommand {
    key: String,
    text: String,
    ts: Option<i64>,
}

/// What a subagent transcript knows about its agent.
#[derive(Debug, Serialize, Deserialize, Clone)]
struct Subagent {
    agent_id: String,
    meta_path: PathBuf,
    meta: Option<AgentMeta>,
    start_ms: Option<i64>,
    turns: u32,
    announced: bool,
    /// The task (the first user message) was read.
    task_seen: bool,
    /// The subagent's task (its first user message).
    #[serde(skip)]
    input: Option<String>,
    /// Its last answer.
    #[serde(skip)]
    output: Option<String>,
    #[serde(skip)]
    dirty: bool,
}

/// Everything needed to continue parsing after the last consumed line.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    session_id: String,
    /// Records were emitted under `session_id`: it no longer changes.
    session_fixed: bool,
    /// A subagent transcript (does not own the session).
    subagent: Option<Subagent>,
    version: Option<String>,
    cwd: Option<String>,
    git_branch: Option<String>,
    entrypoint: Option<String>,
    start_ms: Option<i64>,
    end_ms: Option<i64>,
    /// A timestamped line was read.
    first_ts_seen: bool,
    /// Timestamp of the file's first timestamped line when that is a `queue-operation` (headless and SDK
    /// runs queue the prompt first): message lines older than it are copies from a forked session.
    fork_mark: Option<i64>,
    /// Lines skipped as copies from another session.
    copies: u64,
    custom_title: Option<String>,
    ai_title: Option<String>,
    summary: Option<String>,
    current: Option<TraceRef>,
    prompts: u32,
    /// Last real model seen (failed calls record `<synthetic>`).
    model: Option<String>,
    messages: Vec<OpenMessage>,
    pending_tools: Vec<PendingTool>,
    pending_command: Option<PendingCommand>,
    /// The agent's own cost records (`cost-state`).
    #[serde(default)]
    cost: CostLedger,
    #[serde(skip)]
    session_dirty: bool,
    /// Unknown line types and usage fields of the current chunk.
    #[serde(skip)]
    drift: DriftTally,
}

/// Parser for one Claude Code transcript (a main `<sessionId>.jsonl` or a subagent `agent-<id>.jsonl`).
pub struct ClaudeParser {
    state: State,
}

impl ClaudeParser {
    /// A parser for a file read from its start. The session id comes from the path
    /// (`<sessionId>.jsonl`, `<sessionId>/subagents/agent-<id>.jsonl`) until a line says otherwise; a
    /// subagent's `agent-<id>.meta.json` is read here.
    pub fn new(path: &Path) -> ClaudeParser {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("unknown")
            .to_string();
        let subagent = stem.strip_prefix("agent-").map(|id| {
            let meta_path = path.with_file_name(format!("{stem}.meta.json"));
            Subagent {
                agent_id: id.to_string(),
                meta: read_meta(&meta_path),
                meta_path,
                start_ms: None,
                turns: 0,
                announced: false,
                task_seen: false,
                input: None,
                output: None,
                dirty: false,
            }
        });
        // `<session>/subagents/agent-<id>.jsonl`: the session is the folder two levels up.
        let session_id = match &subagent {
            Some(_) => path
                .parent()
                .filter(|p| p.file_name().is_some_and(|n| n == "subagents"))
                .and_then(Path::parent)
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str())
                .unwrap_or(&stem)
                .to_string(),
            None => stem,
        };
        ClaudeParser {
            state: State {
                session_id,
                session_fixed: false,
                subagent,
                version: None,
                cwd: None,
                git_branch: None,
                entrypoint: None,
                start_ms: None,
                end_ms: None,
                first_ts_seen: false,
                fork_mark: None,
                copies: 0,
                custom_title: None,
                ai_title: None,
                summary: None,
                current: None,
                prompts: 0,
                model: None,
                messages: Vec::new(),
                pending_tools: Vec::new(),
                pending_command: None,
                cost: CostLedger::default(),
                session_dirty: false,
                drift: DriftTally::default(),
            },
        }
    }

    /// Restores a parser from [`ClaudeParser::checkpoint`]; `None` if the checkpoint is unreadable.
    /// A subagent whose meta file was missing so far looks for it again.
    pub fn resume(_path: &Path, checkpoint: &str) -> Option<ClaudeParser> {
        let mut state: State = serde_json::from_str(checkpoint).ok()?;
        if let Some(sub) = state.subagent.as_mut() {
            if sub.meta.is_none() {
                sub.meta = read_meta(&sub.meta_path);
                if sub.meta.is_some() {
                    sub.announced = false;
                }
            }
        }
        Some(ClaudeParser { state })
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

    fn agent_span(&self) -> Option<String> {
        self.state
            .subagent
            .as_ref()
            .map(|s| self.span(&format!("agent:{}", s.agent_id)))
    }

    fn is_subagent(&self) -> bool {
        self.state.subagent.is_some()
    }

    /// Feeds one complete line.
    pub fn line(&mut self, line: &RawLine<'_>, out: &mut Vec<Record>, issues: &mut Vec<LineIssue>) {
        // File checkpoints can be megabytes and carry nothing to count: skip them before parsing.
        if is_snapshot_line(line.bytes) {
            return;
        }
        let l: Line = match parse_json_line(line) {
            Ok((l, issue)) => {
                issues.extend(issue);
                l
            }
            Err(issue) => {
                // Valid JSON of a shape this parser does not know: kept as an event, never lost.
                match parse_json_line::<Value>(line) {
                    Ok((raw, _)) => {
                        issues.push(LineIssue {
                            offset: line.offset,
                            message: format!(
                                "unexpected line shape, kept as an event: {}",
                                issue.message
                            ),
                        });
                        let name = raw
                            .get("type")
                            .and_then(Value::as_str)
                            .unwrap_or("unknown")
                            .to_string();
                        self.state.drift.note(
                            drift::LINE_TYPE,
                            &format!("{name} (unexpected shape)"),
                            || drift::skeleton(line.bytes),
                        );
                        self.begin(None, out);
                        let key = self.event_key(None, line.offset);
                        let ts = raw
                            .get("timestamp")
                            .and_then(Value::as_str)
                            .and_then(parse_iso_ms);
                        self.event(
                            &key,
                            &name,
                            ts,
                            None,
                            Some(json!({ "line": raw })),
                            None,
                            out,
                        );
                    }
                    Err(_) => issues.push(issue),
                }
                return;
            }
        };
        if !self.state.session_fixed {
            if let Some(sid) = l.session_id.as_deref().filter(|s| !s.is_empty()) {
                self.state.session_id = sid.to_string();
            }
            if let (Some(sub), Some(aid)) = (self.state.subagent.as_mut(), l.agent_id.as_deref()) {
                sub.agent_id = aid.to_string();
            }
        }
        let ts = l.timestamp.as_deref().and_then(parse_iso_ms);
        let is_message = matches!(
            l.kind.as_str(),
            "user" | "assistant" | "system" | "attachment"
        );
        // `--fork-session` starts the new file with its own queue-operation, then writes a copy of the
        // original's history (same uuids, ids and timestamps, new sessionId): those calls were billed in
        // the original session. Newer releases mark copies with `forkedFrom`.
        let copied = l.forked_from.is_some()
            || (is_message
                && l.uuid.is_some()
                && matches!((ts, self.state.fork_mark), (Some(t), Some(f)) if t < f));
        if copied {
            self.state.copies += 1;
            self.state.session_dirty = true;
            return;
        }
        let known = super::READ_LINE_TYPES.contains(&l.kind.as_str())
            || IGNORED_LINE_TYPES.contains(&l.kind.as_str());
        if !self.state.first_ts_seen && ts.is_some() && known {
            self.state.first_ts_seen = true;
            if l.kind == "queue-operation" {
                self.state.fork_mark = ts;
            }
        }
        self.begin(Some(&l), out);
        if let Some(t) = ts {
            self.touch(t);
            if let Some(sub) = self.state.subagent.as_mut() {
                if sub.start_ms.is_none() {
                    sub.start_ms = Some(t);
                    sub.announced = false;
                }
            }
        }
        self.announce_agent(out);
        match l.kind.as_str() {
            "user" => self.user(&l, ts, line.offset, out),
            "assistant" => self.assistant(&l, ts, line.offset, out),
            "system" => self.system(&l, ts, line, out),
            "attachment" => {
                let key = self.event_key(l.uuid.as_deref(), line.offset);
                let kind = l.attachment.as_ref().and_then(|a| a.kind.clone());
                self.event(
                    &key,
                    "attachment",
                    ts,
                    None,
                    Some(json!({ "type": kind })),
                    None,
                    out,
                );
            }
            "summary" => {
                if let Some(s) = l.summary.clone().filter(|s| !s.trim().is_empty()) {
                    self.set_title(|st| &mut st.summary, s);
                }
            }
            "custom-title" => {
                if let Some(s) = l.custom_title.clone().filter(|s| !s.trim().is_empty()) {
                    self.set_title(|st| &mut st.custom_title, s);
                }
            }
            "ai-title" => {
                if let Some(s) = l.ai_title.clone().filter(|s| !s.trim().is_empty()) {
                    self.set_title(|st| &mut st.ai_title, s);
                }
            }
            "cost-state" => {
                let models = l.model_usage.clone().unwrap_or_default();
                let recovered = self.state.cost.line(l.total_cost_usd, &models);
                for r in recovered {
                    self.recovered(r, ts, out);
                }
                self.state.session_dirty = true;
            }
            "agent-name" => {
                let key = self.event_key(l.uuid.as_deref(), line.offset);
                self.event(&key, "agent-name", ts, None, None, None, out);
            }
            // Bookkeeping lines without anything to count or show (listed, with an example each, in README.md).
            kind if IGNORED_LINE_TYPES.contains(&kind) => {}
            other => {
                // Unknown line types are kept as events with the whole line as metadata, and tallied as drift.
                let raw = serde_json::from_slice::<Value>(line.bytes).unwrap_or(Value::Null);
                self.state
                    .drift
                    .note(drift::LINE_TYPE, other, || drift::skeleton(line.bytes));
                let key = self.event_key(l.uuid.as_deref(), line.offset);
                let name = other.to_string();
                self.event(
                    &key,
                    &name,
                    ts,
                    None,
                    Some(json!({ "line": raw })),
                    None,
                    out,
                );
            }
        }
    }

    /// Pushes the records that summarize this chunk: session times, names and version; the current
    /// trace's end and answer; the subagent's end, task and answer.
    pub fn end_chunk(&mut self, out: &mut Vec<Record>) {
        let version = self.state.version.clone();
        self.state
            .drift
            .drain(Agent::Claude, version.as_deref(), out);
        if self.state.session_dirty && self.state.session_fixed {
            out.push(Record::Session(self.session_record()));
        }
        self.state.session_dirty = false;
        self.flush_trace(out);
        let agent_span = self.agent_span();
        let session_key = self.session_key();
        let end = self.state.end_ms;
        if let (Some(sub), Some(span)) = (self.state.subagent.as_mut(), agent_span) {
            if sub.dirty {
                let mut obs = Observation::new(span, &session_key, Kind::Agent, "", "");
                obs.end_ms = end;
                obs.input = sub.input.take();
                obs.output = sub.output.take();
                out.push(Record::Observation(Box::new(obs)));
                sub.dirty = false;
            }
        }
    }

    /// First record of the file: the session (once the session id is known from a line).
    fn begin(&mut self, l: Option<&Line>, out: &mut Vec<Record>) {
        if let Some(l) = l {
            let s = &mut self.state;
            if l.version.is_some() && l.version != s.version {
                s.version = l.version.clone();
                s.session_dirty = true;
            }
            if s.cwd.is_none() && l.cwd.is_some() {
                s.cwd = l.cwd.clone();
                s.session_dirty = true;
            }
            if l.git_branch.is_some() && l.git_branch != s.git_branch {
                s.git_branch = l.git_branch.clone();
                s.session_dirty = true;
            }
            if s.entrypoint.is_none() && l.entrypoint.is_some() {
                s.entrypoint = l.entrypoint.clone();
                s.session_dirty = true;
            }
        }
        if !self.state.session_fixed {
            self.state.session_fixed = true;
            self.state.session_dirty = false;
            out.push(Record::Session(self.session_record()));
        }
    }

    fn touch(&mut self, t: i64) {
        let s = &mut self.state;
        if s.end_ms.is_none_or(|e| t > e) {
            s.end_ms = Some(t);
            s.session_dirty = true;
            if let Some(sub) = s.subagent.as_mut() {
                sub.dirty = true;
            }
        }
        if s.start_ms.is_none_or(|e| t < e) {
            s.start_ms = Some(t);
            s.session_dirty = true;
        }
    }

    fn set_title(&mut self, field: impl Fn(&mut State) -> &mut Option<String>, value: String) {
        let slot = field(&mut self.state);
        if slot.as_deref() != Some(value.as_str()) {
            *slot = Some(value);
            self.state.session_dirty = true;
        }
    }

    fn session_record(&self) -> Session {
        let s = &self.state;
        let metadata = if self.is_subagent() {
            None
        } else {
            let mut m = Map::new();
            if let Some(e) = &s.entrypoint {
                m.insert("entrypoint".into(), json!(e));
            }
            if let Some(b) = &s.git_branch {
                m.insert("gitBranch".into(), json!(b));
            }
            if s.copies > 0 {
                m.insert("forkCopiedLinesSkipped".into(), json!(s.copies));
            }
            Some(Value::Object(m))
        };
        Session {
            key: self.session_key(),
            agent: Some(Agent::Claude),
            session_id: s.session_id.clone(),
            agent_version: s.version.clone(),
            cwd: s.cwd.clone(),
            start_ms: s.start_ms,
            end_ms: s.end_ms,
            parent_session: None,
            name: s
                .custom_title
                .clone()
                .or_else(|| s.ai_title.clone())
                .or_else(|| s.summary.clone()),
            channel: None,
            user: None,
            metadata,
            secondary_file: self.is_subagent(),
            agent_cost: self.state.cost.session_cost(),
        }
    }

    /// Subagent transcripts: the `agent` observation, under the tool call that spawned it.
    fn announce_agent(&mut self, out: &mut Vec<Record>) {
        let Some(span) = self.agent_span() else {
            return;
        };
        let session_key = self.session_key();
        let parent = {
            let sub = self.state.subagent.as_ref().expect("subagent");
            if sub.announced {
                return;
            }
            sub.meta
                .as_ref()
                .and_then(|m| m.tool_use_id.as_deref())
                .map(|t| self.span(&format!("tool:{t}")))
        };
        let sub = self.state.subagent.as_mut().expect("subagent");
        sub.announced = true;
        let name = sub
            .meta
            .as_ref()
            .and_then(|m| m.agent_type.clone())
            .unwrap_or_default();
        let mut obs = Observation::new(
            span,
            &session_key,
            Kind::Agent,
            name,
            format!("agent:{}", sub.agent_id),
        );
        obs.parent_id = parent;
        obs.start_ms = sub.start_ms;
        obs.metadata = Some(json!({
            "agentId": sub.agent_id,
            "agentType": sub.meta.as_ref().and_then(|m| m.agent_type.clone()),
            "description": sub.meta.as_ref().and_then(|m| m.description.clone()),
            "toolUseId": sub.meta.as_ref().and_then(|m| m.tool_use_id.clone()),
            "spawnDepth": sub.meta.as_ref().and_then(|m| m.spawn_depth),
            "isFork": sub.meta.as_ref().and_then(|m| m.is_fork),
        }));
        out.push(Record::Observation(Box::new(obs)));
    }

    /// Key of an event line: its uuid, else its byte offset (prefixed with the agent id in subagent
    /// files, which share the session with the main transcript).
    fn event_key(&self, uuid: Option<&str>, offset: u64) -> String {
        match (uuid, &self.state.subagent) {
            (Some(u), _) => format!("event:{u}"),
            (None, Some(sub)) => format!("@{}:{offset}", sub.agent_id),
            (None, None) => format!("@{offset}"),
        }
    }

    /// The trace and parent that lines of this file join: the current trace (main transcript) or the
    /// subagent's `agent` observation (subagent transcript, trace linked by the store).
    fn context(&self) -> (Option<String>, Option<String>) {
        match self.agent_span() {
            Some(agent) => (None, Some(agent)),
            None => (self.state.current.as_ref().map(|t| t.id.clone()), None),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn event(
        &mut self,
        key: &str,
        name: &str,
        ts: Option<i64>,
        input: Option<String>,
        metadata: Option<Value>,
        level: Option<Level>,
        out: &mut Vec<Record>,
    ) {
        let (trace, parent) = self.context();
        let mut obs = Observation::new(self.span(key), &self.session_key(), Kind::Event, name, key);
        obs.trace_id = trace;
        obs.parent_id = parent;
        obs.start_ms = ts;
        obs.end_ms = ts;
        obs.input = input;
        obs.metadata = metadata;
        obs.level = level;
        out.push(Record::Observation(Box::new(obs)));
        self.extend_trace(ts);
    }

    fn extend_trace(&mut self, ts: Option<i64>) {
        if let (Some(t), Some(end)) = (self.state.current.as_mut(), ts) {
            if t.end_ms.is_none_or(|e| end > e) {
                t.end_ms = Some(end);
                t.dirty = true;
            }
        }
    }

    fn flush_trace(&mut self, out: &mut Vec<Record>) {
        let session_key = self.session_key();
        if let Some(t) = self.state.current.as_mut().filter(|t| t.dirty) {
            out.push(Record::Trace(Trace {
                id: t.id.clone(),
                root_span_id: t.root.clone(),
                session_key,
                key: t.key.clone(),
                is_prompt: t.is_prompt,
                name: None,
                start_ms: None,
                end_ms: t.end_ms,
                input: None,
                output: t.output.take(),
            }));
            t.dirty = false;
        }
    }

    /// Opens a new trace (a prompt, or activity no prompt started) and makes it current.
    fn open_trace(
        &mut self,
        key: &str,
        is_prompt: bool,
        start: Option<i64>,
        input: Option<String>,
        out: &mut Vec<Record>,
    ) {
        self.flush_trace(out);
        let name = if is_prompt {
            self.state.prompts += 1;
            format!("{AGENT} prompt {}", self.state.prompts)
        } else {
            format!("{AGENT} session activity")
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
        self.state.current = Some(TraceRef {
            key: key.to_string(),
            id,
            root,
            is_prompt,
            turns: 0,
            end_ms: start,
            output: None,
            dirty: false,
        });
        self.state.pending_command = None;
    }

    fn user(&mut self, l: &Line, ts: Option<i64>, offset: u64, out: &mut Vec<Record>) {
        let content = l.message.as_ref().and_then(|m| m.content.as_ref());
        let results: Vec<&Block> = blocks(content)
            .filter(|b| b.kind == "tool_result")
            .collect();
        if !results.is_empty() {
            let single = results.len() == 1;
            for b in results {
                self.tool_result(l, b, single, ts, out);
            }
            return;
        }
        let text = text_of(content);
        let key = self.event_key(l.uuid.as_deref(), offset);
        let head = text.as_deref().unwrap_or("").trim_start();
        if self.is_subagent() || l.is_sidechain == Some(true) {
            // A subagent's task (its first user message) or a message sent to it later: no user prompt.
            if let Some(sub) = self.state.subagent.as_mut() {
                if !sub.task_seen {
                    sub.task_seen = true;
                    sub.input = text.clone();
                    sub.dirty = true;
                }
            }
            self.event(&key, "subagent_prompt", ts, text, None, None, out);
            return;
        }
        // `None`: a user prompt; else the event the line becomes.
        let event: Option<&str> = if l.is_compact_summary == Some(true) {
            Some("compact_summary")
        } else if l.is_meta == Some(true) || head.starts_with("<local-command-caveat>") {
            Some("meta_message")
        } else if head.starts_with("<command-name>") || head.starts_with("<command-message>") {
            self.state.pending_command = Some(PendingCommand {
                key: l.uuid.clone().unwrap_or_else(|| format!("@{offset}")),
                text: text.clone().unwrap_or_default(),
                ts,
            });
            Some("command")
        } else if head.starts_with("<local-command-stdout>")
            || head.starts_with("<local-command-stderr>")
        {
            // A local command (`/compact`, `/model`) finished without a model turn.
            self.state.pending_command = None;
            Some("command_output")
        } else if head.starts_with("<bash-input>")
            || head.starts_with("<bash-stdout>")
            || head.starts_with("<bash-stderr>")
        {
            Some("bash")
        } else if head.starts_with("[Request interrupted by user") {
            Some("interrupted")
        } else if head.starts_with("<task-notification>") {
            Some("task_notification")
        } else if text.is_none() {
            Some("user_message")
        } else {
            None
        };
        match event {
            Some(name) => self.event(&key, name, ts, text, None, None, out),
            None => {
                let key = l.uuid.clone().unwrap_or_else(|| format!("@{offset}"));
                self.open_trace(&key, true, ts, text, out);
            }
        }
    }

    /// The trace a main-transcript model call joins: a slash command awaiting its answer becomes a prompt;
    /// a call before any prompt opens a non-prompt trace.
    fn trace_for_call(&mut self, ts: Option<i64>, out: &mut Vec<Record>) -> Option<String> {
        if self.is_subagent() {
            return None;
        }
        if let Some(cmd) = self.state.pending_command.take() {
            self.open_trace(&cmd.key, true, cmd.ts.or(ts), Some(cmd.text), out);
        } else if self.state.current.is_none() {
            self.open_trace("session", false, ts, None, out);
        }
        self.state.current.as_ref().map(|t| t.id.clone())
    }

    fn assistant(&mut self, l: &Line, ts: Option<i64>, offset: u64, out: &mut Vec<Record>) {
        let empty = Default::default();
        let msg = l.message.as_ref().unwrap_or(&empty);
        let api_error = l.is_api_error_message == Some(true);
        let synthetic = msg.model.as_deref() == Some("<synthetic>");
        if synthetic && !api_error {
            // Claude Code's own filler ("No response requested." after `--continue`): no model call.
            let key = self.event_key(l.uuid.as_deref(), offset);
            let text = text_of(msg.content.as_ref());
            self.event(&key, "synthetic_message", ts, text, None, None, out);
            return;
        }
        if !synthetic {
            if let Some(m) = msg.model.clone() {
                self.state.model = Some(m);
            }
        }
        let msg_key = match (&msg.id, &l.request_id) {
            (Some(id), Some(req)) => format!("{id}:{req}"),
            (Some(id), None) => id.clone(),
            (None, _) => format!("@{}", l.uuid.clone().unwrap_or_else(|| offset.to_string())),
        };
        let index = match self.state.messages.iter().position(|m| m.key == msg_key) {
            Some(i) => i,
            None => {
                let trace = self.trace_for_call(ts, out);
                let turn_no = match (self.state.subagent.as_mut(), self.state.current.as_mut()) {
                    (Some(sub), _) => {
                        sub.turns += 1;
                        sub.turns
                    }
                    (None, Some(t)) => {
                        t.turns += 1;
                        t.turns
                    }
                    (None, None) => 1,
                };
                let open = OpenMessage {
                    gen: self.span(&format!("msg:{msg_key}")),
                    turn: self.span(&format!("turn:{msg_key}")),
                    key: msg_key.clone(),
                    message_id: msg.id.clone(),
                    request_id: l.request_id.clone(),
                    turn_no,
                    trace,
                    text: String::new(),
                    thinking: String::new(),
                    usage: None,
                    model: None,
                };
                self.state.messages.push(open);
                if self.state.messages.len() > OPEN_MESSAGES {
                    self.state.messages.remove(0);
                }
                self.state.messages.len() - 1
            }
        };
        for b in blocks(msg.content.as_ref()) {
            let m = &mut self.state.messages[index];
            match b.kind.as_str() {
                "text" => push_text(&mut m.text, b.text.as_deref()),
                "thinking" => push_text(&mut m.thinking, b.thinking.as_deref()),
                _ => {}
            }
        }
        let open = self.state.messages[index].clone();
        let session_key = self.session_key();
        let (_, agent_parent) = self.context();

        let mut turn = Observation::new(
            open.turn.clone(),
            &session_key,
            Kind::Span,
            format!("turn {}", open.turn_no),
            format!("turn:{}", open.key),
        );
        turn.trace_id = open.trace.clone();
        turn.parent_id = agent_parent;
        turn.start_ms = ts;
        turn.end_ms = ts;

        let model = if api_error {
            self.state.model.clone()
        } else {
            msg.model.clone()
        };
        let mut gen = Observation::new(
            open.gen.clone(),
            &session_key,
            Kind::Generation,
            model.clone().unwrap_or_else(|| "unknown".into()),
            format!("msg:{}", open.key),
        );
        gen.trace_id = open.trace.clone();
        gen.parent_id = Some(open.turn.clone());
        gen.start_ms = ts;
        gen.end_ms = ts;
        gen.model = model;
        gen.provider = Some(PROVIDER.into());
        if api_error {
            gen.level = Some(Level::Error);
            gen.status_message = Some(if open.text.is_empty() {
                "API error".to_string()
            } else {
                first_line(&open.text).to_string()
            });
        } else {
            gen.level = Some(Level::Default);
            gen.usage = msg.usage.as_ref().map(usage_of);
            if let Some(u) = msg.usage.as_ref() {
                note_usage_drift(&mut self.state.drift, u);
            }
            if let (Some(new), Some(m)) = (gen.usage.as_ref(), gen.model.as_deref()) {
                let slot = &mut self.state.messages[index];
                let old = if slot.model.as_deref() == Some(m) {
                    slot.usage
                } else {
                    None
                };
                self.state.cost.call(m, old.as_ref(), new);
                slot.usage = Some(*new);
                slot.model = Some(m.to_string());
            }
        }
        gen.output = (!open.text.is_empty()).then(|| open.text.clone());
        gen.finish_reason = msg.stop_reason.clone();
        gen.response_id = open
            .message_id
            .clone()
            .filter(|id| !synthetic && !id.is_empty());
        gen.metadata = Some(json!({
            "messageId": open.message_id,
            "requestId": open.request_id,
            "stop_reason": msg.stop_reason,
            "service_tier": msg.usage.as_ref().and_then(|u| u.service_tier.clone()),
            "speed": msg.usage.as_ref().and_then(|u| u.speed.clone()),
            "reasoning": (!open.thinking.is_empty()).then(|| open.thinking.clone()),
            "isSidechain": l.is_sidechain,
            "apiErrorStatus": l.api_error_status,
            "error": l.error,
            "model": synthetic.then_some("<synthetic>"),
        }));
        let gen_id = gen.id.clone();
        out.push(Record::Observation(Box::new(turn)));
        out.push(Record::Observation(Box::new(gen)));

        for b in blocks(msg.content.as_ref()).filter(|b| b.kind == "tool_use") {
            let call_id = b.id.clone().unwrap_or_default();
            if b.name
                .as_deref()
                .is_some_and(|n| SUBAGENT_TOOLS.contains(&n))
            {
                self.state.cost.subagent();
            }
            let key = format!("tool:{call_id}");
            let name = b.name.clone().unwrap_or_else(|| "tool".into());
            let mut tool =
                Observation::new(self.span(&key), &session_key, Kind::Tool, name.clone(), key);
            tool.trace_id = open.trace.clone();
            tool.parent_id = Some(gen_id.clone());
            tool.start_ms = ts;
            tool.input = b.input.as_ref().map(Value::to_string);
            tool.tool_call_id = (!call_id.is_empty()).then(|| call_id.clone());
            tool.metadata = Some(json!({ "toolUseId": call_id, "messageId": open.message_id }));
            out.push(Record::Observation(Box::new(tool)));
            self.state.pending_tools.retain(|p| p.id != call_id);
            self.state.pending_tools.push(PendingTool {
                id: call_id,
                name,
                turn: open.turn.clone(),
                trace: open.trace.clone(),
                message_id: open.message_id.clone(),
            });
            if self.state.pending_tools.len() > PENDING_TOOLS {
                self.state.pending_tools.remove(0);
            }
        }

        // The answer of the trace (or of the subagent): the text of a call that did not ask for tools.
        if !api_error && msg.stop_reason.as_deref() != Some("tool_use") && !open.text.is_empty() {
            if let Some(sub) = self.state.subagent.as_mut() {
                sub.output = Some(open.text.clone());
                sub.dirty = true;
            } else if let Some(t) = self
                .state
                .current
                .as_mut()
                .filter(|t| Some(&t.id) == open.trace.as_ref())
            {
                t.output = Some(open.text.clone());
                t.dirty = true;
            }
        }
        if open.trace.is_some() && open.trace == self.state.current.as_ref().map(|t| t.id.clone()) {
            self.extend_trace(ts);
        }
    }

    fn tool_result(
        &mut self,
        l: &Line,
        b: &Block,
        single: bool,
        ts: Option<i64>,
        out: &mut Vec<Record>,
    ) {
        let call_id = b.tool_use_id.clone().unwrap_or_default();
        let pending = self
            .state
            .pending_tools
            .iter()
            .position(|p| p.id == call_id)
            .map(|i| self.state.pending_tools.remove(i));
        let session_key = self.session_key();
        let key = format!("tool:{call_id}");
        let span = self.span(&key);
        let (context_trace, _) = self.context();
        let trace = match &pending {
            Some(p) => p.trace.clone(),
            None => context_trace,
        };
        let name = pending.as_ref().map(|p| p.name.clone()).unwrap_or_default();
        let result = l.tool_use_result.as_ref().filter(|_| single);
        let output = text_of(b.content.as_ref());
        let interrupted = result.and_then(|r| r.interrupted) == Some(true);
        let exit_code = result.and_then(|r| r.exit_code).filter(|c| *c != 0);
        let failed = b.is_error == Some(true) || interrupted || exit_code.is_some();

        let mut tool = Observation::new(span.clone(), &session_key, Kind::Tool, name.clone(), key);
        tool.trace_id = trace.clone();
        tool.end_ms = ts;
        tool.level = Some(if failed { Level::Error } else { Level::Default });
        if failed {
            tool.status_message = Some(if interrupted {
                "interrupted by user".to_string()
            } else if let Some(c) = exit_code {
                format!("exit code {c}")
            } else {
                output
                    .as_deref()
                    .map(first_line)
                    .unwrap_or("tool failed")
                    .to_string()
            });
        }
        tool.output = output;
        tool.tool_call_id = (!call_id.is_empty()).then(|| call_id.clone());
        let mut meta = Map::new();
        meta.insert("toolUseId".into(), json!(call_id));
        match &pending {
            Some(p) => {
                meta.insert("messageId".into(), json!(p.message_id));
            }
            None => {
                tool.start_ms = ts;
                meta.insert("orphan".into(), json!(true));
            }
        }
        if let Some(r) = result {
            for (k, v) in [
                ("agentId", r.agent_id.as_ref().map(|v| json!(v))),
                ("status", r.status.as_ref().map(|v| json!(v))),
                ("interrupted", r.interrupted.map(|v| json!(v))),
                ("exitCode", r.exit_code.map(|v| json!(v))),
                (
                    "returnCodeInterpretation",
                    r.return_code_interpretation.as_ref().map(|v| json!(v)),
                ),
            ] {
                if let Some(v) = v {
                    meta.insert(k.into(), v);
                }
            }
        }
        tool.metadata = Some(Value::Object(meta));
        out.push(Record::Observation(Box::new(tool)));
        if let Some(p) = &pending {
            let mut turn = Observation::new(p.turn.clone(), &session_key, Kind::Span, "", "");
            turn.trace_id = p.trace.clone();
            turn.end_ms = ts;
            out.push(Record::Observation(Box::new(turn)));
        }
        // An `Agent` / `Task` result names the subagent it ran: link its `agent` observation here too, so
        // the subagent hangs under this call even when its transcript has no meta file.
        if let Some(agent_id) = result.and_then(|r| r.agent_id.clone()) {
            if name.is_empty() || name == "Agent" || name == "Task" {
                let akey = format!("agent:{agent_id}");
                let agent_type = result
                    .and_then(|r| r.agent_type.clone())
                    .unwrap_or_default();
                let mut agent = Observation::new(
                    self.span(&akey),
                    &session_key,
                    Kind::Agent,
                    agent_type,
                    akey,
                );
                agent.parent_id = Some(span);
                agent.trace_id = trace.clone();
                agent.end_ms = ts;
                out.push(Record::Observation(Box::new(agent)));
            }
        }
        if trace.is_some() && trace == self.state.current.as_ref().map(|t| t.id.clone()) {
            self.extend_trace(ts);
        }
    }

    /// A `system`/`api_error` line (2.1.3xx): one model request that failed and is retried (HTTP 500, 529,
    /// a dropped connection). A failed generation with no usage, level ERROR, under the current trace.
    fn api_error(&mut self, l: &Line, ts: Option<i64>, offset: u64, out: &mut Vec<Record>) {
        let trace = self.trace_for_call(ts, out);
        let (_, parent) = self.context();
        let session_key = self.session_key();
        let err = l.error.as_ref();
        let status = err.and_then(|e| e.get("status")).cloned();
        let text = err
            .and_then(|e| e.get("formatted").or_else(|| e.get("message")))
            .and_then(Value::as_str)
            .map(|s| first_line(s).to_string())
            .unwrap_or_else(|| "API error".to_string());
        let key = format!(
            "api_error:{}",
            l.uuid.clone().unwrap_or_else(|| offset.to_string())
        );
        let model = self.state.model.clone();
        let mut gen = Observation::new(
            self.span(&key),
            &session_key,
            Kind::Generation,
            model.clone().unwrap_or_else(|| "unknown".into()),
            key,
        );
        gen.trace_id = trace;
        gen.parent_id = parent;
        gen.start_ms = ts;
        gen.end_ms = ts;
        gen.model = model;
        gen.provider = Some(PROVIDER.into());
        gen.level = Some(Level::Error);
        gen.status_message = Some(text);
        gen.metadata = Some(json!({
            "apiErrorStatus": status,
            "requestId": err.and_then(|e| e.get("requestId")).cloned(),
            "retryAttempt": l.retry_attempt,
        }));
        out.push(Record::Observation(Box::new(gen)));
        if let Some(t) = ts {
            self.extend_trace(Some(t));
        }
    }

    /// A call the agent billed (its `cost-state` says so) but did not write: a generation of its own in the
    /// current trace, with the agent's tokens and cost, marked `recovered`.
    fn recovered(&mut self, r: Recovered, ts: Option<i64>, out: &mut Vec<Record>) {
        if self.is_subagent() {
            return;
        }
        // Do not turn a pending slash command (`/compact`) into a prompt: the call belongs to the trace open.
        let trace = match self.state.current.as_ref() {
            Some(t) => Some(t.id.clone()),
            None => {
                self.open_trace("session", false, ts, None, out);
                self.state.current.as_ref().map(|t| t.id.clone())
            }
        };
        let session_key = self.session_key();
        let key = format!("recovered:{}:{}", self.state.cost.lines, r.model);
        let name = if r.compaction {
            "compaction (recovered)"
        } else {
            "unrecorded call (recovered)"
        };
        let mut gen = Observation::new(self.span(&key), &session_key, Kind::Generation, name, key);
        gen.trace_id = trace;
        gen.start_ms = ts.or(self.state.end_ms);
        gen.end_ms = gen.start_ms;
        gen.model = Some(r.model);
        gen.provider = Some(PROVIDER.into());
        gen.level = Some(Level::Default);
        gen.usage = Some(r.usage);
        gen.agent_cost = Some(r.cost);
        gen.metadata = Some(json!({
            "recovered": true,
            "recoveredFrom": "cost-state",
            "compaction": r.compaction,
        }));
        out.push(Record::Observation(Box::new(gen)));
    }

    fn system(&mut self, l: &Line, ts: Option<i64>, line: &RawLine<'_>, out: &mut Vec<Record>) {
        let key = self.event_key(l.uuid.as_deref(), line.offset);
        let subtype = l.subtype.clone().unwrap_or_else(|| "system".into());
        let text = l.content.as_ref().and_then(|c| c.0.clone());
        if subtype == "api_error" {
            self.api_error(l, ts, line.offset, out);
            return;
        }
        if subtype == "compact_boundary" {
            self.state.cost.compaction();
            // `/compact` or auto-compaction. Its summarization call leaves no assistant line (no usage);
            // `preTokens` / `postTokens` are context sizes, not usage.
            let cm = l.compact_metadata.as_ref();
            let pick = |k: &str| cm.and_then(|m| m.get(k)).cloned().unwrap_or(Value::Null);
            let meta = json!({
                "trigger": pick("trigger"),
                "preTokens": pick("preTokens"),
                "postTokens": pick("postTokens"),
                "durationMs": pick("durationMs"),
            });
            self.event(&key, "compaction", ts, text, Some(meta), None, out);
            return;
        }
        // Other system lines (API retries, hook summaries, turn durations, …): the line minus the fields
        // every line repeats.
        let mut raw = serde_json::from_slice::<Value>(line.bytes).unwrap_or(Value::Null);
        if let Some(obj) = raw.as_object_mut() {
            for k in [
                "parentUuid",
                "logicalParentUuid",
                "isSidechain",
                "userType",
                "entrypoint",
                "cwd",
                "sessionId",
                "version",
                "gitBranch",
                "slug",
                "uuid",
                "timestamp",
                "type",
                "content",
            ] {
                obj.remove(k);
            }
        }
        let level = match (subtype.as_str(), l.level.as_deref()) {
            (_, Some("error")) | (_, Some("warning")) => Some(Level::Warning),
            _ => None,
        };
        self.event(&key, &subtype, ts, text, Some(raw), level, out);
    }
}

/// True for a `file-history-snapshot` line, told from its first bytes.
fn is_snapshot_line(bytes: &[u8]) -> bool {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    bytes[start..].starts_with(b"{\"type\":\"file-history-snapshot\"")
}

fn read_meta(path: &Path) -> Option<AgentMeta> {
    let bytes = std::fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn tokens(v: Option<f64>) -> u64 {
    v.map_or(0, crate::model::token_count)
}

/// Claude usage → canonical usage: `input_tokens` is already uncached; cache writes split into 5m and 1h
/// by `cache_creation` (a total without the split counts as 5m); `output_tokens` includes thinking.
fn usage_of(u: &ClaudeUsage) -> Usage {
    let cc = u.cache_creation.as_ref();
    let w5 = tokens(cc.and_then(|c| c.ephemeral_5m_input_tokens));
    let w1 = tokens(cc.and_then(|c| c.ephemeral_1h_input_tokens));
    let total = match u.cache_creation_input_tokens {
        Some(_) => tokens(u.cache_creation_input_tokens),
        None => w5 + w1,
    };
    let cache_write_1h = w1.min(total);
    Usage {
        input: tokens(u.input_tokens),
        output: tokens(u.output_tokens),
        cache_read: tokens(u.cache_read_input_tokens),
        cache_write_5m: total - cache_write_1h,
        cache_write_1h,
        // Thinking is counted inside `output_tokens` (2.1.3xx `output_tokens_details.thinking_tokens`).
        reasoning: tokens(
            u.output_tokens_details
                .as_ref()
                .and_then(|d| d.thinking_tokens),
        )
        .min(tokens(u.output_tokens)),
    }
}

/// Tallies usage fields this parser does not read (a new one may be one that should be counted).
fn note_usage_drift(drift: &mut DriftTally, u: &ClaudeUsage) {
    let nested = [
        ("", u.unknown.keys().collect::<Vec<_>>()),
        (
            "cache_creation.",
            u.cache_creation
                .as_ref()
                .map(|c| c.unknown.keys().collect())
                .unwrap_or_default(),
        ),
        (
            "output_tokens_details.",
            u.output_tokens_details
                .as_ref()
                .map(|d| d.unknown.keys().collect())
                .unwrap_or_default(),
        ),
    ];
    for (prefix, keys) in nested {
        for k in keys {
            drift.note(drift::USAGE_FIELD, &format!("{prefix}{k}"), || None);
        }
    }
}

fn blocks(content: Option<&Content>) -> impl Iterator<Item = &Block> {
    match content {
        Some(Content::Blocks(b)) => b.iter(),
        _ => [].iter(),
    }
}

/// The text of a message: text blocks joined by newlines; images become `[image: type, N bytes]`.
fn text_of(content: Option<&Content>) -> Option<String> {
    match content? {
        Content::Text(s) => Some(s.clone()),
        Content::Blocks(blocks) => {
            let mut parts = Vec::new();
            for b in blocks {
                match b.kind.as_str() {
                    "text" => parts.extend(b.text.clone()),
                    "image" => {
                        let src = b.source.as_ref();
                        parts.push(format!(
                            "[image: {}, {} bytes]",
                            src.and_then(|s| s.media_type.as_deref())
                                .unwrap_or("unknown"),
                            src.and_then(|s| s.data.as_deref())
                                .map_or(0, |d| d.len() * 3 / 4)
                        ));
                    }
                    _ => {}
                }
            }
            (!parts.is_empty()).then(|| parts.join("\n"))
        }
    }
}

fn push_text(buf: &mut String, text: Option<&str>) {
    let Some(text) = text.filter(|t| !t.is_empty()) else {
        return;
    };
    if buf.len() >= MAX_TEXT {
        return;
    }
    if !buf.is_empty() {
        buf.push('\n');
    }
    let room = MAX_TEXT - buf.len().min(MAX_TEXT);
    let mut end = text.len().min(room);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    buf.push_str(&text[..end]);
}

fn first_line(s: &str) -> &str {
    let line = s.lines().next().unwrap_or("");
    match line.char_indices().nth(200) {
        Some((i, _)) => &line[..i],
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lines: &[&str]) -> Vec<Record> {
        let mut p = ClaudeParser::new(Path::new("/p/s1.jsonl"));
        let mut out = Vec::new();
        let mut issues = Vec::new();
        let mut offset = 0;
        for l in lines {
            p.line(
                &RawLine {
                    offset,
                    bytes: l.as_bytes(),
                },
                &mut out,
                &mut issues,
            );
            offset += l.len() as u64 + 1;
        }
        p.end_chunk(&mut out);
        assert!(issues.is_empty(), "{issues:?}");
        out
    }

    fn observations(records: &[Record]) -> Vec<&Observation> {
        records
            .iter()
            .filter_map(|r| match r {
                Record::Observation(o) => Some(o.as_ref()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn usage_splits_cache_writes_by_lifetime() {
        let u: ClaudeUsage = serde_json::from_str(
            r#"{"input_tokens":911,"cache_creation_input_tokens":9103,"cache_read_input_tokens":91002,"output_tokens":189,"cache_creation":{"ephemeral_1h_input_tokens":4552,"ephemeral_5m_input_tokens":4551}}"#,
        )
        .unwrap();
        let usage = usage_of(&u);
        assert_eq!(
            (usage.input, usage.cache_read, usage.output),
            (911, 91002, 189)
        );
        assert_eq!((usage.cache_write_5m, usage.cache_write_1h), (4551, 4552));
        // No split recorded: all 5-minute writes.
        let u: ClaudeUsage =
            serde_json::from_str(r#"{"input_tokens":1,"cache_creation_input_tokens":50}"#).unwrap();
        assert_eq!(
            (usage_of(&u).cache_write_5m, usage_of(&u).cache_write_1h),
            (50, 0)
        );
    }

    #[test]
    fn lines_of_one_call_upsert_one_generation_with_the_last_usage() {
        let a = |block: &str, out: u32| {
            format!(
                r#"{{"type":"assistant","uuid":"u{out}","timestamp":"2026-11-23T03:10:04.000Z","sessionId":"s1","requestId":"r1","message":{{"id":"m1","model":"claude-opus-4-8","content":[{block}],"stop_reason":"tool_use","usage":{{"input_tokens":10,"output_tokens":{out}}}}}}}"#
            )
        };
        let prompt = r#"{"type":"user","uuid":"p1","timestamp":"2026-11-23T03:10:03.000Z","sessionId":"s1","message":{"role":"user","content":"hi"}}"#;
        let l1 = a(r#"{"type":"text","text":"Let me look."}"#, 1);
        let l2 = a(
            r#"{"type":"tool_use","id":"t1","name":"Bash","input":{"command":"ls"}}"#,
            74,
        );
        let out = run(&[prompt, &l1, &l2]);
        let obs = observations(&out);
        let gens: Vec<_> = obs.iter().filter(|o| o.kind == Kind::Generation).collect();
        assert_eq!(gens.len(), 2, "one upsert per line");
        assert_eq!(gens[0].id, gens[1].id);
        assert_eq!(gens[1].usage.unwrap().output, 74);
        assert_eq!(gens[1].output.as_deref(), Some("Let me look."));
        let tool = obs.iter().find(|o| o.kind == Kind::Tool).unwrap();
        assert_eq!(tool.parent_id.as_ref(), Some(&gens[0].id));
        assert_eq!(tool.id, ids::span_id("claude", "s1", "tool:t1"));
    }

    #[test]
    fn snapshot_lines_are_skipped_before_parsing() {
        assert!(is_snapshot_line(
            b"{\"type\":\"file-history-snapshot\",\"messageId\":\"x\" NOT JSON"
        ));
        let out = run(&[r#"{"type":"file-history-snapshot","messageId":"x","snapshot":{}}"#]);
        assert!(out.is_empty());
    }

    fn user(uuid: &str, ts: &str, content: &str, extra: &str) -> String {
        format!(
            r#"{{"type":"user","uuid":"{uuid}","timestamp":"2026-11-23T03:10:{ts}Z","sessionId":"s1"{extra},"message":{{"role":"user","content":{content}}}}}"#
        )
    }

    fn call(id: &str, ts: &str, block: &str) -> String {
        format!(
            r#"{{"type":"assistant","uuid":"a{id}","timestamp":"2026-11-23T03:10:{ts}Z","sessionId":"s1","requestId":"r{id}","message":{{"id":"m{id}","model":"claude-opus-4-8","content":[{block}],"stop_reason":"end_turn","usage":{{"input_tokens":10,"output_tokens":5}}}}}}"#
        )
    }

    fn traces(records: &[Record]) -> Vec<&Trace> {
        records
            .iter()
            .filter_map(|r| match r {
                Record::Trace(t) if t.name.is_some() => Some(t),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_slash_command_is_a_prompt_only_when_the_model_answers_it() {
        let text = r#"{"type":"text","text":"ok"}"#;
        let local = [
            user(
                "c1",
                "01.000",
                r#""<command-name>/compact</command-name>""#,
                "",
            ),
            user(
                "c2",
                "01.100",
                r#""<local-command-stdout>Compacted</local-command-stdout>""#,
                "",
            ),
            user(
                "m1",
                "01.200",
                r#"[{"type":"text","text":"Continue from where you left off."}]"#,
                r#","isMeta":true"#,
            ),
        ];
        let out = run(&local.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(traces(&out).is_empty());
        let answered = [
            user(
                "c1",
                "01.000",
                r#""<command-name>/review</command-name>""#,
                "",
            ),
            call("1", "02.000", text),
        ];
        let out = run(&answered.iter().map(String::as_str).collect::<Vec<_>>());
        let t = traces(&out);
        assert_eq!(t.len(), 1);
        assert!(t[0].is_prompt);
        assert_eq!(t[0].key, "c1");
    }

    #[test]
    fn interrupted_and_failed_tools_are_errors() {
        let lines = [
            user("p1", "01.000", r#""go""#, ""),
            call(
                "1",
                "02.000",
                r#"{"type":"tool_use","id":"t1","name":"Bash","input":{}}"#,
            ),
            user(
                "r1",
                "03.000",
                r#"[{"type":"tool_result","tool_use_id":"t1","content":"stopped","is_error":false}]"#,
                r#","toolUseResult":{"stdout":"","interrupted":true}"#,
            ),
        ];
        let out = run(&lines.iter().map(String::as_str).collect::<Vec<_>>());
        let tool = observations(&out)
            .into_iter()
            .rfind(|o| o.kind == Kind::Tool)
            .unwrap();
        assert_eq!(tool.level, Some(Level::Error));
        assert_eq!(tool.status_message.as_deref(), Some("interrupted by user"));
    }

    #[test]
    fn an_api_error_line_is_a_failed_generation_without_usage() {
        let lines = [
            user("p1", "01.000", r#""go""#, ""),
            call("1", "02.000", r#"{"type":"text","text":"hi"}"#),
            r#"{"type":"assistant","uuid":"e1","timestamp":"2026-11-23T03:10:03.000Z","sessionId":"s1","requestId":"r9","isApiErrorMessage":true,"message":{"id":"x-uuid","model":"<synthetic>","content":[{"type":"text","text":"API Error: 400 bad"}],"usage":{"input_tokens":0,"output_tokens":0}}}"#.to_string(),
            r#"{"type":"assistant","uuid":"e2","timestamp":"2026-11-23T03:10:04.000Z","sessionId":"s1","isApiErrorMessage":false,"message":{"id":"y-uuid","model":"<synthetic>","content":[{"type":"text","text":"No response requested."}]}}"#.to_string(),
        ];
        let out = run(&lines.iter().map(String::as_str).collect::<Vec<_>>());
        let obs = observations(&out);
        let gens: Vec<_> = obs.iter().filter(|o| o.kind == Kind::Generation).collect();
        assert_eq!(gens.len(), 2, "the filler line is no model call");
        let failed = gens[1];
        assert_eq!(failed.level, Some(Level::Error));
        assert!(failed.usage.is_none());
        assert_eq!(failed.model.as_deref(), Some("claude-opus-4-8"));
        assert_eq!(failed.status_message.as_deref(), Some("API Error: 400 bad"));
        assert!(obs.iter().any(|o| o.name == "synthetic_message"));
    }

    #[test]
    fn lines_copied_into_a_forked_session_are_skipped() {
        let lines = [
            r#"{"type":"queue-operation","operation":"enqueue","timestamp":"2026-11-23T03:10:09.000Z","sessionId":"s1"}"#.to_string(),
            // Copied from the original session: older than the file's first line.
            user("p0", "01.000", r#""old prompt""#, ""),
            call("0", "02.000", r#"{"type":"text","text":"old"}"#),
            user("p1", "10.000", r#""new prompt""#, ""),
            call("1", "11.000", r#"{"type":"text","text":"new"}"#),
        ];
        let out = run(&lines.iter().map(String::as_str).collect::<Vec<_>>());
        let t = traces(&out);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].key, "p1");
        let gens = observations(&out)
            .into_iter()
            .filter(|o| o.kind == Kind::Generation)
            .count();
        assert_eq!(gens, 1);
        let session = out
            .iter()
            .rev()
            .find_map(|r| match r {
                Record::Session(s) => Some(s),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            session.metadata.as_ref().unwrap()["forkCopiedLinesSkipped"],
            2
        );
        assert_eq!(session.start_ms, Some(1_795_403_409_000));
    }

    #[test]
    fn unknown_line_types_are_events() {
        let out = run(&[
            r#"{"type":"brand-new","uuid":"e1","sessionId":"s1","timestamp":"2026-11-23T03:10:03.000Z","x":1}"#,
        ]);
        let obs = observations(&out);
        assert_eq!(obs.len(), 1);
        assert_eq!(obs[0].kind, Kind::Event);
        assert_eq!(obs[0].name, "brand-new");
        assert_eq!(obs[0].metadata.as_ref().unwrap()["line"]["x"], 1);
    }
}
