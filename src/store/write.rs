//! Import transactions: upsert a chunk of records and advance the file offset atomically.
//!
//! Upserts merge: a field the record leaves unset (`None`) keeps the stored value, start times keep the first
//! value written, end times take the maximum. A row written by two files (an archived copy of a rollout)
//! stays attached to the file that wrote it first, so re-reading the other file never deletes it. Records are
//! keyed by their deterministic ids, so importing the same lines again changes nothing.

use std::borrow::Cow;

use anyhow::Result;
use rusqlite::{params, Statement, Transaction};

use super::Store;
use crate::model::{Drift, Observation, Record, Session, Trace};

/// The file state to save with a chunk.
#[derive(Debug, Clone)]
pub struct FileUpdate {
    pub path: String,
    pub agent: &'static str,
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub head_len: u64,
    pub head_hash: String,
    /// Bytes before `offset` covered by `tail_hash`.
    pub tail_len: u64,
    pub tail_hash: String,
    /// Offset after the chunk's last complete line.
    pub offset: u64,
    pub checkpoint: Option<String>,
    /// Line problems found in this chunk (added to the file's count) and the last one's text.
    pub new_warnings: u64,
    pub last_warning: Option<String>,
}

/// One chunk of one file: its records and the file state after them.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub file: FileUpdate,
    /// Delete everything previously imported from this file first (it was rewritten: pi migrations assign
    /// fresh entry ids).
    pub restart: bool,
    /// The store had no row for this file when the import began: a restart has nothing to delete (and a cold
    /// import runs without the `file_id` indexes such a delete would need).
    pub new_file: bool,
    pub records: Vec<Record>,
    /// Files whose rows are deleted first: a file that was moved away (its path is gone) and whose session
    /// this file now holds, so the same content never counts twice (see `ingest`).
    pub forget_files: Vec<i64>,
}

impl Store {
    /// Applies chunks (of one or several files, in order) in one transaction: each file's records and its new
    /// offset land together or not at all.
    pub fn apply_chunks(&mut self, chunks: &[Chunk]) -> Result<()> {
        let tx = self.conn.transaction()?;
        let mut touched = std::collections::BTreeSet::new();
        {
            // Statements looked up once per transaction: `prepare_cached` hashes and compares the whole SQL
            // text (up to 2 KB) on every call, 3 % of the writer's time when it ran per record.
            let mut file = tx.prepare_cached(FILE_SQL)?;
            let mut checkpoint = tx.prepare_cached(CHECKPOINT_SQL)?;
            let mut session = tx.prepare_cached(SESSION_SQL)?;
            let mut trace = tx.prepare_cached(TRACE_SQL)?;
            let mut observation = tx.prepare_cached(OBSERVATION_SQL)?;
            let mut orphan = tx.prepare_cached(ORPHAN_OBSERVATION_SQL)?;
            let mut drift = tx.prepare_cached(DRIFT_SQL)?;
            for chunk in chunks {
                for old in &chunk.forget_files {
                    forget_file(&tx, *old)?;
                }
                let file_id =
                    upsert_file(&mut file, &mut checkpoint, &tx, &chunk.file, chunk.restart)?;
                if chunk.restart && !chunk.new_file {
                    delete_file_rows(&tx, file_id)?;
                }
                for record in &chunk.records {
                    match record {
                        Record::Session(s) => upsert_session(&mut session, s, file_id)?,
                        Record::Trace(t) => {
                            upsert_trace(&mut trace, t, file_id)?;
                            touched.insert(Cow::Borrowed(t.id.as_str()));
                        }
                        Record::Observation(o) => {
                            let joined =
                                upsert_observation(&mut observation, &mut orphan, o, file_id)?;
                            match (o.trace_id.as_deref(), joined) {
                                (Some(trace), _) => touched.insert(Cow::Borrowed(trace)),
                                (None, Some(trace)) => touched.insert(Cow::Owned(trace)),
                                (None, None) => false,
                            };
                        }
                        Record::Drift(d) => add_drift(&mut drift, d, file_id)?,
                    }
                }
            }
        }
        bump_traces(&tx, touched.iter().map(|t| t.as_ref()))?;
        tx.commit()?;
        Ok(())
    }

    /// Gives observations written without a trace (a subagent transcript knows the tool call that spawned
    /// it, not that call's trace) the trace of their parent, level by level. Returns the rows updated.
    /// Most rows take their parent's trace as they are written ([`ORPHAN_OBSERVATION_SQL`]; the import order
    /// puts a transcript before its subagents): this pass finds the others, whose parent came later (a
    /// subagent spawned by a subagent whose file sorts after its own).
    pub fn link_orphan_traces(&mut self) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let mut total = 0;
        // Distinct traces: every linked row names its trace, and a subagent's rows share a few.
        let mut touched = std::collections::BTreeSet::new();
        let mut levels = 0;
        {
            // One statement, run level by level until no row is left whose parent has a trace.
            let mut link = tx.prepare(
                "UPDATE observations SET trace_id =
                   (SELECT p.trace_id FROM observations p WHERE p.id = observations.parent_id)
                 WHERE trace_id IS NULL AND parent_id IS NOT NULL
                   AND (SELECT p.trace_id FROM observations p WHERE p.id = observations.parent_id) IS NOT NULL
                 RETURNING trace_id",
            )?;
            loop {
                let ids = link
                    .query_map([], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                if ids.is_empty() {
                    break;
                }
                total += ids.len();
                levels += 1;
                touched.extend(ids);
            }
        }
        tracing::debug!(
            "linked {total} observation(s) of {} trace(s) in {levels} level(s)",
            touched.len()
        );
        bump_traces(&tx, touched.iter().map(String::as_str))?;
        tx.commit()?;
        Ok(total)
    }
}

/// Deletes everything imported from a file, and the file's row.
fn forget_file(tx: &Transaction<'_>, file_id: i64) -> Result<()> {
    delete_file_rows(tx, file_id)?;
    tx.execute(
        "DELETE FROM checkpoints WHERE file_id = ?1",
        params![file_id],
    )?;
    tx.execute("DELETE FROM files WHERE id = ?1", params![file_id])?;
    Ok(())
}

/// Deletes the rows imported from a file (cached statements: they run for every file read again from its
/// start).
fn delete_file_rows(tx: &Transaction<'_>, file_id: i64) -> Result<()> {
    for sql in [
        "DELETE FROM observations WHERE file_id = ?1",
        "DELETE FROM traces WHERE file_id = ?1",
        "DELETE FROM sessions WHERE file_id = ?1",
        "DELETE FROM drift WHERE file_id = ?1",
    ] {
        tx.prepare_cached(sql)?.execute(params![file_id])?;
    }
    Ok(())
}

impl Store {
    /// The file that owns a session (its main file), as `(file id, path)`.
    pub fn session_owner(&self, session_key: &str) -> Result<Option<(i64, String)>> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn
            .query_row(
                "SELECT f.id, f.path FROM sessions s JOIN files f ON f.id = s.file_id WHERE s.key = ?1",
                params![session_key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Records that the file at `from` now lives at `to` (same device and inode: a rename), keeping its
    /// offset and everything imported from it.
    pub fn rename_file(&mut self, from: &str, to: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE files SET path = ?2 WHERE path = ?1",
            params![from, to],
        )?;
        Ok(())
    }
}

/// Marks traces as changed: each gets a new `seq`, so every sink sees them as pending again.
pub(super) fn bump_traces<'a>(
    tx: &Transaction<'_>,
    ids: impl IntoIterator<Item = &'a str>,
) -> Result<()> {
    let mut ids = ids.into_iter().peekable();
    if ids.peek().is_none() {
        return Ok(());
    }
    let seq: i64 = tx
        .prepare_cached(
            "INSERT INTO meta (key, value) VALUES ('trace_seq', '1')
             ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1
             RETURNING CAST(value AS INTEGER)",
        )?
        .query_row([], |r| r.get(0))?;
    let mut stmt = tx.prepare_cached("UPDATE traces SET seq = ?1 WHERE id = ?2")?;
    for id in ids {
        stmt.execute(params![seq, id])?;
    }
    Ok(())
}

/// Saves a file's state and its parser checkpoint; returns the file's id.
fn upsert_file(
    stmt: &mut Statement<'_>,
    checkpoint: &mut Statement<'_>,
    tx: &Transaction<'_>,
    f: &FileUpdate,
    restart: bool,
) -> Result<i64> {
    let now = jiff::Timestamp::now().as_millisecond();
    let id = stmt.query_row(
        params![
            f.path,
            f.agent,
            f.dev as i64,
            f.ino as i64,
            f.size as i64,
            f.mtime_ns,
            f.head_len as i64,
            f.head_hash,
            f.offset as i64,
            f.new_warnings as i64,
            f.last_warning,
            now,
            restart,
            f.tail_len as i64,
            f.tail_hash,
        ],
        |r| r.get(0),
    )?;
    match &f.checkpoint {
        Some(cp) => {
            checkpoint.execute(params![id, cp])?;
        }
        None => {
            tx.prepare_cached("DELETE FROM checkpoints WHERE file_id = ?1")?
                .execute(params![id])?;
        }
    }
    Ok(id)
}

fn json(v: &Option<serde_json::Value>) -> Option<String> {
    v.as_ref().map(|v| v.to_string())
}

fn upsert_session(stmt: &mut Statement<'_>, s: &Session, file_id: i64) -> Result<()> {
    stmt.execute(params![
        s.key,
        s.agent.map(|a| a.as_str()).unwrap_or("unknown"),
        s.session_id,
        s.agent_version,
        s.cwd,
        s.start_ms,
        s.end_ms,
        s.parent_session,
        s.name,
        s.channel,
        s.user,
        json(&s.metadata),
        file_id,
        s.secondary_file,
        s.agent_cost,
    ])?;
    Ok(())
}

fn add_drift(stmt: &mut Statement<'_>, d: &Drift, file_id: i64) -> Result<()> {
    stmt.execute(params![
        file_id,
        d.agent.as_str(),
        d.agent_version.as_deref().unwrap_or(""),
        d.what,
        d.name,
        d.count as i64,
        d.example,
    ])?;
    Ok(())
}

fn upsert_trace(stmt: &mut Statement<'_>, t: &Trace, file_id: i64) -> Result<()> {
    stmt.execute(params![
        t.id,
        t.root_span_id,
        t.session_key,
        t.key,
        t.is_prompt,
        t.name,
        t.start_ms,
        t.end_ms,
        t.input,
        t.output,
        file_id,
    ])?;
    Ok(())
}

/// Writes one observation. One written without a trace but with a parent goes through
/// [`ORPHAN_OBSERVATION_SQL`] and takes its parent's trace if it can: that trace is returned (it changed).
fn upsert_observation(
    stmt: &mut Statement<'_>,
    orphan: &mut Statement<'_>,
    o: &Observation,
    file_id: i64,
) -> Result<Option<String>> {
    let u = o.usage;
    let c = o.cost;
    let tok = |f: fn(&crate::model::Usage) -> u64| u.as_ref().map(|u| f(u) as i64);
    let values = params![
        o.id,
        o.trace_id,
        o.parent_id,
        o.session_key,
        o.kind.as_str(),
        o.name,
        o.key,
        o.start_ms,
        o.end_ms,
        o.completion_start_ms,
        o.level.map(|l| l.as_str()),
        o.status_message,
        o.model,
        o.response_model,
        o.provider,
        tok(|u| u.input),
        tok(|u| u.output),
        tok(|u| u.cache_read),
        tok(|u| u.cache_write_5m),
        tok(|u| u.cache_write_1h),
        tok(|u| u.reasoning),
        o.agent_cost
            .map(|a| serde_json::to_string(&a).expect("cost serializes")),
        c.map(|c| c.breakdown.input),
        c.map(|c| c.breakdown.output),
        c.map(|c| c.breakdown.cache_read),
        c.map(|c| c.breakdown.cache_write),
        c.map(|c| c.breakdown.total),
        c.map(|c| c.source.as_str()),
        c.map(|c| c.unpriced),
        o.input,
        o.output,
        json(&o.metadata),
        file_id,
        o.flag,
        o.tool_call_id,
        o.finish_reason,
        o.response_id,
    ];
    if o.trace_id.is_none() && o.parent_id.is_some() {
        return Ok(orphan.query_row(values, |r| r.get(0))?);
    }
    stmt.execute(values)?;
    Ok(None)
}

const FILE_SQL: &str = "INSERT INTO files (path, agent, dev, ino, size, mtime_ns, head_len, head_hash, offset, warnings, last_warning, imported_at, tail_len, tail_hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?14, ?15)
         ON CONFLICT(path) DO UPDATE SET
           agent = excluded.agent, dev = excluded.dev, ino = excluded.ino, size = excluded.size,
           mtime_ns = excluded.mtime_ns, head_len = excluded.head_len, head_hash = excluded.head_hash,
           tail_len = excluded.tail_len, tail_hash = excluded.tail_hash,
           offset = excluded.offset,
           warnings = CASE WHEN ?13 THEN excluded.warnings ELSE files.warnings + excluded.warnings END,
           last_warning = COALESCE(excluded.last_warning, CASE WHEN ?13 THEN NULL ELSE files.last_warning END),
           imported_at = excluded.imported_at
         RETURNING id";

/// The parser checkpoint saved with a file's offset (schema 9: its own table, see `0009_checkpoints.sql`).
const CHECKPOINT_SQL: &str = "INSERT INTO checkpoints (file_id, checkpoint) VALUES (?1, ?2)
         ON CONFLICT(file_id) DO UPDATE SET checkpoint = excluded.checkpoint";

const SESSION_SQL: &str = "INSERT INTO sessions (key, agent, session_id, agent_version, cwd, start_ms, end_ms, parent_session, name, channel, user, metadata, file_id, agent_cost)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?15)
         ON CONFLICT(key) DO UPDATE SET
           agent_version = COALESCE(excluded.agent_version, sessions.agent_version),
           cwd = COALESCE(excluded.cwd, sessions.cwd),
           start_ms = CASE WHEN sessions.start_ms IS NULL THEN excluded.start_ms
                           WHEN excluded.start_ms IS NULL THEN sessions.start_ms
                           ELSE MIN(sessions.start_ms, excluded.start_ms) END,
           end_ms = CASE WHEN sessions.end_ms IS NULL THEN excluded.end_ms
                         WHEN excluded.end_ms IS NULL THEN sessions.end_ms
                         ELSE MAX(sessions.end_ms, excluded.end_ms) END,
           parent_session = COALESCE(excluded.parent_session, sessions.parent_session),
           name = COALESCE(excluded.name, sessions.name),
           channel = COALESCE(excluded.channel, sessions.channel),
           user = COALESCE(excluded.user, sessions.user),
           metadata = COALESCE(excluded.metadata, sessions.metadata),
           agent_cost = COALESCE(excluded.agent_cost, sessions.agent_cost),
           file_id = CASE WHEN ?14 THEN COALESCE(sessions.file_id, excluded.file_id) ELSE excluded.file_id END";

const DRIFT_SQL: &str =
    "INSERT INTO drift (file_id, agent, agent_version, what, name, count, example)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT(file_id, agent_version, what, name) DO UPDATE SET
           count = drift.count + excluded.count,
           example = COALESCE(drift.example, excluded.example)";

const TRACE_SQL: &str = "INSERT INTO traces (id, root_span_id, session_key, key, is_prompt, name, start_ms, end_ms, input, output, file_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT(id) DO UPDATE SET
           is_prompt = MAX(traces.is_prompt, excluded.is_prompt),
           name = COALESCE(excluded.name, traces.name),
           start_ms = COALESCE(traces.start_ms, excluded.start_ms),
           end_ms = CASE WHEN traces.end_ms IS NULL THEN excluded.end_ms
                         WHEN excluded.end_ms IS NULL THEN traces.end_ms
                         ELSE MAX(traces.end_ms, excluded.end_ms) END,
           input = COALESCE(excluded.input, traces.input),
           output = COALESCE(excluded.output, traces.output)";

/// The observation upsert with `$trace` as the value of `trace_id` and `$tail` after it.
macro_rules! observation_sql {
    ($trace:literal, $tail:literal) => {
        concat!("INSERT INTO observations (id, trace_id, parent_id, session_key, kind, name, key, start_ms, end_ms,
            completion_start_ms, level, status_message, model, response_model, provider,
            input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens, reasoning_tokens,
            agent_cost, cost_input, cost_output, cost_cache_read, cost_cache_write, cost_total, cost_source, unpriced,
            input, output, metadata, file_id, flag, tool_call_id, finish_reason, response_id)
         VALUES (?1, ", $trace, ", ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21,
                 ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35, ?36, ?37)
         ON CONFLICT(id) DO UPDATE SET
           trace_id = COALESCE(excluded.trace_id, observations.trace_id),
           parent_id = COALESCE(observations.parent_id, excluded.parent_id),
           name = CASE WHEN excluded.name = '' THEN observations.name ELSE excluded.name END,
           key = CASE WHEN excluded.key = '' THEN observations.key ELSE excluded.key END,
           start_ms = COALESCE(observations.start_ms, excluded.start_ms),
           end_ms = CASE WHEN observations.end_ms IS NULL THEN excluded.end_ms
                         WHEN excluded.end_ms IS NULL THEN observations.end_ms
                         ELSE MAX(observations.end_ms, excluded.end_ms) END,
           completion_start_ms = COALESCE(excluded.completion_start_ms, observations.completion_start_ms),
           level = COALESCE(excluded.level, observations.level),
           status_message = COALESCE(excluded.status_message, observations.status_message),
           model = COALESCE(excluded.model, observations.model),
           response_model = COALESCE(excluded.response_model, observations.response_model),
           provider = COALESCE(excluded.provider, observations.provider),
           input_tokens = COALESCE(excluded.input_tokens, observations.input_tokens),
           output_tokens = COALESCE(excluded.output_tokens, observations.output_tokens),
           cache_read_tokens = COALESCE(excluded.cache_read_tokens, observations.cache_read_tokens),
           cache_write_5m_tokens = COALESCE(excluded.cache_write_5m_tokens, observations.cache_write_5m_tokens),
           cache_write_1h_tokens = COALESCE(excluded.cache_write_1h_tokens, observations.cache_write_1h_tokens),
           reasoning_tokens = COALESCE(excluded.reasoning_tokens, observations.reasoning_tokens),
           agent_cost = COALESCE(excluded.agent_cost, observations.agent_cost),
           cost_input = COALESCE(excluded.cost_input, observations.cost_input),
           cost_output = COALESCE(excluded.cost_output, observations.cost_output),
           cost_cache_read = COALESCE(excluded.cost_cache_read, observations.cost_cache_read),
           cost_cache_write = COALESCE(excluded.cost_cache_write, observations.cost_cache_write),
           cost_total = COALESCE(excluded.cost_total, observations.cost_total),
           cost_source = COALESCE(excluded.cost_source, observations.cost_source),
           unpriced = COALESCE(excluded.unpriced, observations.unpriced),
           input = COALESCE(excluded.input, observations.input),
           output = COALESCE(excluded.output, observations.output),
           metadata = COALESCE(excluded.metadata, observations.metadata),
           file_id = COALESCE(observations.file_id, excluded.file_id),
           tool_call_id = COALESCE(excluded.tool_call_id, observations.tool_call_id),
           finish_reason = COALESCE(excluded.finish_reason, observations.finish_reason),
           response_id = COALESCE(excluded.response_id, observations.response_id),
           flag = CASE WHEN excluded.input_tokens IS NOT NULL OR excluded.agent_cost IS NOT NULL
                       THEN excluded.flag ELSE COALESCE(excluded.flag, observations.flag) END", $tail)
    };
}

const OBSERVATION_SQL: &str = observation_sql!("?2", "");

/// For an observation written without a trace (a subagent's, whose trace is its spawning tool call's): it
/// takes its parent's trace when the parent is already stored, and says which it took.
const ORPHAN_OBSERVATION_SQL: &str = observation_sql!(
    "COALESCE(?2, (SELECT p.trace_id FROM observations p WHERE p.id = ?3))",
    " RETURNING trace_id"
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;

    fn chunk(path: &str, records: Vec<Record>) -> Chunk {
        Chunk {
            file: FileUpdate {
                path: path.into(),
                agent: "claude",
                dev: 1,
                ino: path.len() as u64,
                size: 10,
                mtime_ns: 1,
                head_len: 0,
                head_hash: String::new(),
                tail_len: 0,
                tail_hash: String::new(),
                offset: 10,
                checkpoint: None,
                new_warnings: 0,
                last_warning: None,
            },
            restart: false,
            new_file: true,
            records,
            forget_files: Vec::new(),
        }
    }

    fn obs(id: &str, trace: Option<&str>, parent: Option<&str>, kind: Kind) -> Record {
        let mut o = Observation::new(id.into(), "claude:s", kind, id, id);
        o.trace_id = trace.map(String::from);
        o.parent_id = parent.map(String::from);
        Record::Observation(Box::new(o))
    }

    fn trace_of(store: &Store, id: &str) -> Option<String> {
        store
            .conn()
            .query_row(
                "SELECT trace_id FROM observations WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap()
    }

    fn seq(store: &Store, trace: &str) -> i64 {
        store
            .conn()
            .query_row("SELECT seq FROM traces WHERE id = ?1", [trace], |r| {
                r.get(0)
            })
            .unwrap()
    }

    #[test]
    fn rows_without_a_trace_take_their_stored_parents_as_they_are_written() {
        let mut store = Store::open_in_memory().unwrap();
        let t = Trace::open("claude", "s", "prompt-1", true, "p".into(), Some(1), None);
        let tid = t.id.clone();
        store
            .apply_chunks(&[chunk(
                "main.jsonl",
                vec![Record::Trace(t), obs("tool", Some(&tid), None, Kind::Tool)],
            )])
            .unwrap();
        let before = seq(&store, &tid);
        // A later transaction, another file: the agent's parent is the tool call, the turn's the agent, and
        // a row whose parent is nowhere stays without a trace (for the linking pass).
        store
            .apply_chunks(&[chunk(
                "main/subagents/agent-a.jsonl",
                vec![
                    obs("agent", None, Some("tool"), Kind::Agent),
                    obs("turn", None, Some("agent"), Kind::Span),
                    obs("lost", None, Some("nowhere"), Kind::Span),
                ],
            )])
            .unwrap();
        assert_eq!(trace_of(&store, "agent").as_deref(), Some(tid.as_str()));
        assert_eq!(trace_of(&store, "turn").as_deref(), Some(tid.as_str()));
        assert_eq!(trace_of(&store, "lost"), None);
        assert!(seq(&store, &tid) > before, "the trace changed: sent again");
        assert_eq!(store.link_orphan_traces().unwrap(), 0);
    }
}
