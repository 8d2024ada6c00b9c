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
pub mod walk;

use std::path::{Path, PathBuf};

use crate::model::{Agent, Record};
pub use reader::LineIssue;
pub use walk::FileStat;

/// A session file found on disk.
#[derive(Debug, Clone)]
pub struct DiscoveredFile {
    pub path: PathBuf,
    pub agent: Agent,
    /// What `stat` said when discovery saw the file; `None`: the import stats it itself. (Taken in the walk,
    /// where it is cheapest; a file that grew since is read to its end all the same, and its new size seen
    /// next time.)
    pub stat: Option<FileStat>,
}

impl DiscoveredFile {
    /// Its `stat`: what discovery saw, else a `stat` now (following links).
    pub fn stat(&self) -> std::io::Result<FileStat> {
        match self.stat {
            Some(stat) => Ok(stat),
            None => FileStat::of(&self.path),
        }
    }
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

/// A file or folder under a session root that could not be imported, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    /// The agent whose location it is in (`None` under `--path`).
    pub agent: Option<Agent>,
    pub kind: ProblemKind,
    /// What went wrong, for people (`permission denied`, `no line … looks like a Claude Code session`).
    pub reason: String,
}

/// Why a file was not imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// Permission denied or an I/O error: the file (or a whole folder) could not be read.
    Unreadable,
    /// A `.jsonl` file in an agent's session folder that does not read as that agent's session.
    Unrecognized,
}

/// What a walk of the session roots found.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    pub files: Vec<DiscoveredFile>,
    pub problems: Vec<Problem>,
}

/// Walks `roots` and returns every session file, each tagged with the agent detected from its content.
/// Files of agents not in `agents` are left out. A root that does not exist is not a problem (the agent may
/// not be installed); what could not be read or recognised is left out here (see [`scan`]).
pub fn discover(roots: &[Root], agents: &[Agent]) -> Vec<DiscoveredFile> {
    scan(roots, agents, |_| None).files
}

/// Like [`discover`], but also returns the problems, and asks `known` first: a file whose agent is already
/// known (imported before) is not opened again, so a run with nothing new costs one directory walk.
pub fn scan(roots: &[Root], agents: &[Agent], known: impl Fn(&Path) -> Option<Agent>) -> Discovery {
    classify(roots, walk_roots(roots), agents, known)
}

/// The walks of [`scan`], one per root (`None` for a root that does not exist: the agent may not be
/// installed). Touches only the file system: a caller can read the store meanwhile.
pub fn walk_roots(roots: &[Root]) -> Vec<Option<walk::Walk>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    roots
        .iter()
        .map(|root| root.dir.exists().then(|| walk::walk(&root.dir, threads)))
        .collect()
}

/// The second half of [`scan`]: the agent of each file the walks found.
pub fn classify(
    roots: &[Root],
    walks: Vec<Option<walk::Walk>>,
    agents: &[Agent],
    known: impl Fn(&Path) -> Option<Agent>,
) -> Discovery {
    let mut out = Discovery::default();
    out.files
        .reserve(walks.iter().flatten().map(|w| w.files.len()).sum());
    // The same file under two roots (one inside the other) is imported once. Keyed by the path's bytes:
    // hashing a `Path` walks its components. Only nested roots can find a path twice: the set is left out
    // otherwise (a hash and a copy of each path, ~1 ms of a `status` call on the 1 GB benchmark).
    let nested = roots.iter().enumerate().any(|(i, a)| {
        roots
            .iter()
            .enumerate()
            .any(|(j, b)| i != j && b.dir.starts_with(&a.dir))
    });
    let mut seen: std::collections::HashSet<std::ffi::OsString> = std::collections::HashSet::new();
    for (root, walked) in roots.iter().zip(walks) {
        let Some(walked) = walked else {
            continue;
        };
        for (path, reason) in walked.errors {
            // Permission denied on a folder, a dangling link, a link loop, an I/O error: say so.
            out.problems.push(Problem {
                path,
                agent: root.agent,
                kind: ProblemKind::Unreadable,
                reason,
            });
        }
        for walk::Found {
            path: path_buf,
            stat,
        } in walked.files
        {
            let path = path_buf.as_path();
            let agent = match known(path) {
                Some(a) => Ok(Some(a)),
                None => detect_file(path),
            };
            match agent {
                Ok(Some(agent)) => {
                    if agents.contains(&agent)
                        && (!nested || seen.insert(path.as_os_str().to_owned()))
                    {
                        out.files.push(DiscoveredFile {
                            path: path_buf,
                            agent,
                            stat: Some(stat),
                        });
                    }
                }
                Ok(None) => {
                    // Only `.jsonl` files in an agent's own folder are expected to be sessions (`.json`
                    // there are settings or subagent metadata; `--path` folders hold anything).
                    if let Some(a) = root.agent.filter(|a| {
                        path.extension().and_then(|e| e.to_str()) == Some("jsonl")
                            && agents.contains(a)
                    }) {
                        out.problems.push(Problem {
                            path: path.to_path_buf(),
                            agent: Some(a),
                            kind: ProblemKind::Unrecognized,
                            reason: format!(
                                "no line in its first {} KiB reads as a {} session line",
                                PROBE / 1024,
                                a
                            ),
                        });
                    }
                }
                Err(e) => out.problems.push(Problem {
                    path: path.to_path_buf(),
                    agent: root.agent,
                    kind: ProblemKind::Unreadable,
                    reason: e.to_string(),
                }),
            }
        }
    }
    out
}

/// Bytes of a file read to recognise its agent.
const PROBE: usize = 64 * 1024;
/// Bytes read first: enough for the first lines of most files ([`detect_file`]).
const SMALL_PROBE: usize = 8 * 1024;
/// Lines tried, from the first, before giving up on content.
const PROBE_LINES: usize = 64;

/// Detects the agent that wrote a file from its content (not from the folder name); `None` when unreadable
/// or unrecognised.
pub fn detect(path: &Path) -> Option<Agent> {
    detect_file(path).ok().flatten()
}

/// Detects the agent from the first **recognisable** line, so that a damaged first line (garbage before it,
/// cut in half, a line type a newer release added) does not hide the session; then from entry lines without
/// their header (a pi header or Codex `session_meta` that was lost). Errors: the file cannot be read.
pub fn detect_file(path: &Path) -> std::io::Result<Option<Agent>> {
    use std::io::Read;
    let document = path.extension().is_some_and(|e| e == "json");
    if document && !gemini::may_be_document(path) {
        return Ok(None);
    }
    let mut file = std::fs::File::open(path)?;
    let mut head = Vec::with_capacity(SMALL_PROBE);
    (&mut file)
        .take(SMALL_PROBE as u64)
        .read_to_end(&mut head)?;
    if head.len() == SMALL_PROBE {
        // Most files tell their agent in their first line: reading 64 KiB of each of 8,000 new files cost the
        // cold 1 GB benchmark 0.5 GB of copying on the writer thread. The short probe decides only for JSONL
        // files whose first two lines are complete and whose first is recognised (the detectors look at
        // those two).
        let complete = head.iter().rposition(|b| *b == b'\n');
        let two_lines = head.iter().filter(|b| **b == b'\n').nth(1).is_some();
        if let (false, Some(end), true) = (document, complete, two_lines) {
            if let Some(agent) = detect_head(&head[..=end], path) {
                return Ok(Some(agent));
            }
        }
        file.take((PROBE - SMALL_PROBE) as u64)
            .read_to_end(&mut head)?;
    }
    Ok(detect_bytes(&head, path))
}

/// [`detect_file`] on the first bytes of a file.
fn detect_bytes(head: &[u8], path: &Path) -> Option<Agent> {
    let is_json = path.extension().is_some_and(|e| e == "json");
    if is_json {
        // Only Gemini writes whole-document `.json` chats; other `.json` files (settings, Claude's subagent
        // `.meta.json`) are not sessions.
        return gemini::detect(head, path).then_some(Agent::Gemini);
    }
    let mut start = 0;
    for _ in 0..PROBE_LINES {
        if start >= head.len() {
            break;
        }
        if let Some(agent) = detect_head(&head[start..], path) {
            return Some(agent);
        }
        match head[start..].iter().position(|b| *b == b'\n') {
            Some(i) => start += i + 1,
            None => break,
        }
    }
    head.split(|b| *b == b'\n')
        .take(PROBE_LINES)
        .find_map(|line| {
            pi::detect_entry(line, path)
                .or_else(|| codex::detect_entry(line).then_some(Agent::Codex))
        })
}

/// Detects the agent from a head that starts at a line boundary (each source looks at its first line).
fn detect_head(head: &[u8], path: &Path) -> Option<Agent> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn root(dir: PathBuf) -> Root {
        Root {
            agent: Some(Agent::Pi),
            dir,
            origin: "test".into(),
        }
    }

    #[test]
    fn a_file_under_nested_roots_is_found_once() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path();
        for file in ["a/1.jsonl", "a/b/2.jsonl", "c/3.jsonl"] {
            std::fs::create_dir_all(top.join(file).parent().unwrap()).unwrap();
            std::fs::write(top.join(file), "{}\n").unwrap();
        }
        let found = |dirs: &[&str]| -> Vec<String> {
            let roots: Vec<Root> = dirs.iter().map(|d| root(top.join(d))).collect();
            scan(&roots, &[Agent::Pi], |_| Some(Agent::Pi))
                .files
                .iter()
                .map(|f| f.path.strip_prefix(top).unwrap().display().to_string())
                .collect()
        };
        // Nested (either order, or the same folder twice): each file once.
        assert_eq!(found(&["a", "a/b"]), ["a/1.jsonl", "a/b/2.jsonl"]);
        assert_eq!(found(&["a/b", "a"]), ["a/b/2.jsonl", "a/1.jsonl"]);
        assert_eq!(found(&["c", "c"]), ["c/3.jsonl"]);
        // Side by side: all of both.
        assert_eq!(
            found(&["a", "c"]),
            ["a/1.jsonl", "a/b/2.jsonl", "c/3.jsonl"]
        );
    }
}
