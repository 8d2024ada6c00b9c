//! `tokentrace watch` end to end: real recorded sessions (pi, Claude Code with a subagent, Codex) are written
//! into a watched folder line by line, the way each agent writes them, while `watch` runs against a collector
//! this test controls. What the collector ends up holding must be what `sync --dry-run` sends for the
//! finished sessions, for at most twice the dry run's bytes.

mod common;
#[path = "common/http_server.rs"]
mod http_server;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::otlp::{bin, dry_run, from_request, Got};
use common::replay::{lines_of, write_lines, Style};
use http_server::{ok, Reply, Server};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

/// `tokentrace watch --path dir` delivering to `server`.
fn start_watch(dir: &Path, data: &Path, server: &Server) -> Child {
    Command::new(bin())
        .args(["watch", "--path"])
        .arg(dir)
        .arg("--data-dir")
        .arg(data)
        .env("HOME", data)
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", server.base())
        .env("TOKENTRACE_FLUSH_MS", "200")
        .env_remove("LANGFUSE_PUBLIC_KEY")
        .env_remove("TOKENTRACE_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The latest version of every span the collector got, and the request bytes (protobuf, before gzip).
fn held(server: &Server) -> (BTreeMap<String, Got>, usize) {
    let mut spans = BTreeMap::new();
    let mut bytes = 0;
    for r in server.to("/v1/traces") {
        bytes += r.body.len();
        let req = ExportTraceServiceRequest::decode(&r.body[..]).unwrap();
        for g in from_request(&req) {
            spans.insert(g.span_id.clone(), g);
        }
    }
    (spans, bytes)
}

/// A temp folder with an empty `agents/` inside, and the recorded runs (paths relative to the repo) to write
/// into it.
fn recorded(runs: &[(&str, Style)]) -> (tempfile::TempDir, PathBuf, Vec<(PathBuf, Style)>) {
    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("agents");
    std::fs::create_dir(&agents).unwrap();
    let runs = runs
        .iter()
        .map(|(run, style)| (common::repo().join(run), *style))
        .collect();
    (dir, agents, runs)
}

/// The collector holds exactly the dry run's spans, each in the dry run's version.
fn assert_holds(got: &BTreeMap<String, Got>, want: &BTreeMap<String, Got>, log: &str) {
    let missing = want.keys().filter(|k| !got.contains_key(*k)).count();
    let differ: Vec<_> = want
        .iter()
        .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
        .map(|(_, v)| &v.name)
        .collect();
    assert!(
        missing == 0 && differ.is_empty() && got.len() == want.len(),
        "{missing} of {} spans missing, {} differ ({differ:?}), {} held\n{log}",
        want.len(),
        differ.len(),
        got.len()
    );
}

fn sigterm(child: &Child) {
    // SAFETY: sending a signal to our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
}

/// SIGTERM, then the exit status and the log.
fn stop(mut watch: Child) -> (std::process::ExitStatus, String) {
    sigterm(&watch);
    let status = watch.wait().unwrap();
    let mut log = String::new();
    std::io::Read::read_to_string(watch.stderr.as_mut().unwrap(), &mut log).unwrap();
    (status, log)
}

#[test]
fn watch_delivers_sessions_as_they_are_written_and_ends_equal_to_the_dry_run() {
    let (_dir, agents, runs) = recorded(&[
        ("examples/pi/pi-0.87.1/09-tree-branch", Style::Whole),
        (
            "tests/fixtures/recorded/claude/claude-2.1.332/run30-subagent-sync",
            Style::Pieces,
        ),
        (
            "tests/fixtures/recorded/codex/codex-0.171.0/run14-multi",
            Style::Whole,
        ),
        (
            "tests/fixtures/recorded/claude/claude-2.1.332/run26-compact-thinking",
            Style::Pieces,
        ),
        (
            "tests/fixtures/recorded/codex/codex-0.171.0/run16-compact",
            Style::Whole,
        ),
    ]);
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(Duration::ZERO, |_| ok());
    let watch = start_watch(&agents, data.path(), &server);
    std::thread::sleep(Duration::from_millis(500));
    // Each agent writes on its own thread, as agents running side by side would.
    for w in start_writers(&agents, &runs, Duration::from_millis(25)) {
        w.join().unwrap();
    }
    // The dry run of the finished files, in a store of its own.
    let (want, want_bytes) = dry_run_of(&agents);
    assert!(want.len() > 100, "{} spans in the dry run", want.len());
    let (got, got_bytes) = wait_until_held(&server, &want, Duration::from_secs(20));
    let (status, log) = stop(watch);
    assert_holds(&got, &want, &log);
    let requests = server.to("/v1/traces").len();
    assert!(
        requests > 3,
        "sent while the sessions grew, not once at the end: {requests} request(s)"
    );
    assert!(
        got_bytes <= 2 * want_bytes,
        "received {got_bytes} bytes for a dry run of {want_bytes}"
    );
    eprintln!(
        "{} spans; {requests} requests, {got_bytes} bytes received for a dry run of {want_bytes} ({:.2}x)",
        want.len(),
        got_bytes as f64 / want_bytes as f64
    );
    assert!(
        status.success(),
        "watch exits 0 on SIGTERM: {status:?}\n{log}"
    );
}

/// The writers of `runs` under `agents`, one thread per run, `gap` between lines.
fn start_writers(
    agents: &Path,
    runs: &[(PathBuf, Style)],
    gap: Duration,
) -> Vec<std::thread::JoinHandle<()>> {
    runs.iter()
        .enumerate()
        .map(|(i, (run, style))| {
            let out = agents.join(format!("run{i}"));
            let lines = lines_of(run, &out, *style);
            std::thread::spawn(move || write_lines(&out, &lines, gap))
        })
        .collect()
}

/// What `sync --dry-run` sends for the finished files under `agents`: span id → span, and the protobuf bytes.
fn dry_run_of(agents: &Path) -> (BTreeMap<String, Got>, usize) {
    let mut want = BTreeMap::new();
    let mut bytes = 0;
    for (_, json) in dry_run(agents) {
        let req: ExportTraceServiceRequest = serde_json::from_slice(&json).unwrap();
        bytes += req.encode_to_vec().len();
        for g in from_request(&req) {
            want.insert(g.span_id.clone(), g);
        }
    }
    (want, bytes)
}

/// Polls the collector until it holds `want` or `limit` passes; returns what it holds and the bytes.
fn wait_until_held(
    server: &Server,
    want: &BTreeMap<String, Got>,
    limit: Duration,
) -> (BTreeMap<String, Got>, usize) {
    let until = Instant::now() + limit;
    loop {
        let (got, bytes) = held(server);
        if &got == want || Instant::now() > until {
            return (got, bytes);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A collector that flaps: drops the connection, answers 503, or 429 with `Retry-After: 1`, between
/// successes.
fn flapping(n: u32) -> Reply {
    match n % 10 {
        1 | 6 => Reply::Drop,
        3 => Reply::Status(503, String::new(), String::new()),
        8 => Reply::Status(429, "Retry-After: 1\r\n".into(), String::new()),
        _ => ok(),
    }
}

#[test]
fn watch_killed_20_times_while_sessions_grow_and_the_collector_flaps_loses_nothing() {
    let (_dir, agents, runs) = recorded(&[
        (
            "examples/pi/pi-0.87.1/10-bash-label-model-switch",
            Style::Whole,
        ),
        (
            "tests/fixtures/recorded/claude/claude-2.1.332/run29-parallel-thinking",
            Style::Pieces,
        ),
        (
            "tests/fixtures/recorded/codex/codex-0.171.0/run15-resume",
            Style::Whole,
        ),
    ]);
    let data = tempfile::tempdir().unwrap();
    let count = std::sync::atomic::AtomicU32::new(0);
    let server = Server::start(Duration::ZERO, move |_| {
        flapping(count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1)
    });
    let mut watch = start_watch(&agents, data.path(), &server);
    let writers = start_writers(&agents, &runs, Duration::from_millis(40));
    // SIGKILL at pseudo-random moments (a deterministic sequence) while the writers write, 20 times.
    let mut seed = 0x9e3779b97f4a7c15u64;
    for _ in 0..20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(60 + seed % 300));
        watch.kill().unwrap();
        watch.wait().unwrap();
        watch = start_watch(&agents, data.path(), &server);
    }
    for w in writers {
        w.join().unwrap();
    }
    let (want, _) = dry_run_of(&agents);
    assert!(want.len() > 40, "{} spans in the dry run", want.len());
    let (got, _) = wait_until_held(&server, &want, Duration::from_secs(60));
    let (status, log) = stop(watch);
    assert_holds(&got, &want, &log);
    let statuses = server.to("/v1/traces").len();
    assert!(statuses > 10, "{statuses} requests");
    assert!(status.success(), "{status:?}\n{log}");
}

#[test]
fn a_second_watch_on_the_same_store_refuses_and_the_first_stops_on_sigterm_with_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(Duration::ZERO, |_| ok());
    let mut first = start_watch(dir.path(), data.path(), &server);
    std::thread::sleep(Duration::from_millis(500));
    let second = Command::new(bin())
        .args(["watch", "--path"])
        .arg(dir.path())
        .arg("--data-dir")
        .arg(data.path())
        .env("HOME", data.path())
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success());
    assert!(
        err.contains("another tokentrace watch") && err.contains(&format!("pid {}", first.id())),
        "{err}"
    );
    sigterm(&first);
    let started = Instant::now();
    assert!(first.wait().unwrap().success());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn sighup_rereads_the_config_and_later_spans_follow_it() {
    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("agents");
    std::fs::create_dir(&agents).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "tags = [\"before-hup\"]\n").unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(Duration::ZERO, |_| ok());
    let watch = Command::new(bin())
        .args(["watch", "--path"])
        .arg(&agents)
        .arg("--data-dir")
        .arg(data.path())
        .arg("--config")
        .arg(&config)
        .env("HOME", data.path())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", server.base())
        .env("TOKENTRACE_FLUSH_MS", "100")
        .env_remove("LANGFUSE_PUBLIC_KEY")
        .env_remove("TOKENTRACE_TAGS")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run = common::repo().join("examples/pi/pi-0.87.1/09-tree-branch");
    let file = common::session_file(&run);
    let lines: Vec<Vec<u8>> = std::fs::read(&file)
        .unwrap()
        .split_inclusive(|b| *b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    // The first prompt (up to the second user message), then the rest after the config changed.
    let second_prompt = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| String::from_utf8_lossy(l).contains("\"role\":\"user\""))
        .nth(1)
        .map(|(i, _)| i)
        .unwrap();
    let path = agents.join("s.jsonl");
    std::fs::write(&path, lines[..second_prompt].concat()).unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while held(&server).0.is_empty() {
        assert!(Instant::now() < until, "nothing delivered");
        std::thread::sleep(Duration::from_millis(50));
    }
    let before: std::collections::BTreeSet<String> = held(&server)
        .0
        .values()
        .map(|g| g.trace_id.clone())
        .collect();
    std::fs::write(&config, "tags = [\"after-hup\"]\n").unwrap();
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(watch.id() as i32, libc::SIGHUP) };
    std::thread::sleep(Duration::from_millis(500));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(&lines[second_prompt..].concat()).unwrap();
    drop(f);
    let until = Instant::now() + Duration::from_secs(10);
    let new_spans = loop {
        let spans: Vec<Got> = held(&server)
            .0
            .into_values()
            .filter(|g| !before.contains(&g.trace_id))
            .collect();
        if !spans.is_empty() || Instant::now() > until {
            break spans;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (status, log) = stop(watch);
    assert!(status.success(), "{log}");
    assert!(log.contains("configuration re-read"), "{log}");
    assert!(!new_spans.is_empty(), "no span of the later prompts\n{log}");
    for g in &new_spans {
        let tags = &g.attrs["langfuse.trace.tags"];
        assert!(
            tags.contains("after-hup") && !tags.contains("before-hup"),
            "{tags}"
        );
    }
}
