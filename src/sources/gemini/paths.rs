//! Where Gemini CLI keeps chats: `~/.gemini/tmp/<project hash or name>/chats/session-*.json[l]` (subagent chats:
//! `chats/<main session id>/<agent id>.jsonl`); the project directory of each is in `~/.gemini/projects.json`
//! (`{"projects": {"<project path>": "<folder name under tmp/>"}}`) and in `tmp/<name>/.project_root`.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

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

/// The project temp folder of a chat file (`~/.gemini/tmp/<name>`): the parent of the nearest `chats`
/// ancestor.
pub fn project_temp_dir(chat: &Path) -> Option<PathBuf> {
    chat.ancestors()
        .skip(1)
        .find(|a| a.file_name().is_some_and(|n| n == "chats"))
        .and_then(Path::parent)
        .map(Path::to_path_buf)
}

/// The project directory (the session's cwd) of a chat file, from the files Gemini keeps beside it:
/// `tmp/<name>/.project_root`, else the `projects.json` entry whose folder name is `<name>`, else the
/// `projects.json` path whose sha256 is the chat's `projectHash` (older releases name the folder by the hash).
/// Reads local files only; `None` when nothing matches.
pub fn project_cwd(chat: &Path, project_hash: Option<&str>) -> Option<String> {
    let dir = project_temp_dir(chat)?;
    if let Ok(root) = std::fs::read_to_string(dir.join(".project_root")) {
        let root = root.trim();
        if !root.is_empty() {
            return Some(root.to_string());
        }
    }
    let name = dir.file_name()?.to_string_lossy().into_owned();
    let gemini_dir = dir.parent()?.parent()?;
    let text = std::fs::read_to_string(gemini_dir.join("projects.json")).ok()?;
    let doc: serde_json::Value = serde_json::from_str(&text).ok()?;
    let projects = doc.get("projects")?.as_object()?;
    if let Some((path, _)) = projects.iter().find(|(_, v)| v.as_str() == Some(&name)) {
        return Some(path.clone());
    }
    let hash = project_hash.unwrap_or(&name);
    projects
        .keys()
        .find(|path| sha256_hex(path) == hash)
        .cloned()
}

fn sha256_hex(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_hash_is_sha256_of_the_root() {
        // projectHash of ../shared/corpus/gemini/gemini-0.61.0/run1-simple
        assert_eq!(
            sha256_hex("/tmp/agents/runs/gemini-run1/project"),
            "f76dbf0473be40c8cd9504575553948a854b353ae080be21c7bb89659a92ba92"
        );
    }

    #[test]
    fn cwd_comes_from_project_root_then_projects_json() {
        let home = tempfile::tempdir().unwrap();
        let g = home.path().join(".gemini");
        let chats = g.join("tmp/proj/chats");
        std::fs::create_dir_all(chats.join("parent-id")).unwrap();
        let chat = chats.join("session-x.jsonl");
        assert_eq!(project_cwd(&chat, None), None);
        std::fs::write(
            g.join("projects.json"),
            r#"{"projects":{"/work/a":"other","/work/proj":"proj"}}"#,
        )
        .unwrap();
        assert_eq!(project_cwd(&chat, None).as_deref(), Some("/work/proj"));
        assert_eq!(
            project_cwd(&chats.join("parent-id/agent.jsonl"), None).as_deref(),
            Some("/work/proj"),
            "subagent chats live one folder deeper"
        );
        // A folder named by the hash (older releases): matched through projectHash.
        let hashed = g
            .join("tmp")
            .join(sha256_hex("/work/a"))
            .join("chats/s.jsonl");
        assert_eq!(
            project_cwd(&hashed, Some(&sha256_hex("/work/a"))).as_deref(),
            Some("/work/a")
        );
        std::fs::write(g.join("tmp/proj/.project_root"), "/elsewhere/proj\n").unwrap();
        assert_eq!(project_cwd(&chat, None).as_deref(), Some("/elsewhere/proj"));
    }
}
