//! Claude Code's own cost records: `cost-state` lines (Claude Code ≥ 2.1.3xx).
//!
//! Each `claude` process appends a `cost-state` line when it ends: `totalCostUSD` and `modelUsage` per model,
//! cumulative over the whole session (`--continue` runs included; subagents and calls the transcript never
//! records, such as the `/compact` summarisation call, included). Two uses:
//! - the session's cost as the agent computed it (the **last** line, never a sum), kept beside tokentrace's
//!   own figure as a cross-check;
//! - calls the transcript does not record: per model, the difference of two successive `cost-state` lines
//!   minus the assistant lines between them is what was billed but not written. When the interval spawned no
//!   subagent (whose calls live in other files), that remainder becomes a generation of its own
//!   (`tokentrace.recovered`), so the session's totals equal the agent's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::format::ModelUsage;
use crate::model::{usd_to_pico, CostBreakdown, Pico, Usage};

/// What one `cost-state` interval billed but the transcript did not record, for one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovered {
    pub model: String,
    pub usage: Usage,
    /// The agent's cost of it: the interval's cost delta, exact when the interval recorded no call of this
    /// model, else its share by Anthropic's rate ratios (see [`weight`]).
    pub cost: CostBreakdown,
    /// A compaction boundary was written in the interval: the remainder is its summarisation call.
    pub compaction: bool,
}

/// One model's cumulative figures at a `cost-state` line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Snapshot {
    usage: Usage,
    cost_usd: f64,
}

/// The running state between `cost-state` lines (part of the parser's checkpoint).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CostLedger {
    /// `totalCostUSD` of the last line.
    total_usd: Option<f64>,
    last: BTreeMap<String, Snapshot>,
    /// Tokens of this file's model calls since the last line, per model.
    seen: BTreeMap<String, Usage>,
    /// The interval ran a subagent: its calls are in another file, so nothing is recovered.
    subagents: bool,
    compaction: bool,
    /// `cost-state` lines read so far (keys recovered generations).
    pub lines: u32,
}

impl CostLedger {
    /// The session's cost as the agent recorded it, pico-USD.
    pub fn session_cost(&self) -> Option<Pico> {
        self.total_usd.map(usd_to_pico)
    }

    /// A model call's usage changed from `old` to `new` (Claude repeats a call's usage on every line).
    pub fn call(&mut self, model: &str, old: Option<&Usage>, new: &Usage) {
        let slot = self.seen.entry(model.to_string()).or_default();
        *slot = add(&sub(slot, old.unwrap_or(&Usage::default())), new);
    }

    /// The interval spawned a subagent.
    pub fn subagent(&mut self) {
        self.subagents = true;
    }

    /// The interval compacted the conversation.
    pub fn compaction(&mut self) {
        self.compaction = true;
    }

    /// Reads a `cost-state` line; returns what the interval billed but the file did not record.
    pub fn line(
        &mut self,
        total_usd: Option<f64>,
        models: &BTreeMap<String, ModelUsage>,
    ) -> Vec<Recovered> {
        self.lines += 1;
        let mut out = Vec::new();
        let mut now = BTreeMap::new();
        for (model, mu) in models {
            let snap = Snapshot {
                usage: usage_of(mu),
                cost_usd: mu
                    .cost_usd
                    .filter(|c| c.is_finite() && *c >= 0.0)
                    .unwrap_or(0.0),
            };
            let prev = self.last.get(model).copied().unwrap_or_default();
            // A total that went down belongs to a new process that did not continue the session.
            let (delta, delta_cost) = if covers(&snap.usage, &prev.usage) {
                (sub(&snap.usage, &prev.usage), snap.cost_usd - prev.cost_usd)
            } else {
                (snap.usage, snap.cost_usd)
            };
            let seen = self.seen.get(model).copied().unwrap_or_default();
            let rest = sub(&delta, &seen);
            if !self.subagents && !rest.is_zero() {
                let share = if seen.is_zero() {
                    1.0
                } else {
                    weight(&rest) / weight(&delta).max(f64::MIN_POSITIVE)
                };
                out.push(Recovered {
                    model: model.clone(),
                    usage: rest,
                    cost: split(usd_to_pico(delta_cost.max(0.0) * share), &rest),
                    compaction: self.compaction,
                });
            }
            now.insert(model.clone(), snap);
        }
        self.last = now;
        if let Some(t) = total_usd.filter(|t| t.is_finite() && *t >= 0.0) {
            self.total_usd = Some(t);
        }
        self.seen.clear();
        self.subagents = false;
        self.compaction = false;
        out
    }
}

fn tok(v: Option<f64>) -> u64 {
    match v {
        Some(v) if v.is_finite() && v > 0.0 => v.round() as u64,
        _ => 0,
    }
}

fn usage_of(m: &ModelUsage) -> Usage {
    let w1 = tok(m.cache_creation_ephemeral1h_input_tokens);
    let total = match m.cache_creation_input_tokens {
        Some(_) => tok(m.cache_creation_input_tokens),
        None => tok(m.cache_creation_ephemeral5m_input_tokens) + w1,
    };
    let output = tok(m.output_tokens);
    Usage {
        input: tok(m.input_tokens),
        output,
        cache_read: tok(m.cache_read_input_tokens),
        cache_write_5m: total - w1.min(total),
        cache_write_1h: w1.min(total),
        reasoning: tok(m.thinking_tokens).min(output),
    }
}

fn covers(a: &Usage, b: &Usage) -> bool {
    a.input >= b.input
        && a.output >= b.output
        && a.cache_read >= b.cache_read
        && a.cache_write() >= b.cache_write()
}

fn sub(a: &Usage, b: &Usage) -> Usage {
    Usage {
        input: a.input.saturating_sub(b.input),
        output: a.output.saturating_sub(b.output),
        cache_read: a.cache_read.saturating_sub(b.cache_read),
        cache_write_5m: a.cache_write_5m.saturating_sub(b.cache_write_5m),
        cache_write_1h: a.cache_write_1h.saturating_sub(b.cache_write_1h),
        reasoning: a.reasoning.saturating_sub(b.reasoning),
    }
}

fn add(a: &Usage, b: &Usage) -> Usage {
    Usage {
        input: a.input.saturating_add(b.input),
        output: a.output.saturating_add(b.output),
        cache_read: a.cache_read.saturating_add(b.cache_read),
        cache_write_5m: a.cache_write_5m.saturating_add(b.cache_write_5m),
        cache_write_1h: a.cache_write_1h.saturating_add(b.cache_write_1h),
        reasoning: a.reasoning.saturating_add(b.reasoning),
    }
}

/// Relative price of each bucket in units of the input rate; Anthropic prices every Claude model in these
/// ratios (output 5×, cache read 0.1×, 5-minute write 1.25×, 1-hour write 2×; anthropic.com/pricing).
const RATIOS: [f64; 5] = [1.0, 5.0, 0.1, 1.25, 2.0];

/// The cost weight of `u` in units of the input rate.
fn weight(u: &Usage) -> f64 {
    let [i, o, r, w5, w1] = RATIOS;
    u.input as f64 * i
        + u.output as f64 * o
        + u.cache_read as f64 * r
        + u.cache_write_5m as f64 * w5
        + u.cache_write_1h as f64 * w1
}

/// Splits `total` over the buckets of `u` by [`RATIOS`]; the parts sum to `total` exactly.
fn split(total: Pico, u: &Usage) -> CostBreakdown {
    let w = weight(u);
    if w <= 0.0 {
        return CostBreakdown {
            total,
            ..CostBreakdown::default()
        };
    }
    let part = |x: f64| ((total as f64) * x / w).round() as Pico;
    let [i, o, r, _, _] = RATIOS;
    let input = part(u.input as f64 * i);
    let output = part(u.output as f64 * o);
    let cache_read = part(u.cache_read as f64 * r);
    let cache_write = total - input - output - cache_read;
    CostBreakdown {
        input,
        output,
        cache_read,
        cache_write,
        total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mu(input: f64, output: f64, cr: f64, cw: f64, cost: f64) -> ModelUsage {
        ModelUsage {
            input_tokens: Some(input),
            output_tokens: Some(output),
            cache_read_input_tokens: Some(cr),
            cache_creation_input_tokens: Some(cw),
            cache_creation_ephemeral5m_input_tokens: Some(cw),
            cost_usd: Some(cost),
            ..ModelUsage::default()
        }
    }

    fn u(input: u64, output: u64, cr: u64, cw: u64) -> Usage {
        Usage {
            input,
            output,
            cache_read: cr,
            cache_write_5m: cw,
            ..Usage::default()
        }
    }

    #[test]
    fn an_interval_without_lines_is_recovered_whole_with_its_exact_cost() {
        let mut l = CostLedger::default();
        l.call("m", None, &u(10, 5, 100, 20));
        let first = l.line(
            Some(0.5),
            &BTreeMap::from([("m".into(), mu(10.0, 5.0, 100.0, 20.0, 0.5))]),
        );
        assert!(first.is_empty(), "every token was recorded");
        l.compaction();
        let got = l.line(
            Some(0.8),
            &BTreeMap::from([("m".into(), mu(17.0, 9.0, 150.0, 30.0, 0.8))]),
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].usage, u(7, 4, 50, 10));
        assert!(got[0].compaction);
        assert_eq!(got[0].cost.total, usd_to_pico(0.3));
        let b = got[0].cost;
        assert_eq!(b.input + b.output + b.cache_read + b.cache_write, b.total);
        assert_eq!(l.session_cost(), Some(usd_to_pico(0.8)));
    }

    #[test]
    fn a_line_that_updates_its_usage_counts_once() {
        let mut l = CostLedger::default();
        l.call("m", None, &u(10, 1, 0, 0));
        l.call("m", Some(&u(10, 1, 0, 0)), &u(10, 5, 0, 0));
        let got = l.line(
            Some(0.1),
            &BTreeMap::from([("m".into(), mu(10.0, 5.0, 0.0, 0.0, 0.1))]),
        );
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn nothing_is_recovered_for_an_interval_that_ran_subagents() {
        let mut l = CostLedger::default();
        l.subagent();
        let got = l.line(
            Some(0.1),
            &BTreeMap::from([("m".into(), mu(10.0, 5.0, 0.0, 0.0, 0.1))]),
        );
        assert!(got.is_empty());
        assert_eq!(l.session_cost(), Some(usd_to_pico(0.1)));
    }
}
