//! `tokentrace status` while sessions are written: recorded pi, Claude Code and Codex sessions are replayed
//! line by line; after every line `status --json` must show the session's cost exactly as `report session`
//! does, and its state must follow the turn: working after a prompt, a tool call or a tool result, idle once
//! the model's answer ends the turn (the expectation is read from the line itself, not from tokentrace).

mod common;

use std::time::Duration;

use common::replay::{lines_of, write_lines, Style};
use serde_json::Value;

/// What the line just written says about the turn: `Some("working")`, `Some("idle")`, or `None` when it
/// does not decide (metadata lines, snapshots, usage events).
fn expected_state(agent: &str, line: &[u8]) -> Option<&'static str> {
    let v: Value = serde_json::from_slice(line).ok()?;
    match agent {
        "claude" => match v["type"].as_str()? {
            "user" if v["isMeta"].as_bool() != Some(true) => {
                let content = &v["message"]["content"];
                let tool_result = content
                    .as_array()
                    .is_some_and(|a| a.iter().any(|c| c["type"] == "tool_result"));
                (content.is_string() || tool_result).then_some("working")
            }
            "assistant" => match v["message"]["stop_reason"].as_str() {
                Some("tool_use") | None => Some("working"),
                Some(_) => Some("idle"),
            },
            _ => None,
        },
        "pi" => {
            let m = &v["message"];
            match (v["type"].as_str()?, m["role"].as_str()?) {
                ("message", "user" | "toolResult") => Some("working"),
                ("message", "assistant") => match m["stopReason"].as_str()? {
                    "toolUse" => Some("working"),
                    _ => Some("idle"),
                },
                _ => None,
            }
        }
        "codex" => match (v["type"].as_str()?, v["payload"]["type"].as_str()?) {
            ("event_msg", "user_message") => Some("working"),
            ("response_item", "function_call_output") => Some("working"),
            ("event_msg", "task_complete") => Some("idle"),
            _ => None,
        },
        _ => None,
    }
}

fn json_of(out: std::process::Output, what: &str) -> Value {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Replays `run` into a fresh folder; after every line compares `status` with `report session` and the
/// expected state. Returns how many lines decided a state, by state.
fn replay(run: &str, agent: &str) -> (usize, usize) {
    let run = common::repo().join(run);
    let tmp = tempfile::tempdir().unwrap();
    let (home, data) = (tmp.path().join("home"), tmp.path().join("data"));
    let path = home.to_str().unwrap();
    let lines = lines_of(&run, &home, Style::Whole);
    assert!(lines.len() > 5, "{}: too few lines", run.display());
    let (mut working, mut idle) = (0, 0);
    for (i, line) in lines.iter().enumerate() {
        write_lines(&home, std::slice::from_ref(line), Duration::ZERO);
        let status = json_of(
            common::tokentrace(
                &data,
                &[
                    "status",
                    "--json",
                    "--path",
                    path,
                    "--active",
                    "100000",
                    "--ended-after",
                    "100000",
                ],
            ),
            "status",
        );
        let report = json_of(
            common::tokentrace(
                &data,
                &["report", "session", "--json", "--no-import", "--path", path],
            ),
            "report",
        );
        for s in report["sessions"].as_array().unwrap() {
            let live = status["sessions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["session_id"] == s["session_id"])
                .unwrap_or_else(|| {
                    panic!("line {i}: session {} missing from status", s["session_id"])
                });
            assert_eq!(
                live["cost_usd"], s["cost_usd"],
                "line {i}: cost of {}",
                s["session_id"]
            );
            assert_eq!(live["prompts"], s["prompts"], "line {i}: prompts");
            assert_eq!(
                live["generations"], s["generations"],
                "line {i}: model calls"
            );
        }
        if let Some(want) = expected_state(agent, &line.bytes) {
            let sessions = status["sessions"].as_array().unwrap();
            let main = sessions
                .iter()
                .find(|s| s["agent"] == agent)
                .unwrap_or_else(|| panic!("line {i}: no {agent} session in {status}"));
            assert_eq!(
                main["state"],
                want,
                "{}: after line {i} ({})",
                run.display(),
                String::from_utf8_lossy(&line.bytes)
                    .chars()
                    .take(200)
                    .collect::<String>()
            );
            if want == "working" {
                working += 1
            } else {
                idle += 1
            }
        }
    }
    (working, idle)
}

#[test]
fn claude_session_replayed_line_by_line() {
    let (working, idle) = replay(
        "tests/fixtures/recorded/claude/claude-2.1.332/run23-multi",
        "claude",
    );
    assert!(working >= 3 && idle >= 1, "working {working}, idle {idle}");
}

#[test]
fn pi_session_replayed_line_by_line() {
    let (working, idle) = replay(
        "tests/fixtures/recorded/pi/pi-1.6.0/03-json-anthropic-thinking-read",
        "pi",
    );
    assert!(working >= 2 && idle >= 1, "working {working}, idle {idle}");
}

#[test]
fn codex_session_replayed_line_by_line() {
    let (working, idle) = replay(
        "tests/fixtures/recorded/codex/codex-0.171.0/run14-multi",
        "codex",
    );
    assert!(working >= 2 && idle >= 1, "working {working}, idle {idle}");
}

/// Budgets: the exit code says near (10) or over (11), and `--write-state` holds the same JSON.
#[test]
fn budgets_set_the_exit_code_and_the_state_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let run = common::repo().join("tests/fixtures/recorded/claude/claude-2.1.332/run23-multi/home");
    let home = tmp.path().join("home");
    common::copy_tree(&run, &home);
    let (report, _) = common::report_session_in(&data, &home, &[]);
    let cost = report["totals"]["cost_usd"].as_f64().unwrap();
    assert!(cost > 0.0);
    let state = tmp.path().join("state.json");
    let run_with = |limit: f64| {
        let config = tmp.path().join("config.toml");
        std::fs::write(&config, format!("[budgets]\nsession_usd = {limit}\n")).unwrap();
        let out = common::tokentrace(
            &data,
            &[
                "--config",
                config.to_str().unwrap(),
                "status",
                "--json",
                "--active",
                "100000",
                "--path",
                home.to_str().unwrap(),
                "--write-state",
                state.to_str().unwrap(),
            ],
        );
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.code(), doc)
    };
    let (code, doc) = run_with(cost * 10.0);
    assert_eq!(code, Some(0));
    assert_eq!(doc["status"], "ok");
    let (code, doc) = run_with(cost * 1.1);
    assert_eq!(code, Some(10), "{doc}");
    assert_eq!(doc["budgets"][0]["level"], "near");
    assert_eq!(doc["budgets"][0]["spent_usd"].as_f64(), Some(cost));
    let (code, doc) = run_with(cost * 0.5);
    assert_eq!(code, Some(11));
    assert_eq!(doc["status"], "over");
    let written: Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(written, doc, "the state file holds what was printed");
}
