//! OTLP/HTTP metrics: the metric set ([`crate::metrics::collect`]) as an `ExportMetricsServiceRequest`,
//! pushed to `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` (or the base endpoint + `/v1/metrics`) by `sync` and, every
//! `OTEL_METRIC_EXPORT_INTERVAL`, by `watch`.
//!
//! Temporality is cumulative (what Prometheus-style backends need): every push carries each series' value
//! over everything stored, with the start time of its first measurement, so a restart or a second machine
//! pushing the same store never double counts. Counters are monotonic `Sum`s (integers, cost as a double);
//! histograms carry the GenAI conventions' explicit bucket bounds.

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

/// The request for `snapshot` at `now_ms`. A series without a known first measurement starts at `now_ms`.
pub fn request(
    snapshot: &Snapshot,
    settings: &ExportSettings,
    now_ms: i64,
) -> ExportMetricsServiceRequest {
    let cumulative = AggregationTemporality::Cumulative as i32;
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
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource(settings)),
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
) -> Result<PushReport> {
    let req = request(snapshot, settings, now_ms);
    let points: u64 = snapshot
        .families
        .iter()
        .map(|f| f.series.len() as u64)
        .sum();
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
