//! Codex CLI rollouts (format notes and counting rules: `README.md` in this folder).

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
