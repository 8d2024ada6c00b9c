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
