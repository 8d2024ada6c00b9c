//! Where Claude Code keeps transcripts: `$CLAUDE_CONFIG_DIR` (comma-separated list) else `~/.claude` and
//! `~/.config/claude`, each `/projects/<project>/<session>.jsonl` (+ `<session>/subagents/agent-*.jsonl`).

use std::path::PathBuf;

use crate::model::Agent;
use crate::sources::{Env, Root};

/// Claude Code's transcript roots.
pub fn roots(env: &Env) -> Vec<Root> {
    let root = |dir: PathBuf, origin: &str| Root {
        agent: Some(Agent::Claude),
        dir: dir.join("projects"),
        origin: origin.to_string(),
    };
    if let Some(dirs) = env.var("CLAUDE_CONFIG_DIR") {
        return dirs
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| root(PathBuf::from(d), "$CLAUDE_CONFIG_DIR/projects"))
            .collect();
    }
    let Some(home) = &env.home else {
        return Vec::new();
    };
    vec![
        root(home.join(".claude"), "default (~/.claude/projects)"),
        root(
            home.join(".config/claude"),
            "default (~/.config/claude/projects)",
        ),
    ]
}
