//! A fingerprint of the prices in effect: the bundled table (its release and a hash of its content, plus the
//! version of the cost rules) and the config file's `[prices]` overrides, canonicalised.
//!
//! The store keeps the fingerprint its costs were computed with (`meta.price_fingerprint`); when the current
//! one differs, every stored generation is priced again (see `Store::reprice`), so prices follow the config
//! and a new table instead of staying as they were at import time.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use super::table::{BUNDLED_JSON, BUNDLED_VERSION};
use super::OverridePrice;

/// Version of the cost rules in [`super::Pricer::cost`]. Bump it when a change to the rules changes what an
/// already-stored generation costs: stores then re-price on their next import.
pub const RULES_VERSION: u32 = 1;

/// What the prices in effect are, in two parts so a change can be named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceFingerprint {
    /// The bundled table and cost rules: `rules 1, litellm 1.109.1, sha256 8f8060d8ce7a40c9`.
    pub table: String,
    /// The config overrides: `none`, or their count and a hash of their canonical form
    /// (`2, sha256 0123456789abcdef`).
    pub overrides: String,
}

impl PriceFingerprint {
    /// The fingerprint of the bundled table with `overrides` (keys `model` or `provider/model`, prices in
    /// USD per million tokens). Independent of the overrides' order; any change to a key or a rate changes it.
    pub fn new(overrides: &HashMap<String, OverridePrice>) -> PriceFingerprint {
        PriceFingerprint {
            table: format!(
                "rules {RULES_VERSION}, {BUNDLED_VERSION}, sha256 {}",
                table_hash()
            ),
            overrides: overrides_part(overrides),
        }
    }

    /// The form kept in the store: `table=…; overrides=…`.
    pub fn encode(&self) -> String {
        format!("table={}; overrides={}", self.table, self.overrides)
    }

    /// Reads [`PriceFingerprint::encode`]'s form; `None` for anything else.
    pub fn decode(s: &str) -> Option<PriceFingerprint> {
        let (table, overrides) = s.split_once("; ")?;
        Some(PriceFingerprint {
            table: table.strip_prefix("table=")?.to_string(),
            overrides: overrides.strip_prefix("overrides=")?.to_string(),
        })
    }

    /// What differs from the fingerprint `previous` (as stored): `["price table"]`, `["config overrides"]`,
    /// both, or `["prices not recorded"]` when the store kept none (or an unreadable one). Empty when equal.
    pub fn changes(&self, previous: Option<&str>) -> Vec<&'static str> {
        let Some(prev) = previous.and_then(PriceFingerprint::decode) else {
            return vec!["prices not recorded"];
        };
        let mut out = Vec::new();
        if prev.table != self.table {
            out.push("price table");
        }
        if prev.overrides != self.overrides {
            out.push("config overrides");
        }
        out
    }
}

/// First 16 hex digits of the SHA-256 of the bundled JSON, computed once.
fn table_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| hex16(&Sha256::digest(BUNDLED_JSON.as_bytes())))
}

fn hex16(digest: &[u8]) -> String {
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// `none`, or `<count>, sha256 <hash>` over one line per override, sorted by key:
/// `"key" input output cache_read cache_write cache_write_1h` (shortest exact decimal form, `-` when unset).
fn overrides_part(overrides: &HashMap<String, OverridePrice>) -> String {
    if overrides.is_empty() {
        return "none".to_string();
    }
    let mut keys: Vec<&String> = overrides.keys().collect();
    keys.sort();
    let num = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:?}"));
    let mut text = String::new();
    for key in keys {
        let p = &overrides[key];
        let _ = writeln!(
            text,
            "{key:?} {} {} {} {} {}",
            num(Some(p.input)),
            num(p.output),
            num(p.cache_read),
            num(p.cache_write),
            num(p.cache_write_1h)
        );
    }
    format!(
        "{}, sha256 {}",
        overrides.len(),
        hex16(&Sha256::digest(text.as_bytes()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(input: f64, output: Option<f64>) -> OverridePrice {
        OverridePrice {
            input,
            output,
            ..Default::default()
        }
    }

    #[test]
    fn overrides_are_canonical_and_every_rate_counts() {
        let none = PriceFingerprint::new(&HashMap::new());
        assert_eq!(none.overrides, "none");
        assert!(none.table.contains(BUNDLED_VERSION), "{}", none.table);

        let a: HashMap<_, _> = [
            ("a".to_string(), price(1.0, Some(2.0))),
            ("b".to_string(), price(3.0, None)),
        ]
        .into();
        // Same content inserted in another order: same fingerprint.
        let b: HashMap<_, _> = [
            ("b".to_string(), price(3.0, None)),
            ("a".to_string(), price(1.0, Some(2.0))),
        ]
        .into();
        let fa = PriceFingerprint::new(&a);
        assert_eq!(fa, PriceFingerprint::new(&b));
        assert_eq!(fa.table, none.table);
        assert!(fa.overrides.starts_with("2, sha256 "), "{}", fa.overrides);

        let mut c = a.clone();
        c.insert("a".to_string(), price(1.0, Some(2.000001)));
        assert_ne!(PriceFingerprint::new(&c), fa);
        let mut d = a.clone();
        d.insert("b".to_string(), price(3.0, Some(0.0)));
        assert_ne!(PriceFingerprint::new(&d), fa);
    }

    #[test]
    fn changes_name_the_part_that_changed() {
        let none = PriceFingerprint::new(&HashMap::new());
        let one = PriceFingerprint::new(&[("m".to_string(), price(1.0, None))].into());
        assert_eq!(PriceFingerprint::decode(&one.encode()), Some(one.clone()));
        assert!(one.changes(Some(&one.encode())).is_empty());
        assert_eq!(one.changes(Some(&none.encode())), vec!["config overrides"]);
        let old_table = PriceFingerprint {
            table: "rules 1, litellm 1.0.0, sha256 0000000000000000".into(),
            ..none.clone()
        };
        assert_eq!(
            one.changes(Some(&old_table.encode())),
            vec!["price table", "config overrides"]
        );
        assert_eq!(one.changes(None), vec!["prices not recorded"]);
        assert_eq!(one.changes(Some("garbage")), vec!["prices not recorded"]);
    }
}
