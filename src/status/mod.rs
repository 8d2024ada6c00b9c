//! Live state for people at the keyboard: the sessions running now, what they cost so far, the current
//! 5-hour block, spend against budgets (`tokentrace status`, `tokentrace statusline`).
//!
//! Everything comes from the store through a few index ranges ([`crate::store::live`]), so a snapshot takes
//! milliseconds whatever the size of the history: status bars run these commands every few seconds.
//!
//! `status --json` prints a [`Snapshot`]:
//! `{"now","status":"ok|near|over","spend":{"today_usd","week_usd","month_usd"},"sessions":[{"agent",
//! "session_id","project","cwd","channel","model","state":"working|idle|ended","prompts","generations",
//! "tokens":{"input","cache_read","cache_write","output","reasoning"},"cost_usd","burn_rate_usd_per_hour",
//! "last_write","file","anomalies":[{"kind","value","limit","message"}]}],"blocks":[{"agent","start","end","remaining_minutes","generations","tokens",
//! "total_tokens","cost_usd","burn":{"tokens_per_minute","cost_per_hour_usd"},"projected":{"total_tokens",
//! "cost_usd","remaining_minutes"}}],"budgets":[{"scope","period","session"?,"limit_usd","spent_usd","share","level"}]}`.

pub mod anomaly;
pub mod budget;
pub mod render;
pub mod state;

use anyhow::Result;
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::model::time::format_utc_s as iso;
use crate::model::{pico_to_usd, Pico, Usage};
use crate::report::aggregate::Tokens;
use crate::report::blocks::{self, Block, Burn, Projection, BLOCK_MS};
use crate::store::live::{CallSum, SessionSpend};
use crate::store::Store;
use budget::{BudgetCheck, BudgetLevel, Budgets};
use state::TurnState;

/// Agents whose subscription plans meter usage in 5-hour blocks (Claude Pro/Max, ChatGPT plans for Codex).
pub const BLOCK_AGENTS: &[&str] = &["claude", "codex"];

/// What a snapshot covers.
#[derive(Debug, Clone)]
pub struct Options {
    /// The time of the snapshot, ms since the epoch.
    pub now_ms: i64,
    /// Days, weeks and months are calendar periods in this zone.
    pub tz: TimeZone,
    /// Sessions written to within this many ms are listed.
    pub active_ms: i64,
    /// A session quiet for longer than this (ms) is `ended`.
    pub ended_after_ms: i64,
    /// The burn rate is the cost of the calls in this last stretch (ms), per hour.
    pub burn_window_ms: i64,
    pub budgets: Budgets,
}

/// Default of `status --ended-after` (and `statusline`'s `{state}`): a session quiet for 15 minutes is ended.
pub const ENDED_AFTER_MIN: i64 = 15;

/// Default of [`Options::burn_window_ms`]: 10 minutes.
pub const BURN_WINDOW_MS: i64 = 10 * 60_000;

/// The live state, as `status --json` prints it (shape in the module docs).
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// RFC 3339, UTC.
    pub now: String,
    /// The worst budget level (`ok` when no budget is set).
    pub status: BudgetLevel,
    pub spend: Spend,
    pub sessions: Vec<SessionStatus>,
    /// The running 5-hour block of each agent that has one.
    pub blocks: Vec<BlockStatus>,
    pub budgets: Vec<BudgetCheck>,
}

/// Spend of the current calendar periods, USD (every agent).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Spend {
    pub today_usd: f64,
    pub week_usd: f64,
    pub month_usd: f64,
}

/// One session written to lately.
#[derive(Debug, Clone, Serialize)]
pub struct SessionStatus {
    pub agent: String,
    pub session_id: String,
    /// The last component of the working directory.
    pub project: Option<String>,
    pub cwd: Option<String>,
    pub channel: Option<String>,
    /// Model of the last call.
    pub model: Option<String>,
    pub state: TurnState,
    pub prompts: u64,
    pub generations: u64,
    pub tokens: Tokens,
    pub cost_usd: f64,
    /// Cost of the calls of the last [`Options::burn_window_ms`], per hour (USD/h).
    pub burn_rate_usd_per_hour: f64,
    /// When the session's file was last written (RFC 3339, UTC).
    pub last_write: String,
    pub file: Option<String>,
    /// Runaway and budget anomalies found in the session (`kind`, `value`, `limit`, `message`).
    pub anomalies: Vec<AnomalyStatus>,
    /// Internal: the session and its whole cost, as the per-session budgets compare it.
    #[serde(skip)]
    pub spend: SessionSpend,
}

/// An anomaly as `status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AnomalyStatus {
    pub kind: String,
    pub value: f64,
    pub limit: f64,
    pub message: String,
}

/// The running 5-hour block of an agent, with ccusage's burn rate and projection.
#[derive(Debug, Clone, Serialize)]
pub struct BlockStatus {
    pub agent: String,
    pub start: String,
    pub end: String,
    pub remaining_minutes: i64,
    pub generations: u64,
    pub tokens: Tokens,
    /// input + output + cache read + cache write (what plan limits count).
    pub total_tokens: u64,
    pub cost_usd: f64,
    pub burn: Burn,
    pub projected: Projection,
}

/// Reports' token shape of a usage sum.
pub fn tokens_of(u: &Usage) -> Tokens {
    Tokens {
        input: u.input,
        cache_read: u.cache_read,
        cache_write: u.cache_write(),
        output: u.output,
        reasoning: u.reasoning,
    }
}

/// Builds the snapshot from the store.
pub fn snapshot(store: &Store, opts: &Options) -> Result<Snapshot> {
    let now = opts.now_ms;
    let mut sessions = Vec::new();
    for (row, written_ms) in store.sessions_written_since(now - opts.active_ms)? {
        sessions.push(session_status(store, opts, row, written_ms)?);
    }
    let starts = period_starts(now, &opts.tz);
    let end = starts.next_day;
    let (totals, spend_rows) = period_spend(
        store,
        &opts.budgets,
        [starts.day, starts.week, starts.month],
        end,
    )?;
    let [today_usd, week_usd, month_usd] = totals.map(pico_to_usd);
    let spend = Spend {
        today_usd,
        week_usd,
        month_usd,
    };
    let mut blocks_now = Vec::new();
    for agent in BLOCK_AGENTS {
        if let Some(b) = current_block(store, agent, now)? {
            blocks_now.push(b);
        }
    }
    let per_session: Vec<SessionSpend> = sessions.iter().map(|s| s.spend.clone()).collect();
    let checks = opts.budgets.evaluate(&spend_rows, &per_session);
    Ok(Snapshot {
        now: iso(now),
        status: budget::worst(&checks),
        spend,
        sessions,
        blocks: blocks_now,
        budgets: checks,
    })
}

fn session_status(
    store: &Store,
    opts: &Options,
    row: crate::store::read::SessionRow,
    written_ms: i64,
) -> Result<SessionStatus> {
    let all = store.session_calls(&row.key, None)?;
    let recent = store.session_calls(&row.key, Some(opts.now_ms - opts.burn_window_ms))?;
    let marks = store.turn_marks(&row.key)?;
    let state = state::turn_state(
        &row.agent,
        &marks,
        written_ms,
        opts.now_ms,
        opts.ended_after_ms,
    );
    let hours = opts.burn_window_ms as f64 / 3_600_000.0;
    Ok(SessionStatus {
        project: row
            .cwd
            .as_deref()
            .and_then(|c| std::path::Path::new(c).file_name())
            .map(|n| n.to_string_lossy().into_owned()),
        prompts: store.prompt_count(&row.key)?,
        generations: all.generations,
        tokens: tokens_of(&all.usage),
        cost_usd: pico_to_usd(all.cost_pico),
        spend: SessionSpend::whole_session(&row, all.cost_pico),
        burn_rate_usd_per_hour: pico_to_usd(recent.cost_pico) / hours,
        last_write: iso(written_ms),
        model: marks.model,
        state,
        agent: row.agent,
        session_id: row.session_id,
        cwd: row.cwd,
        channel: row.channel,
        file: row.file,
        anomalies: store
            .anomalies_of_session(&row.key)?
            .into_iter()
            .map(|a| AnomalyStatus {
                kind: a.kind,
                value: a.value,
                limit: a.limit,
                message: a.message,
            })
            .collect(),
    })
}

/// The spend since each of `periods` (`[day, week, month]` starts, ms) up to `end_ms` (exclusive): the totals
/// (pico-USD), and each session's spend only when a period limit of `budgets` needs it by scope (else none).
/// The totals are one pass over `observations_spend`; the per-session read groups the calls by session and
/// joins each session (a month of the 1 GB benchmark: 1 ms instead of 5).
pub fn period_spend(
    store: &Store,
    budgets: &Budgets,
    periods: [i64; 3],
    end_ms: i64,
) -> Result<([Pico; 3], Vec<SessionSpend>)> {
    if budgets.has_period_limits() {
        let rows = store.spend_since(periods, end_ms)?;
        Ok((SessionSpend::totals(&rows), rows))
    } else {
        Ok((store.spend_totals_since(periods, end_ms)?, Vec::new()))
    }
}

/// The block of `agent` running at `now_ms`, if any (see [`placed_blocks`] for what it reads).
pub fn current_block(store: &Store, agent: &str, now_ms: i64) -> Result<Option<BlockStatus>> {
    let Some(block) = placed_blocks(store, agent, now_ms)?
        .pop()
        .filter(|b| b.is_active(now_ms))
    else {
        return Ok(None);
    };
    let calls = store.agent_calls_between(agent, block.start_ms, block.end_ms)?;
    Ok(Some(block_status(agent, &block, &calls, now_ms)))
}

/// The newest blocks of `agent` up to `now_ms`, oldest first: placed from the calls since the kept anchor (the
/// first call of the newest block an earlier call placed, [`Store::block_anchor`]), else since the last gap of
/// more than 5 h (where the block chain starts over). The newest block's first call is kept as the anchor when
/// the store can be written, so the whole history is read once at most, when the agent never paused that
/// long (the 1 GB benchmark's month: 19,573 calls, a fifth of a `status` call's instructions).
pub fn placed_blocks(store: &Store, agent: &str, now_ms: i64) -> Result<Vec<Block>> {
    let anchor = store.block_anchor(agent)?;
    let times = store.agent_calls_since_gap(agent, now_ms, BLOCK_MS, anchor)?;
    let placed = blocks::place(&times);
    if let Some(newest) = placed.last().filter(|b| Some(b.first_ms) != anchor) {
        // A cache: a store busy with another writer keeps the old anchor, the answer is the same.
        if let Err(e) = store.keep_block_anchor(agent, newest.first_ms) {
            tracing::debug!("block anchor of {agent} not kept: {e:#}");
        }
    }
    Ok(placed)
}

/// Brings the block anchors of every agent with 5-hour blocks up to `now_ms` (after an import that wrote: a
/// `watch` keeps them current for the `status` and `statusline` calls that read its store without writing).
pub fn keep_block_anchors(store: &Store, now_ms: i64) -> Result<()> {
    for agent in BLOCK_AGENTS {
        placed_blocks(store, agent, now_ms)?;
    }
    Ok(())
}

/// A block with ccusage's burn rate (over first to last call) and projection to the block's end.
pub fn block_status(agent: &str, block: &Block, calls: &CallSum, now_ms: i64) -> BlockStatus {
    let total = tokens_of(&calls.usage).total();
    let burn = block.burn(total, calls.cost_pico);
    let projected = block.projection(&burn, total, calls.cost_pico, now_ms);
    BlockStatus {
        agent: agent.to_string(),
        start: iso(block.start_ms),
        end: iso(block.end_ms),
        remaining_minutes: projected.remaining_minutes,
        generations: calls.generations,
        tokens: tokens_of(&calls.usage),
        total_tokens: total,
        cost_usd: pico_to_usd(calls.cost_pico),
        burn,
        projected,
    }
}

/// Starts (ms) of the current day, ISO week and month in `tz`, and of the next day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeriodStarts {
    pub day: i64,
    pub week: i64,
    pub month: i64,
    pub next_day: i64,
}

/// The calendar periods holding `now_ms` in `tz`.
pub fn period_starts(now_ms: i64, tz: &TimeZone) -> PeriodStarts {
    let at = |d: jiff::civil::Date| -> i64 {
        d.to_zoned(tz.clone())
            .map(|z| z.timestamp().as_millisecond())
            .unwrap_or(now_ms)
    };
    let Ok(ts) = jiff::Timestamp::from_millisecond(now_ms) else {
        return PeriodStarts {
            day: now_ms,
            week: now_ms,
            month: now_ms,
            next_day: now_ms,
        };
    };
    let today = tz.to_datetime(ts).date();
    let monday = today
        .checked_sub(jiff::Span::new().days(i64::from(today.weekday().to_monday_zero_offset())))
        .unwrap_or(today);
    PeriodStarts {
        day: at(today),
        week: at(monday),
        month: at(today.first_of_month()),
        next_day: today.tomorrow().map(at).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_follow_the_calendar_of_the_zone() {
        // 2026-12-02T04:30:00Z is a Wednesday; in New York it is still Tuesday 1 December, 23:30.
        let now = 1_796_185_800_000;
        let utc = period_starts(now, &TimeZone::UTC);
        assert_eq!(iso(utc.day), "2026-12-02T00:00:00Z");
        assert_eq!(iso(utc.week), "2026-11-30T00:00:00Z");
        assert_eq!(iso(utc.month), "2026-12-01T00:00:00Z");
        assert_eq!(iso(utc.next_day), "2026-12-03T00:00:00Z");
        let ny = period_starts(now, &TimeZone::get("America/New_York").unwrap());
        assert_eq!(iso(ny.day), "2026-12-01T05:00:00Z");
        assert_eq!(iso(ny.month), "2026-12-01T05:00:00Z");
    }

    #[test]
    fn block_burn_rate_and_projection_follow_ccusage() {
        let h = 3_600_000;
        let block = Block {
            start_ms: 0,
            end_ms: 5 * h,
            first_ms: 0,
            last_ms: h,
        };
        let calls = CallSum {
            generations: 3,
            usage: Usage {
                input: 600,
                output: 5_400,
                ..Usage::default()
            },
            cost_pico: 2_000_000_000_000, // $2
        };
        let b = block_status("claude", &block, &calls, 2 * h);
        assert_eq!(b.total_tokens, 6_000);
        assert_eq!(b.burn.tokens_per_minute, 100.0);
        assert_eq!(b.burn.cost_per_hour_usd, 2.0);
        assert_eq!(b.remaining_minutes, 180);
        assert_eq!(b.projected.total_tokens, 6_000 + 18_000);
        assert!((b.projected.cost_usd - 8.0).abs() < 1e-9);
    }

    /// Blocks placed from a kept anchor are the blocks placed from the whole history, whatever arrives
    /// between two calls: newer calls, another agent's, a backfill of older ones, calls removed (a file read
    /// again).
    #[test]
    fn a_kept_block_anchor_places_the_blocks_of_the_whole_history() {
        const MIN: i64 = 60_000;
        let kept = Store::open_in_memory().unwrap();
        let fresh = Store::open_in_memory().unwrap();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut random = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n) as i64
        };
        let insert = |id: usize, session: &str, ms: i64| {
            for store in [&kept, &fresh] {
                store
                    .conn()
                    .execute(
                        "INSERT INTO observations (id, session_key, kind, name, key, start_ms)
                         VALUES (?1, ?2, 'generation', 'g', ?1, ?3)",
                        rusqlite::params![format!("{id:016x}"), session, ms],
                    )
                    .unwrap();
            }
        };
        let block_json = |store: &Store, now: i64| {
            serde_json::to_value(current_block(store, "claude", now).unwrap()).unwrap()
        };
        let mut t = 1_800_000_000_000;
        let (mut anchored, mut open) = (0, 0);
        for id in 0..600 {
            // Mostly minutes apart, sometimes hours, now and then a pause longer than a block.
            t += match random(100) {
                0..=84 => 1 + random(30),
                85..=96 => 60 + random(240),
                _ => 300 + random(180),
            } * MIN;
            match random(20) {
                0 => insert(id, "codex:x", t - random(600) * MIN),
                1 => {
                    // A backfill: older than the block now open.
                    insert(id, "claude:old", t - (5 + random(20)) * 60 * MIN);
                }
                2 => {
                    // A file read again: some of its calls go.
                    let cut = t - random(12 * 60) * MIN;
                    for store in [&kept, &fresh] {
                        store
                            .conn()
                            .execute(
                                "DELETE FROM observations WHERE session_key = 'claude:a' AND start_ms > ?1",
                                [cut],
                            )
                            .unwrap();
                    }
                }
                3 | 4 => {
                    let Some(first_ms) = kept.block_anchor("claude").unwrap() else {
                        continue;
                    };
                    // One of the calls before the kept anchor goes or moves past it, or the newest call
                    // moves back. (A change at or after the anchor's own call cannot move it.)
                    let before = format!(
                        "(SELECT id FROM observations WHERE session_key = 'claude:a' AND start_ms < {first_ms}
                          ORDER BY start_ms DESC, id LIMIT 1 OFFSET {})",
                        random(20)
                    );
                    let sql = match random(3) {
                        0 => format!("DELETE FROM observations WHERE id = {before}"),
                        1 => format!(
                            "UPDATE observations SET start_ms = {} WHERE id = {before}",
                            first_ms + 1
                        ),
                        _ => format!(
                            "UPDATE observations SET start_ms = start_ms - {} WHERE id =
                             (SELECT id FROM observations ORDER BY start_ms DESC, id LIMIT 1)",
                            (60 + random(420)) * MIN
                        ),
                    };
                    for store in [&kept, &fresh] {
                        store.conn().execute(&sql, []).unwrap();
                    }
                }
                _ => insert(id, "claude:a", t),
            }
            anchored += usize::from(kept.block_anchor("claude").unwrap().is_some());
            let now = t + random(6 * 60) * MIN;
            fresh
                .conn()
                .execute("DELETE FROM block_anchors", [])
                .unwrap();
            let want = block_json(&fresh, now);
            assert_eq!(block_json(&kept, now), want, "call {id}, now {now}");
            open += usize::from(!want.is_null());
        }
        // The anchor was there for most calls, and open blocks were compared, not only empty answers.
        assert!(anchored > 300, "{anchored}");
        assert!(open > 200, "{open}");
    }
}
