//! `tokentrace metrics` and `watch --metrics-listen`: the Prometheus exposition of the store passes
//! `promtool check metrics` (Debian package `prometheus`, installed by `.ci/run`), its series sum to the
//! report's totals per agent and per model, and no series carries a session or trace id.

mod common;
#[path = "common/http_server.rs"]
mod http_server;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{recordings_command as command, tokentrace_stdout as tokentrace, RECORDINGS as PATHS};
use serde_json::Value;

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

/// Imports the recordings in the repo and, when this checkout has it beside it (CI does), the whole shared
/// corpus (every agent, Gemini included); returns `tokentrace metrics`' output.
fn import(data: &std::path::Path) -> String {
    let mut args = vec!["metrics".to_string()];
    for p in PATHS {
        args.extend(["--path".to_string(), p.to_string()]);
    }
    if let Some(corpus) = common::shared_corpus() {
        args.extend(["--path".to_string(), corpus.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
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

/// pi and oh-my-pi sessions also appear under the pi-otel-telemetry extension's names (DESIGN §6): prompts,
/// turns (model calls), tool calls and tokens equal the report's for those two agents, by model and by tool.
#[test]
fn pi_sessions_also_carry_the_pi_otel_telemetry_names() {
    let data = tempfile::tempdir().unwrap();
    let samples = parse(&import(data.path()));
    let doc: Value = serde_json::from_slice(&tokentrace(
        data.path(),
        &["report", "agent", "--json", "--no-import"],
    ))
    .unwrap();
    let mut want = [0.0f64; 5];
    for row in doc["rows"].as_array().unwrap() {
        if !["pi", "omp"].contains(&row["key"].as_str().unwrap()) {
            continue;
        }
        let t = &row["tokens"];
        let n = |k: &str| t[k].as_f64().unwrap();
        for (w, v) in want.iter_mut().zip([
            row["prompts"].as_f64().unwrap(),
            row["generations"].as_f64().unwrap(),
            row["tool_calls"].as_f64().unwrap(),
            n("input") + n("cache_read") + n("cache_write"),
            n("output"),
        ]) {
            *w += v;
        }
    }
    assert!(want.iter().all(|v| *v > 0.0), "{want:?}");
    let total = |name: &str| {
        samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| s.value)
            .sum::<f64>()
    };
    let got = [
        total("pi_prompts_total"),
        total("pi_turns_total"),
        total("pi_tool_calls_total"),
        total("pi_tokens_input_total"),
        total("pi_tokens_output_total"),
    ];
    assert_eq!(
        got, want,
        "prompts, turns, tool calls, input and output tokens"
    );
    for s in samples
        .iter()
        .filter(|s| s.name.starts_with("pi_tokens_") || s.name == "pi_turns_total")
    {
        assert_eq!(s.labels.keys().collect::<Vec<_>>(), ["model"], "{s:?}");
    }
    for s in samples.iter().filter(|s| s.name == "pi_tool_calls_total") {
        assert_eq!(s.labels.keys().collect::<Vec<_>>(), ["tool"], "{s:?}");
    }
    // The project label is opt-in.
    assert!(samples
        .iter()
        .all(|s| !s.labels.contains_key("tokentrace_project")));
    let config = data.path().join("config.toml");
    std::fs::write(&config, "metrics_project_label = true\n").unwrap();
    let with = parse(
        &String::from_utf8(tokentrace(
            data.path(),
            &[
                "--config",
                config.to_str().unwrap(),
                "metrics",
                "--no-import",
            ],
        ))
        .unwrap(),
    );
    let projects = sum_by(&with, "tokentrace_generations_total", "tokentrace_project");
    assert!(
        projects.len() >= 3 && !projects.contains_key(""),
        "{projects:?}"
    );
    assert_eq!(
        projects.values().sum::<f64>(),
        total("tokentrace_generations_total")
    );
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

/// `tokentrace watch ARGS`, see [`command`] (`common::recordings_command`).
fn watch(data: &std::path::Path, args: &[&str], env: &[(&str, String)]) -> std::process::Child {
    let args: Vec<&str> = ["watch"].into_iter().chain(args.iter().copied()).collect();
    command(data, &args, env)
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn watch_serves_the_same_metrics_on_its_endpoint() {
    let data = tempfile::tempdir().unwrap();
    let printed = import(data.path());
    let port = common::net::free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut watch = watch(data.path(), &["--metrics-listen", &addr], &[]);
    let until = Instant::now() + Duration::from_secs(20);
    let served = loop {
        if let Some(answer) = common::net::get(port, "/metrics") {
            break answer;
        }
        assert!(Instant::now() < until, "the endpoint did not come up");
        std::thread::sleep(Duration::from_millis(100));
    };
    let missing = common::net::get(port, "/nope").unwrap();
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

/// `sync` with the given environment (no trace backend unless given), on the recordings in the repo.
fn sync(data: &std::path::Path, env: &[(&str, String)]) -> Value {
    let out = command(data, &["sync", "--json", "--retry-budget", "5"], env)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The aggregation temporalities (1 delta, 2 cumulative) of the metrics of an OTLP metrics request.
fn temporalities(body: &[u8]) -> Vec<i32> {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    use prost::Message;
    let req = ExportMetricsServiceRequest::decode(body).unwrap();
    let mut out: Vec<i32> = req
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| match &m.data {
            Some(Data::Sum(s)) => s.aggregation_temporality,
            Some(Data::Histogram(h)) => h.aggregation_temporality,
            other => panic!("{other:?}"),
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// (value, start, time) of every data point of `name` in an OTLP metrics request.
fn points(body: &[u8], name: &str) -> Vec<(f64, u64, u64)> {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point::Value as V};
    use prost::Message;
    let req = ExportMetricsServiceRequest::decode(body).unwrap();
    let mut out = Vec::new();
    for m in req
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .filter(|m| m.name == name)
    {
        match &m.data {
            Some(Data::Sum(sum)) => {
                assert!(sum.is_monotonic);
                for p in &sum.data_points {
                    let v = match p.value {
                        Some(V::AsDouble(d)) => d,
                        Some(V::AsInt(i)) => i as f64,
                        None => panic!("no value"),
                    };
                    out.push((v, p.start_time_unix_nano, p.time_unix_nano));
                }
            }
            Some(Data::Histogram(h)) => {
                for p in &h.data_points {
                    assert_eq!(p.bucket_counts.iter().sum::<u64>(), p.count);
                    out.push((p.count as f64, p.start_time_unix_nano, p.time_unix_nano));
                }
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    out
}

#[test]
fn sync_pushes_cumulative_otlp_metrics_equal_to_the_report_with_stable_start_times() {
    let server = http_server::Server::start(Duration::ZERO, |_| http_server::ok());
    let data = tempfile::tempdir().unwrap();
    let env = [(
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        format!("{}/v1/metrics", server.base()),
    )];
    let first = sync(data.path(), &env);
    assert!(first["metrics"]["error"].is_null(), "{first}");
    std::thread::sleep(Duration::from_millis(20));
    let second = sync(data.path(), &env);
    assert!(second["metrics"]["error"].is_null(), "{second}");
    let reqs = server.to("/v1/metrics");
    assert_eq!(
        reqs.len(),
        2,
        "one push per sync, nothing sent to /v1/traces"
    );
    assert!(server.to("/v1/traces").is_empty());
    assert_eq!(temporalities(&reqs[0].body), [2], "cumulative by default");
    let total: f64 = report_rows(data.path(), "agent")
        .values()
        .map(|r| r[4])
        .sum();
    let (a, b) = (
        points(&reqs[0].body, "tokentrace.cost.usage"),
        points(&reqs[1].body, "tokentrace.cost.usage"),
    );
    let sum = |p: &[(f64, u64, u64)]| p.iter().map(|x| x.0).sum::<f64>();
    assert!((sum(&a) - total).abs() < 1e-9, "{} vs {total}", sum(&a));
    assert!((sum(&b) - total).abs() < 1e-9, "cumulative: the same again");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.1, y.1, "the start time of a series is stable");
        assert!(
            x.1 > 1_700_000_000_000_000_000 && x.1 <= x.2,
            "start {} time {}",
            x.1,
            x.2
        );
        assert!(y.2 > x.2, "the time moves on");
    }
    let generations: f64 = report_rows(data.path(), "agent")
        .values()
        .map(|r| r[5])
        .sum();
    let calls = points(&reqs[0].body, "gen_ai.client.operation.duration");
    assert!(!calls.is_empty());
    assert_eq!(
        points(&reqs[0].body, "tokentrace.generations")
            .iter()
            .map(|p| p.0)
            .sum::<f64>(),
        generations
    );
}

#[test]
fn the_base_endpoint_carries_metrics_only_when_asked_and_a_down_backend_is_reported() {
    let server = http_server::Server::start(Duration::ZERO, |_| http_server::ok());
    let data = tempfile::tempdir().unwrap();
    let base = [("OTEL_EXPORTER_OTLP_ENDPOINT", server.base())];
    sync(data.path(), &base);
    assert!(server.to("/v1/metrics").is_empty(), "opt-in");
    assert!(!server.to("/v1/traces").is_empty());
    let with = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", server.base()),
        ("OTEL_METRICS_EXPORTER", "otlp".to_string()),
    ];
    sync(data.path(), &with);
    assert_eq!(server.to("/v1/metrics").len(), 1);
    // A metrics backend that is down: reported, exit code 2, the traces unaffected.
    let port = common::net::free_port();
    let down = [(
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        format!("http://127.0.0.1:{port}/v1/metrics"),
    )];
    let out = sync(data.path(), &down);
    assert!(
        out["metrics"]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{out}"
    );
    assert_eq!(out["metrics"]["points"], 0);
}

#[test]
fn watch_pushes_the_metrics_every_interval_and_once_more_on_stop() {
    let server = http_server::Server::start(Duration::ZERO, |_| http_server::ok());
    let data = tempfile::tempdir().unwrap();
    let mut watch = watch(
        data.path(),
        &[],
        &[
            (
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                format!("{}/v1/metrics", server.base()),
            ),
            ("OTEL_METRIC_EXPORT_INTERVAL", "300".to_string()),
        ],
    );
    let until = Instant::now() + Duration::from_secs(20);
    while server.to("/v1/metrics").len() < 3 {
        assert!(Instant::now() < until, "fewer than 3 pushes in 20 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = server.to("/v1/metrics").len();
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(watch.id() as i32, libc::SIGTERM) };
    assert!(watch.wait().unwrap().success());
    let pushes = server.to("/v1/metrics");
    assert!(pushes.len() > before, "a last push on stop");
    let total: f64 = report_rows(data.path(), "agent")
        .values()
        .map(|r| r[4])
        .sum();
    let last = points(&pushes.last().unwrap().body, "tokentrace.cost.usage");
    let got: f64 = last.iter().map(|p| p.0).sum();
    assert!((got - total).abs() < 1e-9, "{got} vs {total}");
    let first = points(&pushes[0].body, "tokentrace.cost.usage");
    assert_eq!(
        first.iter().map(|p| p.1).collect::<Vec<_>>(),
        last.iter().map(|p| p.1).collect::<Vec<_>>(),
        "start times stay"
    );
}

/// The series and labels Claude Code's own telemetry produces in Prometheus, as the boards built on it query
/// them (the issue cites grafana.com dashboard 25255 "Claude Code Metrics (Prometheus)":
/// `claude_code_token_usage_tokens_total{type,model}`, `claude_code_cost_usage_USD_total{model}`; token types
/// as Claude Code's monitoring documentation names them).
const CLAUDE_CODE_SERIES: [(&str, &[&str]); 3] = [
    ("claude_code_token_usage_tokens_total", &["model", "type"]),
    ("claude_code_cost_usage_USD_total", &["model"]),
    ("claude_code_session_count_total", &[]),
];

#[test]
fn metrics_compat_claude_code_adds_claude_codes_own_series_for_claude_sessions_only() {
    let data = tempfile::tempdir().unwrap();
    let plain = parse(&import(data.path()));
    assert!(plain.iter().all(|s| !s.name.starts_with("claude_code")));
    let out = Command::new(env!("CARGO_BIN_EXE_tokentrace"))
        .args([
            "metrics",
            "--no-import",
            "--metrics-compat",
            "claude_code",
            "--data-dir",
        ])
        .arg(data.path())
        .env("HOME", data.path())
        .env("CLAUDE_CODE_ENABLE_TELEMETRY", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    let warning = String::from_utf8_lossy(&out.stderr);
    assert!(
        warning.contains("counts the same tokens and cost twice"),
        "{warning}"
    );
    let samples = parse(&String::from_utf8(out.stdout).unwrap());
    for (name, labels) in CLAUDE_CODE_SERIES {
        let series: Vec<&Sample> = samples.iter().filter(|s| s.name == name).collect();
        assert!(!series.is_empty(), "{name} missing");
        for s in series {
            let keys: Vec<&str> = s.labels.keys().map(String::as_str).collect();
            assert_eq!(keys, labels, "{name}");
        }
    }
    let agents = report_rows(data.path(), "agent");
    let claude = agents["claude"];
    let by_type = sum_by(&samples, "claude_code_token_usage_tokens_total", "type");
    // input (uncached) + cache read + cache write = the whole prompt; output as reported.
    assert_eq!(
        by_type["input"] + by_type["cacheRead"] + by_type["cacheCreation"],
        claude[0]
    );
    assert_eq!(by_type["cacheRead"], claude[2]);
    assert_eq!(by_type["cacheCreation"], claude[3]);
    assert_eq!(by_type["output"], claude[1]);
    let cost: f64 = sum_by(&samples, "claude_code_cost_usage_USD_total", "model")
        .values()
        .sum();
    assert!((cost - claude[4]).abs() < 1e-9, "{cost} vs {}", claude[4]);
    // Only Claude Code's models.
    let models = report_rows(data.path(), "model");
    for model in sum_by(&samples, "claude_code_cost_usage_USD_total", "model").keys() {
        assert!(
            models.contains_key(model) && model.starts_with("claude"),
            "{model}"
        );
    }
    let sessions: f64 = samples
        .iter()
        .filter(|s| s.name == "claude_code_session_count_total")
        .map(|s| s.value)
        .sum();
    let claude_sessions = sum_by(&plain, "tokentrace_sessions_total", "tokentrace_agent")["claude"];
    assert_eq!(sessions, claude_sessions);
    assert!(
        samples.iter().all(|s| !s.name.starts_with("codex_")),
        "codex only when asked"
    );

    // `codex`: Codex's token histogram for Codex sessions, its sums equal to the report.
    let codex = parse(
        &String::from_utf8(tokentrace(
            data.path(),
            &["metrics", "--no-import", "--metrics-compat", "codex"],
        ))
        .unwrap(),
    );
    let sums = sum_by(&codex, "codex_turn_token_usage_sum", "token_type");
    let row = agents["codex"];
    assert_eq!(sums["input"], row[0]);
    assert_eq!(sums["cached_input"], row[2]);
    assert_eq!(sums["output"], row[1]);
    assert_eq!(sums["total"], row[0] + row[1]);
    let calls: f64 = codex
        .iter()
        .filter(|s| s.name == "codex_turn_token_usage_count" && s.labels["token_type"] == "total")
        .map(|s| s.value)
        .sum();
    assert_eq!(calls, row[5], "one observation per model call");
    for s in codex
        .iter()
        .filter(|s| s.name.starts_with("codex_turn_token_usage"))
    {
        let mut keys: Vec<&str> = s.labels.keys().map(String::as_str).collect();
        keys.retain(|k| *k != "le");
        assert_eq!(keys, ["model", "token_type"], "{s:?}");
    }
}

#[test]
fn delta_temporality_pushes_what_changed_since_the_last_acknowledged_push() {
    let server = http_server::Server::start(Duration::ZERO, |_| http_server::ok());
    let dir = tempfile::tempdir().unwrap();
    let sessions = dir.path().join("sessions");
    let data = dir.path().join("data");
    let runs = common::runs(&common::repo().join("examples"), &["pi"]);
    common::copy_tree(&runs[0].join("home"), &sessions.join("a"));
    let push = |data: &std::path::Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_tokentrace"))
            .args(["sync", "--json", "--path"])
            .arg(&sessions)
            .arg("--data-dir")
            .arg(data)
            .env("HOME", data)
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("LANGFUSE_PUBLIC_KEY")
            .env(
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                format!("{}/v1/metrics", server.base()),
            )
            .env("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")
            .output()
            .unwrap();
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(doc["metrics"]["error"].is_null(), "{doc}");
        doc["metrics"]["points"].as_u64().unwrap()
    };
    let total =
        |data: &std::path::Path| -> f64 { report_rows(data, "agent").values().map(|r| r[4]).sum() };
    assert!(push(&data) > 0);
    let first_total = total(&data);
    assert!(first_total > 0.0);
    assert_eq!(push(&data), 0, "nothing changed: nothing pushed");
    assert_eq!(server.to("/v1/metrics").len(), 1);
    // A second session arrives: the next push carries its cost only.
    common::copy_tree(&runs[1].join("home"), &sessions.join("b"));
    assert!(push(&data) > 0);
    let pushes = server.to("/v1/metrics");
    assert_eq!(pushes.len(), 2);
    for p in &pushes {
        assert_eq!(temporalities(&p.body), [1], "delta");
    }
    let cost = |body: &[u8]| -> f64 {
        points(body, "tokentrace.cost.usage")
            .iter()
            .map(|p| p.0)
            .sum()
    };
    let second = cost(&pushes[1].body);
    assert!((cost(&pushes[0].body) - first_total).abs() < 1e-9);
    assert!(
        (second - (total(&data) - first_total)).abs() < 1e-9 && second > 0.0,
        "the second push carries the new session's {} USD, got {second}",
        total(&data) - first_total
    );
    // The second push's points start where the first ended.
    let first_time = points(&pushes[0].body, "tokentrace.cost.usage")[0].2;
    assert!(points(&pushes[1].body, "tokentrace.cost.usage")
        .iter()
        .any(|p| p.1 == first_time));
}
