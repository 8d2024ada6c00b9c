//! Deterministic trace and span ids (DESIGN §4).
//!
//! `trace_id = hex(sha256("tokentrace/v1|" + agent + "|" + session_id + "|" + prompt_key))[0..32]`
//! `span_id  = hex(sha256("tokentrace/v1|" + agent + "|" + session_id + "|" + observation_key))[0..16]`
//!
//! The keys are the agent's own ids (pi entry id, tool call id, …), so re-importing or re-exporting the same
//! file always yields the same ids and backends replace rather than duplicate.

use sha2::{Digest, Sha256};

fn hashed_hex(agent: &str, session_id: &str, key: &str, hex_len: usize) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"tokentrace/v1|");
    hasher.update(agent.as_bytes());
    hasher.update(b"|");
    hasher.update(session_id.as_bytes());
    hasher.update(b"|");
    hasher.update(key.as_bytes());
    let digest = hasher.finalize();
    let mut out = String::with_capacity(hex_len);
    for byte in digest.iter().take(hex_len / 2) {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// 32 lowercase hex chars (a 128-bit OTLP trace id) for one prompt of one session.
pub fn trace_id(agent: &str, session_id: &str, prompt_key: &str) -> String {
    hashed_hex(agent, session_id, prompt_key, 32)
}

/// 16 lowercase hex chars (a 64-bit OTLP span id) for one observation of one session.
pub fn span_id(agent: &str, session_id: &str, observation_key: &str) -> String {
    hashed_hex(agent, session_id, observation_key, 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_design_formula() {
        // `printf 'tokentrace/v1|pi|s1|p1' | sha256sum` = dda38f880f9428409156347d81fe2ca5…
        let t = trace_id("pi", "s1", "p1");
        assert_eq!(t, "dda38f880f9428409156347d81fe2ca5");
        assert_eq!(span_id("pi", "s1", "p1"), t[..16]);
        assert_ne!(trace_id("pi", "s1", "p2"), t);
        assert_ne!(trace_id("omp", "s1", "p1"), t);
    }
}
