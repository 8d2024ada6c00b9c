//! Gemini CLI chats (format notes and counting rules: `README.md` in this folder).

pub mod format;
pub mod parser;
pub mod paths;

use std::path::Path;

/// Detects a Gemini CLI chat: a `session-*.jsonl` whose first line is the header
/// `{"sessionId","projectHash","startTime",…}`, a `session-*.json` document with `sessionId` and `projectHash`,
/// or a subagent chat (`chats/<main session id>/<agent id>.jsonl`, header `"kind":"subagent"`).
pub fn detect(head: &[u8], path: &Path) -> bool {
    // A JSONL chat's header is its first line; a whole-document chat's, the start of the document. (Looking
    // at one line keeps detection cheap: it runs on every line start of the probe for every new file.)
    let scope = if is_document(path) {
        head
    } else {
        head.split(|b| *b == b'\n').next().unwrap_or(&[])
    };
    let text = String::from_utf8_lossy(scope);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let header = text.contains("\"sessionId\"") && text.contains("\"projectHash\"");
    if name.starts_with("session-") {
        return header;
    }
    // Subagent chats are named by their agent id; only the header tells them apart.
    let first = head.split(|b| *b == b'\n').next().unwrap_or(&[]);
    header
        && !is_document(path)
        && serde_json::from_slice::<serde_json::Value>(first)
            .ok()
            .is_some_and(|v| {
                v.get("kind").and_then(|k| k.as_str()) == Some("subagent")
                    && v.get("sessionId").is_some_and(|s| s.is_string())
                    && v.get("projectHash").is_some_and(|s| s.is_string())
            })
}

/// False for a `.json` file that cannot be a chat document whatever it holds: [`detect`] accepts only
/// `session-*.json` names, so other `.json` files (Claude's subagent `.meta.json`, settings) need not be
/// opened — there were 2,321 of them, opened on every run, in the 1 GB Claude benchmark.
pub fn may_be_document(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("session-"))
}

/// True for the whole-document chat format (`session-*.json`, rewritten in place on every change).
pub fn is_document(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_main_document_and_subagent_chats() {
        let header = br#"{"sessionId":"s1","projectHash":"ab","startTime":"2026-11-23T03:10:32.199Z","lastUpdated":"2026-11-23T03:10:32.199Z","kind":"main"}
"#;
        assert!(detect(
            header,
            Path::new("chats/session-2026-11-23T03-10-s1.jsonl")
        ));
        assert!(detect(
            header,
            Path::new("chats/session-2026-11-23T03-10-s1.json")
        ));
        assert!(!detect(header, Path::new("chats/notes.jsonl")));
        let sub = br#"{"sessionId":"a1","projectHash":"ab","startTime":"2026-11-23T03:10:32.199Z","lastUpdated":"2026-11-23T03:10:32.199Z","kind":"subagent","directories":["/p"]}
"#;
        assert!(detect(sub, Path::new("chats/s1/a1.jsonl")));
        assert!(!detect(sub, Path::new("chats/s1/a1.json")));
        // `.json` files that detect() rejects whatever they hold are not even opened.
        for (name, may) in [
            ("chats/session-2026-11-23T03-10-s1.json", true),
            ("chats/s1/a1.json", false),
            ("subagents/agent-a1.meta.json", false),
        ] {
            assert_eq!(may_be_document(Path::new(name)), may, "{name}");
            if !may {
                assert!(!detect(header, Path::new(name)), "{name}");
            }
        }
        assert!(!detect(
            br#"{"type":"user","sessionId":"x"}"#,
            Path::new("x.jsonl")
        ));
    }
}
