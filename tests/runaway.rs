//! Runaway and budget alerts end to end: a pi session (synthesized from a recorded one) that calls the same
//! tool with the same arguments 6 times in a row, and a recorded Claude Code session over its per-session
//! budget. Each must give the warning on stderr, a `tokentrace.anomaly` event on its trace's root span and a
//! Langfuse score in `sync --dry-run`, an entry in `status --json`, and exactly one webhook request (a second
//! `sync` sends nothing again). The same sessions a month old give no anomaly at all.

mod common;
#[path = "common/http_server.rs"]
mod http_server;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use http_server::{ok, Server};
use serde_json::{json, Value};

/// The recorded pi session with its tool call (and result) repeated `n` times before the final answer, fresh
/// entry ids chained by `parentId`, one second apart from 2026-12-01T20:00Z (the day of the Claude recording
/// used beside it: the checks look at sessions active in the day before "now").
fn repeating_pi_session(home: &Path, n: usize) -> String {
    let run = common::repo().join("examples/pi/pi-0.87.1/03-json-anthropic-thinking-read/home");
    let file = walkdir::WalkDir::new(&run)
        .into_iter()
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .unwrap()
        .into_path();
    let lines: Vec<Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 8, "the recording's shape");
    let (head, call, result, answer) = (&lines[..5], &lines[5], &lines[6], &lines[7]);
    let mut out: Vec<Value> = head.to_vec();
    let mut parent = head[4]["id"].as_str().unwrap().to_string();
    let mut t = 1_796_155_200_000i64; // 2026-12-01T20:00:00Z
    let mut push = |template: &Value, i: usize, tag: &str, out: &mut Vec<Value>| {
        let mut v = template.clone();
        let id = format!("{tag}{i:07x}");
        v["id"] = json!(id);
        v["parentId"] = json!(parent);
        t += 1_000;
        let ts = jiff::Timestamp::from_millisecond(t).unwrap().to_string();
        v["timestamp"] = json!(ts);
        v["message"]["timestamp"] = json!(t);
        parent = id;
        out.push(v);
    };
    for i in 0..n {
        let mut c = call.clone();
        c["message"]["content"][2]["id"] = json!(format!("toolu_repeat_{i}"));
        push(&c, i, "a", &mut out);
        let mut r = result.clone();
        r["message"]["toolCallId"] = json!(format!("toolu_repeat_{i}"));
        push(&r, i, "b", &mut out);
    }
    push(answer, 0, "c", &mut out);
    let dir = home.join(".pi/agent/sessions/--tmp-runaway--");
    std::fs::create_dir_all(&dir).unwrap();
    let text: String = out.iter().map(|v| format!("{v}\n")).collect();
    std::fs::write(dir.join("2026-11-23T03-06-19-405Z_runaway.jsonl"), text).unwrap();
    lines[0]["id"].as_str().unwrap().to_string()
}

fn run(cmd: &mut Command) -> (String, String) {
    let out = cmd.output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{stderr}");
    (stdout, stderr)
}

#[test]
fn a_runaway_loop_and_a_budget_overrun_are_warned_exported_scored_and_alerted_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (home, data) = (tmp.path().join("home"), tmp.path().join("data"));
    let pi_session = repeating_pi_session(&home, 6);
    common::copy_tree(
        &common::repo().join("tests/fixtures/recorded/claude/claude-2.1.332/run23-multi/home"),
        &home,
    );
    let server = Server::start(Duration::ZERO, |_| ok());
    let config = tmp.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[budgets.agent.claude]\nsession_usd = 0.001\n\n[alerts]\nwebhook = \"{}/hook\"\n",
            server.base()
        ),
    )
    .unwrap();
    let tokentrace = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokentrace"));
        cmd.arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .args(args)
            .arg("--path")
            .arg(&home)
            .env("HOME", &data)
            // "Now" is an hour after the recordings, so that both sessions count as active.
            .env("TOKENTRACE_NOW", "2026-12-01T21:00:00Z")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("TOKENTRACE_CAPTURE");
        cmd
    };

    // The dry run: warnings, span events, scores; no webhook yet.
    let out = tmp.path().join("out");
    let (_, stderr) = run(tokentrace(&["sync", "--dry-run", out.to_str().unwrap()])
        .env("LANGFUSE_PUBLIC_KEY", "pk-lf-test")
        .env("LANGFUSE_SECRET_KEY", "sk-lf-test")
        .env("LANGFUSE_BASE_URL", "https://langfuse.invalid"));
    assert!(
        stderr.contains(&format!(
            "repeated tool call in session {pi_session}: read called 6 times in a row"
        )) && stderr.contains("(limit 5)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("agent:claude budget of the session passed"),
        "{stderr}"
    );
    let mut events = Vec::new();
    let mut scores = Vec::new();
    for entry in std::fs::read_dir(out.join("langfuse")).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap();
        if entry.file_name() == "scores.jsonl" {
            scores.extend(
                text.lines()
                    .map(|l| serde_json::from_str::<Value>(l).unwrap()),
            );
            continue;
        }
        let req: Value = serde_json::from_str(&text).unwrap();
        for span in req["resourceSpans"][0]["scopeSpans"][0]["spans"]
            .as_array()
            .unwrap()
        {
            for e in span["events"].as_array().into_iter().flatten() {
                assert_eq!(e["name"], "tokentrace.anomaly");
                assert!(
                    span["parentSpanId"].as_str().unwrap_or("").is_empty(),
                    "on the root span"
                );
                let attr = |k: &str| {
                    e["attributes"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|a| a["key"] == k)
                        .unwrap()["value"]
                        .clone()
                };
                events.push((
                    attr("tokentrace.anomaly.kind")["stringValue"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                    attr("tokentrace.anomaly.value")["doubleValue"]
                        .as_f64()
                        .unwrap(),
                    attr("tokentrace.anomaly.limit")["doubleValue"]
                        .as_f64()
                        .unwrap(),
                ));
            }
        }
    }
    events.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0].0, "budget");
    assert_eq!(events[0].2, 0.001);
    assert!(events[0].1 > 0.001);
    assert_eq!(events[1], ("repeated_tool_call".to_string(), 6.0, 5.0));
    let score = |name: &str| scores.iter().find(|s| s["name"] == name).cloned();
    assert_eq!(score("anomaly_repeated_tool_call").unwrap()["value"], 6.0);
    assert_eq!(
        score("anomaly_budget").unwrap()["value"].as_f64(),
        Some(events[0].1)
    );
    assert!(server.to("/hook").is_empty(), "a dry run alerts nobody");

    // status shows both, and exits 11: a budget is passed.
    let out = tokentrace(&["status", "--json", "--no-import", "--active", "10000000"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(11),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<&str> = status["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["anomalies"].as_array().unwrap())
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 2, "{status}");
    assert!(kinds.contains(&"repeated_tool_call") && kinds.contains(&"budget"));

    // sync alerts each anomaly once, also with no backend configured; a second sync sends nothing.
    run(&mut tokentrace(&["sync"]));
    run(&mut tokentrace(&["sync"]));
    let hooks = server.to("/hook");
    assert_eq!(hooks.len(), 2, "one request per anomaly");
    let mut alerted: Vec<String> = hooks
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(body["text"], body["content"], "Slack's and Discord's field");
            assert!(body["text"].as_str().unwrap().starts_with("tokentrace: "));
            body["anomaly"]["kind"].as_str().unwrap().to_string()
        })
        .collect();
    alerted.sort();
    assert_eq!(alerted, ["budget", "repeated_tool_call"]);

    // `store rebuild` keeps them (and that they were alerted): the next sync sends no alert and no span again.
    run(Command::new(env!("CARGO_BIN_EXE_tokentrace"))
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&data)
        .args(["store", "rebuild"])
        .env("HOME", &data)
        .env("TOKENTRACE_NOW", "2026-12-01T21:00:00Z"));
    let out = tokentrace(&["status", "--json", "--no-import", "--active", "10000000"])
        .output()
        .unwrap();
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let kept = status["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["anomalies"].as_array().unwrap().len())
        .sum::<usize>();
    assert_eq!(kept, 2, "{status}");
    run(&mut tokentrace(&["sync"]));
    assert_eq!(
        server.to("/hook").len(),
        2,
        "no alert again after a rebuild"
    );

    // A month later, in a fresh store: the same history is too old for the checks.
    let later = tmp.path().join("later");
    let out = Command::new(env!("CARGO_BIN_EXE_tokentrace"))
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(&later)
        .args(["status", "--json", "--active", "10000000", "--path"])
        .arg(&home)
        .env("HOME", &later)
        .env("TOKENTRACE_NOW", "2027-01-01T00:00:00Z")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("warning"), "{stderr}");
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sessions = status["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert!(
        sessions.iter().all(|s| s["anomalies"] == json!([])),
        "{status}"
    );
}
