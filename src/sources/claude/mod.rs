//! Claude Code transcripts (format notes and counting rules: `README.md` in this folder).

pub mod format;
pub mod parser;
pub mod paths;

use std::path::Path;

/// Line types Claude Code writes at the top level of a transcript.
const LINE_TYPES: [&str; 16] = [
    "user",
    "assistant",
    "system",
    "summary",
    "queue-operation",
    "file-history-snapshot",
    "attachment",
    "last-prompt",
    "mode",
    "permission-mode",
    "custom-title",
    "ai-title",
    "progress",
    "content-replacement",
    "fork-context-ref",
    "agent-name",
];

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
                && LINE_TYPES.contains(&ty)
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
