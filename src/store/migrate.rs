//! Schema migrations, keyed by SQLite's `PRAGMA user_version`.
//!
//! Each migration takes a store from version `n - 1` to `n` inside one transaction (a crash leaves the store at
//! the version before it). A fresh store runs them all; a store written by a newer tokentrace (a version above
//! [`LATEST`]) is refused with a message rather than guessed at. Migration 1 is the first release's schema
//! verbatim, so a store from any release reaches the current shape by the same path.

use anyhow::{bail, Context, Result};
use rusqlite::{Connection, Transaction};

/// One step of the schema's history.
struct Migration {
    /// The `user_version` after this step.
    version: i64,
    /// What the step does, for errors.
    what: &'static str,
    /// Runs before `sql` (repairs that depend on what the store holds).
    prepare: Option<fn(&Transaction<'_>) -> Result<()>>,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        what: "initial schema",
        prepare: None,
        sql: include_str!("migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        what: "outbox (traces.seq, delivery)",
        prepare: None,
        sql: include_str!("migrations/0002_outbox.sql"),
    },
    Migration {
        version: 3,
        what: "session agent cost, tail hash, format drift",
        prepare: Some(repair_seq),
        sql: include_str!("migrations/0003_trust.sql"),
    },
    Migration {
        version: 4,
        what: "scores outbox, delivery leases",
        prepare: None,
        sql: include_str!("migrations/0004_scores_leases.sql"),
    },
    Migration {
        version: 5,
        what: "observation flags",
        prepare: None,
        sql: include_str!("migrations/0005_flags.sql"),
    },
    Migration {
        version: 6,
        what: "typed tool call id, finish reason, response id",
        prepare: None,
        sql: include_str!("migrations/0006_typed_ids.sql"),
    },
    Migration {
        version: 7,
        what: "sessions by file index",
        prepare: None,
        sql: include_str!("migrations/0007_sessions_file_index.sql"),
    },
    Migration {
        version: 8,
        what: "covering index of the reports' facts",
        prepare: None,
        sql: include_str!("migrations/0008_facts_index.sql"),
    },
    Migration {
        version: 9,
        what: "parser checkpoints in their own table",
        prepare: None,
        sql: include_str!("migrations/0009_checkpoints.sql"),
    },
    Migration {
        version: 10,
        what: "acknowledged spans per sink",
        prepare: None,
        sql: include_str!("migrations/0010_span_acks.sql"),
    },
    Migration {
        version: 11,
        what: "metrics pushed per series (delta temporality)",
        prepare: None,
        sql: include_str!("migrations/0011_metric_pushes.sql"),
    },
    Migration {
        version: 12,
        what: "generations by time (spend index)",
        prepare: None,
        sql: include_str!("migrations/0012_spend_index.sql"),
    },
    Migration {
        version: 13,
        what: "runaway and budget anomalies",
        prepare: None,
        sql: include_str!("migrations/0013_anomalies.sql"),
    },
    Migration {
        version: 14,
        what: "errors index instead of the session index of observations",
        prepare: None,
        sql: include_str!("migrations/0014_errors_index.sql"),
    },
    Migration {
        version: 15,
        what: "5-hour block anchors",
        prepare: None,
        sql: include_str!("migrations/0015_block_anchors.sql"),
    },
    Migration {
        version: 16,
        what: "data version and report cache",
        prepare: None,
        sql: include_str!("migrations/0016_report_cache.sql"),
    },
];

/// The schema version this build writes.
pub const LATEST: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;

/// Brings the store up to [`LATEST`]. Errors: the store is newer than this build, or a step fails (the store
/// then stays at the last version that completed; the error names the step).
pub fn migrate(conn: &mut Connection, path: &str) -> Result<()> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current > LATEST {
        bail!(
            "store {path} has schema version {current}, newer than this tokentrace understands ({LATEST}); \
             upgrade tokentrace, or point --data-dir at another directory"
        );
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        let tx = conn.transaction()?;
        if let Some(prepare) = m.prepare {
            prepare(&tx).with_context(|| {
                format!("store {path}: migration {} ({}) failed", m.version, m.what)
            })?;
        }
        tx.execute_batch(m.sql).with_context(|| {
            format!("store {path}: migration {} ({}) failed", m.version, m.what)
        })?;
        tx.pragma_update(None, "user_version", m.version)?;
        tx.commit()?;
    }
    Ok(())
}

/// Releases before migrations existed stamped a schema-1 store as version 2 without adding `traces.seq`
/// (every later import then failed with "no such column: seq"): add it where it is missing.
fn repair_seq(tx: &Transaction<'_>) -> Result<()> {
    if !has_column(tx, "traces", "seq")? {
        tx.execute_batch("ALTER TABLE traces ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;")?;
    }
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS delivery (
            sink TEXT NOT NULL, trace_id TEXT NOT NULL, sent_seq INTEGER NOT NULL DEFAULT 0,
            failed_seq INTEGER, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_ms INTEGER,
            last_error TEXT, PRIMARY KEY (sink, trace_id));",
    )?;
    Ok(())
}

fn has_column(tx: &Transaction<'_>, table: &str, column: &str) -> Result<bool> {
    let mut stmt = tx.prepare(&format!("PRAGMA table_info({table})"))?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(1))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(names.iter().any(|n| n == column))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(conn: &Connection, table: &str) -> Vec<String> {
        let mut stmt = conn
            .prepare(&format!("PRAGMA table_info({table})"))
            .unwrap();
        stmt.query_map([], |r| r.get::<_, String>(1))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn a_fresh_store_reaches_the_latest_version() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, ":memory:").unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, LATEST);
        assert!(columns(&conn, "traces").contains(&"seq".to_string()));
        assert!(columns(&conn, "sessions").contains(&"agent_cost".to_string()));
    }

    /// Reproduction: a schema-1 store that an earlier release stamped as version 2 without `traces.seq`.
    #[test]
    fn a_schema_1_store_stamped_2_without_seq_is_repaired() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0].sql).unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        migrate(&mut conn, ":memory:").unwrap();
        assert!(columns(&conn, "traces").contains(&"seq".to_string()));
        conn.execute("UPDATE traces SET seq = 1", []).unwrap();
    }

    #[test]
    fn a_newer_store_is_refused_with_its_path() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", LATEST + 1)
            .unwrap();
        let err = migrate(&mut conn, "/x/tokentrace.db")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("/x/tokentrace.db") && err.contains("newer"),
            "{err}"
        );
    }
}
