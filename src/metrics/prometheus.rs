//! The Prometheus text exposition (format 0.0.4) of a [`Snapshot`], named by the OpenTelemetry → Prometheus
//! rules (the `prometheus` exporter's and Prometheus' own OTLP translation): dots become underscores, the
//! unit is appended as a word (`s` → `_seconds`, `USD` → `_USD`; `{…}` annotations are dropped), counters
//! end in `_total`. So `tokentrace.cost.usage` (USD) is `tokentrace_cost_usage_USD_total`, as Claude Code's
//! own `claude_code.cost.usage` is `claude_code_cost_usage_USD_total`.

use std::fmt::Write as _;

use super::collect::{Family, Kind, Snapshot, Value};

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `name` with its unit, as Prometheus names it (without the `_total` of counters).
pub fn metric_name(family: &Family) -> String {
    let mut name = sanitize(family.name);
    let unit = match family.unit {
        u if u.starts_with('{') => "",
        "s" => "seconds",
        "ms" => "milliseconds",
        "By" => "bytes",
        "1" => "ratio",
        u => u,
    };
    if !unit.is_empty() && !name.ends_with(&format!("_{unit}")) {
        name.push('_');
        name.push_str(unit);
    }
    name
}

/// A label or metric name: every character outside `[a-zA-Z0-9_]` becomes `_`.
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels_text(labels: &[(&'static str, String)], extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{}=\"{}\"", sanitize(k), escape(v)))
        .collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

/// A number as Prometheus reads it (`+Inf`, integers without a fraction).
pub(super) fn number(v: f64) -> String {
    if v.is_infinite() {
        return if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    format!("{v}")
}

/// Renders every family with at least one series.
pub fn render(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    for family in snapshot.families.iter().filter(|f| !f.series.is_empty()) {
        let base = metric_name(family);
        let name = sample_name(family);
        let _ = writeln!(out, "# HELP {name} {}", family.help);
        let _ = writeln!(out, "# TYPE {name} {}", type_name(family));
        for (labels, value) in &family.series {
            write_series(&mut out, family, &base, labels, value, None);
        }
    }
    out
}

/// `counter` or `histogram`.
pub(super) fn type_name(family: &Family) -> &'static str {
    match family.kind {
        Kind::Counter => "counter",
        Kind::Histogram(_) => "histogram",
    }
}

/// The name of a counter's samples (`…_total`) or a histogram's base name.
pub(super) fn sample_name(family: &Family) -> String {
    match family.kind {
        Kind::Counter => format!("{}_total", metric_name(family)),
        Kind::Histogram(_) => metric_name(family),
    }
}

/// Writes the sample lines of one series (`base` = [`metric_name`]), with a timestamp in seconds when given
/// (OpenMetrics backfill).
pub(super) fn write_series(
    out: &mut String,
    family: &Family,
    base: &str,
    labels: &[(&'static str, String)],
    value: &Value,
    timestamp: Option<f64>,
) {
    let ts = timestamp
        .map(|t| format!(" {}", number(t)))
        .unwrap_or_default();
    match (value, family.kind) {
        (Value::Counter(v), _) => {
            let _ = writeln!(
                out,
                "{base}_total{} {}{ts}",
                labels_text(labels, None),
                number(*v)
            );
        }
        (Value::Histogram { counts, sum, count }, Kind::Histogram(bounds)) => {
            let mut cumulative = 0;
            for (i, n) in counts.iter().enumerate() {
                cumulative += n;
                let le = bounds.get(i).copied().unwrap_or(f64::INFINITY);
                let _ = writeln!(
                    out,
                    "{base}_bucket{} {cumulative}{ts}",
                    labels_text(labels, Some(("le", number(le))))
                );
            }
            let _ = writeln!(
                out,
                "{base}_sum{} {}{ts}",
                labels_text(labels, None),
                number(*sum)
            );
            let _ = writeln!(out, "{base}_count{} {count}{ts}", labels_text(labels, None));
        }
        (Value::Histogram { .. }, Kind::Counter) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_otlp_to_prometheus_rules() {
        let family = |name, unit, kind| Family {
            name,
            unit,
            help: "",
            kind,
            series: Default::default(),
            starts: Default::default(),
        };
        assert_eq!(
            metric_name(&family("tokentrace.cost.usage", "USD", Kind::Counter)),
            "tokentrace_cost_usage_USD"
        );
        assert_eq!(
            metric_name(&family(
                "gen_ai.client.operation.duration",
                "s",
                Kind::Histogram(&[1.0])
            )),
            "gen_ai_client_operation_duration_seconds"
        );
        assert_eq!(
            metric_name(&family(
                "gen_ai.client.inference.usage.input_tokens",
                "{token}",
                Kind::Counter
            )),
            "gen_ai_client_inference_usage_input_tokens"
        );
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(number(3.0), "3");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(f64::INFINITY), "+Inf");
    }
}
