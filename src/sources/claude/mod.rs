//! Claude Code transcripts (format notes and counting rules: `README.md` in this folder).

pub mod parser;
pub mod paths;

use std::path::Path;

/// Detects a Claude Code transcript from its first line: a JSON object with a `sessionId` and a Claude line
/// `type` (`user`, `assistant`, `system`, `summary`, `queue-operation`, `file-history-snapshot`, …).
pub fn detect(head: &[u8], _path: &Path) -> bool {
    let Some(first) = head.split(|b| *b == b'\n').next() else {
        return false;
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(first) else {
        return false;
    };
    let ty = v.get("type").and_then(|t| t.as_str()).unwrap_or("");
    (v.get("sessionId").is_some() || v.get("leafUuid").is_some() || ty == "file-history-snapshot")
        && matches!(
            ty,
            "user"
                | "assistant"
                | "system"
                | "summary"
                | "queue-operation"
                | "file-history-snapshot"
                | "attachment"
                | "last-prompt"
        )
}
