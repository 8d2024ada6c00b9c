//! Printed reports kept for a re-run that finds nothing new (schema 16, `0016_report_cache.sql`).
//!
//! A report's output depends on the stored data and on things outside it (its arguments, time zone, width,
//! colours, prices, the binary); the caller hashes the latter into a key. The stored data is named by
//! [`Store::content_version`], a counter that triggers on `files` move whenever an import, a rename or a removal
//! writes a file's row: every change to sessions, traces and observations is written in the transaction that
//! saves its file's row. An entry is used only under the version it was read at.

use anyhow::Result;
use rusqlite::{params, OptionalExtension};

use super::Store;

/// Entries kept: the most recently used; one per distinct report a user (or a status bar) runs.
const KEEP: i64 = 32;

impl Store {
    /// The version of the stored data (`data_version.version`): moves with every write of a file's row (see the
    /// module comment), in any process; unlike [`Store::data_version`], it persists and compares across
    /// connections.
    pub fn content_version(&self) -> Result<i64> {
        Ok(self
            .conn()
            .query_row("SELECT version FROM data_version WHERE id = 1", [], |r| {
                r.get(0)
            })?)
    }

    /// The report kept under `key` if it was read at data version `version`.
    pub fn cached_report(&self, key: &str, version: i64) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT body FROM report_cache WHERE key = ?1 AND version = ?2",
                params![key, version],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Keeps `body` as the report under `key`, read at data version `version` (which must have been read
    /// before the data: a write in between then makes the entry stale at once instead of wrong). Drops all
    /// but the [`KEEP`] most recently saved entries.
    pub fn save_report(&self, key: &str, version: i64, body: &str) -> Result<()> {
        let tx = self.conn().unchecked_transaction()?;
        tx.execute(
            "INSERT INTO report_cache (key, version, body, used)
             VALUES (?1, ?2, ?3, (SELECT COALESCE(MAX(used), 0) + 1 FROM report_cache))
             ON CONFLICT(key) DO UPDATE SET version = excluded.version, body = excluded.body,
                 used = excluded.used",
            params![key, version, body],
        )?;
        tx.execute(
            "DELETE FROM report_cache WHERE key NOT IN
                 (SELECT key FROM report_cache ORDER BY used DESC LIMIT ?1)",
            [KEEP],
        )?;
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_row(store: &Store, sql: &str) {
        store.conn().execute(sql, []).unwrap();
    }

    #[test]
    fn the_version_moves_with_every_write_of_a_file_row_and_a_kept_report_only_matches_its_own() {
        let store = Store::open_in_memory().unwrap();
        let v0 = store.content_version().unwrap();
        file_row(
            &store,
            "INSERT INTO files (path, agent, dev, ino, size, mtime_ns, head_len, head_hash, offset, imported_at)
             VALUES ('/a.jsonl', 'pi', 1, 2, 3, 4, 0, '', 0, 0)",
        );
        let v1 = store.content_version().unwrap();
        assert_eq!(v1, v0 + 1, "insert");
        file_row(&store, "UPDATE files SET path = '/b.jsonl'");
        assert_eq!(store.content_version().unwrap(), v1 + 1, "rename");
        file_row(&store, "DELETE FROM files");
        let v3 = store.content_version().unwrap();
        assert_eq!(v3, v1 + 2, "delete");
        // Writing the cache itself does not move it.
        store.save_report("k", v3, "body\n").unwrap();
        assert_eq!(store.content_version().unwrap(), v3);
        assert_eq!(
            store.cached_report("k", v3).unwrap().as_deref(),
            Some("body\n")
        );
        assert_eq!(
            store.cached_report("k", v3 - 1).unwrap(),
            None,
            "another version"
        );
        assert_eq!(
            store.cached_report("other", v3).unwrap(),
            None,
            "another key"
        );
        store.save_report("k", v3 + 1, "newer\n").unwrap();
        assert_eq!(store.cached_report("k", v3).unwrap(), None, "replaced");
        assert_eq!(
            store.cached_report("k", v3 + 1).unwrap().as_deref(),
            Some("newer\n")
        );
    }

    #[test]
    fn only_the_most_recent_reports_are_kept() {
        let store = Store::open_in_memory().unwrap();
        for i in 0..KEEP + 5 {
            store.save_report(&format!("k{i:03}"), 1, "x").unwrap();
        }
        let kept: i64 = store
            .conn()
            .query_row("SELECT count(*) FROM report_cache", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kept, KEEP);
        // The last ones saved are kept (saves within one millisecond are ordered too).
        for i in 0..KEEP + 5 {
            let kept = store
                .cached_report(&format!("k{i:03}"), 1)
                .unwrap()
                .is_some();
            assert_eq!(kept, i >= 5, "k{i:03}");
        }
    }
}
