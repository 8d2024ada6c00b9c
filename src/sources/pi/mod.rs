//! pi and oh-my-pi session files (format notes and counting rules: `README.md` in this folder).

pub mod format;
pub mod parser;
pub mod paths;

use std::path::Path;

use crate::model::Agent;

/// Detects a pi or oh-my-pi session file from its first bytes.
///
/// pi files start with the header `{"type":"session",…}`; oh-my-pi files start with a 256-byte title slot
/// `{"type":"title",…}` followed by the header. An oh-my-pi header without the title slot is told apart by
/// its location under `.omp/`.
pub fn detect(head: &[u8], path: &Path) -> Option<Agent> {
    let mut lines = head.split(|b| *b == b'\n');
    let first = lines.next()?;
    // `pi --mode json` output also starts with the session header, followed by events, not entries.
    let second = if first.starts_with(b"{\"type\":\"title\"") {
        lines.nth(1)
    } else {
        lines.next()
    };
    if second.is_some_and(is_stream_event) {
        return None;
    }
    let first: serde_json::Value = match serde_json::from_slice(first) {
        Ok(v) => v,
        // A header longer than the probe: fall back to a prefix check.
        Err(_) => {
            let text = String::from_utf8_lossy(first);
            let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            return if compact.starts_with("{\"type\":\"title\"") {
                Some(Agent::Omp)
            } else if compact.starts_with("{\"type\":\"session\"") {
                Some(pi_or_omp(path))
            } else {
                None
            };
        }
    };
    match first.get("type").and_then(|t| t.as_str()) {
        Some("title") => Some(Agent::Omp),
        Some("session") if first.get("cwd").is_some() || first.get("id").is_some() => {
            Some(pi_or_omp(path))
        }
        _ => None,
    }
}

/// True for a line of pi's JSON / RPC event stream (`AgentSessionEvent`), which session files never contain.
fn is_stream_event(line: &[u8]) -> bool {
    // pi `AgentSessionEvent`s, plus oh-my-pi's JSON-mode extras (`src/session/agent-session-events.ts`).
    const EVENTS: [&str; 18] = [
        "agent_",
        "turn_",
        "message_start",
        "message_update",
        "message_end",
        "tool_execution_",
        "auto_retry_",
        "compaction_start",
        "compaction_end",
        "queue_update",
        "entry_appended",
        "summarization_",
        "bash_execution_",
        "extension_",
        "advisor_",
        "model_changed",
        "notice",
        "irc_message",
    ];
    let Some(rest) = line.strip_prefix(b"{\"type\":\"") else {
        return false;
    };
    EVENTS.iter().any(|e| rest.starts_with(e.as_bytes()))
}

/// Entry types of a pi / oh-my-pi session file after its header.
pub(crate) const ENTRY_TYPES: &[&str] = &[
    "message",
    "model_change",
    "thinking_level_change",
    "compaction",
    "branch_summary",
    "label",
    "session_info",
    "custom",
    "custom_message",
    "context_edit",
    "usage",
];

/// Detects a pi / oh-my-pi session whose header is lost from one of its entries: a JSON object with a pi
/// entry `type`, an `id` and a `timestamp` (session format v2/v3), that is not an event of pi's JSON stream.
pub fn detect_entry(line: &[u8], path: &Path) -> Option<Agent> {
    if is_stream_event(line) {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    let ty = v.get("type")?.as_str()?;
    (ENTRY_TYPES.contains(&ty)
        && v.get("id").is_some_and(|i| i.is_string())
        && v.get("timestamp").is_some()
        && v.get("sessionId").is_none())
    .then(|| pi_or_omp(path))
}

fn pi_or_omp(path: &Path) -> Agent {
    if path.components().any(|c| c.as_os_str() == ".omp") {
        Agent::Omp
    } else {
        Agent::Pi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_pi_and_omp_from_content() {
        let p = Path::new("/x/s.jsonl");
        assert_eq!(
            detect(
                b"{\"type\":\"session\",\"version\":3,\"id\":\"a\",\"cwd\":\"/t\"}\n",
                p
            ),
            Some(Agent::Pi)
        );
        assert_eq!(
            detect(
                b"{\"type\":\"title\",\"v\":1,\"title\":\"\"}\n{\"type\":\"session\"}\n",
                p
            ),
            Some(Agent::Omp)
        );
        assert_eq!(
            detect(b"{\"type\":\"user\",\"sessionId\":\"x\"}\n", p),
            None
        );
        assert_eq!(detect(b"not json", p), None);
        // `pi --mode json` output: a header, then events.
        assert_eq!(
            detect(
                b"{\"type\":\"session\",\"id\":\"a\",\"cwd\":\"/t\"}\n{\"type\":\"agent_start\"}\n",
                p
            ),
            None
        );
    }
}
