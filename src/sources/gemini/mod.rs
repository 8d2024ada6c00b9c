//! Gemini CLI chats (format notes and counting rules: `README.md` in this folder).

pub mod parser;
pub mod paths;

use std::path::Path;

/// Detects a Gemini CLI chat: a `session-*.jsonl` whose first line is the header
/// `{"sessionId","projectHash","startTime",…}`, or a `session-*.json` document with `sessionId` and `messages`.
pub fn detect(head: &[u8], path: &Path) -> bool {
    let text = String::from_utf8_lossy(head);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.starts_with("session-")
        && text.contains("\"sessionId\"")
        && text.contains("\"projectHash\"")
}

/// True for the whole-document chat format (`session-*.json`, rewritten in place on every change).
pub fn is_document(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "json")
}
