//! The embedded store: SQLite (bundled, WAL) at `$XDG_DATA_HOME/tokentrace/tokentrace.db` (DESIGN §5).
//!
//! Writes happen in [`Store::apply_chunk`]: one transaction upserts a chunk of records and advances the
//! file's offset and parser checkpoint together, so a crash at any point loses and duplicates nothing.
//! Reads for reports, `show` and `doctor` are in [`read`].

/// The partial condition of the `observations_facts` index (model calls, tool calls, subagents), with an
/// optional table alias (`facts_kinds!("o.")`). Queries over those kinds repeat it as written: SQLite uses a
/// partial index only for a query whose `WHERE` contains the index's condition (`kind = 'generation'` alone does
/// not count), and a query that stops matching it reads the table instead, silently.
macro_rules! facts_kinds {
    () => {
        facts_kinds!("")
    };
    ($alias:literal) => {
        concat!($alias, "kind IN ('generation', 'tool', 'agent')")
    };
}

pub mod anomalies;
pub mod live;
mod lock;
mod migrate;
pub mod outbox;
mod pushes;
pub mod read;
mod rebuild;
mod report_cache;
mod reprice;
mod stamps;
mod write;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};

pub use rebuild::CarryOver;
pub use reprice::{ModelRepricing, Repricing, PRICE_FINGERPRINT_KEY};
pub use stamps::{FileStamp, FileStamps};
pub use write::{Chunk, FileUpdate};

/// The secondary indexes over imported rows, as the migrations create them (`0001_initial.sql`,
/// `0007_sessions_file_index.sql`, `0008_facts_index.sql`; `tests/store_migrations.rs` checks the two agree). A cold import drops
/// and re-creates them ([`Store::drop_import_indexes`]).
pub const IMPORT_INDEXES: &[(&str, &str)] = &[
    (
        "traces_session",
        "CREATE INDEX IF NOT EXISTS traces_session ON traces(session_key)",
    ),
    (
        "traces_file",
        "CREATE INDEX IF NOT EXISTS traces_file ON traces(file_id)",
    ),
    (
        "observations_errors",
        "CREATE INDEX IF NOT EXISTS observations_errors ON observations(session_key) WHERE level = 'ERROR'",
    ),
    (
        "observations_trace",
        "CREATE INDEX IF NOT EXISTS observations_trace ON observations(trace_id)",
    ),
    (
        "observations_file",
        "CREATE INDEX IF NOT EXISTS observations_file ON observations(file_id)",
    ),
    (
        "sessions_file",
        "CREATE INDEX IF NOT EXISTS sessions_file ON sessions(file_id)",
    ),
    (
        "observations_facts",
        concat!(
            "CREATE INDEX IF NOT EXISTS observations_facts ON observations(session_key, kind, start_ms, end_ms, \
         level, name, model, response_model, provider, input_tokens, output_tokens, cache_read_tokens, \
         cache_write_5m_tokens, cache_write_1h_tokens, reasoning_tokens, cost_total, cost_source, unpriced, flag) \
         WHERE ",
        facts_kinds!()
    ),
    ),
    (
        "observations_spend",
        "CREATE INDEX IF NOT EXISTS observations_spend ON observations(start_ms, session_key, cost_total) \
         WHERE kind = 'generation'",
    ),
];

/// SQLite's page cache (and so its in-memory sort) while [`Store::create_import_indexes`] runs, KiB.
const INDEX_BUILD_CACHE_KIB: i64 = 8_000;

/// Current schema version (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = migrate::LATEST;

/// What to do about a store error (locked, read-only, full, damaged), naming the store; `None` for errors
/// that are not the store's.
pub fn explain_error(err: &anyhow::Error) -> Option<String> {
    lock::explain(err)
}

/// The store file name inside the data directory.
pub const DB_FILE: &str = "tokentrace.db";

/// What the store knows about one session file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRow {
    pub id: i64,
    pub path: String,
    pub agent: String,
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    /// Number of leading bytes `head_hash` covers.
    pub head_len: u64,
    pub head_hash: String,
    /// Number of bytes before `offset` that `tail_hash` covers (the whole consumed range for small files).
    pub tail_len: u64,
    /// Hash of those bytes; `None` for rows written before schema 3.
    pub tail_hash: Option<String>,
    /// Bytes consumed (at a line boundary).
    pub offset: u64,
    pub checkpoint: Option<String>,
    pub warnings: u64,
    pub last_warning: Option<String>,
}

/// The condition of a query over `files` for one path, or none for all rows. Two statements, not one with
/// `?1 IS NULL OR path = ?1`: SQLite plans that one as a scan of every row, which made each one-path lookup
/// read the whole table (5,613 rows on the 1 GB benchmark).
fn by_path(path: Option<&str>) -> &'static str {
    match path {
        Some(_) => " WHERE path = ?1",
        None => "",
    }
}

/// An open store.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the store at `path`, in WAL mode, with the schema applied.
    ///
    /// The store holds prompts and answers: a data directory it creates is private (0700), and the database
    /// file is made 0600 before SQLite opens it (its `-wal` and `-shm` files take the same mode).
    ///
    /// Errors: the directory cannot be created, the file is not a SQLite database, or it was written by a
    /// newer tokentrace (schema version above this build's).
    pub fn open(path: &Path) -> Result<Store> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(dir)
                    .with_context(|| format!("cannot create data directory {}", dir.display()))?;
            }
        }
        if !path.exists() {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
            {
                Ok(_) => {}
                // Another process created it just now.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot create store {}", path.display()))
                }
            }
        }
        // A store written by an older tokentrace: tightened when we may (best effort: a store shared
        // read-only stays readable).
        for suffix in ["", "-wal", "-shm"] {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            let p = std::path::PathBuf::from(p);
            if std::fs::metadata(&p).is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
                let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
            }
        }
        let conn = Connection::open(path)
            .with_context(|| format!("cannot open store {}", path.display()))?;
        Self::init(conn, path.to_path_buf())
    }

    /// Opens the store for reading only (`report --no-import`, `show`, `doctor`): works on a read-only
    /// directory or a full disk, and never blocks a running import. A store that does not exist yet reads as
    /// empty. A store from an older tokentrace is migrated first when it can be written; otherwise the error
    /// says which command upgrades it.
    ///
    /// Errors: the file is not a SQLite database, it is newer than this build, or it needs an upgrade that
    /// cannot be written here.
    pub fn open_read_only(path: &Path) -> Result<Store> {
        use rusqlite::OpenFlags;
        if !path.exists() {
            let mut store = Self::open_in_memory()?;
            store.path = path.to_path_buf();
            return Ok(store);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let open = |uri: String| -> Result<Connection> {
            let mut conn = Connection::open_with_flags(uri, flags)?;
            lock::install(&mut conn, path);
            // A read-only WAL store needs its `-shm` file; on a read-only directory without one, this fails.
            let _: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
            Ok(conn)
        };
        let uri = format!("file:{}", path.display());
        let conn = match open(uri.clone()) {
            Ok(c) => c,
            // The directory is read-only and the WAL index cannot be created: read the file as it is.
            Err(_) => open(format!("{uri}?immutable=1"))
                .with_context(|| format!("cannot open store {} for reading", path.display()))?,
        };
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version < migrate::LATEST {
            drop(conn);
            return Self::open(path).with_context(|| {
                format!(
                    "store {} was written by an older tokentrace and must be upgraded once, which needs \
                     write access: run `tokentrace report` where the data directory is writable",
                    path.display()
                )
            });
        }
        if version > migrate::LATEST {
            anyhow::bail!(
                "store {} has schema version {version}, newer than this tokentrace understands ({}); \
                 upgrade tokentrace, or point --data-dir at another directory",
                path.display(),
                migrate::LATEST
            );
        }
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// An in-memory store (tests).
    pub fn open_in_memory() -> Result<Store> {
        Self::init(Connection::open_in_memory()?, PathBuf::from(":memory:"))
    }

    fn init(mut conn: Connection, path: PathBuf) -> Result<Store> {
        lock::install(&mut conn, &path);
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // 32 MB page cache: imports touch the observation indexes all over; stays within the RSS budget.
        conn.pragma_update(None, "cache_size", -32_000)?;
        // The import path caches ~15 statements; rusqlite's default cache holds 16.
        conn.set_prepared_statement_cache_capacity(64);
        migrate::migrate(&mut conn, &path.display().to_string())?;
        let store = Store { conn, path };
        store.create_import_indexes()?;
        Ok(store)
    }

    /// Bulk mode, for an import that reads a lot (a first run over a long history): `synchronous=OFF` and
    /// a WAL checkpoint every 64 MB instead of every 4 MB. Safe because the import is restartable: each
    /// transaction stores records together with the file offsets they came from, so a crash loses at most
    /// the last transactions, which the next run reads again from the older offsets. (An operating-system
    /// crash or power loss in the middle can corrupt the file under `synchronous=OFF`; `store rebuild`
    /// re-imports everything from the agents' files.) Measured on the 1 GB Claude benchmark: 260 fsyncs
    /// and ~12 % of the CPU in checkpoints before. Turning it off restores `synchronous=NORMAL` and
    /// checkpoints what the WAL holds.
    pub fn set_bulk(&self, on: bool) -> Result<()> {
        if on {
            self.conn.pragma_update(None, "synchronous", "OFF")?;
            self.conn
                .pragma_update(None, "wal_autocheckpoint", 16_384)?;
        } else {
            self.conn.pragma_update(None, "synchronous", "NORMAL")?;
            self.conn.pragma_update(None, "wal_autocheckpoint", 1_000)?;
            self.conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        }
        Ok(())
    }

    /// Drops the secondary indexes of the imported rows ([`IMPORT_INDEXES`]) for a first import into an empty
    /// store: each row then updates its table and primary key only, and [`Store::create_import_indexes`]
    /// builds the indexes in one sorted pass at the end. Nothing in the import path needs them while the
    /// store is empty (new files have no rows to replace). If the import stops half-way, the next open
    /// creates them again.
    pub fn drop_import_indexes(&self) -> Result<()> {
        for (name, _) in IMPORT_INDEXES {
            self.conn
                .execute_batch(&format!("DROP INDEX IF EXISTS {name}"))?;
        }
        Ok(())
    }

    /// Creates whichever of [`IMPORT_INDEXES`] is missing (after [`Store::drop_import_indexes`], or on open
    /// after an import that stopped).
    pub fn create_import_indexes(&self) -> Result<()> {
        // SQLite sorts a new index's keys in memory up to the page cache's size, on top of the cache itself:
        // with the 32 MB cache the sort of the 4 GB benchmark's keys took 33 MB more at the peak. A smaller
        // cache while indexing bounds both; the sort spills to temporary files instead.
        let cache: i64 = self
            .conn
            .pragma_query_value(None, "cache_size", |r| r.get(0))?;
        self.conn
            .pragma_update(None, "cache_size", -INDEX_BUILD_CACHE_KIB)?;
        let built = IMPORT_INDEXES
            .iter()
            .try_for_each(|(_, sql)| self.conn.execute_batch(sql));
        self.conn.pragma_update(None, "cache_size", cache)?;
        Ok(built?)
    }

    /// Caps SQLite's page cache at `kib` KiB (32 MB by default, for imports that touch indexes all over): a
    /// command that reads or writes a few pages and must stay small (`statusline`) lowers it.
    pub fn set_cache_kib(&self, kib: i64) -> Result<()> {
        self.conn.pragma_update(None, "cache_size", -kib.max(64))?;
        Ok(())
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every known file, by path.
    pub fn files(&self) -> Result<HashMap<String, FileRow>> {
        self.files_where(None)
    }

    /// The known files among `paths`, by path (an import of a few files: one lookup each instead of every
    /// row; 18 % of a `statusline` call that imported one transcript on the 1 GB benchmark).
    pub fn files_at(&self, paths: &[&str]) -> Result<HashMap<String, FileRow>> {
        let mut out = HashMap::new();
        for path in paths {
            out.extend(self.files_where(Some(path))?);
        }
        Ok(out)
    }

    fn files_where(&self, path: Option<&str>) -> Result<HashMap<String, FileRow>> {
        // Checkpoints (≈ 2.5 KB a file) live in their own table since schema 9: only a file that changed needs
        // its own, read by `file_checkpoint`.
        let sql = format!(
            "SELECT id, path, agent, dev, ino, size, mtime_ns, head_len, head_hash, offset, NULL, warnings, last_warning, tail_len, tail_hash FROM files{}",
            by_path(path)
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(path), |r| {
            Ok(FileRow {
                id: r.get(0)?,
                path: r.get(1)?,
                agent: r.get(2)?,
                dev: r.get::<_, i64>(3)? as u64,
                ino: r.get::<_, i64>(4)? as u64,
                size: r.get::<_, i64>(5)? as u64,
                mtime_ns: r.get(6)?,
                head_len: r.get::<_, i64>(7)? as u64,
                head_hash: r.get(8)?,
                offset: r.get::<_, i64>(9)? as u64,
                checkpoint: r.get(10)?,
                warnings: r.get::<_, i64>(11)? as u64,
                last_warning: r.get(12)?,
                tail_len: r.get::<_, i64>(13)? as u64,
                tail_hash: r.get(14)?,
            })
        })?;
        let mut out = HashMap::new();
        for row in rows {
            let row = row?;
            out.insert(row.path.clone(), row);
        }
        Ok(out)
    }

    /// SQLite's `PRAGMA data_version`: changes when another connection commits to the store, and only then
    /// (comparable between calls on this connection only). What the dashboard polls to update open pages.
    pub fn data_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    /// The parser checkpoint saved with a file's offset ([`Store::files`] leaves it out).
    pub fn file_checkpoint(&self, file_id: i64) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT checkpoint FROM checkpoints WHERE file_id = ?1",
                params![file_id],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    /// Records that a file was looked at but not re-read (same size and mtime): nothing to write.
    /// Returns a meta value.
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| {
                r.get(0)
            })
            .optional()?)
    }

    /// Sets a meta value.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    pub(crate) fn conn_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }
}
