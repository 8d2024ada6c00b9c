//! Five-hour billing blocks (`report blocks`): the windows in which Claude's Pro/Max plans (and ChatGPT's, for
//! Codex) meter usage.
//!
//! The definition is ccusage's (`identifySessionBlocks`, ccusage 20.0.24), so that both tools show the same
//! blocks: model calls of one agent in time order; a block starts at the first call's time rounded down to the
//! hour and lasts 5 hours; a call more than 5 hours after its block's start, or more than 5 hours after the
//! previous call, starts a new block. Blocks are per agent: each plan has its own window.

use std::collections::HashMap;

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
    /// last call.
    pub fn is_active(&self, now_ms: i64) -> bool {
        now_ms < self.end_ms && now_ms - self.last_ms < BLOCK_MS
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

    /// A block's row key: its start in UTC and the agent, `2026-12-01T20:00:00Z claude`.
    pub fn key(agent: &str, block: &Block) -> String {
        let start = jiff::Timestamp::from_millisecond(block.start_ms)
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default();
        format!("{start} {agent}")
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
