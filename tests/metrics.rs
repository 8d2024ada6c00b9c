//! `tokentrace metrics` and `watch --metrics-listen`: the Prometheus exposition of the store passes
//! `promtool check metrics` (Debian package `prometheus`, installed by `.ci/run`), its series sum to the
//! report's totals per agent and per model, and no series carries a session or trace id.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The recorded sessions in the repo: pi and oh-my-pi (examples/), Claude Code, Codex and pi
/// (tests/fixtures/recorded).
const PATHS: [&str; 2] = ["examples", "tests/fixtures/recorded"];

fn tokentrace(data: &std::path::Path, args: &[&str]) -> Vec<u8> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokentrace"));
    cmd.args(args)
        .arg("--data-dir")
        .arg(data)
        .current_dir(common::repo())
        .env("HOME", data)
        .env_remove("TOKENTRACE_CONFIG");
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// One sample line: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text exposition (the label values here hold no `,` or `"`).
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap();
                    (k.to_string(), v.trim_matches('"').to_string())
                })
                .collect();
            Sample {
                name: name.to_string(),
                labels,
                value: value.parse().unwrap(),
            }
        })
        .collect()
}

/// Sum of `metric` by the label `by`.
fn sum_by(samples: &[Sample], metric: &str, by: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for s in samples.iter().filter(|s| s.name == metric) {
        *out.entry(s.labels.get(by).cloned().unwrap_or_default())
            .or_insert(0.0) += s.value;
    }
    out
}

/// The report's rows by key: (tokens input incl. cache, output, cache read, cache write, cost, generations).
fn report_rows(data: &std::path::Path, grouping: &str) -> BTreeMap<String, [f64; 6]> {
    let doc: Value = serde_json::from_slice(&tokentrace(
        data,
        &["report", grouping, "--json", "--no-import"],
    ))
    .unwrap();
    doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let t = &r["tokens"];
            let n = |k: &str| t[k].as_f64().unwrap();
            (
                r["key"].as_str().unwrap().to_string(),
                [
                    n("input") + n("cache_read") + n("cache_write"),
                    n("output"),
                    n("cache_read"),
                    n("cache_write"),
                    r["cost_usd"].as_f64().unwrap(),
                    r["generations"].as_f64().unwrap(),
                ],
            )
        })
        .collect()
}

const SERIES: [&str; 6] = [
    "gen_ai_client_inference_usage_input_tokens_total",
    "gen_ai_client_inference_usage_output_tokens_total",
    "gen_ai_client_inference_usage_cache_read_input_tokens_total",
    "gen_ai_client_inference_usage_cache_write_input_tokens_total",
    "tokentrace_cost_usage_USD_total",
    "tokentrace_generations_total",
];

fn import(data: &std::path::Path) -> String {
    let mut args = vec!["metrics"];
    for p in PATHS {
        args.extend(["--path", p]);
    }
    String::from_utf8(tokentrace(data, &args)).unwrap()
}

#[test]
fn metrics_sum_to_the_report_per_agent_and_per_model_without_session_or_trace_ids() {
    let data = tempfile::tempdir().unwrap();
    let text = import(data.path());
    let samples = parse(&text);
    for (grouping, label) in [
        ("agent", "tokentrace_agent"),
        ("model", "gen_ai_response_model"),
    ] {
        let rows = report_rows(data.path(), grouping);
        assert!(rows.len() >= 3, "{grouping}: {rows:?}");
        for (i, metric) in SERIES.iter().enumerate() {
            let sums = sum_by(&samples, metric, label);
            for (key, row) in &rows {
                let got = sums.get(key).copied().unwrap_or(0.0);
                let tolerance = if i == 4 { 1e-9 } else { 0.0 };
                assert!(
                    (got - row[i]).abs() <= tolerance,
                    "{metric} for {grouping} {key}: {got} vs the report's {}",
                    row[i]
                );
            }
            let extra: Vec<_> = sums.keys().filter(|k| !rows.contains_key(*k)).collect();
            assert!(extra.is_empty(), "{metric}: {extra:?} not in the report");
        }
    }
    // Prompts and tool calls too, per agent.
    let agents: Value = serde_json::from_slice(&tokentrace(
        data.path(),
        &["report", "agent", "--json", "--no-import"],
    ))
    .unwrap();
    let prompts = sum_by(&samples, "tokentrace_prompts_total", "tokentrace_agent");
    let tools = sum_by(&samples, "tokentrace_tool_calls_total", "tokentrace_agent");
    for row in agents["rows"].as_array().unwrap() {
        let key = row["key"].as_str().unwrap();
        assert_eq!(
            prompts.get(key).copied().unwrap_or(0.0),
            row["prompts"].as_f64().unwrap(),
            "{key}"
        );
        assert_eq!(
            tools.get(key).copied().unwrap_or(0.0),
            row["tool_calls"].as_f64().unwrap(),
            "{key}"
        );
    }
    // No session or trace id, by label name or by value.
    let sessions: Value = serde_json::from_slice(&tokentrace(
        data.path(),
        &["report", "session", "--json", "--no-import"],
    ))
    .unwrap();
    let ids: Vec<&str> = sessions["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["session_id"].as_str().unwrap())
        .collect();
    assert!(ids.len() > 40, "{} sessions", ids.len());
    for s in &samples {
        for (k, v) in &s.labels {
            assert!(
                !k.contains("session") && !k.contains("trace_id") && !k.contains("span"),
                "{} has a label {k}",
                s.name
            );
            assert!(!ids.iter().any(|id| v.contains(id)), "{}: {k}={v}", s.name);
        }
    }
}

#[test]
fn promtool_accepts_the_exposition() {
    if Command::new("promtool").arg("--version").output().is_err() {
        return common::skip_missing("promtool", "apt-get install prometheus");
    }
    let data = tempfile::tempdir().unwrap();
    let text = import(data.path());
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.lines().count() > 100, "{text}");
}

/// GET http://addr/path; returns the status line and the body.
fn get(addr: &str, path: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    // HTTP/1.0: the answer comes whole, not chunked.
    write!(s, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

#[test]
fn watch_serves_the_same_metrics_on_its_endpoint() {
    let data = tempfile::tempdir().unwrap();
    let printed = import(data.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut watch = Command::new(env!("CARGO_BIN_EXE_tokentrace"))
        .args(["watch", "--metrics-listen", &addr])
        .args(PATHS.iter().flat_map(|p| ["--path", p]))
        .arg("--data-dir")
        .arg(data.path())
        .current_dir(common::repo())
        .env("HOME", data.path())
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("LANGFUSE_PUBLIC_KEY")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(20);
    let served = loop {
        if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
            drop(s.flush());
            break get(&addr, "/metrics");
        }
        assert!(Instant::now() < until, "the endpoint did not come up");
        std::thread::sleep(Duration::from_millis(100));
    };
    let missing = get(&addr, "/nope");
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(served.0.contains("200"), "{}", served.0);
    assert!(
        served.1 == printed,
        "served:\n{}\nprinted:\n{printed}",
        served.1
    );
    assert!(missing.0.contains("404"), "{}", missing.0);
}
