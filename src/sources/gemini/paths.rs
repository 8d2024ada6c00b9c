//! Where Gemini CLI keeps chats: `~/.gemini/tmp/<project hash or name>/chats/session-*.json[l]`; the project
//! directory of each is in `~/.gemini/projects.json`.

use crate::model::Agent;
use crate::sources::{Env, Root};

/// Gemini's chat root.
pub fn roots(env: &Env) -> Vec<Root> {
    env.home
        .iter()
        .map(|home| Root {
            agent: Some(Agent::Gemini),
            dir: home.join(".gemini/tmp"),
            origin: "default (~/.gemini/tmp)".into(),
        })
        .collect()
}
