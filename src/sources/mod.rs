//! Agent sources: find session files, detect their agent, and turn their lines into model records.
//!
//! One module per agent (`pi` also reads oh-my-pi, whose files are pi's format with extras). A source reads
//! bytes and yields [`Record`]s; it does no network or database I/O. A parser's state between chunks is
//! serializable ([`Parser::checkpoint`]) so an import can resume at a byte offset.

pub mod claude;
pub mod codex;
pub mod drift;
pub mod gemini;
pub mod pi;
pub mod reader;

use std::path::{Path, PathBuf};

use crate::model::{Agent, Record};
pub use reader::LineIssue;

/// A session file found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredFile {
    pub path: PathBuf,
    pub agent: Agent,
}

/// One place where an agent keeps sessions, as `doctor` shows it.
#[derive(Debug, Clone)]
pub struct Root {
    /// The agent whose default location this is; `None` for `--path` (any agent, detected per file).
    pub agent: Option<Agent>,
    pub dir: PathBuf,
    /// Why this place is searched (`$PI_CODING_AGENT_DIR`, default, `--path`).
    pub origin: String,
}

/// The environment discovery reads. Captured once so tests can pass their own.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub home: Option<PathBuf>,
    pub vars: std::collections::HashMap<String, String>,
}

impl Env {
    /// The process environment.
    pub fn from_process() -> Env {
        Env {
            home: std::env::var_os("HOME").map(PathBuf::from),
            vars: std::env::vars().collect(),
        }
    }

    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// Default session locations of every agent in `agents`.
pub fn default_roots(env: &Env, agents: &[Agent]) -> Vec<Root> {
    let mut roots = Vec::new();
    for agent in agents {
        match agent {
            Agent::Pi => roots.extend(pi::paths::pi_roots(env)),
            Agent::Omp => roots.extend(pi::paths::omp_roots(env)),
            Agent::Claude => roots.extend(claude::paths::roots(env)),
            Agent::Codex => roots.extend(codex::paths::roots(env)),
            Agent::Gemini => roots.extend(gemini::paths::roots(env)),
        }
    }
    roots
}

/// Walks `roots` and returns every session file, each tagged with the agent detected from its content.
/// Files of agents not in `agents` are left out. Unreadable entries are skipped (a root may not exist).
pub fn discover(roots: &[Root], agents: &[Agent]) -> Vec<DiscoveredFile> {
    discover_with(roots, agents, |_| None)
}

/// Like [`discover`], but asks `known` first: a file whose agent is already known (imported before) is not
/// opened again, so a run with nothing new costs one directory walk.
pub fn discover_with(
    roots: &[Root],
    agents: &[Agent],
    known: impl Fn(&Path) -> Option<Agent>,
) -> Vec<DiscoveredFile> {
    let mut files = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for root in roots {
        for entry in walkdir::WalkDir::new(&root.dir)
            .follow_links(true)
            .sort_by_file_name()
            .into_iter()
            .filter_map(Result::ok)
        {
            if !entry.file_type().is_file() {
                continue;
            }
            let path = entry.path();
            if !matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("jsonl" | "json")
            ) {
                continue;
            }
            if let Some(agent) = known(path).or_else(|| detect(path)) {
                if agents.contains(&agent) && seen.insert(path.to_path_buf()) {
                    files.push(DiscoveredFile {
                        path: path.to_path_buf(),
                        agent,
                    });
                }
            }
        }
    }
    files
}

/// Detects the agent that wrote a file from its first bytes (not from the folder name).
pub fn detect(path: &Path) -> Option<Agent> {
    use std::io::Read;
    let mut head = [0u8; 4096];
    let mut file = std::fs::File::open(path).ok()?;
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return None,
        }
    }
    let head = &head[..n];
    let is_json = path.extension().is_some_and(|e| e == "json");
    if is_json {
        // Only Gemini writes whole-document `.json` chats; other `.json` files (settings, Claude's subagent
        // `.meta.json`) are not sessions.
        return gemini::detect(head, path).then_some(Agent::Gemini);
    }
    if let Some(agent) = pi::detect(head, path) {
        return Some(agent);
    }
    if codex::detect(head, path) {
        return Some(Agent::Codex);
    }
    if gemini::detect(head, path) {
        return Some(Agent::Gemini);
    }
    if claude::detect(head, path) {
        return Some(Agent::Claude);
    }
    None
}

/// A parser for one file, resumable from a checkpoint.
pub enum Parser {
    Pi(Box<pi::parser::PiParser>),
    Claude(Box<claude::parser::ClaudeParser>),
    Codex(Box<codex::parser::CodexParser>),
    Gemini(Box<gemini::parser::GeminiParser>),
}

impl Parser {
    /// A fresh parser for a file read from its first byte.
    pub fn new(agent: Agent, path: &Path) -> Parser {
        match agent {
            Agent::Pi | Agent::Omp => Parser::Pi(Box::new(pi::parser::PiParser::new(agent, path))),
            Agent::Claude => Parser::Claude(Box::new(claude::parser::ClaudeParser::new(path))),
            Agent::Codex => Parser::Codex(Box::new(codex::parser::CodexParser::new(path))),
            Agent::Gemini => Parser::Gemini(Box::new(gemini::parser::GeminiParser::new(path))),
        }
    }

    /// True when the file is one JSON document rewritten as a whole (Gemini `session-*.json`): it is re-read
    /// completely whenever it changes and fed to [`Parser::line`] as a single line.
    pub fn is_document(agent: Agent, path: &Path) -> bool {
        agent == Agent::Gemini && gemini::is_document(path)
    }

    /// A parser resumed from [`Parser::checkpoint`]; a checkpoint that does not load gives `None`
    /// (the caller then re-reads the file from the start).
    pub fn resume(agent: Agent, path: &Path, checkpoint: &str) -> Option<Parser> {
        match agent {
            Agent::Pi | Agent::Omp => pi::parser::PiParser::resume(agent, path, checkpoint)
                .map(|p| Parser::Pi(Box::new(p))),
            Agent::Claude => claude::parser::ClaudeParser::resume(path, checkpoint)
                .map(|p| Parser::Claude(Box::new(p))),
            Agent::Codex => codex::parser::CodexParser::resume(path, checkpoint)
                .map(|p| Parser::Codex(Box::new(p))),
            Agent::Gemini => gemini::parser::GeminiParser::resume(path, checkpoint)
                .map(|p| Parser::Gemini(Box::new(p))),
        }
    }

    /// Feeds one complete line. Problems with the line are pushed to `issues`; records to `out`.
    pub fn line(
        &mut self,
        line: &reader::Line<'_>,
        out: &mut Vec<Record>,
        issues: &mut Vec<LineIssue>,
    ) {
        match self {
            Parser::Pi(p) => p.line(line, out, issues),
            Parser::Claude(p) => p.line(line, out, issues),
            Parser::Codex(p) => p.line(line, out, issues),
            Parser::Gemini(p) => p.line(line, out, issues),
        }
    }

    /// Called after each chunk: pushes records that summarize what changed (session end time, …).
    pub fn end_chunk(&mut self, out: &mut Vec<Record>) {
        match self {
            Parser::Pi(p) => p.end_chunk(out),
            Parser::Claude(p) => p.end_chunk(out),
            Parser::Codex(p) => p.end_chunk(out),
            Parser::Gemini(p) => p.end_chunk(out),
        }
    }

    /// Serialized state needed to continue after the last line fed.
    pub fn checkpoint(&self) -> String {
        match self {
            Parser::Pi(p) => p.checkpoint(),
            Parser::Claude(p) => p.checkpoint(),
            Parser::Codex(p) => p.checkpoint(),
            Parser::Gemini(p) => p.checkpoint(),
        }
    }
}
