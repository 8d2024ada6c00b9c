//! The bundled LiteLLM price table and model lookup.
//!
//! Data: `data/prices/model_prices_and_context_window.json`, LiteLLM's
//! `model_prices_and_context_window_backup.json` as shipped in the PyPI wheel (MIT, BerriAI/litellm; version
//! and checksum in `data/prices/SOURCE.md`, refreshed by `scripts/refresh-prices.sh`). The binary embeds
//! `data/prices/compact.json`, the part of it pricing reads (`scripts/compact-prices.py`: 0.8 MB of 3.2 MB):
//! parsing the full table was half of a `statusline` call. Prices there are USD
//! per token; tiers are keys like `input_cost_per_token_above_200k_tokens`; 1-hour cache writes are
//! `cache_creation_input_token_cost_above_1hr`.

use std::collections::HashMap;
use std::sync::OnceLock;

/// The bundled table, as JSON text (the compact form: price fields and provider of each priced entry).
pub(crate) const BUNDLED_JSON: &str = include_str!("../../data/prices/compact.json");
/// The LiteLLM release the bundled table comes from (see `data/prices/SOURCE.md`).
pub const BUNDLED_VERSION: &str = "litellm 1.109.1";

/// Prices of one model in USD per token. A missing bucket falls back as [`Rates::resolved`] says.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    pub input: Option<f64>,
    pub output: Option<f64>,
    pub cache_read: Option<f64>,
    /// Cache write with the default 5 minute lifetime.
    pub cache_write: Option<f64>,
    /// Cache write with the 1 hour lifetime.
    pub cache_write_1h: Option<f64>,
}

/// Rates with every bucket filled in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resolved {
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    pub cache_write: f64,
    pub cache_write_1h: f64,
}

impl Rates {
    /// Fills missing buckets: cache reads and writes at the input price, 1-hour writes at the 5-minute write
    /// price (what a provider without a separate cache price bills).
    pub fn resolved(&self) -> Option<Resolved> {
        let input = self.input?;
        let output = self.output.unwrap_or(0.0);
        let cache_write = self.cache_write.unwrap_or(input);
        Some(Resolved {
            input,
            output,
            cache_read: self.cache_read.unwrap_or(input),
            cache_write,
            cache_write_1h: self.cache_write_1h.unwrap_or(cache_write),
        })
    }

    /// Overlays `tier` on `self`: buckets the tier prices replace the base ones.
    fn overlay(&self, tier: &Rates) -> Rates {
        Rates {
            input: tier.input.or(self.input),
            output: tier.output.or(self.output),
            cache_read: tier.cache_read.or(self.cache_read),
            cache_write: tier.cache_write.or(self.cache_write),
            cache_write_1h: tier.cache_write_1h.or(self.cache_write_1h),
        }
    }
}

/// One model's prices: base rates and long-context tiers.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPrice {
    /// LiteLLM's `litellm_provider`.
    pub provider: Option<String>,
    pub base: Rates,
    /// `(threshold, rates)`, ascending: when the prompt (input + cache read + cache write) is above the
    /// threshold, the whole call is billed at the tier's rates.
    pub tiers: Vec<(u64, Rates)>,
}

impl ModelPrice {
    /// The rates that apply to a call with `prompt_tokens` tokens of prompt, and the tier threshold used.
    pub fn rates_for(&self, prompt_tokens: u64) -> (Rates, Option<u64>) {
        match self
            .tiers
            .iter()
            .rev()
            .find(|(threshold, _)| prompt_tokens > *threshold)
        {
            Some((threshold, tier)) => (self.base.overlay(tier), Some(*threshold)),
            None => (self.base, None),
        }
    }
}

/// The price table: model key → prices.
#[derive(Debug, Default)]
pub struct PriceTable {
    pub version: String,
    pub models: HashMap<String, ModelPrice>,
}

/// A successful lookup.
#[derive(Debug, Clone, Copy)]
pub struct Match<'a> {
    /// The table key that matched.
    pub key: &'a str,
    pub price: &'a ModelPrice,
    /// How the model id was turned into the key (`exact`, `without date suffix`, …).
    pub rule: &'static str,
}

impl PriceTable {
    /// The bundled table, parsed once on first use.
    pub fn bundled() -> &'static PriceTable {
        static TABLE: OnceLock<PriceTable> = OnceLock::new();
        TABLE.get_or_init(|| {
            PriceTable::parse(BUNDLED_JSON, BUNDLED_VERSION)
                .expect("the bundled LiteLLM price table parses")
        })
    }

    /// Parses LiteLLM's JSON. Entries without a per-token input price (images, audio, docs entries such as
    /// `sample_spec`) are skipped.
    pub fn parse(json: &str, version: &str) -> Result<PriceTable, serde_json::Error> {
        // Each entry becomes a `ModelPrice` as soon as it is read: the intermediate per-entry maps never all
        // exist at once (they were 1.3 MB of a `statusline` call's 6.5 MB peak heap).
        let Models(models) = serde_json::from_str(json)?;
        Ok(PriceTable {
            version: version.to_string(),
            models,
        })
    }

    /// Finds the prices of `model` as an agent recorded it, trying the usual aliases in order.
    pub fn lookup(&self, provider: Option<&str>, model: &str) -> Option<Match<'_>> {
        candidates(provider, model)
            .into_iter()
            .find_map(|(key, rule)| {
                self.models
                    .get_key_value(key.as_str())
                    .map(|(key, price)| Match { key, price, rule })
            })
    }
}

/// The priced models of the table, read entry by entry.
struct Models(HashMap<String, ModelPrice>);

impl<'de> serde::Deserialize<'de> for Models {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Models, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Models;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object of models")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Models, A::Error> {
                let mut models = HashMap::with_capacity(map.size_hint().unwrap_or(4096));
                while let Some(key) = map.next_key::<String>()? {
                    let Json::Object(entry) = map.next_value::<Json>()? else {
                        continue;
                    };
                    if key == "sample_spec" {
                        continue;
                    }
                    if let Some(price) = model_price(&entry) {
                        models.insert(key, price);
                    }
                }
                Ok(Models(models))
            }
        }
        d.deserialize_map(V)
    }
}

/// One entry's prices: base rates and long-context tiers; `None` without a per-token input price.
fn model_price(entry: &Entry) -> Option<ModelPrice> {
    let num = |k: &str| entry.numbers.get(k).copied();
    let base = Rates {
        input: num("input_cost_per_token"),
        output: num("output_cost_per_token"),
        cache_read: num("cache_read_input_token_cost"),
        cache_write: num("cache_creation_input_token_cost"),
        cache_write_1h: num("cache_creation_input_token_cost_above_1hr"),
    };
    base.input?;
    let mut thresholds: Vec<u64> = entry
        .numbers
        .keys()
        .filter_map(|k| tier_threshold(k))
        .collect();
    thresholds.sort_unstable();
    thresholds.dedup();
    let tiers = thresholds
        .into_iter()
        .map(|n| {
            let suffix = format!("_above_{}k_tokens", n / 1000);
            let rates = Rates {
                input: num(&format!("input_cost_per_token{suffix}")),
                output: num(&format!("output_cost_per_token{suffix}")),
                cache_read: num(&format!("cache_read_input_token_cost{suffix}")),
                cache_write: num(&format!("cache_creation_input_token_cost{suffix}")),
                cache_write_1h: num(&format!(
                    "cache_creation_input_token_cost_above_1hr{suffix}"
                )),
            };
            (n, rates)
        })
        .collect();
    Some(ModelPrice {
        provider: entry.provider.clone(),
        base,
        tiers,
    })
}

/// What pricing reads of one LiteLLM entry: its numeric `…cost…` fields and `litellm_provider`. Everything
/// else is skipped while parsing, so the 2 MB table never exists as a JSON document in memory: parsed as
/// `HashMap<String, serde_json::Value>` it left ~13 MB of freed-but-kept heap behind in every process that
/// priced anything (a long-running `watch` included).
#[derive(Debug, Default)]
struct Entry {
    numbers: HashMap<String, f64>,
    provider: Option<String>,
}

/// A JSON value as the price table parser sees it: an object is read as an [`Entry`].
enum Json {
    Number(f64),
    Text(String),
    Object(Entry),
    Other,
}

impl<'de> serde::Deserialize<'de> for Json {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Json;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
                Ok(Json::Number(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
                Ok(Json::Number(v as f64))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
                Ok(Json::Number(v as f64))
            }
            fn visit_str<E>(self, v: &str) -> Result<Json, E> {
                Ok(Json::Text(v.to_string()))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Json, E> {
                Ok(Json::Other)
            }
            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Other)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Json::Other)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
                let mut entry = Entry::default();
                while let Some(key) = map.next_key::<String>()? {
                    match map.next_value::<Json>()? {
                        Json::Number(n) if key.contains("cost") => {
                            entry.numbers.insert(key, n);
                        }
                        Json::Text(t) if key == "litellm_provider" => entry.provider = Some(t),
                        _ => {}
                    }
                }
                Ok(Json::Object(entry))
            }
        }
        d.deserialize_any(V)
    }
}

/// `input_cost_per_token_above_200k_tokens` → 200000. Service tiers (`…_batches`, `…_priority`) are not
/// token tiers and are skipped.
fn tier_threshold(key: &str) -> Option<u64> {
    let rest = key.strip_prefix("input_cost_per_token_above_")?;
    let k = rest.strip_suffix("k_tokens")?;
    k.parse::<u64>().ok().map(|k| k * 1000)
}

/// LiteLLM key prefixes for agent provider names that differ from LiteLLM's.
fn litellm_prefix(provider: &str) -> &str {
    match provider {
        "google" | "google-gemini-cli" | "google-ai-studio" => "gemini",
        "google-vertex" | "vertex" => "vertex_ai",
        "amazon-bedrock" | "aws-bedrock" => "bedrock",
        "azure-openai" | "azure-openai-responses" => "azure",
        other => other,
    }
}

/// Ordered lookup keys for a model id, each with the rule that produced it.
pub fn candidates(provider: Option<&str>, model: &str) -> Vec<(String, &'static str)> {
    let model = model.trim();
    let mut out: Vec<(String, &'static str)> = Vec::new();
    let mut push = |key: String, rule: &'static str| {
        if !key.is_empty() && !out.iter().any(|(k, _)| *k == key) {
            out.push((key, rule));
        }
    };
    push(model.to_string(), "exact");
    push(model.to_ascii_lowercase(), "exact (lowercase)");
    if let Some(p) = provider {
        push(
            format!("{}/{model}", litellm_prefix(p)),
            "provider-prefixed key",
        );
    }
    // Routing prefixes (`openrouter/anthropic/claude-…`, `anthropic/claude-…`): drop one segment at a time.
    let mut bases = vec![model.to_ascii_lowercase()];
    let mut rest = model.to_ascii_lowercase();
    while let Some((_, tail)) = rest.split_once('/') {
        rest = tail.to_string();
        bases.push(rest.clone());
    }
    for (i, base) in bases.iter().enumerate() {
        if i > 0 {
            push(base.clone(), "without routing prefix");
        }
        let undated = strip_date(base);
        push(undated.to_string(), "without date suffix");
        let dashed = dots_to_dashes(undated);
        push(dashed, "version dots as dashes");
        push(base.replace('-', "."), "version dashes as dots");
    }
    out
}

/// Drops a trailing release date or `-latest`: `-20250929`, `-2025-04-14`, `@20250929`.
fn strip_date(model: &str) -> &str {
    let bytes = model.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    if let Some(m) = model.strip_suffix("-latest") {
        return m;
    }
    if bytes.len() > 9
        && matches!(bytes[bytes.len() - 9], b'-' | b'@')
        && digits(&bytes[bytes.len() - 8..])
    {
        return &model[..model.len() - 9];
    }
    if bytes.len() > 11
        && bytes[bytes.len() - 11] == b'-'
        && digits(&bytes[bytes.len() - 10..bytes.len() - 6])
        && bytes[bytes.len() - 6] == b'-'
        && digits(&bytes[bytes.len() - 5..bytes.len() - 3])
        && bytes[bytes.len() - 3] == b'-'
        && digits(&bytes[bytes.len() - 2..])
    {
        return &model[..model.len() - 11];
    }
    model
}

/// `claude-sonnet-4.5` → `claude-sonnet-4-5` (dots between digits only).
fn dots_to_dashes(model: &str) -> String {
    let chars: Vec<char> = model.chars().collect();
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let between_digits = i > 0
                && i + 1 < chars.len()
                && chars[i - 1].is_ascii_digit()
                && chars[i + 1].is_ascii_digit();
            if *c == '.' && between_digits {
                '-'
            } else {
                *c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_table_prices_like_the_full_one() {
        let full = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("data/prices/model_prices_and_context_window.json"),
        )
        .unwrap();
        let full = PriceTable::parse(&full, BUNDLED_VERSION).unwrap();
        let compact = PriceTable::bundled();
        assert!(full.models.len() > 3000);
        assert_eq!(
            compact.models, full.models,
            "data/prices/compact.json is stale: run scripts/compact-prices.py"
        );
    }

    #[test]
    fn aliases_resolve_to_table_keys() {
        let table = PriceTable::bundled();
        assert!(
            table.models.len() > 3000,
            "bundled table has {} priced models",
            table.models.len()
        );
        let hit =
            |p: Option<&str>, m: &str| table.lookup(p, m).map(|m| (m.key.to_string(), m.rule));
        assert_eq!(
            hit(None, "claude-sonnet-4-5"),
            Some(("claude-sonnet-4-5".into(), "exact"))
        );
        assert_eq!(
            hit(Some("openrouter"), "anthropic/claude-sonnet-4.5"),
            Some(("claude-sonnet-4-5".into(), "version dots as dashes"))
        );
        assert_eq!(
            hit(None, "gpt-4.1-2099-01-01"),
            Some(("gpt-4.1".into(), "without date suffix"))
        );
        assert_eq!(
            hit(Some("google"), "gemini-2.5-flash"),
            Some(("gemini-2.5-flash".into(), "exact"))
        );
        assert!(hit(Some("mock-openai"), "mock-gpt").is_none());
    }

    #[test]
    fn tiers_are_read_from_above_keys() {
        let table = PriceTable::bundled();
        let pro = &table.models["gemini-2.5-pro"];
        assert_eq!(pro.tiers.len(), 1);
        assert_eq!(pro.tiers[0].0, 200_000);
        assert_eq!(pro.rates_for(200_000).0.input, Some(1.25e-6));
        let (rates, tier) = pro.rates_for(200_001);
        assert_eq!(
            (rates.input, rates.output, tier),
            (Some(2.5e-6), Some(1.5e-5), Some(200_000))
        );
    }

    #[test]
    fn date_suffixes() {
        assert_eq!(
            strip_date("claude-sonnet-4-5-20250929"),
            "claude-sonnet-4-5"
        );
        assert_eq!(strip_date("gpt-4o-2024-08-06"), "gpt-4o");
        assert_eq!(
            strip_date("claude-sonnet-4-5@20250929"),
            "claude-sonnet-4-5"
        );
        assert_eq!(strip_date("gpt-5"), "gpt-5");
    }
}
