//! The store under contention and damage: read-only commands never write it, a locked store is waited on
//! with a message (not a silent wait and a raw SQLite error), and `store rebuild` re-imports everything while
//! keeping what backends acknowledged.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn tokentrace(data: &Path, args: &[&str]) -> Output {
    common::tokentrace(data, args)
}

fn snapshot(dir: &Path) -> Vec<(String, u64, std::time::SystemTime)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            let m = e.metadata().unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                m.len(),
                m.modified().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// `report --no-import`, `show` and `doctor` open the store read-only: they create nothing and change
/// nothing (so they work on a read-only or full disk).
#[test]
fn read_only_commands_never_write_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // No store yet: reading creates none.
    let out = tokentrace(&data, &["report", "--no-import"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!data.join("tokentrace.db").exists());
    let examples = common::repo().join("examples");
    assert!(
        tokentrace(&data, &["report", "--path", examples.to_str().unwrap()])
            .status
            .success()
    );
    let before = snapshot(&data);
    std::thread::sleep(std::time::Duration::from_millis(20));
    for args in [
        vec!["report", "session", "--no-import", "--json"],
        vec!["doctor"],
        vec!["doctor", "--json"],
    ] {
        let out = tokentrace(&data, &args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let report: serde_json::Value = serde_json::from_slice(
        &tokentrace(&data, &["report", "session", "--no-import", "--json"]).stdout,
    )
    .unwrap();
    let id = report["sessions"][0]["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(tokentrace(&data, &["show", &id]).status.success());
    // SQLite may create the (empty) `-wal` / `-shm` index of a WAL store to read it where the directory is
    // writable; the database itself is untouched and nothing is written to the log.
    let db_only = |s: Vec<(String, u64, std::time::SystemTime)>| {
        s.into_iter()
            .filter(|(n, len, _)| n == "tokentrace.db" || (n.ends_with("-wal") && *len > 0))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        db_only(snapshot(&data)),
        db_only(before),
        "a read-only command changed the store"
    );
}

/// Reproduction: a store locked by another process was waited on silently for 10 s, then failed with a raw
/// SQLite error. Now the wait is announced after about a second, naming the store, and the command goes on
/// when the lock is released.
#[test]
fn a_locked_store_is_waited_on_with_a_message() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let examples = common::repo().join("examples");
    // The store exists, and the locked run below has sessions to write (a run with nothing new writes
    // nothing, and reading a WAL store does not wait for a writer).
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(
        tokentrace(&data, &["report", "--path", empty.to_str().unwrap()])
            .status
            .success()
    );
    let db = data.join("tokentrace.db");
    let holder = rusqlite::Connection::open(&db).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_tokentrace"))
        .args(["report", "--path", examples.to_str().unwrap(), "--data-dir"])
        .arg(&data)
        .env("HOME", &data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    holder.execute_batch("COMMIT").unwrap();
    drop(holder);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("waiting for the store") && err.contains(&db.display().to_string()),
        "{err}"
    );
}

/// `store rebuild`: a fresh store from the session files; what backends acknowledged stays acknowledged; a
/// session whose file is gone is named as not recoverable.
#[test]
fn store_rebuild_keeps_delivery_state_and_names_what_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let home = tmp.path().join("sessions");
    let run = common::repo().join("tests/fixtures/recorded/codex/codex-0.171.0/run13-simple");
    let other = common::repo().join("examples/pi/pi-0.87.1/04-extension-events");
    common::copy_tree(&run.join("home"), &home.join("a"));
    common::copy_tree(&other.join("home"), &home.join("b"));
    assert!(
        tokentrace(&data, &["report", "--path", home.to_str().unwrap()])
            .status
            .success()
    );
    // A backend acknowledged every trace at its current version.
    let db = data.join("tokentrace.db");
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute(
            "INSERT INTO delivery (sink, trace_id, sent_seq) SELECT 'otlp', id, seq FROM traces",
            [],
        )
        .unwrap();
    }
    let traces: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM traces", [], |r| r.get(0))
        .unwrap();
    // The pi session's file goes away.
    std::fs::remove_dir_all(home.join("b")).unwrap();
    let out = tokentrace(&data, &["store", "rebuild", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["sessions_before"], 2);
    assert_eq!(doc["sessions_after"], 1);
    let lost = doc["not_recovered"].as_array().unwrap();
    assert_eq!(lost.len(), 1);
    assert!(lost[0]["session"].as_str().unwrap().starts_with("pi:"));
    assert!(data.join("tokentrace.db.before-rebuild").exists());
    // The codex traces are still acknowledged (nothing pending for the sink), at their new versions.
    let c = rusqlite::Connection::open(&db).unwrap();
    let (kept, pending): (i64, i64) = c
        .query_row(
            "SELECT COUNT(*), SUM(CASE WHEN t.seq > d.sent_seq THEN 1 ELSE 0 END)
             FROM delivery d JOIN traces t ON t.id = d.trace_id WHERE d.sink = 'otlp'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let codex_traces: i64 = c
        .query_row("SELECT COUNT(*) FROM traces", [], |r| r.get(0))
        .unwrap();
    assert!(codex_traces > 0 && codex_traces < traces);
    assert_eq!(kept, codex_traces);
    assert_eq!(pending, 0);
    // The rebuilt store reports what the remaining files hold.
    let got: serde_json::Value = serde_json::from_slice(
        &tokentrace(&data, &["report", "session", "--no-import", "--json"]).stdout,
    )
    .unwrap();
    let want = common::expected(&run);
    assert!(common::totals_diff(1, &got["totals"], &want).is_empty());
}
