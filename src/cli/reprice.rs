//! `tokentrace reprice`: price every stored generation again with the prices in effect (bundled table and
//! the config's `[prices]` overrides), and say what changed.
//!
//! Commands that import do the same on their own whenever the prices in effect differ from those the store
//! was priced with ([`follow_prices`]); this command forces it.

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::Context;
use crate::model::{pico_to_usd, Pico};
use crate::pricing::Pricer;
use crate::store::{Repricing, Store};

#[derive(Debug, Args)]
pub struct RepriceArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Before an import: when the prices in effect (fingerprint of `pricer`) differ from those the store's
/// costs were computed with, re-prices every stored generation, bumps the traces whose cost changed (sinks
/// send them again) and prints one line on stderr when any cost changed. A fresh store just records the
/// fingerprint.
pub fn follow_prices(store: &mut Store, pricer: &Pricer) -> Result<()> {
    let current = pricer.fingerprint();
    let Some((previous, done)) = store.reprice_if_changed(pricer, &current.encode())? else {
        return Ok(());
    };
    if done.repriced > 0 {
        eprintln!(
            "tokentrace: prices changed ({}): re-priced {} generation(s) in {} trace(s)",
            current.changes(previous.as_deref()).join(", "),
            done.repriced,
            done.traces
        );
    }
    Ok(())
}

fn usd(pico: Pico) -> String {
    format!("${:.6}", pico_to_usd(pico))
}

/// The JSON document `reprice --json` prints: counts, cost in USD before and after, per changed model.
pub fn to_json(r: &Repricing, fingerprint: &str) -> serde_json::Value {
    json!({
        "generations": r.generations,
        "repriced_generations": r.repriced,
        "repriced_traces": r.traces,
        "cost_before_usd": pico_to_usd(r.before),
        "cost_after_usd": pico_to_usd(r.after),
        "unpriced_before": r.unpriced_before,
        "unpriced_after": r.unpriced_after,
        "models": r.models.iter().map(|m| json!({
            "model": m.model,
            "repriced_generations": m.repriced,
            "cost_before_usd": pico_to_usd(m.before),
            "cost_after_usd": pico_to_usd(m.after),
            "unpriced_before": m.unpriced_before,
            "unpriced_after": m.unpriced_after,
        })).collect::<Vec<_>>(),
        "prices": fingerprint,
    })
}

pub fn run(ctx: &Context, args: RepriceArgs) -> Result<()> {
    let mut store = ctx.open_store()?;
    let pricer = Pricer::new(ctx.config.prices.clone());
    let fingerprint = pricer.fingerprint().encode();
    let r = store.reprice(&pricer, &fingerprint)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&to_json(&r, &fingerprint))?
        );
        return Ok(());
    }
    println!(
        "Re-priced {} of {} generation(s) in {} trace(s){}.",
        r.repriced,
        r.generations,
        r.traces,
        if r.traces > 0 {
            " (`tokentrace sync` sends them again)"
        } else {
            ""
        }
    );
    println!(
        "Total cost: {} → {}; unpriced generations: {} → {}",
        usd(r.before),
        usd(r.after),
        r.unpriced_before,
        r.unpriced_after
    );
    if !r.models.is_empty() {
        let width = r
            .models
            .iter()
            .map(|m| m.model.as_deref().unwrap_or("(no model)").chars().count())
            .max()
            .unwrap_or(0)
            .max(5);
        println!(
            "\n{:<width$}  {:>9}  {:>12}  {:>12}  unpriced",
            "model", "re-priced", "before", "after"
        );
        for m in &r.models {
            println!(
                "{:<width$}  {:>9}  {:>12}  {:>12}  {} → {}",
                m.model.as_deref().unwrap_or("(no model)"),
                m.repriced,
                usd(m.before),
                usd(m.after),
                m.unpriced_before,
                m.unpriced_after
            );
        }
    }
    Ok(())
}
