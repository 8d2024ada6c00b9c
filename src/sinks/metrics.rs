//! OTLP/HTTP metrics: the metric set ([`crate::metrics::collect`]) as an `ExportMetricsServiceRequest`,
//! pushed to `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` (or the base endpoint + `/v1/metrics`) by `sync` and, every
//! `OTEL_METRIC_EXPORT_INTERVAL`, by `watch`.
//!
//! Temporality is cumulative by default (what Prometheus-style backends need): every push carries each
//! series' value over everything stored, with the start time of its first measurement, so a restart or a
//! second machine pushing the same store never double counts. With
//! `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta` a push carries what changed since the last push
//! the backend acknowledged (kept per series in the store, so a restart neither repeats nor skips anything),
//! starting at that push's time; series that did not change are left out. Counters are monotonic `Sum`s
//! (integers, cost as a double); histograms carry the GenAI conventions' explicit bucket bounds.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Histogram, HistogramDataPoint, Metric,
    NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use prost::Message;

use super::encode::{resource, scope, ExportSettings};
use super::endpoint::{Endpoint, Protocol};
use super::http;
use crate::metrics::collect::{Kind, Snapshot, Value};
use crate::store::Store;

fn attributes(labels: &[(&'static str, String)]) -> Vec<KeyValue> {
    labels
        .iter()
        .map(|(k, v)| KeyValue {
            key: k.to_string(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.clone())),
            }),
        })
        .collect()
}

fn nanos(ms: i64) -> u64 {
    (ms.max(0) as u64).saturating_mul(1_000_000)
}

/// How values relate to earlier pushes (`OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Temporality {
    /// Everything since the series began (default).
    #[default]
    Cumulative,
    /// What changed since the last acknowledged push (`delta`, and `lowmemory`, which is delta for counters
    /// and histograms).
    Delta,
}

impl Temporality {
    /// From `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE` (case-insensitive). Errors: another value.
    pub fn parse(value: Option<&str>) -> Result<Temporality> {
        match value.map(str::to_ascii_lowercase).as_deref() {
            None | Some("") | Some("cumulative") => Ok(Temporality::Cumulative),
            Some("delta") | Some("lowmemory") => Ok(Temporality::Delta),
            Some(other) => anyhow::bail!(
                "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE={other}: expected cumulative, delta or lowmemory"
            ),
        }
    }
}

/// The key a series' pushed value is kept under: `name{label=value,…}`.
fn series_key(name: &str, labels: &[(&'static str, String)]) -> String {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{name}{{{}}}", labels.join(","))
}

fn value_json(value: &Value) -> String {
    match value {
        Value::Counter(v) => serde_json::json!(v).to_string(),
        Value::Histogram { counts, sum, count } => {
            serde_json::json!({ "counts": counts, "sum": sum, "count": count }).to_string()
        }
    }
}

/// `current - previous`, `None` when nothing changed. A value that went down (costs re-priced lower, a
/// session whose file is gone) starts over: the delta is the whole current value.
fn subtract(current: &Value, previous: &str) -> Option<Value> {
    let prev: serde_json::Value = serde_json::from_str(previous).ok()?;
    match current {
        Value::Counter(v) => {
            let p = prev.as_f64()?;
            let d = if *v >= p { v - p } else { *v };
            (d != 0.0).then_some(Value::Counter(d))
        }
        Value::Histogram { counts, sum, count } => {
            let pc: Vec<u64> = serde_json::from_value(prev["counts"].clone()).ok()?;
            let (ps, pn) = (prev["sum"].as_f64()?, prev["count"].as_u64()?);
            if pc.len() != counts.len() || *count < pn || counts.iter().zip(&pc).any(|(c, p)| c < p)
            {
                return Some(current.clone());
            }
            (*count != pn).then(|| Value::Histogram {
                counts: counts.iter().zip(&pc).map(|(c, p)| c - p).collect(),
                sum: sum - ps,
                count: count - pn,
            })
        }
    }
}

/// The delta snapshot of `snapshot` against `previous` (what [`Store::metric_pushes`] returned), and the
/// state to record once the backend acknowledged it. A series never pushed carries its whole value from its
/// first measurement; an unchanged one is left out.
pub fn delta(
    snapshot: &Snapshot,
    previous: &HashMap<String, (String, i64)>,
) -> (Snapshot, Vec<(String, String)>) {
    let mut out = snapshot.clone();
    let mut state = Vec::new();
    for family in &mut out.families {
        let series = std::mem::take(&mut family.series);
        for (labels, value) in series {
            let key = series_key(family.name, &labels);
            let changed = match previous.get(&key) {
                None => Some(value.clone()),
                Some((prev, pushed_ms)) => {
                    let d = subtract(&value, prev);
                    if d.is_some() {
                        family.starts.insert(labels.clone(), *pushed_ms);
                    }
                    d
                }
            };
            if let Some(d) = changed {
                state.push((key, value_json(&value)));
                family.series.insert(labels, d);
            }
        }
    }
    (out, state)
}

/// The request for `snapshot` at `now_ms`. A series without a known first measurement starts at `now_ms`.
pub fn request(
    snapshot: &Snapshot,
    settings: &ExportSettings,
    now_ms: i64,
    temporality: Temporality,
) -> ExportMetricsServiceRequest {
    let cumulative = match temporality {
        Temporality::Cumulative => AggregationTemporality::Cumulative as i32,
        Temporality::Delta => AggregationTemporality::Delta as i32,
    };
    let mut metrics = Vec::new();
    for family in snapshot.families.iter().filter(|f| !f.series.is_empty()) {
        let start = |labels| nanos(family.starts.get(labels).copied().unwrap_or(now_ms));
        let data = match family.kind {
            Kind::Counter => metric::Data::Sum(Sum {
                data_points: family
                    .series
                    .iter()
                    .filter_map(|(labels, value)| match value {
                        Value::Counter(v) => Some(NumberDataPoint {
                            attributes: attributes(labels),
                            start_time_unix_nano: start(labels),
                            time_unix_nano: nanos(now_ms),
                            // Counts and tokens are integers; only money has a fraction.
                            value: Some(if family.unit == "USD" {
                                number_data_point::Value::AsDouble(*v)
                            } else {
                                number_data_point::Value::AsInt(*v as i64)
                            }),
                            ..Default::default()
                        }),
                        Value::Histogram { .. } => None,
                    })
                    .collect(),
                aggregation_temporality: cumulative,
                is_monotonic: true,
            }),
            Kind::Histogram(bounds) => metric::Data::Histogram(Histogram {
                data_points: family
                    .series
                    .iter()
                    .filter_map(|(labels, value)| match value {
                        Value::Histogram { counts, sum, count } => Some(HistogramDataPoint {
                            attributes: attributes(labels),
                            start_time_unix_nano: start(labels),
                            time_unix_nano: nanos(now_ms),
                            count: *count,
                            sum: Some(*sum),
                            bucket_counts: counts.clone(),
                            explicit_bounds: bounds.to_vec(),
                            ..Default::default()
                        }),
                        Value::Counter(_) => None,
                    })
                    .collect(),
                aggregation_temporality: cumulative,
            }),
        };
        metrics.push(Metric {
            name: family.name.to_string(),
            description: family.help.to_string(),
            unit: family.unit.to_string(),
            data: Some(data),
            ..Default::default()
        });
    }
    // `host.name` tells the machines of a team apart: each pushes the same series for its own store.
    let mut resource = resource(settings);
    let host = super::hostname();
    if !host.is_empty() && !resource.attributes.iter().any(|a| a.key == "host.name") {
        resource.attributes.push(KeyValue {
            key: "host.name".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(host)),
            }),
        });
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(scope()),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// What one push did.
#[derive(Debug, Clone, PartialEq)]
pub struct PushReport {
    pub url: String,
    /// Data points sent in the acknowledged request (0 when it failed).
    pub points: u64,
    /// Attempts made (retries after connection errors, 429 and 5xx included).
    pub attempts: u32,
    /// Why the push did not land, when it did not.
    pub error: Option<String>,
}

/// Pushes `snapshot` to `endpoint` at `now_ms`, retrying connection errors, 429 and 5xx with backoff (and
/// `Retry-After`) within `budget`. Backend problems are in the report, never an `Err`: the next push
/// carries the same cumulative values, so nothing is lost by giving up.
pub fn push(
    endpoint: &Endpoint,
    snapshot: &Snapshot,
    settings: &ExportSettings,
    now_ms: i64,
    budget: Duration,
    temporality: Temporality,
    store: &Store,
) -> Result<PushReport> {
    let (snapshot, state) = match temporality {
        Temporality::Cumulative => (snapshot.clone(), Vec::new()),
        Temporality::Delta => delta(snapshot, &store.metric_pushes(endpoint.name)?),
    };
    let snapshot = &snapshot;
    let req = request(snapshot, settings, now_ms, temporality);
    let points: u64 = snapshot
        .families
        .iter()
        .map(|f| f.series.len() as u64)
        .sum();
    if points == 0 && temporality == Temporality::Delta {
        // Nothing changed since the last push: nothing to say.
        return Ok(PushReport {
            url: endpoint.display_url(),
            points: 0,
            attempts: 0,
            error: None,
        });
    }
    let (body, content_type) = match endpoint.protocol {
        Protocol::Protobuf => (req.encode_to_vec(), "application/x-protobuf"),
        Protocol::Json => (serde_json::to_vec(&req)?, "application/json"),
    };
    let client = http::client();
    let deadline = std::time::Instant::now() + budget;
    let mut seed = (now_ms as u64) | 1;
    let mut report = PushReport {
        url: endpoint.display_url(),
        points: 0,
        attempts: 0,
        error: None,
    };
    loop {
        report.attempts += 1;
        match http::post(
            &client,
            &endpoint.url,
            &endpoint.headers,
            content_type,
            &body,
            true,
            None,
        ) {
            http::Outcome::Delivered { .. } => {
                report.points = points;
                report.error = None;
                if !state.is_empty() {
                    store.record_metric_pushes(endpoint.name, &state, now_ms)?;
                }
                return Ok(report);
            }
            http::Outcome::Refused { error } => {
                report.error = Some(endpoint.scrub(&error));
                return Ok(report);
            }
            http::Outcome::Retry { error, retry_after } => {
                report.error = Some(endpoint.scrub(&error));
                let wait = retry_after
                    .unwrap_or_else(|| http::backoff(report.attempts, &mut seed))
                    .min(Duration::from_secs(300));
                if std::time::Instant::now() + wait > deadline {
                    return Ok(report);
                }
                std::thread::sleep(wait);
            }
        }
    }
}
