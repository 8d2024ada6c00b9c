//! Delivery guarantees beyond traces: Langfuse scores share the run's deadline and backoff and are queued
//! until acknowledged; two concurrent `sync` runs never send the same trace at once (a lease per sink).

mod common;
#[path = "common/http_server.rs"]
mod http_server;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::otlp::{from_request, pi_corpus_dir, sync_command};
use http_server::{ok, Reply, Server};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde_json::Value;

const SCORES: &str = "/api/public/scores";
const TRACES: &str = "/api/public/otel/v1/traces";
/// The scores of the pi / oh-my-pi runs (no tool failed in them): 27 prompts × 4 trace scores
/// (tool_call_count, total_tool_errors, turn_count, generation_count), 25 of them with tool calls
/// (tool_success_rate), and 20 sessions × 2 session scores (session_had_errors, session_cost_usd).
const ALL_SCORES: usize = 27 * 4 + 25 + 20 * 2;

/// Runs a sync to its end, or kills it after `limit`: (exit code, JSON summary, elapsed).
fn sync_within(
    corpus: &Path,
    data: &Path,
    args: &[&str],
    env: &[(&str, String)],
    limit: Duration,
) -> (Option<i32>, Value, Duration) {
    let began = Instant::now();
    let mut child = sync_command(corpus, data, args, env).spawn().unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if began.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "sync {args:?} was still running after {limit:?} (killed); its retry budget did not bind"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let summary = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), summary, began.elapsed())
}

fn langfuse_env(server: &Server) -> Vec<(&'static str, String)> {
    vec![
        ("LANGFUSE_PUBLIC_KEY", "pk-lf-1".to_string()),
        ("LANGFUSE_SECRET_KEY", "sk-lf-2".to_string()),
        ("LANGFUSE_BASE_URL", server.base()),
    ]
}

/// The scores endpoint answers by `script` until `healthy_after` requests to it were answered, then 200.
fn scores_server(script: fn(u32) -> Reply, healthy_after: u32) -> (Server, Arc<AtomicU32>) {
    let count = Arc::new(AtomicU32::new(0));
    let c = count.clone();
    let server = Server::start(Duration::ZERO, move |r| {
        if r.path != SCORES {
            return ok();
        }
        let n = c.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= healthy_after {
            script(n)
        } else {
            ok()
        }
    });
    (server, count)
}

/// Item 16: a scores endpoint that hangs made `sync --retry-budget 5` run for hours (every score tried
/// twice with the client's 10 s timeout, no deadline), and the scores were then lost with exit 0.
#[test]
fn a_hanging_scores_endpoint_is_bound_by_the_retry_budget_and_the_scores_are_kept() {
    let corpus = pi_corpus_dir();
    let data = tempfile::tempdir().unwrap();
    let (server, _) = scores_server(|_| Reply::Hang, 1);
    let env = langfuse_env(&server);
    let (code, first, took) = sync_within(
        corpus.path(),
        data.path(),
        &["--retry-budget", "3"],
        &env,
        Duration::from_secs(40),
    );
    let sink = &first["sinks"][0];
    assert_eq!(code, Some(2), "scores left pending: not a success: {first}");
    assert!(took < Duration::from_secs(25), "took {took:?}: {first}");
    assert_eq!(sink["pending"], 0, "the traces went: {first}");
    assert_eq!(sink["scores_pending"], ALL_SCORES, "{first}");
    assert_eq!(sink["scores_sent"], 0, "{first}");
    // Once the endpoint answers, the next run sends them all, and not the traces again.
    let traces_before = server.to(TRACES).len();
    let mut last = Value::Null;
    for _ in 0..3 {
        let (code, summary, _) = sync_within(
            corpus.path(),
            data.path(),
            &["--retry-budget", "3"],
            &env,
            Duration::from_secs(40),
        );
        last = summary;
        if code == Some(0) {
            break;
        }
    }
    assert_eq!(last["sinks"][0]["scores_pending"], 0, "{last}");
    assert_eq!(server.to(TRACES).len(), traces_before, "traces not resent");
    let ids: std::collections::BTreeSet<String> = server
        .to(SCORES)
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), ALL_SCORES, "every score arrived");
}

/// Item 16: a scores endpoint answering 503 got hundreds of requests in seconds (no backoff), and the
/// scores were lost with exit 0.
#[test]
fn a_failing_scores_endpoint_gets_backoff_and_the_next_run_sends_the_scores() {
    let corpus = pi_corpus_dir();
    let data = tempfile::tempdir().unwrap();
    let (server, count) = scores_server(|_| Reply::Status(503, String::new(), String::new()), 1000);
    let env = langfuse_env(&server);
    let (code, first, _) = sync_within(
        corpus.path(),
        data.path(),
        &["--retry-budget", "2"],
        &env,
        Duration::from_secs(40),
    );
    assert_eq!(code, Some(2), "{first}");
    let tries = count.load(Ordering::SeqCst);
    assert!(
        (1..=12).contains(&tries),
        "{tries} score requests in a 2 s budget: {first}"
    );
    assert_eq!(first["sinks"][0]["scores_pending"], ALL_SCORES, "{first}");
    assert!(first["sinks"][0]["gave_up"]
        .as_str()
        .unwrap()
        .contains("503"));
    // The endpoint recovers: the next run delivers every score and succeeds.
    count.store(1000, Ordering::SeqCst);
    let (code, second, _) = sync_within(
        corpus.path(),
        data.path(),
        &[],
        &env,
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(0), "{second}");
    assert_eq!(second["sinks"][0]["scores_sent"], ALL_SCORES, "{second}");
    assert_eq!(second["sinks"][0]["scores_pending"], 0, "{second}");
}

/// Item 16: the scores endpoint's `Retry-After` was ignored (the score was tried again at once).
#[test]
fn the_scores_endpoints_retry_after_is_honoured() {
    let corpus = pi_corpus_dir();
    let data = tempfile::tempdir().unwrap();
    let (server, _) = scores_server(
        |_| Reply::Status(429, "Retry-After: 2\r\n".into(), String::new()),
        1,
    );
    let env = langfuse_env(&server);
    let (code, summary, _) = sync_within(
        corpus.path(),
        data.path(),
        &["--retry-budget", "20"],
        &env,
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(0), "{summary}");
    assert_eq!(summary["sinks"][0]["scores_sent"], ALL_SCORES);
    let scores = server.to(SCORES);
    let gap = scores[1].at - scores[0].at;
    assert!(
        gap >= Duration::from_millis(1900),
        "the second score request came {gap:?} after a 429 with Retry-After: 2"
    );
}

/// Item 17: two concurrent `sync` runs each sent everything. Against a slow backend, the second now waits
/// for the first's lease and finds nothing left to send: every trace is sent once.
#[test]
fn two_concurrent_syncs_never_send_a_trace_twice() {
    let corpus = pi_corpus_dir();
    let data = tempfile::tempdir().unwrap();
    // Import first (one store, no import race), then two deliveries at once.
    let status = Command::new(env!("CARGO_BIN_EXE_tokentrace"))
        .args(["report", "--path"])
        .arg(corpus.path())
        .arg("--data-dir")
        .arg(data.path())
        .env("HOME", data.path())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let server = Server::start(Duration::from_millis(150), |_| ok());
    let env = [
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            format!("{}/v1/traces", server.base()),
        ),
        ("TOKENTRACE_BATCH_SPANS", "40".to_string()),
    ];
    let runs: Vec<_> = (0..2)
        .map(|_| {
            sync_command(corpus.path(), data.path(), &["--no-import"], &env)
                .spawn()
                .unwrap()
        })
        .collect();
    for child in runs {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut per_trace: BTreeMap<String, usize> = BTreeMap::new();
    for r in server.to("/v1/traces") {
        let req = ExportTraceServiceRequest::decode(&r.body[..]).unwrap();
        let mut traces: Vec<String> = from_request(&req)
            .into_iter()
            .filter(|g| g.parent.is_empty())
            .map(|g| g.trace_id)
            .collect();
        traces.dedup();
        for t in traces {
            *per_trace.entry(t).or_default() += 1;
        }
    }
    assert_eq!(per_trace.len(), 27, "every trace was delivered");
    let twice: Vec<_> = per_trace.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
}
