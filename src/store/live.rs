//! Queries of the live views (`status`, `statusline`): the sessions written to lately, one session's totals and
//! turn state, and spend by period. Each reads a few index ranges (`observations_facts` by session,
//! `observations_spend` by time), never every generation: these commands run from status bars every few
//! seconds. (The redundant `kind IN (…)` terms repeat the partial index's condition, which SQLite needs to
//! see verbatim before it uses the index.)

use anyhow::Result;
use rusqlite::{params, OptionalExtension};

use super::read::{session_row, SessionRow, SESSION_COLUMNS};
use super::Store;
use crate::model::{Pico, Usage};

/// Model calls of a session (or of a time range): count, summed tokens and cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallSum {
    pub generations: u64,
    pub usage: Usage,
    /// pico-USD, the sum of the generations' stored costs (what `report` adds up).
    pub cost_pico: Pico,
}

/// What tells whether a session's last turn is still running ([`Store::turn_marks`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TurnMarks {
    /// Start of the session's last prompt, ms.
    pub last_prompt_ms: Option<i64>,
    /// The last model call: start (ms), the finish reason the agent wrote, and whether it failed.
    pub last_call: Option<(Option<i64>, Option<String>, bool)>,
    /// Model of the last model call (the provider's answer, else the requested one).
    pub model: Option<String>,
    /// Tool calls that started at or after the last model call started (results the model has not seen yet).
    pub tools_after_call: u64,
}

/// Spend of one session in the current day, week and month ([`Store::spend_since`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSpend {
    pub session_key: String,
    pub agent: String,
    pub channel: Option<String>,
    pub cwd: Option<String>,
    /// pico-USD since the start of each period: `[day, week, month]`.
    pub cost_pico: [Pico; 3],
}

impl SessionSpend {
    /// A session's whole cost (`cost_pico`) in every slot: what the per-session budget limits compare.
    pub fn whole_session(row: &SessionRow, cost_pico: Pico) -> SessionSpend {
        SessionSpend {
            session_key: row.key.clone(),
            agent: row.agent.clone(),
            channel: row.channel.clone(),
            cwd: row.cwd.clone(),
            cost_pico: [cost_pico; 3],
        }
    }

    /// The cost (pico-USD) of `rows` in each period slot (`[day, week, month]`).
    pub fn totals(rows: &[SessionSpend]) -> [Pico; 3] {
        let sum = |i: usize| rows.iter().map(|s| s.cost_pico[i]).sum();
        [sum(0), sum(1), sum(2)]
    }
}

impl Store {
    /// Sessions whose main file was written at or after `since_ms` (file mtime, ms since the epoch), most
    /// recently written first, each with that time.
    pub fn sessions_written_since(&self, since_ms: i64) -> Result<Vec<(SessionRow, i64)>> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS}, f.mtime_ns / 1000000 FROM files f JOIN sessions s ON s.file_id = f.id
             WHERE f.mtime_ns >= ?1 ORDER BY f.mtime_ns DESC, s.key"
        );
        let mut stmt = self.conn().prepare_cached(&sql)?;
        let rows = stmt.query_map([since_ms.saturating_mul(1_000_000)], |r| {
            Ok((session_row(r)?, r.get(13)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The session read from the file at `path` (its main file), with the file's mtime (ms).
    pub fn session_of_file(&self, path: &str) -> Result<Option<(SessionRow, i64)>> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS}, f.mtime_ns / 1000000 FROM files f JOIN sessions s ON s.file_id = f.id
             WHERE f.path = ?1 ORDER BY s.start_ms LIMIT 1"
        );
        Ok(self
            .conn()
            .query_row(&sql, [path], |r| Ok((session_row(r)?, r.get(13)?)))
            .optional()?)
    }

    /// The model calls of a session that started at or after `since_ms` (all of them with `None`).
    pub fn session_calls(&self, session_key: &str, since_ms: Option<i64>) -> Result<CallSum> {
        let mut stmt = self.conn().prepare_cached(concat!(
            "SELECT COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens), SUM(cache_write_5m_tokens),
                    SUM(cache_write_1h_tokens), SUM(reasoning_tokens), SUM(cost_total)
             FROM observations
             WHERE session_key = ?1 AND kind = 'generation' AND ",
            facts_kinds!(),
            " AND start_ms >= COALESCE(?2, -9223372036854775808)"
        ))?;
        Ok(stmt.query_row(params![session_key, since_ms], call_sum)?)
    }

    /// The model calls of an agent whose start lies in `[from_ms, to_ms)`.
    pub fn agent_calls_between(&self, agent: &str, from_ms: i64, to_ms: i64) -> Result<CallSum> {
        let (lo, hi) = key_range(agent);
        let mut stmt = self.conn().prepare_cached(
            "SELECT COUNT(*), SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens), SUM(cache_write_5m_tokens),
                    SUM(cache_write_1h_tokens), SUM(reasoning_tokens), SUM(cost_total)
             FROM observations INDEXED BY observations_spend
             WHERE kind = 'generation' AND start_ms >= ?1 AND start_ms < ?2 AND session_key >= ?3 AND session_key < ?4",
        )?;
        Ok(stmt.query_row(params![from_ms, to_ms, lo, hi], call_sum)?)
    }

    /// Start times (ms) of an agent's model calls up to `until_ms`, oldest first, back to the last gap of more
    /// than `gap_ms` between two calls (the calls before it are not read), or only back to `anchor` (a kept
    /// block start, [`Store::block_anchor`]) when it is not later than `until_ms`: what 5-hour blocks are
    /// placed by, since a gap that long starts the block chain over, and blocks placed from an anchor are the
    /// blocks placed from the gap before it. Empty when no call lies within `gap_ms` before `until_ms` (no
    /// block can be open then).
    pub fn agent_calls_since_gap(
        &self,
        agent: &str,
        until_ms: i64,
        gap_ms: i64,
        anchor: Option<i64>,
    ) -> Result<Vec<i64>> {
        let (lo, hi) = key_range(agent);
        // No call in the last `gap_ms`: no block is open. Asked first, over those `gap_ms` only: the scans
        // below filter the agent's calls out of everyone's, and for an agent without one they read back
        // through every other agent's calls to find that out (Codex on the 1 GB Claude benchmark: 19,453
        // rows, 9 % of a `status` call's instructions).
        let recent: Option<i64> = self
            .conn()
            .prepare_cached(
                "SELECT MAX(start_ms) FROM observations INDEXED BY observations_spend
                 WHERE kind = 'generation' AND start_ms > ?1 - ?2 AND start_ms <= ?1 AND session_key >= ?3
                   AND session_key < ?4",
            )?
            .query_row(params![until_ms, gap_ms, lo, hi], |r| r.get(0))?;
        if recent.is_none() {
            return Ok(Vec::new());
        }
        if let Some(first_ms) = anchor.filter(|a| *a <= until_ms) {
            let mut stmt = self.conn().prepare_cached(
                "SELECT start_ms FROM observations INDEXED BY observations_spend
                 WHERE kind = 'generation' AND start_ms >= ?1 AND start_ms <= ?2 AND session_key >= ?3
                   AND session_key < ?4
                 ORDER BY start_ms",
            )?;
            return Ok(stmt
                .query_map(params![first_ms, until_ms, lo, hi], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<i64>>>()?);
        }
        let mut stmt = self.conn().prepare_cached(
            "SELECT start_ms FROM observations INDEXED BY observations_spend
             WHERE kind = 'generation' AND start_ms <= ?1 AND session_key >= ?2 AND session_key < ?3
             ORDER BY start_ms DESC",
        )?;
        let mut rows = stmt.query(params![until_ms, lo, hi])?;
        let mut times: Vec<i64> = Vec::new();
        while let Some(r) = rows.next()? {
            let t: i64 = r.get(0)?;
            if times.last().is_some_and(|later| later - t > gap_ms) {
                break;
            }
            times.push(t);
        }
        times.reverse();
        Ok(times)
    }

    /// The first model call (ms) of a block of `agent` that a reader placed and kept
    /// ([`Store::keep_block_anchor`]); `None` when none was kept or a call that could move it arrived since
    /// (the triggers of migration 15 drop it then).
    pub fn block_anchor(&self, agent: &str) -> Result<Option<i64>> {
        Ok(self
            .conn()
            .prepare_cached("SELECT first_ms FROM block_anchors WHERE agent = ?1")?
            .query_row([agent], |r| r.get(0))
            .optional()?)
    }

    /// Keeps `first_ms`, the first call of `agent`'s newest block as placed from the calls stored now, as the
    /// point the next placement reads from. Nothing on a store opened read-only (a `status` call while
    /// `watch` holds the store reads back to the last gap or an older anchor instead).
    pub fn keep_block_anchor(&self, agent: &str, first_ms: i64) -> Result<()> {
        if self.conn().is_readonly(rusqlite::MAIN_DB)? {
            return Ok(());
        }
        self.conn()
            .prepare_cached(
                "INSERT INTO block_anchors (agent, first_ms) VALUES (?1, ?2)
                 ON CONFLICT (agent) DO UPDATE SET first_ms = excluded.first_ms",
            )?
            .execute(params![agent, first_ms])?;
        Ok(())
    }

    /// Number of prompts (user turns) of a session.
    pub fn prompt_count(&self, session_key: &str) -> Result<u64> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT COUNT(*) FROM traces WHERE session_key = ?1 AND is_prompt = 1",
        )?;
        Ok(stmt.query_row([session_key], |r| r.get::<_, i64>(0))? as u64)
    }

    /// The facts that tell whether a session's last turn is running (see [`TurnMarks`]).
    pub fn turn_marks(&self, session_key: &str) -> Result<TurnMarks> {
        let conn = self.conn();
        let last_prompt_ms = conn
            .prepare_cached(
                "SELECT MAX(start_ms) FROM traces WHERE session_key = ?1 AND is_prompt = 1",
            )?
            .query_row([session_key], |r| r.get(0))?;
        let last = conn
            .prepare_cached(concat!(
                "SELECT start_ms, finish_reason, level = 'ERROR', COALESCE(response_model, model) FROM observations
                 WHERE session_key = ?1 AND kind = 'generation' AND ",
                facts_kinds!(),
                " ORDER BY start_ms DESC, end_ms DESC LIMIT 1"
            ))?
            .query_row([session_key], |r| {
                Ok((
                    (r.get(0)?, r.get(1)?, r.get::<_, Option<bool>>(2)?.unwrap_or(false)),
                    r.get::<_, Option<String>>(3)?,
                ))
            })
            .optional()?;
        let (last_call, model) = match last {
            Some((call, model)) => (Some(call), model),
            None => (None, None),
        };
        let since = last_call.as_ref().and_then(|c| c.0).unwrap_or(i64::MIN);
        let tools_after_call =
            conn.prepare_cached(concat!(
                "SELECT COUNT(*) FROM observations
                 WHERE session_key = ?1 AND kind = 'tool' AND ",
                facts_kinds!(),
                " AND start_ms >= ?2"
            ))?
            .query_row(params![session_key, since], |r| r.get::<_, i64>(0))? as u64;
        Ok(TurnMarks {
            last_prompt_ms,
            last_call,
            model,
            tools_after_call,
        })
    }

    /// The cost (pico-USD) of every model call since each of `starts` (`[day, week, month]`) up to `end_ms`
    /// (exclusive): [`Store::spend_since`]'s totals without its per-session rows (one pass over the index
    /// range: 1 ms instead of 5 for a month of the 1 GB benchmark).
    pub fn spend_totals_since(&self, starts: [i64; 3], end_ms: i64) -> Result<[Pico; 3]> {
        let from = starts.iter().copied().min().unwrap_or(0);
        let mut stmt = self.conn().prepare_cached(
            "SELECT SUM(CASE WHEN start_ms >= ?1 THEN cost_total ELSE 0 END),
                    SUM(CASE WHEN start_ms >= ?2 THEN cost_total ELSE 0 END),
                    SUM(CASE WHEN start_ms >= ?3 THEN cost_total ELSE 0 END)
             FROM observations INDEXED BY observations_spend
             WHERE kind = 'generation' AND start_ms >= ?4 AND start_ms < ?5",
        )?;
        Ok(stmt.query_row(
            params![starts[0], starts[1], starts[2], from, end_ms],
            |r| {
                let n = |i| r.get::<_, Option<i64>>(i).map(|v| v.unwrap_or(0));
                Ok([n(0)?, n(1)?, n(2)?])
            },
        )?)
    }

    /// Every session with model calls since `starts[2]` (ms; the earliest of the three period starts), with
    /// its cost since each of `starts` (`[day, week, month]`) up to `end_ms` (exclusive).
    pub fn spend_since(&self, starts: [i64; 3], end_ms: i64) -> Result<Vec<SessionSpend>> {
        let from = starts.iter().copied().min().unwrap_or(0);
        // Summed per session inside the index first, then joined: one session lookup per session rather
        // than per call (7 ms -> 2 ms for a month of the 1 GB benchmark).
        let mut stmt = self.conn().prepare_cached(
            "SELECT s.key, s.agent, s.channel, s.cwd, g.day, g.week, g.month
             FROM (SELECT session_key,
                          SUM(CASE WHEN start_ms >= ?1 THEN cost_total ELSE 0 END) AS day,
                          SUM(CASE WHEN start_ms >= ?2 THEN cost_total ELSE 0 END) AS week,
                          SUM(CASE WHEN start_ms >= ?3 THEN cost_total ELSE 0 END) AS month
                   FROM observations INDEXED BY observations_spend
                   WHERE kind = 'generation' AND start_ms >= ?4 AND start_ms < ?5
                   GROUP BY session_key) g
             JOIN sessions s ON s.key = g.session_key",
        )?;
        let rows = stmt.query_map(
            params![starts[0], starts[1], starts[2], from, end_ms],
            |r| {
                Ok(SessionSpend {
                    session_key: r.get(0)?,
                    agent: r.get(1)?,
                    channel: r.get(2)?,
                    cwd: r.get(3)?,
                    cost_pico: [
                        r.get::<_, Option<i64>>(4)?.unwrap_or(0),
                        r.get::<_, Option<i64>>(5)?.unwrap_or(0),
                        r.get::<_, Option<i64>>(6)?.unwrap_or(0),
                    ],
                })
            },
        )?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}

/// Session keys of `agent` are `agent:…`: the half-open key range `["agent:", "agent;")` (`;` follows `:`).
fn key_range(agent: &str) -> (String, String) {
    (format!("{agent}:"), format!("{agent};"))
}

fn call_sum(r: &rusqlite::Row<'_>) -> rusqlite::Result<CallSum> {
    let n = |i: usize| -> rusqlite::Result<u64> {
        Ok(r.get::<_, Option<i64>>(i)?.unwrap_or(0).max(0) as u64)
    };
    Ok(CallSum {
        generations: n(0)?,
        usage: Usage {
            input: n(1)?,
            output: n(2)?,
            cache_read: n(3)?,
            cache_write_5m: n(4)?,
            cache_write_1h: n(5)?,
            reasoning: n(6)?,
        },
        cost_pico: r.get::<_, Option<i64>>(7)?.unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    /// Writes a model call of `session` starting at `ms`.
    fn insert_call(store: &Store, id: &str, session: &str, ms: i64) {
        store
            .conn()
            .execute(
                "INSERT INTO observations (id, session_key, kind, name, key, start_ms)
                 VALUES (?1, ?2, 'generation', 'g', ?1, ?3)",
                params![id, session, ms],
            )
            .unwrap();
    }

    fn store_with_calls(calls: &[(&str, i64)]) -> Store {
        let store = Store::open_in_memory().unwrap();
        for (i, (session, ms)) in calls.iter().enumerate() {
            insert_call(&store, &format!("{i:016x}"), session, *ms);
        }
        store
    }

    #[test]
    fn calls_since_gap_stop_at_the_last_long_gap_and_at_an_idle_now() {
        let t0 = 1_800_000_000_000;
        let store = store_with_calls(&[
            ("claude:a", t0),
            ("claude:a", t0 + 6 * HOUR), // a gap of more than 5 h: the chain starts over here
            ("codex:b", t0 + 7 * HOUR),  // another agent: not counted
            ("claude:c", t0 + 8 * HOUR),
            ("claude:c", t0 + 12 * HOUR),
        ]);
        let gap = 5 * HOUR;
        assert_eq!(
            store
                .agent_calls_since_gap("claude", t0 + 13 * HOUR, gap, None)
                .unwrap(),
            vec![t0 + 6 * HOUR, t0 + 8 * HOUR, t0 + 12 * HOUR]
        );
        // Calls after `until_ms` are not read.
        assert_eq!(
            store
                .agent_calls_since_gap("claude", t0 + 7 * HOUR, gap, None)
                .unwrap(),
            vec![t0 + 6 * HOUR]
        );
        // Nothing in the last 5 h: no chain is open (and nothing before is read).
        assert!(store
            .agent_calls_since_gap("claude", t0 + 17 * HOUR, gap, None)
            .unwrap()
            .is_empty());
        assert_eq!(
            store
                .agent_calls_since_gap("claude", t0 + 17 * HOUR - 1, gap, None)
                .unwrap()
                .len(),
            3
        );
    }

    #[test]
    fn a_block_anchor_goes_when_a_call_at_or_before_it_changes() {
        let t0 = 1_800_000_000_000;
        let store = store_with_calls(&[
            ("claude:a", t0),
            ("claude:a", t0 + HOUR),
            ("claude:a", t0 + 2 * HOUR),
        ]);
        let anchor = || store.block_anchor("claude").unwrap();
        let keep = || store.keep_block_anchor("claude", t0 + HOUR).unwrap();
        let run = |sql: &str| store.conn().execute(sql, []).unwrap();
        let insert = |id: &str, session: &str, ms: i64| insert_call(&store, id, session, ms);
        keep();
        assert_eq!(anchor(), Some(t0 + HOUR));
        // Later calls, other agents' calls, tool calls and other columns leave it.
        insert("later", "claude:b", t0 + 3 * HOUR);
        insert("other", "codex:b", t0 - HOUR);
        run(&format!(
            "INSERT INTO observations (id, session_key, kind, name, key, start_ms)
             VALUES ('tool', 'claude:a', 'tool', 't', 'tool', {t0})"
        ));
        run("UPDATE observations SET name = 'renamed' WHERE id = '0000000000000000'");
        run("UPDATE observations SET start_ms = start_ms + 1 WHERE id = 'later'");
        run("DELETE FROM observations WHERE id = 'later'");
        assert_eq!(anchor(), Some(t0 + HOUR));
        // An earlier call of the agent arrives.
        insert("backfill", "claude:c", t0 + HOUR - 1);
        assert_eq!(anchor(), None);
        // A call at or before it goes.
        keep();
        run("DELETE FROM observations WHERE id = '0000000000000000'");
        assert_eq!(anchor(), None);
        // A call before it moves past it.
        keep();
        run(&format!(
            "UPDATE observations SET start_ms = {} WHERE id = 'backfill'",
            t0 + 5 * HOUR
        ));
        assert_eq!(anchor(), None);
        // A later call moves before it.
        keep();
        run(&format!(
            "UPDATE observations SET start_ms = {} WHERE id = 'backfill'",
            t0 + HOUR - 5
        ));
        assert_eq!(anchor(), None);
        // A tool call becomes a model call before it.
        keep();
        run("UPDATE observations SET kind = 'generation' WHERE id = 'tool'");
        assert_eq!(anchor(), None);
    }

    #[test]
    fn spend_totals_equal_the_sums_of_the_session_rows() {
        let day = 1_800_000_000_000 / (24 * HOUR) * (24 * HOUR);
        let store = Store::open_in_memory().unwrap();
        // (session, start, pico-USD): last month, this month, this week, today, tomorrow (not counted).
        let calls = [
            ("claude:a", day - 40 * 24 * HOUR, 1_000),
            ("claude:a", day - 20 * 24 * HOUR, 20_000),
            ("codex:b", day - 3 * 24 * HOUR, 300_000),
            ("claude:a", day + HOUR, 4_000_000),
            ("codex:b", day + 2 * HOUR, 50_000_000),
            ("claude:c", day + 25 * HOUR, 600_000_000),
        ];
        for (i, (session, ms, cost)) in calls.iter().enumerate() {
            store
                .conn()
                .execute(
                    "INSERT INTO observations (id, session_key, kind, name, key, start_ms, cost_total)
                     VALUES (?1, ?2, 'generation', 'g', ?1, ?3, ?4)",
                    params![format!("{i:016x}"), session, ms, cost],
                )
                .unwrap();
            store
                .conn()
                .execute(
                    "INSERT OR IGNORE INTO sessions (key, agent, session_id) VALUES (?1, 'x', ?1)",
                    [session],
                )
                .unwrap();
        }
        let starts = [day, day - 5 * 24 * HOUR, day - 25 * 24 * HOUR];
        let end = day + 24 * HOUR;
        let want = [54_000_000, 54_300_000, 54_320_000];
        assert_eq!(store.spend_totals_since(starts, end).unwrap(), want);
        assert_eq!(
            SessionSpend::totals(&store.spend_since(starts, end).unwrap()),
            want
        );
        assert_eq!(
            store
                .spend_totals_since(starts, day - 30 * 24 * HOUR)
                .unwrap(),
            [0, 0, 0]
        );
    }
}
