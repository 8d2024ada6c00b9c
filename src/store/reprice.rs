//! Re-pricing: stored generations priced again when the prices in effect change (DESIGN §3 "Cost": user
//! overrides win, also over what was imported before they were set).
//!
//! Each generation keeps what pricing needs (model, response model, provider, the six token columns, the
//! agent's own cost), so it is priced again from those columns with the same [`Pricer`] the import uses.
//! A generation whose cost changed is updated and its trace gets a new `seq`, so every sink sends it again.
//! The store remembers the fingerprint of the prices its costs were computed with (`meta.price_fingerprint`).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::write::bump_traces;
use super::Store;
use crate::model::{Cost, CostBreakdown, CostSource, Kind, Observation, Pico, Usage};
use crate::pricing::Pricer;

/// The `meta` key holding the fingerprint of the prices the stored costs were computed with.
pub const PRICE_FINGERPRINT_KEY: &str = "price_fingerprint";

/// What re-pricing changed for one model (the model generations are priced by: the response model, else
/// the requested one).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelRepricing {
    /// Model id as recorded; `None` for generations without one.
    pub model: Option<String>,
    /// Generations of this model whose cost changed.
    pub repriced: u64,
    /// Cost of all of this model's generations before and after, pico-USD.
    pub before: Pico,
    pub after: Pico,
    /// Generations of this model without a price (tokens recorded, no price found) before and after.
    pub unpriced_before: u64,
    pub unpriced_after: u64,
}

/// What a re-pricing did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Repricing {
    /// Generations looked at (every generation in the store).
    pub generations: u64,
    /// Generations whose cost (buckets, source or unpriced flag) changed.
    pub repriced: u64,
    /// Traces holding a re-priced generation: their `seq` was bumped, so sinks send them again.
    pub traces: u64,
    /// Cost of every generation in the store before and after, pico-USD.
    pub before: Pico,
    pub after: Pico,
    /// Unpriced generations before and after.
    pub unpriced_before: u64,
    pub unpriced_after: u64,
    /// Per model, only models with a re-priced generation, by model id.
    pub models: Vec<ModelRepricing>,
}

/// One stored generation, as pricing needs it.
struct Row {
    id: String,
    trace_id: Option<String>,
    model: Option<String>,
    response_model: Option<String>,
    provider: Option<String>,
    usage: Option<Usage>,
    agent_cost: Option<String>,
    cost: Option<Cost>,
}

impl Store {
    /// The fingerprint the stored costs were computed with ([`crate::pricing::PriceFingerprint::encode`]),
    /// `None` when none was recorded yet.
    pub fn price_fingerprint(&self) -> Result<Option<String>> {
        self.meta(PRICE_FINGERPRINT_KEY)
    }

    /// Prices every stored generation again with `pricer` and records `fingerprint` (the encoded
    /// fingerprint of `pricer`), all in one transaction. Returns what changed.
    pub fn reprice(&mut self, pricer: &Pricer, fingerprint: &str) -> Result<Repricing> {
        Ok(self
            .reprice_where(pricer, fingerprint, true)?
            .map(|(_, r)| r)
            .unwrap_or_default())
    }

    /// Like [`Store::reprice`], but only when the stored fingerprint differs from `fingerprint`. Returns
    /// the stored fingerprint it replaced (`None`: none was recorded) and what changed; `Ok(None)` when the
    /// prices in effect are the ones the store was priced with (nothing is written).
    pub fn reprice_if_changed(
        &mut self,
        pricer: &Pricer,
        fingerprint: &str,
    ) -> Result<Option<(Option<String>, Repricing)>> {
        // The common case costs one read and no write lock.
        if self.price_fingerprint()?.as_deref() == Some(fingerprint) {
            return Ok(None);
        }
        self.reprice_where(pricer, fingerprint, false)
    }

    fn reprice_where(
        &mut self,
        pricer: &Pricer,
        fingerprint: &str,
        force: bool,
    ) -> Result<Option<(Option<String>, Repricing)>> {
        // Immediate: another process re-pricing or importing at the same time waits for this one.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let previous: Option<String> = tx
            .query_row(
                "SELECT value FROM meta WHERE key = ?1",
                params![PRICE_FINGERPRINT_KEY],
                |r| r.get(0),
            )
            .optional()?;
        if !force && previous.as_deref() == Some(fingerprint) {
            return Ok(None);
        }
        let rows = {
            let mut stmt = tx.prepare(
                "SELECT id, trace_id, model, response_model, provider,
                        input_tokens, output_tokens, cache_read_tokens, cache_write_5m_tokens,
                        cache_write_1h_tokens, reasoning_tokens, agent_cost,
                        cost_input, cost_output, cost_cache_read, cost_cache_write, cost_total,
                        cost_source, unpriced
                 FROM observations WHERE kind = ?1 ORDER BY id",
            )?;
            let rows = stmt.query_map(params![Kind::Generation.as_str()], |r| {
                let tokens: [Option<i64>; 6] = [
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                ];
                let n = |i: usize| tokens[i].unwrap_or(0).max(0) as u64;
                let usage = tokens.iter().any(Option::is_some).then(|| Usage {
                    input: n(0),
                    output: n(1),
                    cache_read: n(2),
                    cache_write_5m: n(3),
                    cache_write_1h: n(4),
                    reasoning: n(5),
                });
                let total: Option<i64> = r.get(16)?;
                let source: Option<String> = r.get(17)?;
                let cost = match (total, source) {
                    (Some(total), Some(source)) => Some(Cost {
                        breakdown: CostBreakdown {
                            input: r.get::<_, Option<i64>>(12)?.unwrap_or(0),
                            output: r.get::<_, Option<i64>>(13)?.unwrap_or(0),
                            cache_read: r.get::<_, Option<i64>>(14)?.unwrap_or(0),
                            cache_write: r.get::<_, Option<i64>>(15)?.unwrap_or(0),
                            total,
                        },
                        source: CostSource::parse(&source),
                        unpriced: r.get::<_, Option<bool>>(18)?.unwrap_or(false),
                    }),
                    _ => None,
                };
                Ok(Row {
                    id: r.get(0)?,
                    trace_id: r.get(1)?,
                    model: r.get(2)?,
                    response_model: r.get(3)?,
                    provider: r.get(4)?,
                    usage,
                    agent_cost: r.get(11)?,
                    cost,
                })
            })?;
            rows.collect::<rusqlite::Result<Vec<Row>>>()?
        };
        let mut out = Repricing::default();
        let mut models: BTreeMap<Option<String>, ModelRepricing> = BTreeMap::new();
        let mut touched: BTreeSet<String> = BTreeSet::new();
        {
            let mut update = tx.prepare(
                "UPDATE observations SET cost_input = ?2, cost_output = ?3, cost_cache_read = ?4,
                   cost_cache_write = ?5, cost_total = ?6, cost_source = ?7, unpriced = ?8
                 WHERE id = ?1",
            )?;
            for row in rows {
                // Priced exactly as the import prices it: the same entry point on the same fields.
                let mut obs = Observation::new(row.id.clone(), "", Kind::Generation, "", "");
                obs.model = row.model;
                obs.response_model = row.response_model;
                obs.provider = row.provider;
                obs.usage = row.usage;
                // A stored agent cost that does not parse is treated as absent (the table or an override
                // then decides), as an import that could not read it would.
                obs.agent_cost = row
                    .agent_cost
                    .as_deref()
                    .and_then(|s| serde_json::from_str(s).ok());
                pricer.price(&mut obs);
                let new = obs.cost.expect("pricing sets the cost of a generation");
                let old = row.cost;
                let before = old.map_or(0, |c| c.breakdown.total);
                let was_unpriced = old.is_some_and(|c| c.unpriced);
                out.generations += 1;
                out.before += before;
                out.after += new.breakdown.total;
                out.unpriced_before += u64::from(was_unpriced);
                out.unpriced_after += u64::from(new.unpriced);
                let m = models
                    .entry(obs.pricing_model().map(str::to_string))
                    .or_default();
                m.before += before;
                m.after += new.breakdown.total;
                m.unpriced_before += u64::from(was_unpriced);
                m.unpriced_after += u64::from(new.unpriced);
                if old == Some(new) {
                    continue;
                }
                update.execute(params![
                    row.id,
                    new.breakdown.input,
                    new.breakdown.output,
                    new.breakdown.cache_read,
                    new.breakdown.cache_write,
                    new.breakdown.total,
                    new.source.as_str(),
                    new.unpriced,
                ])?;
                out.repriced += 1;
                m.repriced += 1;
                touched.extend(row.trace_id);
            }
        }
        out.traces = touched.len() as u64;
        bump_traces(&tx, touched.iter().map(String::as_str))?;
        tx.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![PRICE_FINGERPRINT_KEY, fingerprint],
        )?;
        tx.commit()?;
        out.models = models
            .into_iter()
            .filter(|(_, m)| m.repriced > 0)
            .map(|(model, m)| ModelRepricing { model, ..m })
            .collect();
        Ok(Some((previous, out)))
    }
}
