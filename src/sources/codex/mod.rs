//! Codex CLI rollouts (format notes and counting rules: `README.md` in this folder).

pub mod format;
pub mod parser;
pub mod paths;

use std::path::Path;

/// Detects a Codex rollout from its first line: `{"timestamp":…,"type":"session_meta","payload":{…}}`.
pub fn detect(head: &[u8], _path: &Path) -> bool {
    let Some(first) = head.split(|b| *b == b'\n').next() else {
        return false;
    };
    // session_meta lines carry the whole base instructions and can exceed the probe: check the prefix.
    let text = String::from_utf8_lossy(first);
    text.contains("\"type\":\"session_meta\"") && text.trim_start().starts_with('{')
}

/// Detects a rollout whose `session_meta` line is lost from one of its other lines: a JSON object with a
/// `timestamp`, a rollout line `type` and a `payload` object.
pub fn detect_entry(line: &[u8]) -> bool {
    const TYPES: &[&str] = &[
        "response_item",
        "event_msg",
        "turn_context",
        "compacted",
        "token_usage_record",
        "world_state",
    ];
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
        return false;
    };
    v.get("timestamp").is_some()
        && v.get("payload").is_some_and(|p| p.is_object())
        && v.get("type")
            .and_then(|t| t.as_str())
            .is_some_and(|t| TYPES.contains(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_rollouts_from_their_first_line() {
        let p = Path::new("/x/rollout.jsonl");
        assert!(detect(
            b"{\"timestamp\":\"2026-11-23T03:10:16.087Z\",\"ordinal\":0,\"type\":\"session_meta\",\"payload\":{\"id\":\"a\",\"base_instr",
            p
        ));
        assert!(!detect(b"{\"type\":\"session\",\"id\":\"a\"}\n", p));
        assert!(!detect(
            b"{\"timestamp\":\"t\",\"type\":\"event_msg\"}\n{\"type\":\"session_meta\"}",
            p
        ));
    }
}
