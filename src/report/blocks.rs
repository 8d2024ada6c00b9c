//! Five-hour billing blocks (`report blocks`): the windows in which Claude's Pro/Max plans (and ChatGPT's, for
//! Codex) meter usage.
//!
//! The definition is ccusage's (`identifySessionBlocks`, ccusage 20.0.24), so that both tools show the same
//! blocks: model calls of one agent in time order; a block starts at the first call's time rounded down to the
//! hour and lasts 5 hours; a call more than 5 hours after its block's start, or more than 5 hours after the
//! previous call, starts a new block. Blocks are per agent: each plan has its own window.

use std::collections::HashMap;

use serde::Serialize;

use crate::model::{pico_to_usd, Pico};

/// Length of a block, ms.
pub const BLOCK_MS: i64 = 5 * 3_600_000;

/// One block of one agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// The first call's time, rounded down to the hour (ms since the epoch).
    pub start_ms: i64,
    /// `start_ms` + 5 h.
    pub end_ms: i64,
    /// The first call in the block.
    pub first_ms: i64,
    /// The last call in the block.
    pub last_ms: i64,
}

impl Block {
    /// Running at `now_ms`, as ccusage's `isActive` has it: before the block's end and less than 5 h after its
    /// last call (and, for a clock set back, not before its first call).
    pub fn is_active(&self, now_ms: i64) -> bool {
        self.first_ms <= now_ms && now_ms < self.end_ms && now_ms - self.last_ms < BLOCK_MS
    }
}

/// Usage per unit of time over a block's calls so far, from its first to its last call (ccusage's
/// `calculateBurnRate`; zero while the block has a single call).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Burn {
    pub tokens_per_minute: f64,
    pub cost_per_hour_usd: f64,
}

/// What a block will have used at its end if the burn rate holds (ccusage's `projectBlockUsage`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Projection {
    /// input + output + cache read + cache write tokens.
    pub total_tokens: u64,
    pub cost_usd: f64,
    /// Minutes from now to the block's end.
    pub remaining_minutes: i64,
}

impl Block {
    /// The burn rate of a block that has used `total_tokens` and `cost_pico` so far.
    pub fn burn(&self, total_tokens: u64, cost_pico: Pico) -> Burn {
        let minutes = (self.last_ms - self.first_ms) as f64 / 60_000.0;
        if minutes <= 0.0 {
            return Burn::default();
        }
        Burn {
            tokens_per_minute: total_tokens as f64 / minutes,
            cost_per_hour_usd: pico_to_usd(cost_pico) / minutes * 60.0,
        }
    }

    /// The usage at the block's end if `burn` holds for the whole minutes left from `now_ms` (rounded, as
    /// ccusage projects; checked against its `blocks --active --json` in tests/blocks.rs).
    pub fn projection(
        &self,
        burn: &Burn,
        total_tokens: u64,
        cost_pico: Pico,
        now_ms: i64,
    ) -> Projection {
        let remaining = ((self.end_ms - now_ms).max(0) as f64 / 60_000.0).round();
        Projection {
            total_tokens: total_tokens + (burn.tokens_per_minute * remaining).round() as u64,
            cost_usd: pico_to_usd(cost_pico) + burn.cost_per_hour_usd / 60.0 * remaining,
            remaining_minutes: remaining as i64,
        }
    }
}

/// A block as `report blocks` details it (`"block"` of a row in `--json`): its bounds and calls, and for a running
/// block the burn rate and projection; with a token limit, how the block compares with it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BlockDetail {
    pub start: String,
    pub end: String,
    pub first_call: String,
    pub last_call: String,
    pub active: bool,
    /// input + output + cache read + cache write.
    pub total_tokens: u64,
    pub burn: Option<Burn>,
    pub projection: Option<Projection>,
    pub token_limit: Option<LimitCheck>,
}

/// A block's tokens against `--token-limit`: shares of the limit used and projected (a running block's
/// projection, else what it used), and [`limit_status`] of the projected tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LimitCheck {
    pub limit: u64,
    pub used_share: f64,
    pub projected_share: f64,
    pub status: &'static str,
}

impl Block {
    /// The detail of this block, which used `total_tokens` and `cost_pico`, at `now_ms`.
    pub fn detail(
        &self,
        total_tokens: u64,
        cost_pico: Pico,
        now_ms: i64,
        limit: Option<u64>,
    ) -> BlockDetail {
        use crate::model::time::format_utc_s;
        let active = self.is_active(now_ms);
        let burn = active.then(|| self.burn(total_tokens, cost_pico));
        let projection = burn.map(|b| self.projection(&b, total_tokens, cost_pico, now_ms));
        let projected = projection.map_or(total_tokens, |p| p.total_tokens);
        BlockDetail {
            start: format_utc_s(self.start_ms),
            end: format_utc_s(self.end_ms),
            first_call: format_utc_s(self.first_ms),
            last_call: format_utc_s(self.last_ms),
            active,
            total_tokens,
            burn,
            projection,
            token_limit: limit.map(|l| LimitCheck {
                limit: l,
                used_share: total_tokens as f64 / l.max(1) as f64,
                projected_share: projected as f64 / l.max(1) as f64,
                status: limit_status(projected, l),
            }),
        }
    }
}

/// A token limit for `report blocks --token-limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenLimit {
    Tokens(u64),
    /// The most tokens any finished block used.
    Max,
}

impl std::str::FromStr for TokenLimit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("max") {
            return Ok(TokenLimit::Max);
        }
        s.replace(['_', ','], "")
            .parse()
            .map(TokenLimit::Tokens)
            .map_err(|_| format!("'{s}' is not a token count or `max`"))
    }
}

/// How a block's projected tokens compare with a limit: `ok`, `warning` (past 80 %), `exceeds` (ccusage's
/// thresholds).
pub fn limit_status(projected_tokens: u64, limit: u64) -> &'static str {
    let share = projected_tokens as f64 / limit.max(1) as f64;
    if share > 1.0 {
        "exceeds"
    } else if share > 0.8 {
        "warning"
    } else {
        "ok"
    }
}

/// Places the blocks of one agent's call times (sorted).
pub fn place(times: &[i64]) -> Vec<Block> {
    let mut blocks: Vec<Block> = Vec::new();
    for &t in times {
        match blocks.last_mut() {
            Some(b) if t - b.start_ms <= BLOCK_MS && t - b.last_ms <= BLOCK_MS => b.last_ms = t,
            _ => {
                let start = t.div_euclid(3_600_000) * 3_600_000;
                blocks.push(Block {
                    start_ms: start,
                    end_ms: start + BLOCK_MS,
                    first_ms: t,
                    last_ms: t,
                });
            }
        }
    }
    blocks
}

/// The blocks of every agent, to key facts by.
#[derive(Debug, Clone, Default)]
pub struct BlockIndex {
    by_agent: HashMap<String, Vec<Block>>,
}

impl BlockIndex {
    /// Builds the blocks from `(agent, call time)` pairs (any order).
    pub fn build(calls: impl IntoIterator<Item = (String, i64)>) -> BlockIndex {
        let mut times: HashMap<String, Vec<i64>> = HashMap::new();
        for (agent, ts) in calls {
            times.entry(agent).or_default().push(ts);
        }
        let mut by_agent = HashMap::new();
        for (agent, mut ts) in times {
            ts.sort_unstable();
            by_agent.insert(agent, place(&ts));
        }
        BlockIndex { by_agent }
    }

    /// The block of `agent` that holds `ts` (start ≤ ts < end), if any.
    pub fn find(&self, agent: &str, ts: i64) -> Option<&Block> {
        let blocks = self.by_agent.get(agent)?;
        let i = blocks.partition_point(|b| b.start_ms <= ts);
        let b = blocks.get(i.checked_sub(1)?)?;
        (ts < b.end_ms).then_some(b)
    }

    /// The blocks running at `now_ms` only.
    pub fn only_active(&self, now_ms: i64) -> BlockIndex {
        let by_agent = self
            .by_agent
            .iter()
            .map(|(a, blocks)| {
                let active = blocks
                    .iter()
                    .filter(|b| b.is_active(now_ms))
                    .copied()
                    .collect();
                (a.clone(), active)
            })
            .collect();
        BlockIndex { by_agent }
    }

    /// Every block with its agent, in agent then time order.
    pub fn all(&self) -> impl Iterator<Item = (&str, &Block)> {
        let mut agents: Vec<&String> = self.by_agent.keys().collect();
        agents.sort();
        agents
            .into_iter()
            .flat_map(|a| self.by_agent[a].iter().map(move |b| (a.as_str(), b)))
    }

    /// A block's row key: its start in UTC and the agent, `2026-12-01T20:00:00Z claude`.
    pub fn key(agent: &str, block: &Block) -> String {
        format!(
            "{} {agent}",
            crate::model::time::format_utc_s(block.start_ms)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    #[test]
    fn blocks_follow_ccusages_rule() {
        let t0 = 1_796_155_200_000; // 2026-12-01T20:00:00Z
        let calls = [
            t0 + 27 * 60_000,          // 20:27 → block 20:00–01:00
            t0 + 4 * H,                // 00:00, within 5 h of the start
            t0 + 5 * H + 60_000,       // 01:01: past the block's end → new block at 01:00
            t0 + 11 * H + 30 * 60_000, // 07:30: > 5 h after the last call → new block at 07:00
        ];
        let index = BlockIndex::build(calls.iter().map(|t| ("claude".to_string(), *t)));
        let blocks = &index.by_agent["claude"];
        let starts: Vec<i64> = blocks.iter().map(|b| b.start_ms).collect();
        assert_eq!(starts, [t0, t0 + 5 * H, t0 + 11 * H]);
        assert_eq!(blocks[0].last_ms, t0 + 4 * H);
        assert_eq!(blocks[0].first_ms, t0 + 27 * 60_000);
        assert!(blocks[2].is_active(t0 + 12 * H) && !blocks[2].is_active(t0 + 16 * H));
        assert_eq!(index.find("claude", t0 + 2 * H).unwrap().start_ms, t0);
        assert!(
            index.find("claude", t0 + 10 * H).is_none(),
            "between blocks"
        );
        assert!(index.find("codex", t0).is_none());
        assert_eq!(
            BlockIndex::key("claude", &blocks[0]),
            "2026-12-01T20:00:00Z claude"
        );
    }
}
