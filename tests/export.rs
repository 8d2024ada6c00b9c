//! Export end to end: `tokentrace sync` against real backends (rotel) and a fault-injecting server, the
//! official Python `opentelemetry-proto` decoder, and the dry run's determinism.
//!
//! The real backends are installed by `.ci/run` (`pip install rotel opentelemetry-proto`). Locally, a test
//! whose backend is missing is skipped with a message, unless `TOKENTRACE_REQUIRE_BACKENDS=1` (set by CI).

mod common;
#[path = "common/http_server.rs"]
mod http_server;

use common::otlp::{
    bin, dry_run, dry_run_spans, expected_tokens, from_request, pi_corpus_dir as corpus_dir,
    sync_command, Got,
};

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde_json::Value;

fn python_has(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn rotel_agent() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("ROTEL_AGENT") {
        return Some(PathBuf::from(p));
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import rotel, os; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    p.is_file().then_some(p)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Parses rotel's `--debug-log-verbosity detailed` output.
fn parse_rotel(log: &str) -> Vec<Got> {
    let mut spans = Vec::new();
    let mut cur: Option<Got> = None;
    let mut in_attrs = false;
    for line in log.lines() {
        let t = line.trim();
        if t.starts_with("Span #") {
            spans.extend(cur.take());
            cur = Some(Got::default());
            in_attrs = false;
            continue;
        }
        let Some(g) = cur.as_mut() else { continue };
        let field = |prefix: &str| {
            t.strip_prefix(prefix)
                .map(|r| r.trim_start_matches([' ', ':']).trim().to_string())
        };
        if let Some(v) = field("Trace ID") {
            g.trace_id = v;
        } else if let Some(v) = field("Parent ID") {
            g.parent = v;
        } else if let Some(v) = field("ID") {
            g.span_id = v;
        } else if let Some(v) = field("Name") {
            g.name = v;
        } else if let Some(v) = field("Start time") {
            g.start_ns = v.parse().unwrap_or(0);
        } else if t == "Attributes:" {
            in_attrs = true;
        } else if in_attrs && t.starts_with("-> ") {
            let (k, v) = t[3..].split_once(": ").unwrap_or((&t[3..], ""));
            // Str(x) / Int(n) / Bool(b)
            let v = v
                .split_once('(')
                .map(|(_, r)| r.strip_suffix(')').unwrap_or(r))
                .unwrap_or(v);
            g.attrs.insert(k.to_string(), v.to_string());
        } else if t.starts_with("ResourceSpans") || t.starts_with("ScopeSpans") {
            in_attrs = false;
        }
    }
    spans.extend(cur);
    spans
}

fn key(g: &Got) -> (String, String, u64) {
    (g.trace_id.clone(), g.span_id.clone(), g.start_ns)
}

fn rotel_roundtrip(protocol: &str) {
    let Some(agent) = rotel_agent() else {
        common::skip_missing("rotel", "pip install rotel opentelemetry-proto");
        return;
    };
    let corpus = corpus_dir();
    let expected = dry_run_spans(corpus.path());
    let (http, grpc) = (free_port(), free_port());
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("rotel.log");
    let mut rotel = Command::new(agent)
        .args([
            "start",
            "--otlp-http-endpoint",
            &format!("127.0.0.1:{http}"),
            "--otlp-grpc-endpoint",
        ])
        .arg(format!("127.0.0.1:{grpc}"))
        .args([
            "--exporter",
            "blackhole",
            "--debug-log",
            "traces",
            "--debug-log-verbosity",
            "detailed",
        ])
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(Instant::now() < deadline, "rotel did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["sync", "--json", "--path"])
        .arg(corpus.path())
        .arg("--data-dir")
        .arg(data.path())
        .env("HOME", data.path())
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{http}"),
        )
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        .env("TOKENTRACE_BATCH_SPANS", "100")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        summary["sinks"][0]["spans_sent"].as_u64().unwrap() as usize,
        expected.len()
    );
    // rotel prints asynchronously: wait until every span is logged.
    let deadline = Instant::now() + Duration::from_secs(20);
    let got = loop {
        let got = parse_rotel(&std::fs::read_to_string(&log).unwrap_or_default());
        if got.len() >= expected.len() || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = rotel.kill();
    let _ = rotel.wait();

    assert_eq!(got.len(), expected.len(), "every span arrives once");
    let got_keys: BTreeSet<_> = got.iter().map(key).collect();
    let exp_keys: BTreeSet<_> = expected.iter().map(key).collect();
    assert_eq!(got_keys, exp_keys, "ids and start times");
    let names = |v: &[Got]| {
        v.iter()
            .map(|g| (g.span_id.clone(), (g.name.clone(), g.parent.clone())))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(names(&got), names(&expected), "names and parent links");
    // Parent links: the root has none, every other parent is a span of the same trace.
    let by_trace: BTreeMap<&str, BTreeSet<&str>> = got.iter().fold(BTreeMap::new(), |mut m, g| {
        m.entry(g.trace_id.as_str())
            .or_default()
            .insert(g.span_id.as_str());
        m
    });
    for g in &got {
        if g.attrs.get("langfuse.observation.type").map(String::as_str) == Some("agent")
            && g.parent.is_empty()
        {
            continue;
        }
        assert!(
            by_trace[g.trace_id.as_str()].contains(g.parent.as_str()),
            "{} has a dangling parent",
            g.name
        );
    }
    // Every prompt's root span starts at the user entry's timestamp in the file.
    let roots: Vec<&Got> = got.iter().filter(|g| g.parent.is_empty()).collect();
    assert_eq!(roots.len(), 27, "27 prompts in the pi / oh-my-pi runs");
    for line in walkdir::WalkDir::new(corpus.path())
        .into_iter()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .flat_map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap()
                .lines()
                .map(String::from)
                .collect::<Vec<_>>()
        })
    {
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["type"] == "message" && v["message"]["role"] == "user" {
            let ms = v["timestamp"]
                .as_str()
                .unwrap()
                .parse::<jiff::Timestamp>()
                .unwrap()
                .as_millisecond();
            assert!(
                roots.iter().any(|r| r.start_ns == ms as u64 * 1_000_000),
                "a root span starts at {ms}"
            );
        }
    }
    // Token values: generation spans sum to the runs' expected.json totals.
    let gens: Vec<&Got> = got
        .iter()
        .filter(|g| {
            g.attrs.get("langfuse.observation.type").map(String::as_str) == Some("generation")
        })
        .collect();
    let sum = |k: &str| {
        gens.iter()
            .map(|g| g.attrs.get(k).map_or(0, |v| v.parse::<u64>().unwrap()))
            .sum::<u64>()
    };
    assert_eq!(
        (
            sum("gen_ai.usage.input_tokens"),
            sum("gen_ai.usage.output_tokens")
        ),
        expected_tokens()
    );
    assert_eq!(gens.len(), 59, "59 generations in the pi / oh-my-pi runs");
    // Usage and cost only on generations, never on the root.
    for r in &roots {
        assert!(!r
            .attrs
            .keys()
            .any(|k| k.starts_with("gen_ai.usage") || k.contains("cost")));
        assert_eq!(
            r.attrs.get("gen_ai.operation.name").map(String::as_str),
            Some("invoke_agent")
        );
    }
    let tool = got
        .iter()
        .find(|g| g.attrs.get("langfuse.observation.type").map(String::as_str) == Some("tool"))
        .unwrap();
    assert_eq!(
        tool.attrs.get("gen_ai.operation.name").map(String::as_str),
        Some("execute_tool")
    );
    assert!(tool.attrs.contains_key("gen_ai.tool.call.id"));
}

#[test]
fn sync_delivers_every_span_to_rotel_over_protobuf() {
    rotel_roundtrip("http/protobuf");
}

#[test]
fn sync_delivers_every_span_to_rotel_over_json() {
    rotel_roundtrip("http/json");
}

#[test]
fn dry_run_is_byte_identical_across_runs() {
    let corpus = corpus_dir();
    let (a, b) = (dry_run(corpus.path()), dry_run(corpus.path()));
    assert!(!a.is_empty());
    assert_eq!(a, b, "same files, same bytes");
}

#[test]
fn our_protobuf_decodes_with_the_official_python_package() {
    if !python_has("opentelemetry.proto.collector.trace.v1.trace_service_pb2") {
        common::skip_missing(
            "the opentelemetry-proto Python package",
            "pip install rotel opentelemetry-proto",
        );
        return;
    }
    let corpus = corpus_dir();
    // The dry run's requests as one protobuf request, as sync sends it.
    let mut req = ExportTraceServiceRequest::default();
    for (_, bytes) in dry_run(corpus.path()) {
        let r: ExportTraceServiceRequest = serde_json::from_slice(&bytes).unwrap();
        req.resource_spans.extend(r.resource_spans);
    }
    let expected = from_request(&req);
    let data = tempfile::tempdir().unwrap();
    let pb = data.path().join("request.pb");
    std::fs::write(&pb, req.encode_to_vec()).unwrap();
    let script = r#"
import sys, json
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
req = ExportTraceServiceRequest()
req.ParseFromString(open(sys.argv[1], 'rb').read())
out = []
for rs in req.resource_spans:
    for ss in rs.scope_spans:
        for s in ss.spans:
            attrs = {kv.key: kv.value.WhichOneof('value') for kv in s.attributes}
            out.append([s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), s.start_time_unix_nano, attrs.get('gen_ai.usage.input_tokens')])
print(json.dumps(out))
"#;
    let o = Command::new("python3")
        .args(["-c", script])
        .arg(&pb)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let decoded: Vec<(String, String, String, u64, Option<String>)> =
        serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(decoded.len(), expected.len());
    for (d, e) in decoded.iter().zip(&expected) {
        assert_eq!(
            (&d.0, &d.1, &d.2, d.3),
            (&e.trace_id, &e.span_id, &e.parent, e.start_ns)
        );
        if e.attrs.contains_key("gen_ai.usage.input_tokens") {
            assert_eq!(
                d.4.as_deref(),
                Some("int_value"),
                "token counts are OTLP ints"
            );
        }
    }
}

/// One request the test server got.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: Vec<String>,
    body: Vec<u8>,
}

/// A scripted HTTP server: records every request and every OTLP span it is sent, and answers by request
/// number.
struct FaultServer {
    port: u16,
    received: Arc<Mutex<Vec<(String, String, u64)>>>,
    statuses: Arc<Mutex<Vec<u16>>>,
    /// When each request had been read (before the answer).
    arrivals: Arc<Mutex<Vec<Instant>>>,
    requests: Arc<Mutex<Vec<Seen>>>,
}

/// How a test server answers request number n (from 1): status, extra header lines, and the JSON body of a
/// 2xx (`{}` when empty).
type Script = fn(u32) -> (u16, &'static str, &'static str);

/// The fault script: requests 1..=3 get 503, 4 gets 429 + `Retry-After: 2`, 6 gets 400, the rest 200.
fn faults(n: u32) -> (u16, &'static str, &'static str) {
    match n {
        1..=3 => (503, "", ""),
        4 => (429, "Retry-After: 2\r\n", ""),
        6 => (400, "", ""),
        _ => (200, "", ""),
    }
}

impl FaultServer {
    /// Starts listening after `refuse_for` (connections are refused until then), answering by `script`.
    fn start(refuse_for: Duration) -> FaultServer {
        Self::with_script(refuse_for, faults)
    }

    fn with_script(refuse_for: Duration, script: Script) -> FaultServer {
        let port = free_port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let statuses = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let (r, st, rq, at) = (
            received.clone(),
            statuses.clone(),
            requests.clone(),
            arrivals.clone(),
        );
        std::thread::spawn(move || {
            std::thread::sleep(refuse_for);
            let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
            let mut n = 0u32;
            let mut bad: BTreeSet<String> = BTreeSet::new();
            for stream in listener.incoming().flatten() {
                // One connection at a time: requests are numbered in arrival order for the script.
                let Some(http_server::Request {
                    path,
                    headers,
                    body,
                    ..
                }) = http_server::read_request(&stream)
                else {
                    continue;
                };
                n += 1;
                let (mut status, extra, body_2xx) = script(n);
                // A refused batch stays invalid: later requests carrying any of its traces are refused too (a
                // sync killed before it recorded the refusal sends the same batch again).
                let traces: BTreeSet<String> = ExportTraceServiceRequest::decode(&body[..])
                    .map(|req| from_request(&req).into_iter().map(|g| g.trace_id).collect())
                    .unwrap_or_default();
                if status == 400 {
                    bad.extend(traces.iter().cloned());
                } else if traces.iter().any(|t| bad.contains(t)) {
                    status = 400;
                }
                rq.lock().unwrap().push(Seen {
                    path,
                    headers,
                    body: body.clone(),
                });
                if let Ok(req) = ExportTraceServiceRequest::decode(&body[..]) {
                    let mut got = r.lock().unwrap();
                    for g in from_request(&req) {
                        got.push(key(&g));
                    }
                }
                st.lock().unwrap().push(status);
                at.lock().unwrap().push(Instant::now());
                // Slow answers give the kills something to interrupt.
                std::thread::sleep(Duration::from_millis(30));
                let msg = match status {
                    400 => "{\"message\":\"invalid span\"}",
                    200..=299 if !body_2xx.is_empty() => body_2xx,
                    _ => "{}",
                };
                let mut s = stream;
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}",
                    msg.len()
                );
            }
        });
        FaultServer {
            port,
            received,
            statuses,
            arrivals,
            requests,
        }
    }
}

#[test]
fn sync_survives_a_failing_backend_and_20_sigkills() {
    let corpus = corpus_dir();
    let expected: BTreeSet<_> = dry_run_spans(corpus.path()).iter().map(key).collect();
    let server = FaultServer::start(Duration::from_millis(1500));
    let data = tempfile::tempdir().unwrap();
    let env = server_env(server.port, "20");
    let sync = || {
        sync_command(corpus.path(), data.path(), &["--retry-budget", "30"], &env)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // Kill at pseudo-random moments (deterministic sequence), 20 times.
    let mut seed = 0x2545f4914f6cdd1du64;
    for _ in 0..20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut child = sync();
        std::thread::sleep(Duration::from_millis(20 + seed % 400));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
    }
    // Then run to completion.
    let mut last = Value::Null;
    for _ in 0..5 {
        let out = sync().wait_with_output().unwrap();
        last = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if last["sinks"][0]["pending"] == 0 {
            break;
        }
    }
    let sink = &last["sinks"][0];
    assert_eq!(sink["pending"], 0, "{last}");
    assert!(
        sink["failed"].as_u64().unwrap() >= 1,
        "the batch answered with 400 is reported as failed: {last}"
    );
    assert!(
        sink["last_error"].as_str().unwrap().contains("400"),
        "{last}"
    );
    let statuses = server.statuses.lock().unwrap().clone();
    assert!(statuses.starts_with(&[503, 503, 503, 429]), "{statuses:?}");
    eprintln!(
        "statuses: {statuses:?}; {} span posts, {} expected",
        server.received.lock().unwrap().len(),
        expected.len()
    );
    let received: BTreeSet<_> = server.received.lock().unwrap().iter().cloned().collect();
    assert_eq!(received, expected, "every span arrived, nothing unexpected");
}

/// Requests 1 and 2 get 429 + `Retry-After: 2`, the rest 200.
fn overloaded_twice(n: u32) -> (u16, &'static str, &'static str) {
    match n {
        1 | 2 => (429, "Retry-After: 2\r\n", ""),
        _ => (200, "", ""),
    }
}

#[test]
fn retry_after_is_honoured_within_a_run_and_by_the_next_run() {
    let corpus = corpus_dir();
    let expected: BTreeSet<_> = dry_run_spans(corpus.path()).iter().map(key).collect();
    let server = FaultServer::with_script(Duration::ZERO, overloaded_twice);
    let data = tempfile::tempdir().unwrap();
    let env = server_env(server.port, "50");
    let sync = |budget: &str| {
        sync_with(
            corpus.path(),
            data.path(),
            &["--retry-budget", budget],
            &env,
        )
    };
    // A run whose budget (1 s) is shorter than the backend's Retry-After gives up at once, leaving all pending.
    let first = sync("1");
    assert_eq!(
        server.statuses.lock().unwrap()[..],
        [429],
        "one request, no retry within the run: {first}"
    );
    let sink = &first["sinks"][0];
    assert_eq!(sink["spans_sent"], 0, "{first}");
    assert_eq!(sink["pending"], 27, "{first}");
    assert!(sink["gave_up"].as_str().unwrap().contains("429"), "{first}");
    // The next run waits out the first Retry-After before its first request, and the second one in-run.
    let second = sync("30");
    let sink = &second["sinks"][0];
    assert_eq!(sink["pending"], 0, "{second}");
    assert_eq!(sink["spans_sent"].as_u64(), Some(expected.len() as u64));
    assert_eq!(
        server.statuses.lock().unwrap()[..3],
        [429, 429, 200],
        "one request per answer"
    );
    let at = server.arrivals.lock().unwrap().clone();
    for (i, gap) in [(1, at[1] - at[0]), (2, at[2] - at[1])] {
        assert!(
            gap >= Duration::from_secs(2),
            "request {} came {gap:?} after a 429 with Retry-After: 2",
            i + 1
        );
    }
    let received: BTreeSet<_> = server.received.lock().unwrap().iter().cloned().collect();
    assert_eq!(received, expected);
}

#[test]
fn a_backend_that_was_down_is_tried_at_once_by_the_next_run() {
    // Our own backoff after connection errors binds only the run that backed off: the next `sync` (the user
    // has started the collector) sends at once, even with no retry budget at all.
    let corpus = corpus_dir();
    let expected: BTreeSet<_> = dry_run_spans(corpus.path()).iter().map(key).collect();
    let server = FaultServer::with_script(Duration::from_millis(2500), healthy);
    let data = tempfile::tempdir().unwrap();
    let env = server_env(server.port, "50");
    let began = Instant::now();
    let first = sync_with(corpus.path(), data.path(), &["--retry-budget", "1"], &env);
    let sink = &first["sinks"][0];
    assert_eq!(
        (sink["spans_sent"].as_u64(), sink["pending"].as_u64()),
        (Some(0), Some(27)),
        "{first}"
    );
    assert!(
        sink["gave_up"].as_str().unwrap().contains("cannot reach"),
        "{first}"
    );
    // Until the server listens (2.5 s after it was created), then at once.
    let up = Duration::from_millis(2700);
    if let Some(rest) = up.checked_sub(began.elapsed()) {
        std::thread::sleep(rest);
    }
    let second = sync_with(corpus.path(), data.path(), &["--retry-budget", "0"], &env);
    let sink = &second["sinks"][0];
    assert_eq!(sink["pending"], 0, "{second}");
    assert!(sink["gave_up"].is_null(), "{second}");
    let received: BTreeSet<_> = server.received.lock().unwrap().iter().cloned().collect();
    assert_eq!(received, expected);
}

fn healthy(_: u32) -> (u16, &'static str, &'static str) {
    (200, "", "")
}

/// Request 2 is accepted with an OTLP partial success (in JSON, as a collector answers a JSON export),
/// request 3 with a 207 Multi-Status (as Langfuse's batch APIs answer).
fn partly_rejected(n: u32) -> (u16, &'static str, &'static str) {
    match n {
        3 => (207, "", ""),
        2 => (
            200,
            "",
            r#"{"partialSuccess":{"rejectedSpans":"4","errorMessage":"4 spans are older than the retention"}}"#,
        ),
        _ => (200, "", ""),
    }
}

#[test]
fn a_partial_success_and_a_207_are_acknowledged_and_not_resent() {
    let corpus = corpus_dir();
    let server = FaultServer::with_script(Duration::ZERO, partly_rejected);
    std::thread::sleep(Duration::from_millis(100));
    let data = tempfile::tempdir().unwrap();
    let mut env = server_env(server.port, "50");
    env.push(("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".to_string()));
    let first = sync_to(corpus.path(), data.path(), &env);
    let sink = &first["sinks"][0];
    assert_eq!(sink["spans_rejected"], 4, "{first}");
    assert_eq!(
        sink["pending"], 0,
        "a partial success is an acknowledgement: {first}"
    );
    assert_eq!(sink["failed"], 0, "{first}");
    let error = sink["last_error"].as_str().unwrap();
    assert!(
        error.contains("rejected 4 span(s): 4 spans are older than the retention"),
        "{first}"
    );
    let requests = server.requests.lock().unwrap().len();
    assert!(requests >= 3, "{first}");
    assert_eq!(
        server.statuses.lock().unwrap()[..3],
        [200, 200, 207],
        "a 207 is an acknowledgement too"
    );
    // Not retried: the next run sends nothing.
    let second = sync_to(corpus.path(), data.path(), &env);
    assert_eq!(second["sinks"][0]["requests"], 0, "{second}");
    assert_eq!(server.requests.lock().unwrap().len(), requests);
    // `doctor` shows it as the sink's latest error.
    let mut doctor = Command::new(bin());
    doctor
        .args(["doctor", "--json", "--data-dir"])
        .arg(data.path())
        .env("HOME", data.path());
    for (k, v) in &env {
        doctor.env(k, v);
    }
    let doc: Value = serde_json::from_slice(&doctor.output().unwrap().stdout).unwrap();
    assert!(
        doc["sinks"][0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("rejected 4 span(s)")),
        "{doc}"
    );
}

/// Runs [`sync_command`] to the end; its JSON summary.
fn sync_with(corpus: &Path, data: &Path, args: &[&str], env: &[(&str, String)]) -> Value {
    let out = sync_command(corpus, data, args, env).output().unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)))
}

fn sync_to(corpus: &Path, data: &Path, env: &[(&str, String)]) -> Value {
    sync_with(corpus, data, &[], env)
}

/// The endpoint of a test server, and requests of `batch` spans at most.
fn server_env(port: u16, batch: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            format!("http://127.0.0.1:{port}/v1/traces"),
        ),
        ("TOKENTRACE_BATCH_SPANS", batch.to_string()),
    ]
}

#[test]
fn langfuse_sink_authenticates_and_sends_scores_with_stable_ids() {
    let server = FaultServer::with_script(Duration::ZERO, healthy);
    std::thread::sleep(Duration::from_millis(100));
    let corpus = corpus_dir();
    let data = tempfile::tempdir().unwrap();
    let env = [
        ("LANGFUSE_PUBLIC_KEY", "pk-lf-1".to_string()),
        ("LANGFUSE_SECRET_KEY", "sk-lf-2".to_string()),
        (
            "LANGFUSE_BASE_URL",
            format!("http://127.0.0.1:{}", server.port),
        ),
    ];
    let summary = sync_to(corpus.path(), data.path(), &env);
    let sink = &summary["sinks"][0];
    assert_eq!(
        (
            sink["sink"].as_str(),
            sink["pending"].as_u64(),
            sink["failed"].as_u64()
        ),
        (Some("langfuse"), Some(0), Some(0))
    );
    let requests = server.requests.lock().unwrap().clone();
    let traces: Vec<_> = requests
        .iter()
        .filter(|r| r.path == "/api/public/otel/v1/traces")
        .collect();
    assert!(!traces.is_empty());
    for r in &traces {
        let h: Vec<String> = r.headers.iter().map(|h| h.to_ascii_lowercase()).collect();
        // base64("pk-lf-1:sk-lf-2")
        assert!(
            h.contains(&"authorization: basic cgstbgytmtpzay1szi0y".to_string()),
            "{h:?}"
        );
        assert!(h.contains(&"x-langfuse-ingestion-version: 4".to_string()));
        assert!(h.contains(&"content-type: application/x-protobuf".to_string()));
        assert!(h.contains(&"content-encoding: gzip".to_string()));
    }
    // Langfuse leaves out OpenInference content copies.
    let spans: Vec<Got> = server_spans(&traces);
    assert!(spans.iter().all(|g| !g.attrs.contains_key("input.value")));
    let scores: Vec<Value> = requests
        .iter()
        .filter(|r| r.path == "/api/public/scores")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    // 27 prompts × 4 trace scores, `tool_success_rate` for the prompts with tool calls (none failed in
    // these runs), and 2 session scores per session, each posted once.
    let trace_scores: Vec<&Value> = scores
        .iter()
        .filter(|s| s.get("traceId").is_some())
        .collect();
    let with_tools = trace_scores
        .iter()
        .filter(|s| s["name"] == "tool_call_count" && s["value"].as_f64().unwrap() > 0.0)
        .count();
    assert!(with_tools > 0 && with_tools < 27);
    assert_eq!(trace_scores.len(), 27 * 4 + with_tools);
    assert_eq!(
        trace_scores
            .iter()
            .filter(|s| s["name"] == "tool_success_rate")
            .count(),
        with_tools
    );
    let sessions: BTreeSet<&str> = scores
        .iter()
        .filter_map(|s| s["sessionId"].as_str())
        .collect();
    let expected_sessions: u64 = common::runs(&common::repo().join("examples"), &["pi", "omp"])
        .iter()
        .map(|r| common::expected(r)["sessions"].as_u64().unwrap())
        .sum();
    assert_eq!(sessions.len() as u64, expected_sessions);
    assert_eq!(scores.len() - trace_scores.len(), 2 * sessions.len());
    assert!(scores
        .iter()
        .filter(|s| s.get("sessionId").is_some())
        .all(|s| s.get("traceId").is_none()));
    assert_eq!(sink["scores_sent"], scores.len());
    let tool_counts: u64 = scores
        .iter()
        .filter(|s| s["name"] == "tool_call_count")
        .map(|s| s["value"].as_f64().unwrap() as u64)
        .sum();
    assert_eq!(tool_counts, 25, "25 tool calls in the pi / oh-my-pi runs");
    // Re-sending gives the same score ids (Langfuse upserts by id).
    let ids: BTreeSet<String> = scores
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), scores.len());
    let data2 = tempfile::tempdir().unwrap();
    sync_to(corpus.path(), data2.path(), &env);
    let again: BTreeSet<String> = server.requests.lock().unwrap()[requests.len()..]
        .iter()
        .filter(|r| r.path == "/api/public/scores")
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(again, ids);
}

fn server_spans(requests: &[&Seen]) -> Vec<Got> {
    requests
        .iter()
        // Bodies are recorded after gzip decoding.
        .filter_map(|r| ExportTraceServiceRequest::decode(&r.body[..]).ok())
        .flat_map(|req| from_request(&req))
        .collect()
}

#[test]
fn a_growing_trace_sends_only_its_changed_spans_with_the_same_ids_and_start_times() {
    let server = FaultServer::with_script(Duration::ZERO, healthy);
    std::thread::sleep(Duration::from_millis(100));
    let run = common::repo().join("examples/pi/pi-0.87.1/01-print-openai");
    let file = common::session_file(&run);
    let content = std::fs::read(&file).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file.file_name().unwrap());
    // The session up to the tool result: the answer is not written yet.
    let lines: Vec<&[u8]> = content.split_inclusive(|b| *b == b'\n').collect();
    std::fs::write(&path, lines[..lines.len() - 1].concat()).unwrap();
    let data = tempfile::tempdir().unwrap();
    let env = [(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        format!("http://127.0.0.1:{}", server.port),
    )];
    let first = sync_to(dir.path(), data.path(), &env);
    assert_eq!(first["sinks"][0]["traces_sent"], 1);
    let n = server.requests.lock().unwrap().len();
    std::fs::write(&path, &content).unwrap();
    let second = sync_to(dir.path(), data.path(), &env);
    assert_eq!(
        second["sinks"][0]["traces_sent"], 1,
        "the grown trace is pending again"
    );
    let reqs = server.requests.lock().unwrap().clone();
    let before = server_spans(&reqs[..n].iter().collect::<Vec<_>>());
    let after = server_spans(&reqs[n..].iter().collect::<Vec<_>>());
    // Only what changed goes again: the root (its end and output) and the final answer's turn and
    // generation; the first turn, its model call and its tool call are not resent.
    let names: Vec<&str> = after.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["pi prompt 1", "turn 2", "chat mock-gpt"]);
    assert_eq!(before.len(), 4);
    for a in &after {
        if let Some(b) = before.iter().find(|b| b.span_id == a.span_id) {
            assert_eq!(
                (&a.trace_id, a.start_ns),
                (&b.trace_id, b.start_ns),
                "same trace id and start time"
            );
            assert_ne!(a, b, "a span is sent again only when it changed");
        }
    }
    // What the backend holds (the latest version of each span) is what a dry run of the final file sends.
    let mut held: BTreeMap<String, Got> = BTreeMap::new();
    for g in before.iter().chain(&after) {
        held.insert(g.span_id.clone(), g.clone());
    }
    let want: BTreeMap<String, Got> = dry_run_spans(dir.path())
        .into_iter()
        .map(|g| (g.span_id.clone(), g))
        .collect();
    assert_eq!(held, want);
    let root = after.iter().find(|g| g.parent.is_empty()).unwrap();
    assert_eq!(
        root.attrs
            .get("langfuse.observation.output")
            .map(String::as_str),
        Some("\"I listed the directory. Done. \"")
    );
    // Nothing new: nothing is sent.
    let third = sync_to(dir.path(), data.path(), &env);
    assert_eq!(third["sinks"][0]["traces_sent"], 0);
}
