//! A store written by an older tokentrace opens, migrates and reports exactly what a fresh store reports.

mod common;

use std::path::Path;
use std::process::Command;

fn report(data: &Path, sessions: &Path) -> serde_json::Value {
    common::report_session_in(data, sessions, &["--tz", "UTC"]).0
}

/// A data dir holding a store made with the first release's schema (`migrations/0001_initial.sql` is that
/// commit's `schema.sql`, unchanged), stamped `version`.
fn old_store(version: i64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("tokentrace.db")).unwrap();
    let schema =
        std::fs::read_to_string(common::repo().join("src/store/migrations/0001_initial.sql"))
            .unwrap();
    conn.execute_batch(&schema).unwrap();
    conn.pragma_update(None, "user_version", version).unwrap();
    dir
}

/// Reproduction (issue "Nothing dropped silently"): a schema-1 store, and one an earlier release stamped 2
/// without adding `traces.seq`, failed every import with "no such column: seq".
#[test]
fn a_schema_1_store_reports_the_same_as_a_fresh_one() {
    let sessions = common::repo().join("examples");
    let fresh = tempfile::tempdir().unwrap();
    let want = report(fresh.path(), &sessions);
    assert!(want["totals"]["generations"].as_u64().unwrap() > 0);
    for version in [1, 2] {
        let old = old_store(version);
        let got = report(old.path(), &sessions);
        assert_eq!(got, want, "store stamped {version}");
        let conn = rusqlite::Connection::open(old.path().join("tokentrace.db")).unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, tokentrace::store::SCHEMA_VERSION);
    }
}

#[test]
fn a_store_from_a_newer_tokentrace_is_refused_with_a_clear_message() {
    let old = old_store(tokentrace::store::SCHEMA_VERSION + 1);
    let out = Command::new(env!("CARGO_BIN_EXE_tokentrace"))
        .args(["report", "--no-import", "--data-dir"])
        .arg(old.path())
        .env("HOME", old.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("newer than this tokentrace") && err.contains("tokentrace.db"),
        "{err}"
    );
}

/// Migration 6 (typed ids): a store of schema 5 gets the columns `tool_call_id`, `finish_reason`,
/// `response_id`, filled from the metadata each agent's parser wrote before (pi, Claude, Codex, Gemini names).
#[test]
fn migration_6_fills_typed_ids_from_the_metadata_of_earlier_releases() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tokentrace.db");
    {
        // A current store, taken back to schema 5's shape.
        let store = tokentrace::store::Store::open(&db).unwrap();
        drop(store);
        let conn = rusqlite::Connection::open(&db).unwrap();
        for c in ["tool_call_id", "finish_reason", "response_id"] {
            conn.execute_batch(&format!("ALTER TABLE observations DROP COLUMN {c}"))
                .unwrap();
        }
        conn.pragma_update(None, "user_version", 5).unwrap();
        let rows = [
            ("a", "tool", r#"{"toolCallId":"call_pi"}"#),
            (
                "b",
                "generation",
                r#"{"stopReason":"toolUse","responseId":"resp_pi"}"#,
            ),
            (
                "c",
                "tool",
                r#"{"toolUseId":"toolu_1","messageId":"msg_1"}"#,
            ),
            (
                "d",
                "generation",
                r#"{"messageId":"msg_2","stop_reason":"end_turn"}"#,
            ),
            ("e", "tool", r#"{"call_id":"call_codex","item_id":"i"}"#),
            ("f", "generation", r#"{"response_id":"resp_codex"}"#),
            ("g", "tool", r#"{"callId":"gemini_call"}"#),
            ("h", "event", r#"{"stopReason":"x"}"#),
        ];
        for (id, kind, meta) in rows {
            conn.execute(
                "INSERT INTO observations (id, session_key, kind, name, key, metadata) VALUES (?1, 's', ?2, 'n', 'k', ?3)",
                rusqlite::params![id, kind, meta],
            )
            .unwrap();
        }
    }
    let store = tokentrace::store::Store::open(&db).unwrap();
    drop(store);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, tokentrace::store::SCHEMA_VERSION);
    let mut stmt = conn
        .prepare(
            "SELECT id, tool_call_id, finish_reason, response_id FROM observations ORDER BY id",
        )
        .unwrap();
    type Row = (String, Option<String>, Option<String>, Option<String>);
    let got: Vec<Row> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let s = |x: &str| Some(x.to_string());
    assert_eq!(
        got,
        vec![
            ("a".into(), s("call_pi"), None, None),
            ("b".into(), None, s("toolUse"), s("resp_pi")),
            ("c".into(), s("toolu_1"), None, None),
            ("d".into(), None, s("end_turn"), s("msg_2")),
            ("e".into(), s("call_codex"), None, None),
            ("f".into(), None, None, s("resp_codex")),
            ("g".into(), s("gemini_call"), None, None),
            ("h".into(), None, None, None),
        ]
    );
}

/// A cold import drops and re-creates the secondary indexes listed in `store::IMPORT_INDEXES`: that list must
/// be what the migrations create, and a cold import (bulk mode, indexes built at the end) must leave the same
/// indexes and the same rows as an import that kept them.
#[test]
fn a_cold_import_leaves_the_indexes_and_rows_of_a_plain_one() {
    use tokentrace::config::Config;
    use tokentrace::ingest::{import_with, Enricher, ImportOptions};
    use tokentrace::store::Store;

    // The indexes the migrations leave, applied in order (a later one may drop an earlier one's).
    let mut from_migrations: Vec<String> = Vec::new();
    let mut migrations: Vec<_> = std::fs::read_dir(common::repo().join("src/store/migrations"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    migrations.sort();
    for path in migrations {
        let sql = std::fs::read_to_string(path).unwrap();
        for stmt in sql.split(';') {
            let stmt = stmt
                .lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join(" ");
            let stmt = stmt.trim();
            let on_imported = [" ON observations(", " ON traces(", " ON sessions("];
            if stmt.starts_with("CREATE INDEX") && on_imported.iter().any(|t| stmt.contains(t)) {
                from_migrations.push(stmt.to_string());
            }
            if let Some(name) = stmt.strip_prefix("DROP INDEX IF EXISTS ") {
                from_migrations.retain(|created| {
                    !created.starts_with(&format!("CREATE INDEX IF NOT EXISTS {name} "))
                });
            }
        }
    }
    from_migrations.sort();
    let mut listed: Vec<String> = tokentrace::store::IMPORT_INDEXES
        .iter()
        .map(|(_, sql)| sql.to_string())
        .collect();
    listed.sort();
    assert_eq!(listed, from_migrations);

    let files = common::discover_dir(&common::repo().join("tests/fixtures/recorded"));
    let enricher = Enricher::new(Config::default(), None);
    let import = |bulk_bytes: u64| {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("tokentrace.db")).unwrap();
        let options = ImportOptions {
            bulk_bytes,
            ..ImportOptions::default()
        };
        import_with(&mut store, &files, &enricher, options).unwrap();
        let mut stmt = store_indexes(&store);
        stmt.sort();
        (dir, store.snapshot().unwrap(), stmt)
    };
    let (_a, plain, plain_indexes) = import(u64::MAX);
    let (_b, cold, cold_indexes) = import(0);
    assert_eq!(cold, plain);
    assert_eq!(cold_indexes, plain_indexes);
    assert_eq!(cold_indexes.len(), listed.len());
}

fn store_indexes(store: &tokentrace::store::Store) -> Vec<String> {
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL
             AND tbl_name IN ('observations', 'traces', 'sessions')",
        )
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Migrations 8 and 9 (facts index; checkpoints in their own table): a store of schema 7 that imported half
/// of a transcript, with its parser checkpoint inline in `files`, resumes from that checkpoint after the
/// upgrade, and reports what a fresh import of the whole transcript reports.
#[test]
fn migration_9_keeps_the_parser_checkpoints_and_the_import_resumes_from_them() {
    let run = common::repo().join("tests/fixtures/recorded/claude/claude-2.1.332/run23-multi");
    let run = if run.is_dir() {
        run
    } else {
        common::runs(&common::repo().join("tests/fixtures/recorded"), &["claude"])
            .into_iter()
            .next()
            .expect("a recorded Claude run")
    };
    let whole = std::fs::read(common::session_file(&run)).unwrap();
    let cut = whole[..whole.len() / 2]
        .iter()
        .rposition(|b| *b == b'\n')
        .unwrap()
        + 1;
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("projects/p/session.jsonl");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, &whole[..cut]).unwrap();
    let old = tempfile::tempdir().unwrap();
    report(old.path(), home.path());
    {
        // Taken back to schema 7: checkpoints inline, no checkpoints table, no facts index.
        let conn = rusqlite::Connection::open(old.path().join("tokentrace.db")).unwrap();
        conn.execute_batch(
            "UPDATE files SET checkpoint = (SELECT c.checkpoint FROM checkpoints c WHERE c.file_id = files.id);
             DROP TABLE checkpoints; DROP INDEX observations_facts; PRAGMA user_version = 7;",
        )
        .unwrap();
        let inline: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM files WHERE checkpoint IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(inline, 1);
    }
    std::fs::write(&file, &whole).unwrap();
    let upgraded = report(old.path(), home.path());
    let fresh = tempfile::tempdir().unwrap();
    assert_eq!(upgraded, report(fresh.path(), home.path()));
    assert!(upgraded["totals"]["generations"].as_u64().unwrap() > 0);
    let conn = rusqlite::Connection::open(old.path().join("tokentrace.db")).unwrap();
    let (moved, inline): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM checkpoints), (SELECT COUNT(*) FROM files WHERE checkpoint IS NOT NULL)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((moved, inline), (1, 0));
    let facts_index: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'observations_facts'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(facts_index, 1);
}
