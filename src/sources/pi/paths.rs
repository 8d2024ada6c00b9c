//! Where pi and oh-my-pi keep their session files.
//!
//! pi (`packages/coding-agent/src/config.ts`): `$PI_CODING_AGENT_DIR` (default `~/.pi/agent`)`/sessions/
//! --<cwd>--/<ts>_<id>.jsonl`; `$PI_CODING_AGENT_SESSION_DIR` is used as a flat session directory.
//! oh-my-pi: `~/.omp/agent/sessions/<bucket>/<ts>_<id>.jsonl`.

use std::path::PathBuf;

use super::super::{Env, Root};
use crate::model::Agent;

/// pi's session roots.
pub fn pi_roots(env: &Env) -> Vec<Root> {
    let mut roots = Vec::new();
    if let Some(dir) = env.var("PI_CODING_AGENT_DIR") {
        roots.push(Root {
            agent: Some(Agent::Pi),
            dir: PathBuf::from(dir).join("sessions"),
            origin: "$PI_CODING_AGENT_DIR/sessions".into(),
        });
    } else if let Some(home) = &env.home {
        roots.push(Root {
            agent: Some(Agent::Pi),
            dir: home.join(".pi/agent/sessions"),
            origin: "default (~/.pi/agent/sessions)".into(),
        });
    }
    if let Some(dir) = env.var("PI_CODING_AGENT_SESSION_DIR") {
        roots.push(Root {
            agent: Some(Agent::Pi),
            dir: PathBuf::from(dir),
            origin: "$PI_CODING_AGENT_SESSION_DIR".into(),
        });
    }
    roots
}

/// oh-my-pi's session roots.
pub fn omp_roots(env: &Env) -> Vec<Root> {
    env.home
        .iter()
        .map(|home| Root {
            agent: Some(Agent::Omp),
            dir: home.join(".omp/agent/sessions"),
            origin: "default (~/.omp/agent/sessions)".into(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_the_default_pi_dir() {
        let mut env = Env {
            home: Some(PathBuf::from("/home/u")),
            ..Env::default()
        };
        assert_eq!(
            pi_roots(&env)[0].dir,
            PathBuf::from("/home/u/.pi/agent/sessions")
        );
        env.vars
            .insert("PI_CODING_AGENT_DIR".into(), "/x/agent".into());
        env.vars
            .insert("PI_CODING_AGENT_SESSION_DIR".into(), "/flat".into());
        let dirs: Vec<_> = pi_roots(&env).into_iter().map(|r| r.dir).collect();
        assert_eq!(
            dirs,
            vec![PathBuf::from("/x/agent/sessions"), PathBuf::from("/flat")]
        );
        assert_eq!(
            omp_roots(&env)[0].dir,
            PathBuf::from("/home/u/.omp/agent/sessions")
        );
    }
}
