//! Prices generations (DESIGN §3 "Cost").
//!
//! Order of precedence for one generation:
//! 1. a price the user set in the config file (`[prices."model"]`, USD per million tokens) — source `override`;
//! 2. the agent's own cost when present and non-zero (pi, oh-my-pi `usage.cost`) — source `agent`;
//! 3. the bundled LiteLLM table, with aliases, long-context tiers and 5m/1h cache writes — source `table`;
//! 4. otherwise, if any token was recorded, the generation is flagged `unpriced` (never a silent $0).
//!
//! A zero from the agent with non-zero tokens means "not priced by the agent" (custom models default to 0).

pub mod fingerprint;
pub mod table;

use std::collections::HashMap;

use serde::Deserialize;

use crate::model::{Cost, CostBreakdown, CostSource, Kind, Observation, Pico, Usage, PICO_PER_USD};
pub use fingerprint::PriceFingerprint;
pub use table::{PriceTable, Rates};

/// A user price from the config file, in USD per million tokens.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OverridePrice {
    pub input: f64,
    #[serde(default)]
    pub output: Option<f64>,
    #[serde(default)]
    pub cache_read: Option<f64>,
    #[serde(default)]
    pub cache_write: Option<f64>,
    #[serde(default)]
    pub cache_write_1h: Option<f64>,
}

impl OverridePrice {
    fn rates(&self) -> Rates {
        let per_token = |v: f64| v / 1e6;
        Rates {
            input: Some(per_token(self.input)),
            output: self.output.map(per_token),
            cache_read: self.cache_read.map(per_token),
            cache_write: self.cache_write.map(per_token),
            cache_write_1h: self.cache_write_1h.map(per_token),
        }
    }
}

/// Where a price comes from, as `tokentrace prices` explains it.
#[derive(Debug, Clone, PartialEq)]
pub enum PriceOrigin {
    /// `[prices."<key>"]` in the config file.
    Override { key: String },
    /// The LiteLLM table entry `key`, found by `rule`.
    Table {
        key: String,
        rule: &'static str,
        version: String,
    },
}

/// The price the tool would use for a model.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    pub origin: PriceOrigin,
    pub base: Rates,
    pub tiers: Vec<(u64, Rates)>,
}

/// Prices generations with the user's overrides and the bundled table.
#[derive(Debug, Clone, Default)]
pub struct Pricer {
    overrides: HashMap<String, OverridePrice>,
}

impl Pricer {
    /// `overrides` keys are `model` or `provider/model`.
    pub fn new(overrides: HashMap<String, OverridePrice>) -> Pricer {
        Pricer { overrides }
    }

    /// The fingerprint of the prices this pricer applies (bundled table and overrides): stored costs
    /// computed under another fingerprint are out of date.
    pub fn fingerprint(&self) -> PriceFingerprint {
        PriceFingerprint::new(&self.overrides)
    }

    /// The price for `model` (optionally of `provider`), or `None` when it is unpriced.
    pub fn quote(&self, provider: Option<&str>, model: &str) -> Option<Quote> {
        if let Some((key, price)) = self.find_override(provider, model) {
            return Some(Quote {
                origin: PriceOrigin::Override { key },
                base: price.rates(),
                tiers: Vec::new(),
            });
        }
        let table = PriceTable::bundled();
        table.lookup(provider, model).map(|m| Quote {
            origin: PriceOrigin::Table {
                key: m.key.to_string(),
                rule: m.rule,
                version: table.version.clone(),
            },
            base: m.price.base,
            tiers: m.price.tiers.clone(),
        })
    }

    fn find_override(
        &self,
        provider: Option<&str>,
        model: &str,
    ) -> Option<(String, OverridePrice)> {
        let mut keys = Vec::new();
        if let Some(p) = provider {
            keys.push(format!("{p}/{model}"));
        }
        keys.push(model.to_string());
        if let Some((_, bare)) = model.rsplit_once('/') {
            keys.push(bare.to_string());
        }
        keys.into_iter()
            .find_map(|k| self.overrides.get(&k).map(|p| (k.clone(), *p)))
    }

    /// Sets `obs.cost` for a generation (other kinds are left alone).
    pub fn price(&self, obs: &mut Observation) {
        if obs.kind != Kind::Generation {
            return;
        }
        let usage = obs.usage.unwrap_or_default();
        let model = obs.pricing_model().map(str::to_string);
        let provider = obs.provider.clone();
        obs.cost = Some(self.cost(
            provider.as_deref(),
            model.as_deref(),
            &usage,
            obs.agent_cost,
        ));
    }

    /// The cost of one call with `usage`, following the precedence in the module docs.
    pub fn cost(
        &self,
        provider: Option<&str>,
        model: Option<&str>,
        usage: &Usage,
        agent: Option<CostBreakdown>,
    ) -> Cost {
        let priced = |breakdown, source| Cost {
            breakdown,
            source,
            unpriced: false,
        };
        if let Some(model) = model {
            if let Some((_, price)) = self.find_override(provider, model) {
                if let Some(b) = compute(&price.rates(), usage) {
                    return priced(b, CostSource::Override);
                }
            }
        }
        if let Some(agent) = agent.filter(|a| a.total > 0) {
            return priced(agent, CostSource::Agent);
        }
        if usage.is_zero() {
            let source = if agent.is_some() {
                CostSource::Agent
            } else {
                CostSource::None
            };
            return priced(CostBreakdown::default(), source);
        }
        if let Some(quote) = model.and_then(|m| self.quote(provider, m)) {
            let (rates, _) = table::ModelPrice {
                provider: None,
                base: quote.base,
                tiers: quote.tiers,
            }
            .rates_for(usage.prompt_tokens());
            if let Some(b) = compute(&rates, usage) {
                return priced(b, CostSource::Table);
            }
        }
        Cost {
            breakdown: CostBreakdown::default(),
            source: CostSource::None,
            unpriced: true,
        }
    }
}

fn bucket(tokens: u64, usd_per_token: f64) -> Pico {
    (tokens as f64 * usd_per_token * PICO_PER_USD).round() as Pico
}

/// Cost of `usage` at `rates`: output (reasoning included) at the output price, 1-hour cache writes at the
/// 1-hour price. `None` when the rates have no input price.
pub fn compute(rates: &Rates, usage: &Usage) -> Option<CostBreakdown> {
    let r = rates.resolved()?;
    let input = bucket(usage.input, r.input);
    let output = bucket(usage.output, r.output);
    let cache_read = bucket(usage.cache_read, r.cache_read);
    let cache_write = bucket(usage.cache_write_5m, r.cache_write)
        .saturating_add(bucket(usage.cache_write_1h, r.cache_write_1h));
    Some(CostBreakdown {
        input,
        output,
        cache_read,
        cache_write,
        // Saturating: sums never wrap (a bucket is at most i64::MAX pico-USD, far beyond any real call).
        total: input
            .saturating_add(output)
            .saturating_add(cache_read)
            .saturating_add(cache_write),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::pico_to_usd;

    fn usage(input: u64, output: u64, cache_read: u64, cw5: u64, cw1h: u64) -> Usage {
        Usage {
            input,
            output,
            cache_read,
            cache_write_5m: cw5,
            cache_write_1h: cw1h,
            reasoning: 0,
        }
    }

    fn agent_cost(total_usd: f64) -> CostBreakdown {
        CostBreakdown {
            total: crate::model::usd_to_pico(total_usd),
            ..Default::default()
        }
    }

    #[test]
    fn agent_cost_wins_over_the_table() {
        // claude-sonnet-4-5 would cost 1000 × $3/M = $0.003 from the table; the agent said $0.0042.
        let cost = Pricer::default().cost(
            Some("anthropic"),
            Some("claude-sonnet-4-5"),
            &usage(1000, 0, 0, 0, 0),
            Some(agent_cost(0.0042)),
        );
        assert_eq!(cost.source, CostSource::Agent);
        assert_eq!(pico_to_usd(cost.breakdown.total), 0.0042);
    }

    #[test]
    fn zero_agent_cost_falls_back_to_the_table() {
        // claude-sonnet-4-5: $3 / $15 / $0.30 / $3.75 per Mtok input / output / cache read / cache write.
        // 1000 × 3e-6 + 500 × 15e-6 + 10000 × 0.3e-6 + 2000 × 3.75e-6 = 0.003 + 0.0075 + 0.003 + 0.0075 = $0.021
        let cost = Pricer::default().cost(
            Some("anthropic"),
            Some("claude-sonnet-4-5-20250929"),
            &usage(1000, 500, 10_000, 2000, 0),
            Some(agent_cost(0.0)),
        );
        assert_eq!(cost.source, CostSource::Table);
        assert!(!cost.unpriced);
        assert_eq!(pico_to_usd(cost.breakdown.total), 0.021);
        assert_eq!(pico_to_usd(cost.breakdown.cache_write), 0.0075);
    }

    #[test]
    fn tier_above_200k_bills_the_whole_call_at_the_long_context_rate() {
        // gemini-2.5-pro: ≤ 200k prompt: $1.25 / $10 per Mtok; above: $2.50 / $15.
        // 150,000 input + 60,000 cache read = 210,000 prompt tokens > 200k:
        // 150000 × 2.5e-6 + 1000 × 15e-6 + 60000 × 0.25e-6 = 0.375 + 0.015 + 0.015 = $0.405
        let p = Pricer::default();
        let above = p.cost(
            Some("google"),
            Some("gemini-2.5-pro"),
            &usage(150_000, 1000, 60_000, 0, 0),
            None,
        );
        assert_eq!(pico_to_usd(above.breakdown.total), 0.405);
        // 150,000 input + 50,000 cache read = exactly 200k: base rates.
        // 150000 × 1.25e-6 + 1000 × 10e-6 + 50000 × 0.125e-6 = 0.1875 + 0.01 + 0.00625 = $0.20375
        let at = p.cost(
            Some("google"),
            Some("gemini-2.5-pro"),
            &usage(150_000, 1000, 50_000, 0, 0),
            None,
        );
        assert_eq!(pico_to_usd(at.breakdown.total), 0.20375);
    }

    #[test]
    fn one_hour_cache_writes_use_their_own_price() {
        // claude-sonnet-4-5: 5m write $3.75/Mtok, 1h write $6/Mtok.
        // 1000 × 3.75e-6 + 1000 × 6e-6 = 0.00375 + 0.006 = $0.00975
        let cost = Pricer::default().cost(
            Some("anthropic"),
            Some("claude-sonnet-4-5"),
            &usage(0, 0, 0, 1000, 1000),
            None,
        );
        assert_eq!(pico_to_usd(cost.breakdown.cache_write), 0.00975);
        assert_eq!(pico_to_usd(cost.breakdown.total), 0.00975);
    }

    #[test]
    fn unknown_models_are_flagged_unpriced_not_free() {
        let cost = Pricer::default().cost(
            Some("mock-openai"),
            Some("mock-gpt"),
            &usage(200, 40, 1000, 0, 0),
            Some(agent_cost(0.0)),
        );
        assert!(cost.unpriced);
        assert_eq!(cost.source, CostSource::None);
        // Zero tokens is not "unpriced": there is nothing to price.
        let empty = Pricer::default().cost(
            Some("mock-openai"),
            Some("mock-gpt"),
            &Usage::default(),
            Some(agent_cost(0.0)),
        );
        assert!(!empty.unpriced);
        assert_eq!(empty.breakdown.total, 0);
    }

    #[test]
    fn override_wins_over_agent_and_table() {
        // mock-gpt at $3 / $15 / $0.30 per Mtok: 200 × 3e-6 + 40 × 15e-6 + 1000 × 0.3e-6 = 0.0006 + 0.0006 + 0.0003 = $0.0015
        let mut overrides = HashMap::new();
        overrides.insert(
            "mock-gpt".to_string(),
            OverridePrice {
                input: 3.0,
                output: Some(15.0),
                cache_read: Some(0.3),
                cache_write: Some(3.75),
                cache_write_1h: None,
            },
        );
        overrides.insert(
            "anthropic/claude-sonnet-4-5".to_string(),
            OverridePrice {
                input: 1.0,
                ..Default::default()
            },
        );
        let p = Pricer::new(overrides);
        let cost = p.cost(
            Some("mock-openai"),
            Some("mock-gpt"),
            &usage(200, 40, 1000, 0, 0),
            Some(agent_cost(0.9)),
        );
        assert_eq!(cost.source, CostSource::Override);
        assert_eq!(pico_to_usd(cost.breakdown.total), 0.0015);
        // provider/model keys win over the table: 1000 × 1e-6 = $0.001 instead of $0.003.
        let sonnet = p.cost(
            Some("anthropic"),
            Some("claude-sonnet-4-5"),
            &usage(1000, 0, 0, 0, 0),
            None,
        );
        assert_eq!(
            (sonnet.source, pico_to_usd(sonnet.breakdown.total)),
            (CostSource::Override, 0.001)
        );
    }
}
