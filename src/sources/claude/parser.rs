//! Claude session lines → trace records. (Being written: see `README.md` in this folder for the rules.)

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::model::Record;
use crate::sources::reader::{Line, LineIssue};

/// Everything needed to continue parsing after the last consumed line.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {}

/// Parser for one Claude session file.
pub struct ClaudeParser {
    state: State,
}

impl ClaudeParser {
    /// A parser for a file read from its start.
    pub fn new(_path: &Path) -> ClaudeParser {
        ClaudeParser {
            state: State::default(),
        }
    }

    /// Restores a parser from [`ClaudeParser::checkpoint`]; `None` if the checkpoint is unreadable.
    pub fn resume(_path: &Path, checkpoint: &str) -> Option<ClaudeParser> {
        serde_json::from_str(checkpoint)
            .ok()
            .map(|state| ClaudeParser { state })
    }

    /// The state to persist with the file offset.
    pub fn checkpoint(&self) -> String {
        serde_json::to_string(&self.state).expect("parser state serializes")
    }

    /// Feeds one complete line.
    pub fn line(&mut self, _line: &Line<'_>, _out: &mut Vec<Record>, _issues: &mut Vec<LineIssue>) {
    }

    /// Pushes the records that summarize this chunk.
    pub fn end_chunk(&mut self, _out: &mut Vec<Record>) {}
}
