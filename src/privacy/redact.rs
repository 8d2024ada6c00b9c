//! Secret redaction: replaces credentials in any text with `[REDACTED:<kind>]`.
//!
//! Kinds and what they match (prefixes and lengths from each vendor's documented token formats):
//! `anthropic-key` (`sk-ant-…`), `langfuse-key` (`pk-lf-…`, `sk-lf-…`), `openai-key` (`sk-…`, `sk-proj-…`),
//! `aws-access-key-id` (`AKIA…`/`ASIA…` + 16), `aws-secret-key` (40 base64 chars after an AWS secret name),
//! `github-token` (`ghp_`/`gho_`/`ghu_`/`ghs_`/`ghr_`, `github_pat_`), `slack-token` (`xox[abposr]-…`),
//! `google-api-key` (`AIza` + 35), `stripe-key` (`sk_live_`/`rk_live_`/`sk_test_`), `jwt` (three base64url
//! parts starting `eyJ`), `bearer-token` (`Authorization: Bearer …`), `private-key` (PEM private key blocks,
//! also with escaped `\n`), `url-credentials` (`scheme://user:password@`), `env-secret` (`.env`-style
//! assignments whose name ends in KEY / TOKEN / SECRET / PASSWORD), `env-value` (the literal value, ≥ 8
//! chars, of an environment variable whose name looks secret), `literal` (values listed in the config).
//!
//! Cost: one pass of a [`RegexSet`] (a single automaton) decides which patterns can match; only those run.
//! Literals are found with one Aho-Corasick automaton.

use std::collections::BTreeMap;

use aho_corasick::AhoCorasick;
use regex::{Captures, Regex, RegexSet};

/// One pattern: the kind it reports and, when the secret is only part of the match, the capture group that
/// holds it (the rest, such as a variable name, is kept).
struct Pattern {
    kind: &'static str,
    regex: &'static str,
    group: usize,
}

/// Order matters: more specific kinds first (`sk-ant-` before `sk-`). Word boundaries are ASCII
/// (`(?-u:\b)`): every token these patterns find is ASCII, and a Unicode `\b` makes the regex engine leave
/// its lazy DFA for the much slower PikeVM on non-ASCII text (13 % of a cold import, bench/BENCHMARKS.md).
const PATTERNS: &[Pattern] = &[
    Pattern {
        kind: "private-key",
        regex: r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?:[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----|[A-Za-z0-9+/=\s\\]*)",
        group: 0,
    },
    Pattern {
        kind: "anthropic-key",
        regex: r"(?-u:\b)sk-ant-[A-Za-z0-9_\-]{20,}",
        group: 0,
    },
    Pattern {
        kind: "langfuse-key",
        regex: r"(?-u:\b)(?:pk|sk)-lf-[A-Za-z0-9\-]{8,}",
        group: 0,
    },
    Pattern {
        kind: "openai-key",
        regex: r"(?-u:\b)sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",
        group: 0,
    },
    Pattern {
        kind: "aws-access-key-id",
        regex: r"(?-u:\b)(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}(?-u:\b)",
        group: 0,
    },
    Pattern {
        kind: "aws-secret-key",
        regex: r#"(?i)(?:aws|amazon)[a-z0-9_\-.]{0,30}(?:secret|private)[a-z0-9_\-.]{0,20}["']?\s*[:=]\s*["']?([A-Za-z0-9/+=]{40})(?:[^A-Za-z0-9/+=]|$)"#,
        group: 1,
    },
    Pattern {
        kind: "github-token",
        regex: r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
        group: 0,
    },
    Pattern {
        kind: "slack-token",
        regex: r"(?-u:\b)xox[abposr]-[A-Za-z0-9\-]{10,}",
        group: 0,
    },
    Pattern {
        kind: "google-api-key",
        regex: r"(?-u:\b)AIza[0-9A-Za-z_\-]{35}",
        group: 0,
    },
    Pattern {
        kind: "stripe-key",
        regex: r"(?-u:\b)(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,}",
        group: 0,
    },
    Pattern {
        kind: "jwt",
        regex: r"(?-u:\b)eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
        group: 0,
    },
    Pattern {
        kind: "bearer-token",
        regex: r"(?i)(?-u:\b)bearer\s+([A-Za-z0-9._~+/\-]{16,}=*)",
        group: 1,
    },
    Pattern {
        kind: "url-credentials",
        regex: r"(?-u:\b)[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@'\x22]+:([^\s@/'\x22]+)@",
        group: 1,
    },
    Pattern {
        kind: "env-secret",
        regex: r#"(?i)(?-u:\b)[a-z0-9_]*(?:key|token|secret|password|passwd|pwd)(?-u:\b)["']?\s*[:=]\s*["']?([^\s"'\\,;&]{8,})"#,
        group: 1,
    },
];

/// Environment variable names whose values are treated as secrets.
fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    [
        "KEY",
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "CREDENTIAL",
        "AUTH",
    ]
    .iter()
    .any(|w| upper.contains(w))
}

/// Values an `env-secret` match must not redact: placeholders and plain numbers.
fn is_placeholder(value: &str) -> bool {
    value.starts_with(['$', '<', '{', '[', '%'])
        || value.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        || matches!(
            value.to_ascii_lowercase().as_str(),
            "undefined" | "none" | "null" | "true" | "false"
        )
}

/// [`PATTERNS`] compiled, once per process and only when a text is redacted: compiling them took ~2.8 ms, a
/// sixth of a `status` call that found nothing new.
static COMPILED: std::sync::LazyLock<(RegexSet, Vec<Regex>)> = std::sync::LazyLock::new(|| {
    let set = RegexSet::new(PATTERNS.iter().map(|p| p.regex)).expect("patterns compile");
    let regexes = PATTERNS
        .iter()
        .map(|p| Regex::new(p.regex).expect("pattern compiles"))
        .collect();
    (set, regexes)
});

/// Redacts secrets from text. Built once per import.
pub struct Redactor {
    literals: Option<AhoCorasick>,
    literal_kinds: Vec<&'static str>,
}

/// Redactions per kind.
pub type Counts = BTreeMap<&'static str, u64>;

impl Redactor {
    /// A redactor for the built-in patterns, the secret-looking variables of `env` and `literals` from the
    /// config file (values shorter than 8 chars are ignored: too likely to occur by chance).
    pub fn new<'a>(
        env: impl IntoIterator<Item = (&'a str, &'a str)>,
        literals: &[String],
    ) -> Redactor {
        Redactor::with_credentials(env, literals, &[])
    }

    /// As [`Redactor::new`], plus `credentials`: values known to be secrets whatever the name of the
    /// variable they came from (OTLP header values, URL passwords; see
    /// [`crate::sinks::endpoint::credential_values`]). Redacted as `env-value` when ≥ 8 chars, placeholders
    /// and plain numbers included.
    pub fn with_credentials<'a>(
        env: impl IntoIterator<Item = (&'a str, &'a str)>,
        literals: &[String],
        credentials: &[String],
    ) -> Redactor {
        let mut needles: Vec<(String, &'static str)> = Vec::new();
        for (name, value) in env {
            if is_secret_name(name) && value.len() >= 8 && !is_placeholder(value) {
                needles.push((value.to_string(), "env-value"));
            }
        }
        for c in credentials.iter().filter(|c| c.len() >= 8) {
            needles.push((c.clone(), "env-value"));
        }
        for l in literals.iter().filter(|l| l.len() >= 8) {
            needles.push((l.clone(), "literal"));
        }
        // Longest first so that a value containing another is replaced whole.
        needles.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        needles.dedup_by(|a, b| a.0 == b.0);
        let literals = (!needles.is_empty()).then(|| {
            AhoCorasick::builder()
                .match_kind(aho_corasick::MatchKind::LeftmostLongest)
                .build(needles.iter().map(|(v, _)| v))
                .expect("literal automaton builds")
        });
        Redactor {
            literals,
            literal_kinds: needles.into_iter().map(|(_, k)| k).collect(),
        }
    }

    /// Returns the text with every secret replaced, or `None` when nothing matched (no allocation).
    pub fn redact(&self, text: &str, counts: &mut Counts) -> Option<String> {
        let mut current: Option<String> = None;
        if let Some(ac) = &self.literals {
            if ac.is_match(text) {
                let mut out = String::with_capacity(text.len());
                let mut last = 0;
                for m in ac.find_iter(text) {
                    out.push_str(&text[last..m.start()]);
                    let kind = self.literal_kinds[m.pattern().as_usize()];
                    out.push_str(&format!("[REDACTED:{kind}]"));
                    *counts.entry(kind).or_default() += 1;
                    last = m.end();
                }
                out.push_str(&text[last..]);
                current = Some(out);
            }
        }
        let (set, regexes) = &*COMPILED;
        let matched = set.matches(current.as_deref().unwrap_or(text));
        if !matched.matched_any() {
            return current;
        }
        for index in matched.iter() {
            let pattern = &PATTERNS[index];
            let source = current.as_deref().unwrap_or(text);
            let mut n = 0u64;
            let replaced = regexes[index].replace_all(source, |caps: &Captures<'_>| {
                let whole = caps.get(0).expect("match");
                let Some(secret) = caps.get(pattern.group) else {
                    return whole.as_str().to_string();
                };
                if pattern.kind == "env-secret" && is_placeholder(secret.as_str())
                    || secret.as_str().starts_with("[REDACTED")
                {
                    return whole.as_str().to_string();
                }
                n += 1;
                let s = whole.as_str();
                let (a, b) = (secret.start() - whole.start(), secret.end() - whole.start());
                format!("{}[REDACTED:{}]{}", &s[..a], pattern.kind, &s[b..])
            });
            if n > 0 {
                *counts.entry(pattern.kind).or_default() += n;
                current = Some(replaced.into_owned());
            }
        }
        current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(text: &str) -> String {
        let r = Redactor::new(
            [("MY_API_TOKEN", "tok-8f3a9c2e1b7d")],
            &["corp-internal-passphrase".to_string()],
        );
        r.redact(text, &mut Counts::new())
            .unwrap_or_else(|| text.to_string())
    }

    #[test]
    fn keeps_the_kind_and_the_context() {
        assert_eq!(
            redact("export GITHUB_TOKEN=ghp_aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5"),
            "export GITHUB_TOKEN=[REDACTED:github-token]"
        );
        assert_eq!(
            redact("key sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWx done"),
            "key [REDACTED:anthropic-key] done"
        );
        assert_eq!(
            redact("Authorization: Bearer abcdefghijklmnopqrstuvwx"),
            "Authorization: Bearer [REDACTED:bearer-token]"
        );
        assert_eq!(
            redact("postgres://app:s3cr3tPass@db:5432/x"),
            "postgres://app:[REDACTED:url-credentials]@db:5432/x"
        );
        assert_eq!(
            redact("DB_PASSWORD=hunter2hunter2"),
            "DB_PASSWORD=[REDACTED:env-secret]"
        );
        assert_eq!(
            redact("use tok-8f3a9c2e1b7d now"),
            "use [REDACTED:env-value] now"
        );
        assert_eq!(
            redact("the corp-internal-passphrase!"),
            "the [REDACTED:literal]!"
        );
    }

    #[test]
    fn leaves_look_alikes_alone() {
        for text in [
            "commit 3f9a1c2b4d5e6f708192a3b4c5d6e7f8091a2b3c",
            "id 123e4567-e89b-12d3-a456-426614174000",
            "max_tokens=200000",
            "api_key=${OPENAI_API_KEY}",
            "skeleton-key-holder",
            "task-runner-configuration",
        ] {
            assert_eq!(redact(text), text);
        }
    }
}
