//! Replays recorded sessions the way the agents wrote them: line by line, in the order of their timestamps
//! (the `watch` and `status` tests).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How an agent writes a line.
#[derive(Clone, Copy, PartialEq)]
pub enum Style {
    /// One write per line (pi, Codex).
    Whole,
    /// A line in several small writes (Claude Code's appends as the test saw them: a partial line must wait).
    Pieces,
}

/// One line to write: into which file (relative to the agent folder), when (the line's own timestamp, for
/// the order across a run's files) and how.
pub struct Line {
    pub file: PathBuf,
    pub at: String,
    pub bytes: Vec<u8>,
    pub style: Style,
}

/// The lines of every `.jsonl` file of a recorded run's `home/`, in the order the agent wrote them (by
/// their `timestamp`; a line without one follows the line before it). Other files (subagent `.meta.json`)
/// are copied at once.
pub fn lines_of(run: &Path, out: &Path, style: Style) -> Vec<Line> {
    let home = run.join("home");
    let mut all = Vec::new();
    for entry in walkdir::WalkDir::new(&home).sort_by_file_name() {
        let entry = entry.unwrap();
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry.path().strip_prefix(&home).unwrap().to_path_buf();
        if entry.path().extension().is_none_or(|e| e != "jsonl") {
            let to = out.join(&rel);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(entry.path(), to).unwrap();
            continue;
        }
        let content = std::fs::read(entry.path()).unwrap();
        let mut last = String::new();
        for line in content.split_inclusive(|b| *b == b'\n') {
            if let Some(ts) = serde_json::from_slice::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["timestamp"].as_str().map(str::to_string))
            {
                last = ts;
            }
            all.push(Line {
                file: rel.clone(),
                at: last.clone(),
                bytes: line.to_vec(),
                style,
            });
        }
    }
    all.sort_by(|a, b| a.at.cmp(&b.at));
    all
}

/// Appends `lines` under `root`, `gap` apart (folders created as the first line of a file needs them: Codex's
/// dated folders appear while `watch` runs).
pub fn write_lines(root: &Path, lines: &[Line], gap: Duration) {
    for line in lines {
        let path = root.join(&line.file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        match line.style {
            Style::Whole => f.write_all(&line.bytes).unwrap(),
            Style::Pieces => {
                let n = line.bytes.len();
                for piece in [0..n / 3, n / 3..2 * n / 3, 2 * n / 3..n] {
                    f.write_all(&line.bytes[piece]).unwrap();
                    f.flush().unwrap();
                    std::thread::sleep(gap / 3);
                }
            }
        }
        std::thread::sleep(gap);
    }
}
