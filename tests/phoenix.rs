//! Export end to end against a real Arize Phoenix: `tokentrace sync` sends the pi / oh-my-pi example corpus
//! over OTLP/HTTP protobuf, and every span is read back from Phoenix's REST API and compared with the dry run.
//!
//! Phoenix is installed in a venv of its own by `.ci/run` (`target/phoenix`, `arize-phoenix==20.26.1`; or set
//! `$PHOENIX_PYTHON`). Locally, the test is skipped with a message when it is missing, unless
//! `TOKENTRACE_REQUIRE_BACKENDS=1` (set by CI), in which case it fails.

mod common;

use common::otlp::{bin, dry_run_spans, expected_tokens, pi_corpus_dir as corpus_dir, Got};

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A port free on every interface: Phoenix binds its gRPC receiver to `[::]` whatever `PHOENIX_HOST` says,
/// so a port that is only free on 127.0.0.1 is not enough. Falls back to IPv4 where there is no IPv6.
fn free_port() -> TcpListener {
    TcpListener::bind("[::]:0")
        .or_else(|_| TcpListener::bind("127.0.0.1:0"))
        .unwrap()
}

/// How to run Phoenix here: the first Python that has the `arize-phoenix` distribution — `$PHOENIX_PYTHON`,
/// the venv `.ci/run` makes (`target/phoenix`), then `python3` — checked through its metadata (importing
/// `phoenix` takes ~15 s), else a `phoenix` on PATH. A venv of its own keeps Phoenix's many dependencies
/// away from the Python that runs rotel and the official decoder.
fn phoenix_command() -> Option<(Command, String)> {
    let pythons = [
        std::env::var("PHOENIX_PYTHON").ok().map(PathBuf::from),
        Some(common::repo().join("target/phoenix/bin/python")),
        Some(PathBuf::from("python3")),
    ];
    for py in pythons.into_iter().flatten() {
        let version = Command::new(&py)
            .args([
                "-c",
                "import importlib.metadata as m; print(m.version('arize-phoenix'))",
            ])
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|v| v.trim().to_string());
        if let Some(v) = version {
            let mut c = Command::new(py);
            c.args(["-m", "phoenix.server.main", "serve"]);
            return Some((c, v));
        }
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("phoenix"))
            .find(|p| p.is_file())
    })?;
    let mut c = Command::new(on_path);
    c.arg("serve");
    Some((c, "unknown version".into()))
}

/// A Phoenix server in its own process group, stopped (with anything it started) when dropped, also when
/// the test fails.
struct Phoenix {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Phoenix {
    fn start(mut cmd: Command) -> Phoenix {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("phoenix.log");
        // Both ports are held until Phoenix is about to start, so they differ from each other.
        let (http, grpc) = (free_port(), free_port());
        let port = http.local_addr().unwrap().port();
        let grpc_port = grpc.local_addr().unwrap().port();
        drop((http, grpc));
        for (k, _) in std::env::vars() {
            if k.starts_with("PHOENIX_") {
                cmd.env_remove(k);
            }
        }
        let logfile = std::fs::File::create(&log).unwrap();
        let child = cmd
            .env("PHOENIX_WORKING_DIR", dir.path().join("work"))
            .env("PHOENIX_HOST", "127.0.0.1")
            .env("PHOENIX_PORT", port.to_string())
            .env("PHOENIX_GRPC_PORT", grpc_port.to_string())
            .env("PHOENIX_TELEMETRY_ENABLED", "false")
            // No downloads at startup (WASM sandbox, docs MCP server), no assistant, no sandboxes.
            .env("PHOENIX_ALLOW_EXTERNAL_RESOURCES", "false")
            .env("PHOENIX_DISABLE_AGENT_ASSISTANT", "true")
            .env("PHOENIX_ALLOWED_SANDBOX_PROVIDERS", "NONE")
            .stdin(Stdio::null())
            .stdout(logfile.try_clone().unwrap())
            .stderr(logfile)
            .process_group(0)
            .spawn()
            .unwrap();
        Phoenix {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Waits until `/healthz` answers 200 (Phoenix takes 10–40 s to start).
    fn wait_ready(&mut self, client: &reqwest::blocking::Client, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(r) = client.get(self.url("/healthz")).send() {
                if r.status().is_success() {
                    return;
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "Phoenix exited ({status}) before answering:\n{}",
                    self.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "Phoenix did not answer within {timeout:?}:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn signal_group(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Phoenix {
    fn drop(&mut self) {
        self.signal_group("-TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(100));
        }
        // Whatever is left of the group (nothing, normally).
        self.signal_group("-KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One span as Phoenix stored it (`GET /v1/projects/default/spans`).
#[derive(Debug, Clone)]
struct Stored {
    trace_id: String,
    span_id: String,
    /// Empty for a root.
    parent: String,
    name: String,
    start_ms: i64,
    end_ms: i64,
    /// Phoenix's `span_kind` (from `openinference.span.kind`; `UNKNOWN` without it).
    kind: String,
    status: String,
    attributes: Value,
}

/// An attribute by its dotted name, whether Phoenix returns it flat (`"llm.token_count.prompt"`) or nested
/// (`{"llm": {"token_count": {"prompt": …}}}`).
fn attr<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    let obj = v.as_object()?;
    if let Some(x) = obj.get(key) {
        return Some(x);
    }
    key.match_indices('.').find_map(|(i, _)| {
        obj.get(&key[..i])
            .and_then(|inner| attr(inner, &key[i + 1..]))
    })
}

fn iso_ms(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    s.parse::<jiff::Timestamp>()
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .as_millisecond()
}

fn stored(v: &Value) -> Stored {
    let text = |x: &Value| x.as_str().unwrap_or_default().to_string();
    Stored {
        trace_id: text(&v["context"]["trace_id"]),
        span_id: text(&v["context"]["span_id"]),
        parent: text(&v["parent_id"]),
        name: text(&v["name"]),
        start_ms: iso_ms(&v["start_time"]),
        end_ms: iso_ms(&v["end_time"]),
        kind: text(&v["span_kind"]),
        status: text(&v["status_code"]),
        attributes: v["attributes"].clone(),
    }
}

/// Every span of the default project, following `next_cursor`. None while the project does not exist yet.
fn fetch_spans(client: &reqwest::blocking::Client, phoenix: &Phoenix) -> Option<Vec<Stored>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = phoenix.url("/v1/projects/default/spans?limit=100");
        if let Some(c) = &cursor {
            // Phoenix's cursors are base64 and end in `=`.
            url.push_str(&format!("&cursor={}", common::net::encode(c)));
        }
        let r = client.get(&url).send().ok()?;
        if !r.status().is_success() {
            return None;
        }
        let page: Value = serde_json::from_str(&r.text().ok()?).ok()?;
        out.extend(page["data"].as_array()?.iter().map(stored));
        match page["next_cursor"].as_str() {
            Some(c) if !c.is_empty() => cursor = Some(c.to_string()),
            _ => return Some(out),
        }
    }
}

#[test]
fn sync_delivers_every_span_to_phoenix_and_reads_them_back() {
    let Some((cmd, version)) = phoenix_command() else {
        common::skip_missing(
            "Arize Phoenix",
            "python3 -m venv target/phoenix && target/phoenix/bin/pip install arize-phoenix",
        );
        return;
    };
    let began = Instant::now();
    let mut phoenix = Phoenix::start(cmd);
    let corpus = corpus_dir();
    let expected = dry_run_spans(corpus.path());
    assert!(!expected.is_empty());
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    phoenix.wait_ready(&client, Duration::from_secs(120));
    eprintln!(
        "Phoenix {version} answered after {:.1}s",
        began.elapsed().as_secs_f64()
    );

    // Sync over OTLP/HTTP protobuf (the default), several requests.
    let data = tempfile::tempdir().unwrap();
    let mut sync = Command::new(bin());
    sync.args(["sync", "--json", "--path"])
        .arg(corpus.path())
        .arg("--data-dir")
        .arg(data.path())
        .env("HOME", data.path())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", phoenix.url(""))
        .env("TOKENTRACE_BATCH_SPANS", "50");
    for k in [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "OTEL_RESOURCE_ATTRIBUTES",
        "LANGFUSE_PUBLIC_KEY",
        "LANGFUSE_SECRET_KEY",
        "TOKENTRACE_SAMPLE_RATE",
    ] {
        sync.env_remove(k);
    }
    let out = sync.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sinks = summary["sinks"].as_array().unwrap();
    assert_eq!(sinks.len(), 1, "{summary}");
    let sink = &sinks[0];
    let traces: BTreeSet<&str> = expected.iter().map(|g| g.trace_id.as_str()).collect();
    assert_eq!(sink["sink"], "otlp", "{summary}");
    assert_eq!(sink["url"], phoenix.url("/v1/traces"), "{summary}");
    assert_eq!(
        sink["spans_sent"].as_u64(),
        Some(expected.len() as u64),
        "every span sent: {summary}"
    );
    assert_eq!(
        sink["traces_sent"].as_u64(),
        Some(traces.len() as u64),
        "{summary}"
    );
    assert!(sink["requests"].as_u64().unwrap() >= 2, "{summary}");
    for k in ["traces_refused", "pending", "failed"] {
        assert_eq!(sink[k], 0, "{k}: {summary}");
    }
    assert!(sink["last_error"].is_null(), "{summary}");

    // Phoenix inserts asynchronously: poll until every span is there, or the count stops growing.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut last_len, mut last_change) = (0, Instant::now());
    let got = loop {
        let got = fetch_spans(&client, &phoenix).unwrap_or_default();
        if got.len() != last_len {
            (last_len, last_change) = (got.len(), Instant::now());
        }
        let stalled = !got.is_empty() && last_change.elapsed() > Duration::from_secs(10);
        if got.len() >= expected.len() || stalled || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    eprintln!(
        "{} spans read back from Phoenix after {:.1}s in all",
        got.len(),
        began.elapsed().as_secs_f64()
    );

    // The same spans, each once.
    let got_keys: Vec<(&str, &str)> = got
        .iter()
        .map(|s| (s.trace_id.as_str(), s.span_id.as_str()))
        .collect();
    let got_set: BTreeSet<_> = got_keys.iter().copied().collect();
    assert_eq!(got_set.len(), got_keys.len(), "no span stored twice");
    let exp_set: BTreeSet<(&str, &str)> = expected
        .iter()
        .map(|g| (g.trace_id.as_str(), g.span_id.as_str()))
        .collect();
    assert_eq!(got_set, exp_set, "(trace id, span id) as in the dry run");
    assert_eq!(got.len(), expected.len());

    // Span by span: parent, name, times (Phoenix: ISO strings, compared at ms), kind, status, tokens.
    let by_key: BTreeMap<(&str, &str), &Got> = expected
        .iter()
        .map(|g| ((g.trace_id.as_str(), g.span_id.as_str()), g))
        .collect();
    let ms = |ns: u64| (ns / 1_000_000) as i64;
    for s in &got {
        let e = by_key[&(s.trace_id.as_str(), s.span_id.as_str())];
        let what = format!("{} {} ({})", s.trace_id, s.span_id, e.name);
        assert_eq!(s.parent, e.parent, "parent of {what}");
        assert_eq!(s.name, e.name, "name of {what}");
        assert_eq!(s.start_ms, ms(e.start_ns), "start of {what}");
        assert_eq!(s.end_ms, ms(e.end_ns), "end of {what}");
        let kind = e
            .attrs
            .get("openinference.span.kind")
            .map_or("UNKNOWN", String::as_str);
        assert_eq!(s.kind, kind, "span kind of {what}");
        assert_eq!(s.status == "ERROR", e.error, "status of {what}");
        for k in ["llm.token_count.prompt", "llm.token_count.completion"] {
            let stored = attr(&s.attributes, k);
            match e.attrs.get(k) {
                Some(v) => assert_eq!(
                    stored.and_then(Value::as_u64),
                    Some(v.parse::<u64>().unwrap()),
                    "{k} of {what}: Phoenix stored {stored:?}"
                ),
                None => assert!(stored.is_none(), "{k} on {what}"),
            }
        }
    }

    // Parent links: roots have none; every other parent is a span of the same trace.
    let by_trace: BTreeMap<&str, BTreeSet<&str>> = got.iter().fold(BTreeMap::new(), |mut m, s| {
        m.entry(s.trace_id.as_str())
            .or_default()
            .insert(s.span_id.as_str());
        m
    });
    let roots: Vec<&Stored> = got.iter().filter(|s| s.parent.is_empty()).collect();
    assert_eq!(roots.len(), 27, "27 prompts in the pi / oh-my-pi runs");
    assert_eq!(roots.len(), traces.len(), "one root per trace");
    for s in got.iter().filter(|s| !s.parent.is_empty()) {
        assert!(
            by_trace[s.trace_id.as_str()].contains(s.parent.as_str()),
            "{} has a dangling parent",
            s.name
        );
    }

    // Span kinds as Phoenix maps them: the root AGENT, generations LLM, tools TOOL.
    let typed = |t: &str| {
        expected
            .iter()
            .filter(|g| g.attrs.get("langfuse.observation.type").map(String::as_str) == Some(t))
            .count()
    };
    assert!(roots.iter().all(|r| r.kind == "AGENT"), "roots are AGENT");
    let count = |k: &str| got.iter().filter(|s| s.kind == k).count();
    assert_eq!(count("LLM"), typed("generation"));
    assert_eq!(count("LLM"), 59, "59 generations in the pi / oh-my-pi runs");
    assert_eq!(count("TOOL"), typed("tool"));
    assert!(count("TOOL") > 0);
    assert_eq!(count("AGENT"), typed("agent"));

    // Token values Phoenix stored on the LLM spans sum to the runs' expected.json totals.
    let sum = |k: &str| {
        got.iter()
            .filter(|s| s.kind == "LLM")
            .map(|s| attr(&s.attributes, k).and_then(Value::as_u64).unwrap_or(0))
            .sum::<u64>()
    };
    assert_eq!(
        (
            sum("llm.token_count.prompt"),
            sum("llm.token_count.completion")
        ),
        expected_tokens(),
        "prompt (input + cache read + cache write) and completion tokens"
    );
    drop(phoenix);
    eprintln!("done in {:.1}s", began.elapsed().as_secs_f64());
}
