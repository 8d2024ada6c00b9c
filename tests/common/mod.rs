//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use tokentrace::config::Config;
use tokentrace::ingest::{import, Enricher, ImportSummary};
use tokentrace::model::Agent;
use tokentrace::report::{aggregate, Grouping, Totals, Window};
use tokentrace::sources::{discover, Root};
use tokentrace::store::read::Filter;
use tokentrace::store::Store;

pub mod net;
pub mod otlp;
pub mod replay;

/// A test whose backend (`what`) is missing: fails under `TOKENTRACE_REQUIRE_BACKENDS=1` (set by CI and
/// `scripts/test`), else prints how to install it (`install`) and lets the test return as skipped.
pub fn skip_missing(what: &str, install: &str) {
    assert!(
        !std::env::var("TOKENTRACE_REQUIRE_BACKENDS").is_ok_and(|v| v == "1"),
        "{what} is not installed but TOKENTRACE_REQUIRE_BACKENDS=1"
    );
    eprintln!("skipped: {what} is not installed ({install})");
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The shared corpus (`../shared/corpus`), when this checkout has it beside it.
pub fn shared_corpus() -> Option<PathBuf> {
    let p = repo().join("../shared/corpus");
    p.is_dir().then_some(p)
}

/// Run folders (`<agent>/<agent>-<version>/<run>/` with `home/` and `expected.json`) under `base` for `agents`.
pub fn runs(base: &Path, agents: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for agent in agents {
        let Ok(versions) = std::fs::read_dir(base.join(agent)) else {
            continue;
        };
        for v in versions.flatten() {
            let Ok(runs) = std::fs::read_dir(v.path()) else {
                continue;
            };
            for r in runs.flatten() {
                if r.path().join("home").is_dir() && r.path().join("expected.json").is_file() {
                    out.push(r.path());
                }
            }
        }
    }
    out.sort();
    out
}

/// The single `.jsonl` session file under a run's `home/`.
pub fn session_file(run: &Path) -> PathBuf {
    let files: Vec<_> = walkdir::WalkDir::new(run.join("home"))
        .into_iter()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .map(|e| e.into_path())
        .collect();
    assert_eq!(
        files.len(),
        1,
        "{}: expected one session file",
        run.display()
    );
    files.into_iter().next().unwrap()
}

/// Every session file under `dir`, of any agent, as discovery finds it.
pub fn discover_dir(dir: &Path) -> Vec<tokentrace::sources::DiscoveredFile> {
    let roots = [Root {
        agent: None,
        dir: dir.to_path_buf(),
        origin: "test".into(),
    }];
    discover(&roots, &Agent::ALL)
}

/// Imports every session file under `dir` into `store`.
pub fn import_dir(store: &mut Store, dir: &Path) -> ImportSummary {
    let files = discover_dir(dir);
    let enricher = Enricher::new(Config::default(), None);
    import(store, &files, &enricher, false).expect("import")
}

/// Totals over the whole store.
pub fn totals(store: &Store) -> Totals {
    let mut facts = Vec::new();
    let sessions = store.sessions(&Filter::default()).unwrap();
    let keys: std::collections::HashSet<&str> = sessions.iter().map(|s| s.key.as_str()).collect();
    store
        .for_each_fact(|key| keys.contains(key), |f| facts.push(f.clone()))
        .unwrap();
    let window = Window {
        tz: jiff::tz::TimeZone::UTC,
        since: None,
        until: None,
    };
    aggregate(Grouping::Agent, &window, &Default::default(), facts).totals
}

/// A fresh store holding `file`'s content imported in one go.
pub fn store_of(content: &[u8], name: &str) -> (tempfile::TempDir, Store, ImportSummary) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions").join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    let mut store = Store::open_in_memory().unwrap();
    let summary = import_dir(&mut store, &dir.path().join("sessions"));
    (dir, store, summary)
}

/// Runs the built `tokentrace ARGS --data-dir DATA` in the repo (relative `--path`s name its folders) with
/// `HOME=DATA` (so default discovery finds nothing) and no store or config from the environment.
pub fn tokentrace(data: &Path, args: &[&str]) -> std::process::Output {
    tokentrace_in(&repo(), data, args)
}

/// [`tokentrace`] run in the folder `cwd`.
pub fn tokentrace_in(cwd: &Path, data: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tokentrace"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .current_dir(cwd)
        .env("HOME", data)
        .env_remove("TOKENTRACE_DATA_DIR")
        .env_remove("TOKENTRACE_CONFIG")
        .output()
        .unwrap()
}

/// The recorded sessions in the repo: pi and oh-my-pi (examples/), Claude Code, Codex and pi
/// (tests/fixtures/recorded) — the input of the metrics and backend tests.
pub const RECORDINGS: [&str; 2] = ["examples", "tests/fixtures/recorded"];

/// `tokentrace ARGS --path …RECORDINGS` in the repo with the store in `data` and `env` added, no trace
/// backend or config from the environment.
pub fn recordings_command(
    data: &Path,
    args: &[&str],
    env: &[(&str, String)],
) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tokentrace"));
    cmd.args(args)
        .args(RECORDINGS.iter().flat_map(|p| ["--path", p]))
        .arg("--data-dir")
        .arg(data)
        .current_dir(repo())
        .env("HOME", data)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("LANGFUSE_PUBLIC_KEY")
        .env_remove("TOKENTRACE_CONFIG")
        .envs(env.iter().map(|(k, v)| (k, v)));
    cmd
}

/// [`tokentrace`], which must succeed (the panic shows its stderr); its stdout.
pub fn tokentrace_stdout(data: &Path, args: &[&str]) -> Vec<u8> {
    let out = tokentrace(data, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `tokentrace report session --json --path HOME ARGS` into the store in `data`; panics (with stderr) on
/// failure. Returns the document and stderr.
pub fn report_session_in(data: &Path, home: &Path, args: &[&str]) -> (serde_json::Value, String) {
    let mut all = vec![
        "report",
        "session",
        "--json",
        "--path",
        home.to_str().unwrap(),
    ];
    all.extend(args);
    let out = tokentrace(data, &all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        serde_json::from_slice(&out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `tokentrace report session --json --path HOME` into a fresh store.
pub fn report_session(home: &Path) -> serde_json::Value {
    let data = tempfile::tempdir().unwrap();
    report_session_in(data.path(), home, &[]).0
}

/// Copies the tree under `from` to `to` (folders created as needed).
pub fn copy_tree(from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from).into_iter().flatten() {
        let target = to.join(e.path().strip_prefix(from).unwrap());
        if e.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// A run's `expected.json`.
pub fn expected(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("expected.json")).unwrap()).unwrap()
}

/// Differences between a report's totals (`sessions` = number of session rows) and an `expected.json`:
/// session count, the six counters and the five token fields.
pub fn totals_diff(
    sessions: usize,
    totals: &serde_json::Value,
    expected: &serde_json::Value,
) -> Vec<String> {
    let mut diffs = Vec::new();
    if sessions as u64 != expected["sessions"].as_u64().unwrap() {
        diffs.push(format!("sessions {sessions} != {}", expected["sessions"]));
    }
    for k in [
        "prompts",
        "generations",
        "generation_errors",
        "tool_calls",
        "tool_errors",
        "subagents",
    ] {
        if totals[k] != expected[k] {
            diffs.push(format!("{k} {} != {}", totals[k], expected[k]));
        }
    }
    for k in ["input", "cache_read", "cache_write", "output", "reasoning"] {
        if totals["tokens"][k] != expected["tokens"][k] {
            diffs.push(format!(
                "tokens.{k} {} != {}",
                totals["tokens"][k], expected["tokens"][k]
            ));
        }
    }
    diffs
}
