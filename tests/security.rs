//! Security: nothing leaked. Private store and dry-run files, config errors instead of panics, no
//! credentials in clear text over the network unless asked for, masked URLs wherever they are shown or
//! stored, backend credentials redacted from sessions, and no escape sequence from a session file reaching
//! the terminal. Sessions are copies of `../shared/corpus` runs (never edited in place) with values planted.

mod common;
#[path = "common/http_server.rs"]
mod http_server;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use http_server::{Reply, Server};
use serde_json::Value;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tokentrace")
}

/// The pi 0.87.1 `01-print-openai` session file: from the shared corpus when present, else its copy in
/// examples/.
fn corpus_session() -> PathBuf {
    let run = "pi/pi-0.87.1/01-print-openai";
    let base = common::shared_corpus().unwrap_or_else(|| common::repo().join("examples"));
    common::session_file(&base.join(run))
}

/// A temp folder holding a copy of [`corpus_session`] with `edit` applied to its text.
fn planted(edit: impl Fn(String) -> String) -> tempfile::TempDir {
    let file = corpus_session();
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let edited = edit(text.clone());
    assert_ne!(edited, text, "the plant went in");
    std::fs::write(dir.path().join(file.file_name().unwrap()), edited).unwrap();
    dir
}

/// `tokentrace ARGS --data-dir DATA` with `HOME=DATA`, a clean tokentrace environment and `env`.
fn tt(args: &[&str], data: &Path, env: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .arg("--data-dir")
        .arg(data)
        .env("HOME", data)
        .env_remove("TOKENTRACE_CONFIG")
        .env_remove("TOKENTRACE_ALLOW_INSECURE")
        .env_remove("XDG_CONFIG_HOME");
    for var in [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_RESOURCE_ATTRIBUTES",
        "LANGFUSE_PUBLIC_KEY",
        "LANGFUSE_SECRET_KEY",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Item 10: the store directory and file, and the dry run's files, were created with the umask's defaults
/// (0755 / 0644: readable by every local user) although they hold prompts and answers; a dry run into a
/// folder of earlier, longer runs left stale request files beside the new ones.
#[test]
fn store_and_dry_run_files_are_private_and_a_dry_run_replaces_only_its_own_files() {
    let sessions = planted(|t| t.replacen("List the files", "List all the files", 1));
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("new/data");
    let out = tmp.path().join("out");
    let path = sessions.path().to_str().unwrap();
    let o = tt(
        &["sync", "--path", path, "--dry-run", out.to_str().unwrap()],
        &data,
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(mode(&data), 0o700, "data directory");
    for f in ["tokentrace.db", "tokentrace.db-wal", "tokentrace.db-shm"] {
        let p = data.join(f);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{f}");
        }
    }
    assert_eq!(mode(&out), 0o700, "dry-run directory");
    // One folder per sink (a generic OTLP one when none is configured), private too.
    let sink = out.join("otlp");
    assert_eq!(mode(&sink), 0o700, "sink folder");
    let files: Vec<PathBuf> = std::fs::read_dir(&sink)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!files.is_empty());
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
    // Stale request files of an earlier run (in the sink folder, or at the top as older releases wrote
    // them) are removed; the new ones are written again.
    std::fs::write(sink.join("request-0099.json"), "{}").unwrap();
    std::fs::write(out.join("request-0098.json"), "{}").unwrap();
    let o = tt(
        &["sync", "--no-import", "--dry-run", out.to_str().unwrap()],
        &data,
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(!sink.join("request-0099.json").exists());
    assert!(!out.join("request-0098.json").exists());
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);
    assert_eq!(std::fs::read_dir(&sink).unwrap().count(), files.len());
    // A folder holding anything else is refused, and left as it was.
    let mine = tmp.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "keep me").unwrap();
    let o = tt(
        &["sync", "--no-import", "--dry-run", mine.to_str().unwrap()],
        &data,
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("not empty") && text(&o).contains("notes.txt"),
        "{}",
        text(&o)
    );
    assert_eq!(std::fs::read_dir(&mine).unwrap().count(), 1);
}

/// Item 11: `%` followed by a multi-byte character in `OTEL_RESOURCE_ATTRIBUTES` or
/// `OTEL_EXPORTER_OTLP_HEADERS` panicked (exit 101, "byte index is not a char boundary").
#[test]
fn percent_before_a_multibyte_char_is_a_config_error_not_a_panic() {
    let data = tempfile::tempdir().unwrap();
    let cases = [
        vec![("OTEL_RESOURCE_ATTRIBUTES", "team=a%€b".to_string())],
        vec![
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://127.0.0.1:9".to_string(),
            ),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "x-api-key=abc%€def".to_string(),
            ),
        ],
    ];
    for env in &cases {
        for cmd in [&["sync", "--no-import"][..], &["doctor"][..]] {
            if cmd[0] == "doctor" && env[0].0 == "OTEL_RESOURCE_ATTRIBUTES" {
                continue; // doctor does not read it
            }
            let o = tt(cmd, data.path(), env);
            let all = text(&o);
            assert_eq!(o.status.code(), Some(1), "{cmd:?} {env:?}: {all}");
            assert!(!all.contains("panicked"), "{all}");
            let var = env.last().unwrap().0;
            assert!(all.contains(var), "the error names {var}: {all}");
            assert!(!all.contains("abc%€def"), "the value is not echoed: {all}");
        }
    }
}

/// Item 12: credentials (OTLP header values, Langfuse keys, a URL password) went over plain http to any
/// host without a word. `0.0.0.0` is not loopback by the rule, yet reaches the test server on Linux.
#[test]
fn credentials_over_plain_http_to_a_remote_host_are_refused_unless_opted_in() {
    let server = Server::start(std::time::Duration::ZERO, |_| http_server::ok());
    let sessions = planted(|t| t.replacen("List the files", "List all the files", 1));
    let remote = format!("http://0.0.0.0:{}", server.port);
    let path = sessions.path().to_str().unwrap();
    let configs: Vec<Vec<(&str, String)>> = vec![
        vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT", remote.clone()),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=k-123456789".into()),
        ],
        vec![(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://u:pw-123456789@0.0.0.0:{}", server.port),
        )],
        vec![
            ("LANGFUSE_PUBLIC_KEY", "pk-lf-1".into()),
            ("LANGFUSE_SECRET_KEY", "sk-lf-2".into()),
            ("LANGFUSE_BASE_URL", remote.clone()),
        ],
    ];
    for env in &configs {
        let data = tempfile::tempdir().unwrap();
        let o = tt(&["sync", "--path", path], data.path(), env);
        let all = text(&o);
        assert_eq!(o.status.code(), Some(1), "{env:?}: {all}");
        for why in [
            "refusing to send",
            "plain http",
            "TOKENTRACE_ALLOW_INSECURE=1",
            "allow_insecure = true",
        ] {
            assert!(all.contains(why), "{why}: {all}");
        }
        assert!(!all.contains("pw-123456789") && !all.contains("k-123456789"));
        assert!(server.requests.lock().unwrap().is_empty(), "nothing sent");
    }
    // Opting in: the environment variable, or the config key.
    let data = tempfile::tempdir().unwrap();
    let mut env = configs[0].clone();
    env.push(("TOKENTRACE_ALLOW_INSECURE", "1".into()));
    let o = tt(&["sync", "--path", path], data.path(), &env);
    assert!(o.status.success(), "{}", text(&o));
    let sent = server.requests.lock().unwrap().len();
    assert!(sent > 0);
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("config.toml");
    std::fs::write(&config, "allow_insecure = true\n").unwrap();
    let mut env = configs[2].clone();
    env.push(("TOKENTRACE_CONFIG", config.to_str().unwrap().into()));
    let o = tt(&["sync", "--path", path], data.path(), &env);
    assert!(o.status.success(), "{}", text(&o));
    assert!(server.requests.lock().unwrap().len() > sent);
}

/// Item 13: a password in the endpoint URL was printed by `doctor`, in sync errors, and stored in the
/// delivery table's error column.
#[test]
fn a_password_in_the_endpoint_url_is_masked_in_doctor_sync_errors_and_the_store() {
    const PASSWORD: &str = "hunter2-Kq7PzX";
    let server = Server::start(std::time::Duration::ZERO, |_| {
        Reply::Status(400, String::new(), r#"{"message":"invalid span"}"#.into())
    });
    let sessions = planted(|t| t.replacen("List the files", "List all the files", 1));
    let path = sessions.path().to_str().unwrap();
    let data = tempfile::tempdir().unwrap();
    let refused = [(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        format!(
            "http://alice:{PASSWORD}@127.0.0.1:{}/v1/traces",
            server.port
        ),
    )];
    let o = tt(&["sync", "--path", path], data.path(), &refused);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = tt(&["sync", "--no-import", "--json"], data.path(), &refused);
    let all = text(&o);
    assert!(!all.contains(PASSWORD), "{all}");
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    let sink = &summary["sinks"][0];
    assert!(
        sink["url"].as_str().unwrap().contains("alice:***@"),
        "{all}"
    );
    assert!(
        sink["last_error"].as_str().unwrap().contains("alice:***@"),
        "{all}"
    );
    // An unreachable endpoint: the connection error names the URL, masked.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = [(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        format!("http://alice:{PASSWORD}@127.0.0.1:{port}"),
    )];
    let data2 = tempfile::tempdir().unwrap();
    let o = tt(
        &["sync", "--path", path, "--retry-budget", "0"],
        data2.path(),
        &down,
    );
    let all = text(&o);
    assert_eq!(o.status.code(), Some(2), "{all}");
    assert!(all.contains("alice:***@"), "{all}");
    assert!(!all.contains(PASSWORD), "{all}");
    // doctor, text and JSON.
    for args in [&["doctor"][..], &["doctor", "--json"][..]] {
        let o = tt(args, data.path(), &refused);
        let all = text(&o);
        assert!(o.status.success(), "{all}");
        assert!(all.contains("alice:***@"), "{all}");
        assert!(!all.contains(PASSWORD), "{all}");
    }
    // The store's delivery error column.
    for d in [data.path(), data2.path()] {
        let db = rusqlite::Connection::open(d.join("tokentrace.db")).unwrap();
        let errors: Vec<String> = db
            .prepare("SELECT last_error FROM delivery WHERE last_error IS NOT NULL")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(!errors.is_empty());
        for e in &errors {
            assert!(!e.contains(PASSWORD) && e.contains("alice:***@"), "{e}");
        }
    }
}

/// Bytes of the store (database and WAL).
fn store_bytes(data: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for f in ["tokentrace.db", "tokentrace.db-wal"] {
        all.extend(std::fs::read(data.join(f)).unwrap_or_default());
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Item 14: OTLP header values and the URL password in effect were not on the privacy layer's list of
/// literal secrets: a session quoting them stored and exported them verbatim.
#[test]
fn planted_otlp_header_values_and_url_passwords_never_reach_the_store_or_a_request() {
    const HEADER_VALUE: &str = "hv-Zq8wT3xLm9Kp"; // no pattern matches it: only the literal list can
    const HEADER_TOKEN: &str = "qX7vB2nM5kL9pR4t";
    const PASSWORD: &str = "Rt5yU8iOp2Wq";
    let sessions = planted(|t| {
        t.replacen(
            "List the files in the current directory",
            &format!(
                "List the files in the current directory; the collector key is {HEADER_VALUE}, \
                 the tenant token {HEADER_TOKEN} and the password {PASSWORD}"
            ),
            1,
        )
    });
    let server = Server::start(std::time::Duration::ZERO, |_| http_server::ok());
    let data = tempfile::tempdir().unwrap();
    let env = [
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://collector:{PASSWORD}@127.0.0.1:{}", server.port),
        ),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("x-api-key={HEADER_VALUE},x-tenant=Bearer%20{HEADER_TOKEN}"),
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".to_string()),
    ];
    let o = tt(
        &["sync", "--path", sessions.path().to_str().unwrap()],
        data.path(),
        &env,
    );
    assert!(o.status.success(), "{}", text(&o));
    let requests = server.requests.lock().unwrap().clone();
    assert!(!requests.is_empty());
    let bodies: Vec<u8> = requests.iter().flat_map(|r| r.body.clone()).collect();
    assert!(
        contains(&bodies, "the collector key is [REDACTED:env-value]"),
        "the planted prompt was exported, redacted"
    );
    let store = store_bytes(data.path());
    assert!(contains(&store, "[REDACTED:env-value]"));
    for secret in [HEADER_VALUE, HEADER_TOKEN, PASSWORD] {
        assert!(!contains(&bodies, secret), "{secret} in a request body");
        assert!(!contains(&store, secret), "{secret} in the store");
    }
    // The header itself did go out (to the collector, where it belongs).
    assert!(requests[0]
        .headers
        .iter()
        .any(|h| h.eq_ignore_ascii_case(&format!("x-api-key: {HEADER_VALUE}"))));
}

/// Item 15: escape sequences from session files (`\e]0;…\a` sets the terminal's title, `\e[2J` clears
/// it) reached the terminal through `report` tables and the `show` tree.
#[test]
fn escape_sequences_from_sessions_are_shown_not_sent_to_the_terminal() {
    let sessions = planted(|t| {
        t.replacen(
            "List the files in the current directory",
            r"List the files\u001b]0;pwned\u0007 in the current directory\u001b[2J",
            1,
        )
        .replace(
            "/tmp/pi-new/proj-print-openai",
            r"/tmp/pi-new/proj\u001b[31mred\u009b0m",
        )
    });
    let data = tempfile::tempdir().unwrap();
    let path = sessions.path().to_str().unwrap();
    let o = tt(
        &["report", "session", "--json", "--path", path],
        data.path(),
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    let id = doc["sessions"][0]["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        doc["sessions"][0]["project"]
            .as_str()
            .unwrap()
            .contains('\u{1b}'),
        "JSON keeps the value (escaped by JSON itself)"
    );
    for args in [
        vec!["report", "session", "--no-import"],
        vec!["report", "project", "--no-import"],
        vec!["show", &id],
        vec!["show", &id, "--events"],
    ] {
        let o = tt(&args, data.path(), &[]);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
        let out = String::from_utf8(o.stdout).unwrap();
        assert!(
            !out.contains(['\u{1b}', '\u{7}', '\u{9b}']),
            "{args:?} printed a control character: {out:?}"
        );
        assert!(out.contains('␛'), "{args:?} shows the escape: {out}");
    }
}
