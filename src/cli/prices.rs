//! `tokentrace prices [MODEL]`: the price used for a model and why.

use anyhow::Result;
use clap::Args;
use serde_json::json;

use super::Context;
use crate::pricing::table::{PriceTable, BUNDLED_VERSION};
use crate::pricing::{PriceOrigin, Pricer, Rates};

#[derive(Debug, Args)]
pub struct PricesArgs {
    /// Model id as the agent records it (e.g. claude-sonnet-4-5-20250929, openrouter/anthropic/claude-sonnet-4.5).
    pub model: Option<String>,
    /// Provider as the agent records it (e.g. anthropic, openai, google).
    #[arg(long)]
    pub provider: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn per_mtok(v: Option<f64>) -> String {
    match v {
        Some(v) => format!("${:.4}", v * 1e6)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string(),
        None => "-".into(),
    }
}

fn rates_json(r: &Rates) -> serde_json::Value {
    let m = |v: Option<f64>| v.map(|v| v * 1e6);
    json!({
        "input": m(r.input), "output": m(r.output), "cache_read": m(r.cache_read),
        "cache_write": m(r.cache_write), "cache_write_1h": m(r.cache_write_1h),
    })
}

/// The price `model` gets and why, as `prices MODEL --json` prints it (also the dashboard's models page):
/// `{"model", "provider", "priced": false}` or `{…, "priced": true, "source", "key", "rule", "usd_per_mtok":
/// {"input", "output", "cache_read", "cache_write", "cache_write_1h"}, "tiers": […]}`.
pub fn quote_json(pricer: &Pricer, provider: Option<&str>, model: &str) -> serde_json::Value {
    match pricer.quote(provider, model) {
        None => json!({ "model": model, "provider": provider, "priced": false }),
        Some(q) => {
            let (origin, key, rule) = match &q.origin {
                PriceOrigin::Override { key } => (
                    "override".to_string(),
                    key.clone(),
                    "config file".to_string(),
                ),
                PriceOrigin::Table { key, rule, version } => {
                    (format!("table ({version})"), key.clone(), rule.to_string())
                }
            };
            json!({
                "model": model, "provider": provider, "priced": true, "source": origin, "key": key, "rule": rule,
                "usd_per_mtok": rates_json(&q.base),
                "tiers": q.tiers.iter().map(|(t, r)| json!({ "above_prompt_tokens": t, "usd_per_mtok": rates_json(r) })).collect::<Vec<_>>(),
            })
        }
    }
}

pub fn run(ctx: &Context, args: PricesArgs) -> Result<()> {
    let pricer = Pricer::new(ctx.config.prices.clone());
    let Some(model) = args.model.as_deref() else {
        let table = PriceTable::bundled();
        if args.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "table": BUNDLED_VERSION, "models": table.models.len(),
                    "overrides": ctx.config.prices.keys().collect::<Vec<_>>(),
                }))?
            );
        } else {
            println!("Price table: {BUNDLED_VERSION} (LiteLLM model_prices_and_context_window.json), {} priced models.", table.models.len());
            println!(
                "Overrides in the config file: {}",
                if ctx.config.prices.is_empty() {
                    "none".to_string()
                } else {
                    ctx.config
                        .prices
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            );
            println!("Precedence: config override > the agent's own non-zero cost > table. `tokentrace prices MODEL` explains one model.");
        }
        return Ok(());
    };
    let quote = pricer.quote(args.provider.as_deref(), model);
    if args.json {
        let doc = quote_json(&pricer, args.provider.as_deref(), model);
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    match quote {
        None => {
            println!("{model}: no price found (tokens of this model are reported as UNPRICED, never as $0).");
            println!(
                "Tried: {}",
                crate::pricing::table::candidates(args.provider.as_deref(), model)
                    .into_iter()
                    .map(|(k, _)| k)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            println!("Set one in the config file ({}):\n  [prices.\"{model}\"]\n  input = 3.0      # USD per million tokens\n  output = 15.0\n  cache_read = 0.3\n  cache_write = 3.75", ctx.config_path.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "config.toml".into()));
        }
        Some(q) => {
            match &q.origin {
                PriceOrigin::Override { key } => {
                    println!("{model}: config override [prices.\"{key}\"]")
                }
                PriceOrigin::Table { key, rule, version } => {
                    println!("{model}: table entry \"{key}\" ({rule}), {version}")
                }
            }
            let b = q.base;
            println!(
                "  USD per million tokens: input {}  output {}  cache read {}  cache write {} (5m) / {} (1h)",
                per_mtok(b.input), per_mtok(b.output), per_mtok(b.cache_read), per_mtok(b.cache_write), per_mtok(b.cache_write_1h)
            );
            for (threshold, t) in &q.tiers {
                println!(
                    "  prompts above {}k tokens: input {}  output {}  cache read {}  cache write {}",
                    threshold / 1000, per_mtok(t.input), per_mtok(t.output), per_mtok(t.cache_read), per_mtok(t.cache_write)
                );
            }
            println!("  Missing buckets fall back to the input price (cache) or the 5m write price (1h writes). The agent's own non-zero cost wins over the table; a config override wins over both.");
        }
    }
    Ok(())
}
