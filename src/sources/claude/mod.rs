//! Claude Code transcripts (format notes and counting rules: `README.md` in this folder).

pub mod cost_state;
pub mod format;
pub mod parser;
pub mod paths;

use std::path::Path;

/// Line types the parser reads (see `README.md` for each).
pub const READ_LINE_TYPES: &[&str] = &[
    "user",
    "assistant",
    "system",
    "attachment",
    "summary",
    "custom-title",
    "ai-title",
    "agent-name",
    "cost-state",
];

/// Line types Claude Code writes that carry nothing to count or show, ignored on purpose (an example of
/// each is in `README.md`). A type in neither list is format drift: kept as an event and named by `doctor`.
pub const IGNORED_LINE_TYPES: &[&str] = &[
    "queue-operation",
    "last-prompt",
    "mode",
    "permission-mode",
    "progress",
    "file-history-snapshot",
    "content-replacement",
    "fork-context-ref",
    // 2.1.3xx: one line per HTTP request (retries included) and pieces of the request payload; an
    // `api-request-blob` carries `message.role` user/assistant but is neither a prompt nor a reply.
    "api-request",
    "api-request-shape",
    "api-request-blob",
    "atis-latch",
    "tools-used",
    "file-history-delta",
];

/// Tools that run a subagent (its calls are written to another transcript).
pub const SUBAGENT_TOOLS: &[&str] = &["Agent", "Task"];

fn is_line_type(ty: &str) -> bool {
    READ_LINE_TYPES.contains(&ty) || IGNORED_LINE_TYPES.contains(&ty)
}

/// Detects a Claude Code transcript from its first line: a JSON object with a `sessionId` (or, for
/// `summary` lines, a `leafUuid`) and a Claude line `type` (`user`, `assistant`, `system`, `summary`,
/// `queue-operation`, `mode`, `file-history-snapshot`, …). A first line longer than the probe (a
/// `file-history-snapshot` or a long prompt) is recognized by its opening bytes.
pub fn detect(head: &[u8], _path: &Path) -> bool {
    let mut lines = head.split(|b| *b == b'\n');
    let Some(first) = lines.next() else {
        return false;
    };
    let complete = lines.next().is_some();
    let trimmed = {
        let start = first
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(first.len());
        &first[start..]
    };
    if trimmed.starts_with(b"{\"type\":\"file-history-snapshot\"") {
        return true;
    }
    match serde_json::from_slice::<serde_json::Value>(first) {
        Ok(v) => {
            let ty = v.get("type").and_then(|t| t.as_str()).unwrap_or("");
            (v.get("sessionId").is_some_and(|s| s.is_string())
                || v.get("leafUuid").is_some()
                || ty == "file-history-snapshot")
                && is_line_type(ty)
        }
        // Cut by the probe: user / assistant lines open with `{"parentUuid":…,"isSidechain":…` (their
        // `type` and `sessionId` can come after a long message).
        Err(_) if !complete => {
            trimmed.starts_with(b"{\"parentUuid\":") && memfind(trimmed, b"\"isSidechain\":")
        }
        Err(_) => false,
    }
}

fn memfind(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_claude_first_lines() {
        let p = Path::new("/x/s.jsonl");
        assert!(detect(
            b"{\"type\":\"queue-operation\",\"operation\":\"enqueue\",\"sessionId\":\"s\"}\n",
            p
        ));
        // `--fork-session` files start with a `mode` line.
        assert!(detect(
            b"{\"type\":\"mode\",\"mode\":\"normal\",\"sessionId\":\"s\"}\n",
            p
        ));
        assert!(detect(
            b"{\"type\":\"summary\",\"summary\":\"t\",\"leafUuid\":\"u\"}\n",
            p
        ));
        // A snapshot or a prompt longer than the probe.
        assert!(detect(
            b"{\"type\":\"file-history-snapshot\",\"messageId\":\"m\",\"snapshot\":{\"trackedFileBackups\":{\"a",
            p
        ));
        assert!(detect(
            b"{\"parentUuid\":null,\"isSidechain\":false,\"promptId\":\"p\",\"type\":\"user\",\"message\":{\"role\":\"user\",\"content\":\"aaaa",
            p
        ));
        assert!(!detect(b"{\"type\":\"session\",\"id\":\"x\"}\n", p));
        assert!(!detect(b"{\"type\":\"user\"}\n", p));
        assert!(!detect(b"not json\n", p));
    }
}
