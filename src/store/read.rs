//! Queries over the store: facts for reports, sessions, trace trees for `show`, counts for `doctor`.

use anyhow::Result;
use rusqlite::{params_from_iter, OptionalExtension, Row};

use super::Store;
use crate::model::{CostSource, Kind, Level, Usage};

/// Which sessions a query covers.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Agent names (`pi`, `omp`); empty = all.
    pub agents: Vec<String>,
    /// Substring of the session's working directory.
    pub project: Option<String>,
    /// Only sessions read from files under one of these directories (empty = anywhere).
    pub path_prefixes: Vec<String>,
}

impl Filter {
    /// SQL condition on `s` (sessions) and `f` (files), with its parameters.
    fn sql(&self) -> (String, Vec<String>) {
        let mut cond = vec!["1 = 1".to_string()];
        let mut params = Vec::new();
        if !self.agents.is_empty() {
            let marks = vec!["?"; self.agents.len()].join(", ");
            cond.push(format!("s.agent IN ({marks})"));
            params.extend(self.agents.iter().cloned());
        }
        if let Some(p) = &self.project {
            cond.push("instr(COALESCE(s.cwd, ''), ?) > 0".into());
            params.push(p.clone());
        }
        if !self.path_prefixes.is_empty() {
            let mut any = Vec::new();
            for p in &self.path_prefixes {
                let dir = if p.ends_with('/') {
                    p.clone()
                } else {
                    format!("{p}/")
                };
                any.push("f.path = ? OR substr(f.path, 1, length(?)) = ?");
                params.push(p.clone());
                params.push(dir.clone());
                params.push(dir);
            }
            cond.push(format!("({})", any.join(" OR ")));
        }
        (cond.join(" AND "), params)
    }
}

/// One session as reports show it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub key: String,
    pub agent: String,
    pub session_id: String,
    pub agent_version: Option<String>,
    pub cwd: Option<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub name: Option<String>,
    pub channel: Option<String>,
    pub user: Option<String>,
    pub parent_session: Option<String>,
    pub file: Option<String>,
    /// The agent's own figure for the whole session, pico-USD (Claude Code `cost-state`), if recorded.
    pub agent_cost: Option<i64>,
}

/// A session whose agent-recorded total differs from tokentrace's sum ([`Store::cost_mismatches`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CostMismatch {
    pub session_key: String,
    pub agent: String,
    pub agent_version: Option<String>,
    /// The agent's figure, pico-USD.
    pub agent_cost: i64,
    /// The sum of the session's generation costs, pico-USD.
    pub ours: i64,
}

/// Unknown line types or usage fields of one agent version ([`Store::drift`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DriftRow {
    pub agent: String,
    pub agent_version: Option<String>,
    /// `line type` or `usage field`.
    pub what: String,
    pub name: String,
    /// Occurrences.
    pub count: u64,
    /// Files they occur in.
    pub files: u64,
    /// A value-free outline of one example line.
    pub example: Option<String>,
}

/// What a fact counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactKind {
    Prompt,
    Generation,
    Tool,
    Subagent,
}

/// One countable thing: a prompt, a model call, a tool call or a subagent run.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    pub kind: FactKind,
    pub session_key: String,
    pub ts_ms: Option<i64>,
    /// Tool name for tools; model for generations.
    pub name: String,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub error: bool,
    pub usage: Usage,
    pub cost_pico: i64,
    pub cost_source: CostSource,
    pub unpriced: bool,
    pub duration_ms: Option<i64>,
    /// A value of this record was rejected at import (see `Observation::flag`).
    pub flagged: bool,
}

/// One observation of a trace tree.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservationRow {
    pub id: String,
    pub parent_id: Option<String>,
    pub kind: Kind,
    pub name: String,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub level: Level,
    pub status_message: Option<String>,
    pub model: Option<String>,
    pub usage: Option<Usage>,
    pub cost_pico: Option<i64>,
    pub cost_source: Option<String>,
    pub unpriced: bool,
    /// What the capture policy kept of the input (a tool's arguments, a prompt) and output (a tool's
    /// result, a model's answer), redacted.
    pub input: Option<String>,
    pub output: Option<String>,
}

/// One trace of a session.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceRow {
    pub id: String,
    pub root_span_id: String,
    pub session_key: String,
    pub is_prompt: bool,
    pub name: Option<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub input: Option<String>,
    pub output: Option<String>,
}

/// Sets `to` to `from`, keeping its buffer.
fn refill(to: &mut String, from: &str) {
    to.clear();
    to.push_str(from);
}

/// [`refill`] for an optional string.
fn refill_opt(to: &mut Option<String>, from: Option<&str>) {
    match (to.as_mut(), from) {
        (Some(buf), Some(from)) => refill(buf, from),
        (None, Some(from)) => *to = Some(from.to_string()),
        (_, None) => *to = None,
    }
}

fn usage_at(r: &Row<'_>, first: usize) -> rusqlite::Result<Option<Usage>> {
    let input: Option<i64> = r.get(first)?;
    let Some(input) = input else { return Ok(None) };
    let n = |i: usize| -> rusqlite::Result<u64> {
        Ok(r.get::<_, Option<i64>>(first + i)?.unwrap_or(0) as u64)
    };
    Ok(Some(Usage {
        input: input as u64,
        output: n(1)?,
        cache_read: n(2)?,
        cache_write_5m: n(3)?,
        cache_write_1h: n(4)?,
        reasoning: n(5)?,
    }))
}

pub(super) const SESSION_COLUMNS: &str =
    "s.key, s.agent, s.session_id, s.agent_version, s.cwd, s.start_ms, s.end_ms, s.name, \
     s.channel, s.user, s.parent_session, f.path, s.agent_cost";

pub(super) fn session_row(r: &Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        key: r.get(0)?,
        agent: r.get(1)?,
        session_id: r.get(2)?,
        agent_version: r.get(3)?,
        cwd: r.get(4)?,
        start_ms: r.get(5)?,
        end_ms: r.get(6)?,
        name: r.get(7)?,
        channel: r.get(8)?,
        user: r.get(9)?,
        parent_session: r.get(10)?,
        file: r.get(11)?,
        agent_cost: r.get(12)?,
    })
}

const TOKEN_COLUMNS: &str =
    "o.input_tokens, o.output_tokens, o.cache_read_tokens, o.cache_write_5m_tokens, o.cache_write_1h_tokens, o.reasoning_tokens";

impl Store {
    /// Sessions matching `filter`, oldest first.
    pub fn sessions(&self, filter: &Filter) -> Result<Vec<SessionRow>> {
        let (cond, params) = filter.sql();
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions s LEFT JOIN files f ON f.id = s.file_id WHERE {cond}
             ORDER BY s.start_ms, s.key"
        );
        let mut stmt = self.conn().prepare(&sql)?;
        let rows = stmt.query_map(params_from_iter(params.iter()), session_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// One session by key (`agent:session_id`).
    pub fn session(&self, key: &str) -> Result<Option<SessionRow>> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions s LEFT JOIN files f ON f.id = s.file_id WHERE s.key = ?1");
        Ok(self.conn().query_row(&sql, [key], session_row).optional()?)
    }

    /// Sessions whose agent recorded its own total (Claude Code `cost-state`) that differs from the sum of
    /// their generations' costs by more than `tolerance` pico-USD: `(session, agent cost, our cost)`.
    pub fn cost_mismatches(&self, tolerance: i64) -> Result<Vec<CostMismatch>> {
        let mut stmt = self.conn().prepare(concat!(
            "SELECT s.key, s.agent, s.agent_version, s.agent_cost,
                    COALESCE((SELECT SUM(o.cost_total) FROM observations o
                              WHERE o.session_key = s.key AND o.kind = 'generation' AND ",
            facts_kinds!("o."),
            "), 0)
             FROM sessions s WHERE s.agent_cost IS NOT NULL ORDER BY s.start_ms, s.key"
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok(CostMismatch {
                session_key: r.get(0)?,
                agent: r.get(1)?,
                agent_version: r.get(2)?,
                agent_cost: r.get(3)?,
                ours: r.get(4)?,
            })
        })?;
        let all = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(all
            .into_iter()
            .filter(|m| (m.agent_cost - m.ours).abs() > tolerance)
            .collect())
    }

    /// Format drift in the store: unknown line types and usage fields per agent and version, summed over files.
    pub fn drift(&self) -> Result<Vec<DriftRow>> {
        let mut stmt = self.conn().prepare(
            "SELECT agent, agent_version, what, name, SUM(count), COUNT(DISTINCT file_id), MIN(example)
             FROM drift GROUP BY agent, agent_version, what, name ORDER BY agent, agent_version, what, name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(DriftRow {
                agent: r.get(0)?,
                agent_version: r
                    .get::<_, String>(1)
                    .map(|v| (!v.is_empty()).then_some(v))?,
                what: r.get(2)?,
                name: r.get(3)?,
                count: r.get::<_, i64>(4)? as u64,
                files: r.get::<_, i64>(5)? as u64,
                example: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Streams every fact of the sessions whose key `keep` accepts to `each` (no collection in memory);
    /// callers pass the keys [`Store::sessions`] listed for their filter.
    ///
    /// The facts are read without a join: joining sessions and files for each of 32k facts cost ~80 ms of a
    /// 0.25 s warm report on the 1 GB benchmark, where the facts themselves come from one covering index
    /// (`observations_facts`).
    pub fn for_each_fact(
        &self,
        keep: impl Fn(&str) -> bool,
        each: impl FnMut(&Fact),
    ) -> Result<()> {
        self.facts(None, keep, each)
    }

    /// [`Store::for_each_fact`] of one session, through the session indexes (a session page reads its own
    /// facts, not the whole store's).
    pub fn for_each_fact_of(&self, session_key: &str, each: impl FnMut(&Fact)) -> Result<()> {
        self.facts(Some(session_key), |_| true, each)
    }

    fn facts(
        &self,
        session: Option<&str>,
        keep: impl Fn(&str) -> bool,
        mut each: impl FnMut(&Fact),
    ) -> Result<()> {
        let (of_o, of_t) = match session {
            Some(_) => ("AND o.session_key = ?1", "AND t.session_key = ?1"),
            None => ("", ""),
        };
        let sql = format!(
            concat!(
                "SELECT o.kind, o.level, o.start_ms, o.end_ms, o.name, COALESCE(o.response_model, o.model), o.provider, {TOKEN_COLUMNS},
                    o.cost_total, o.cost_source, o.unpriced, o.session_key, o.flag IS NOT NULL
             FROM observations o
             WHERE ",
                facts_kinds!("o."),
                " {of_o}
             UNION ALL
             SELECT 'prompt', NULL, t.start_ms, t.end_ms, '', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                    NULL, NULL, NULL, t.session_key, 0
             FROM traces t
             WHERE t.is_prompt = 1 {of_t}"
            ),
            TOKEN_COLUMNS = TOKEN_COLUMNS,
            of_o = of_o,
            of_t = of_t,
        );
        let mut stmt = self.conn().prepare(&sql)?;
        let mut rows = match session {
            Some(key) => stmt.query([key])?,
            None => stmt.query([])?,
        };
        // One fact, refilled for every row: its strings keep their buffers, so a row costs no allocation (a
        // warm daily report reads 37k rows on the 1 GB benchmark; seven strings a row were a fifth of it).
        let mut fact = Fact {
            kind: FactKind::Prompt,
            session_key: String::new(),
            ts_ms: None,
            name: String::new(),
            model: None,
            provider: None,
            error: false,
            usage: Usage::default(),
            cost_pico: 0,
            cost_source: CostSource::None,
            unpriced: false,
            duration_ms: None,
            flagged: false,
        };
        // Rows come grouped by session (the facts index leads with it): `keep` is asked once per run of them.
        let (mut asked, mut kept) = (false, false);
        while let Some(r) = rows.next()? {
            let session_key = r.get_ref(16)?.as_str()?;
            if !asked || fact.session_key != session_key {
                asked = true;
                refill(&mut fact.session_key, session_key);
                kept = keep(session_key);
            }
            if !kept {
                continue;
            }
            let start: Option<i64> = r.get(2)?;
            let end: Option<i64> = r.get(3)?;
            fact.kind = match r.get_ref(0)?.as_str()? {
                "generation" => FactKind::Generation,
                "tool" => FactKind::Tool,
                "agent" => FactKind::Subagent,
                _ => FactKind::Prompt,
            };
            let model = r.get_ref(5)?.as_str_or_null()?;
            refill_opt(&mut fact.model, model);
            match (fact.kind, model) {
                (FactKind::Generation, Some(m)) => refill(&mut fact.name, m),
                _ => refill(&mut fact.name, r.get_ref(4)?.as_str()?),
            }
            refill_opt(&mut fact.provider, r.get_ref(6)?.as_str_or_null()?);
            fact.ts_ms = start;
            fact.error = r.get_ref(1)?.as_str_or_null()? == Some("ERROR");
            fact.usage = usage_at(r, 7)?.unwrap_or_default();
            fact.cost_pico = r.get::<_, Option<i64>>(13)?.unwrap_or(0);
            fact.cost_source =
                CostSource::parse(r.get_ref(14)?.as_str_or_null()?.unwrap_or("none"));
            fact.unpriced = r.get::<_, Option<bool>>(15)?.unwrap_or(false);
            fact.duration_ms = start.zip(end).map(|(s, e)| e - s);
            fact.flagged = r.get::<_, Option<bool>>(17)?.unwrap_or(false);
            each(&fact);
        }
        Ok(())
    }

    /// Traces of a session, oldest first.
    pub fn traces_of(&self, session_key: &str) -> Result<Vec<TraceRow>> {
        self.traces_where("t.session_key = ?1", session_key)
    }

    /// A trace by id.
    pub fn trace(&self, trace_id: &str) -> Result<Option<TraceRow>> {
        Ok(self.traces_where("t.id = ?1", trace_id)?.into_iter().next())
    }

    fn traces_where(&self, cond: &str, value: &str) -> Result<Vec<TraceRow>> {
        let sql = format!(
            "SELECT t.id, t.root_span_id, t.session_key, t.is_prompt, t.name, t.start_ms, t.end_ms, t.input, t.output
             FROM traces t WHERE {cond} ORDER BY t.start_ms, t.id"
        );
        let mut stmt = self.conn().prepare(&sql)?;
        let rows = stmt.query_map([value], |r| {
            Ok(TraceRow {
                id: r.get(0)?,
                root_span_id: r.get(1)?,
                session_key: r.get(2)?,
                is_prompt: r.get(3)?,
                name: r.get(4)?,
                start_ms: r.get(5)?,
                end_ms: r.get(6)?,
                input: r.get(7)?,
                output: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Observations of a trace, by start time.
    pub fn observations_of(&self, trace_id: &str) -> Result<Vec<ObservationRow>> {
        let sql = format!(
            "SELECT o.id, o.parent_id, o.kind, o.name, o.start_ms, o.end_ms, o.level, o.status_message,
                    COALESCE(o.response_model, o.model), {TOKEN_COLUMNS}, o.cost_total, o.cost_source, o.unpriced,
                    o.input, o.output
             FROM observations o WHERE o.trace_id = ?1 ORDER BY o.start_ms, o.rowid"
        );
        let mut stmt = self.conn().prepare(&sql)?;
        let rows = stmt.query_map([trace_id], |r| {
            Ok(ObservationRow {
                id: r.get(0)?,
                parent_id: r.get(1)?,
                kind: Kind::parse(&r.get::<_, String>(2)?).unwrap_or(Kind::Event),
                name: r.get(3)?,
                start_ms: r.get(4)?,
                end_ms: r.get(5)?,
                level: Level::parse(
                    r.get::<_, Option<String>>(6)?
                        .as_deref()
                        .unwrap_or("DEFAULT"),
                ),
                status_message: r.get(7)?,
                model: r.get(8)?,
                usage: usage_at(r, 9)?,
                cost_pico: r.get(15)?,
                cost_source: r.get(16)?,
                unpriced: r.get::<_, Option<bool>>(17)?.unwrap_or(false),
                input: r.get(18)?,
                output: r.get(19)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Sessions whose id (or `agent:id` key) starts with `prefix`.
    pub fn find_sessions(&self, prefix: &str) -> Result<Vec<SessionRow>> {
        let all = self.sessions(&Filter::default())?;
        Ok(all
            .into_iter()
            .filter(|s| s.session_id.starts_with(prefix) || s.key.starts_with(prefix))
            .collect())
    }

    /// Traces whose id starts with `prefix`.
    pub fn find_traces(&self, prefix: &str) -> Result<Vec<TraceRow>> {
        let pattern = format!("{}%", prefix.replace(['%', '_'], ""));
        let mut stmt = self
            .conn()
            .prepare("SELECT id FROM traces WHERE id LIKE ?1 ORDER BY id LIMIT 20")?;
        let ids = stmt
            .query_map([pattern], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut out = Vec::new();
        for id in ids {
            out.extend(self.trace(&id)?);
        }
        Ok(out)
    }

    /// Row counts: (sessions, traces, observations, files).
    pub fn counts(&self) -> Result<(u64, u64, u64, u64)> {
        let count = |table: &str| -> Result<u64> {
            Ok(self
                .conn()
                .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| {
                    r.get::<_, i64>(0)
                })? as u64)
        };
        Ok((
            count("sessions")?,
            count("traces")?,
            count("observations")?,
            count("files")?,
        ))
    }

    /// Known gaps the sources flagged in session metadata (`known_gaps`, e.g. Gemini's unrecorded side calls),
    /// with the number of matching sessions.
    pub fn known_gaps(&self, filter: &Filter) -> Result<Vec<(String, u64)>> {
        let (cond, params) = filter.sql();
        let sql = format!(
            "SELECT g.value, COUNT(DISTINCT s.key)
             FROM sessions s LEFT JOIN files f ON f.id = s.file_id, json_each(s.metadata, '$.known_gaps') g
             WHERE json_valid(s.metadata) AND {cond} GROUP BY 1 ORDER BY 1"
        );
        let mut stmt = self.conn().prepare(&sql)?;
        let rows = stmt.query_map(params_from_iter(params.iter()), |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Models with generations that had tokens but no price: (provider, model, generations).
    pub fn unpriced_models(&self) -> Result<Vec<(Option<String>, String, u64)>> {
        let mut stmt = self.conn().prepare(
            "SELECT provider, COALESCE(response_model, model, 'unknown'), COUNT(*) FROM observations
             WHERE kind = 'generation' AND unpriced = 1 GROUP BY 1, 2 ORDER BY 3 DESC",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}

impl Store {
    /// Every session, trace and observation row as text, sorted: two stores with equal snapshots hold the
    /// same data (file bookkeeping excluded). Used to prove imports idempotent and resumable.
    pub fn snapshot(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for (table, columns) in [
            ("sessions", "key, agent, session_id, agent_version, cwd, start_ms, end_ms, parent_session, name, channel, user, metadata"),
            ("traces", "id, root_span_id, session_key, key, is_prompt, name, start_ms, end_ms, input, output"),
            (
                "observations",
                "id, trace_id, parent_id, session_key, kind, name, key, start_ms, end_ms, completion_start_ms, level,
                 status_message, model, response_model, provider, input_tokens, output_tokens, cache_read_tokens,
                 cache_write_5m_tokens, cache_write_1h_tokens, reasoning_tokens, agent_cost, cost_input, cost_output,
                 cost_cache_read, cost_cache_write, cost_total, cost_source, unpriced, input, output, metadata",
            ),
        ] {
            let n = columns.split(',').count();
            let sql = format!("SELECT {columns} FROM {table}");
            let mut stmt = self.conn().prepare(&sql)?;
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let mut line = format!("{table}:");
                for i in 0..n {
                    let v: rusqlite::types::Value = r.get(i)?;
                    line.push_str(&format!(" {v:?}"));
                }
                out.push(line);
            }
        }
        out.sort();
        Ok(out)
    }
}

impl Store {
    /// Counts `[REDACTED:<kind>]` markers in every stored text, by kind, and the caps' markers (`truncated`,
    /// `image`): what `doctor --privacy` shows.
    pub fn redaction_counts(&self) -> Result<std::collections::BTreeMap<String, u64>> {
        let mut counts = std::collections::BTreeMap::new();
        let mut stmt = self.conn().prepare(
            "SELECT input FROM observations UNION ALL SELECT output FROM observations
             UNION ALL SELECT status_message FROM observations UNION ALL SELECT metadata FROM observations
             UNION ALL SELECT input FROM traces UNION ALL SELECT output FROM traces
             UNION ALL SELECT metadata FROM sessions",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let Some(text) = r.get::<_, Option<String>>(0)? else {
                continue;
            };
            for (marker, kind) in crate::privacy::truncate::MARKERS {
                let n = text.matches(marker).count() as u64;
                if n > 0 {
                    *counts.entry(kind.to_string()).or_insert(0) += n;
                }
            }
            let mut rest = text.as_str();
            while let Some(i) = rest.find("[REDACTED:") {
                let after = &rest[i + 10..];
                match after.find(']') {
                    Some(end) if end <= 40 => {
                        *counts.entry(after[..end].to_string()).or_insert(0) += 1;
                        rest = &after[end..];
                    }
                    _ => rest = after,
                }
            }
        }
        Ok(counts)
    }
}
