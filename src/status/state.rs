//! Whether a session is working, idle or ended, from what its files recorded.

use serde::Serialize;

use crate::store::live::TurnMarks;

/// A session's state as `status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TurnState {
    /// A turn is open: the model is answering, or a tool runs, or a tool's result waits for the model.
    Working,
    /// The last turn is over: the agent waits for the user.
    Idle,
    /// Nothing was written for longer than the `ended` threshold: the agent is gone (or stuck).
    Ended,
}

/// Agents whose every finished model call records why it stopped (pi `stopReason`, Claude `stop_reason`):
/// a last call without one is still streaming. Codex and Gemini record no finish reason.
const RECORDS_FINISH: &[&str] = &["pi", "omp", "claude"];

/// The state of a session of `agent`, last written at `written_ms`, at `now_ms`; a session quiet for more than
/// `ended_after_ms` is `Ended`.
///
/// The turn is open when the last prompt came after the last model call, when tools started at or after the
/// last call (their results go back to the model), or when the last call stopped to use a tool (`tool_use`,
/// `toolUse`) or has not finished (no finish reason yet, for agents that record one). A failed last call
/// ends the turn.
pub fn turn_state(
    agent: &str,
    marks: &TurnMarks,
    written_ms: i64,
    now_ms: i64,
    ended_after_ms: i64,
) -> TurnState {
    if now_ms.saturating_sub(written_ms) > ended_after_ms {
        return TurnState::Ended;
    }
    let open = match &marks.last_call {
        None => marks.last_prompt_ms.is_some(),
        Some((start, finish, failed)) => {
            let prompt_after =
                matches!((marks.last_prompt_ms, start), (Some(p), Some(s)) if p > *s);
            prompt_after
                || marks.tools_after_call > 0
                || (!failed
                    && match finish.as_deref() {
                        Some(reason) => is_tool_use(reason),
                        None => RECORDS_FINISH.contains(&agent),
                    })
        }
    };
    if open {
        TurnState::Working
    } else {
        TurnState::Idle
    }
}

/// Finish reasons that hand over to a tool: Anthropic `tool_use`, pi `toolUse`, OpenAI `tool_calls` /
/// `function_call`.
fn is_tool_use(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase().replace(['_', '-'], "");
    matches!(r.as_str(), "tooluse" | "toolcalls" | "functioncall")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marks(prompt: i64, call: Option<(i64, Option<&str>, bool)>, tools: u64) -> TurnMarks {
        TurnMarks {
            last_prompt_ms: Some(prompt),
            last_call: call.map(|(s, f, e)| (Some(s), f.map(str::to_string), e)),
            model: None,
            tools_after_call: tools,
        }
    }

    #[test]
    fn open_and_closed_turns() {
        let now = 1_000_000;
        let st = |agent, m: &TurnMarks| turn_state(agent, m, now, now, 60_000);
        // A prompt with no answer yet, and a prompt after the last answer: working.
        assert_eq!(st("pi", &marks(10, None, 0)), TurnState::Working);
        assert_eq!(
            st("pi", &marks(20, Some((10, Some("stop"), false)), 0)),
            TurnState::Working
        );
        // Stopped to use a tool, or a tool result waiting for the model: working.
        assert_eq!(
            st("claude", &marks(5, Some((10, Some("tool_use"), false)), 0)),
            TurnState::Working
        );
        assert_eq!(
            st("pi", &marks(5, Some((10, Some("toolUse"), false)), 0)),
            TurnState::Working
        );
        assert_eq!(
            st("codex", &marks(5, Some((10, None, false)), 1)),
            TurnState::Working
        );
        // Still streaming (Claude records a reason on every finished call; Codex never does).
        assert_eq!(
            st("claude", &marks(5, Some((10, None, false)), 0)),
            TurnState::Working
        );
        assert_eq!(
            st("codex", &marks(5, Some((10, None, false)), 0)),
            TurnState::Idle
        );
        // Finished or failed: idle.
        assert_eq!(
            st("claude", &marks(5, Some((10, Some("end_turn"), false)), 0)),
            TurnState::Idle
        );
        assert_eq!(
            st("pi", &marks(5, Some((10, None, true)), 0)),
            TurnState::Idle
        );
        // Quiet for longer than the threshold: ended, whatever the turn.
        assert_eq!(
            turn_state("pi", &marks(10, None, 0), now - 61_000, now, 60_000),
            TurnState::Ended
        );
    }
}
