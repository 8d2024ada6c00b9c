//! Where Codex CLI keeps rollouts: `$CODEX_HOME` (default `~/.codex`)`/sessions/YYYY/MM/DD/rollout-*.jsonl`
//! and `archived_sessions/`.

use std::path::PathBuf;

use crate::model::Agent;
use crate::sources::{Env, Root};

/// Codex's rollout roots (`sessions/` first: it wins over an archived copy).
pub fn roots(env: &Env) -> Vec<Root> {
    let (home, origin) = match env.var("CODEX_HOME") {
        Some(h) => (PathBuf::from(h), "$CODEX_HOME"),
        None => match &env.home {
            Some(h) => (h.join(".codex"), "default (~/.codex)"),
            None => return Vec::new(),
        },
    };
    ["sessions", "archived_sessions"]
        .into_iter()
        .map(|sub| Root {
            agent: Some(Agent::Codex),
            dir: home.join(sub),
            origin: format!("{origin}/{sub}"),
        })
        .collect()
}
