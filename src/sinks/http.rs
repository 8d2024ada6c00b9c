//! OTLP/HTTP delivery: gzip, one POST, and the classification that drives retries (DESIGN §5).

use std::io::Write;
use std::time::Duration;

use flate2::write::GzEncoder;

/// What to do after one attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// 2xx: acknowledge. `partial` when the backend said it dropped some spans (OTLP partial success);
    /// per the OTLP specification such a request is not retried.
    Delivered { partial: Option<PartialSuccess> },
    /// Connection error, timeout, 408, 429 or 5xx: try again later, not before `retry_after` if the server
    /// said so.
    Retry {
        error: String,
        retry_after: Option<Duration>,
    },
    /// Any other 4xx: the server refused this batch; record it as failed with its message.
    Refused { error: String },
}

/// An OTLP `ExportTracePartialSuccess`: a 2xx whose body says that `rejected_spans` spans were dropped
/// (or only warns, with `rejected_spans` 0). Source: the OTLP specification, "Partial Success".
#[derive(Debug, Clone, PartialEq)]
pub struct PartialSuccess {
    pub rejected_spans: u64,
    pub error_message: String,
}

/// Reads a partial success out of a 2xx body: an `ExportTraceServiceResponse` as protobuf, or its JSON form
/// (`{"partialSuccess":{"rejectedSpans":"3","errorMessage":"…"}}`, int64 as string or number). Bodies that
/// are neither (Langfuse answers `{}` or its queued job) or that report nothing give `None`.
pub fn partial_success(content_type: &str, body: &[u8]) -> Option<PartialSuccess> {
    if body.is_empty() {
        return None;
    }
    let (rejected, message) = if content_type.contains("protobuf") {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
        use prost::Message;
        let p = ExportTraceServiceResponse::decode(body)
            .ok()?
            .partial_success?;
        (p.rejected_spans.max(0) as u64, p.error_message)
    } else {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        let p = v
            .get("partialSuccess")
            .or_else(|| v.get("partial_success"))?;
        let field = |camel: &str, snake: &str| p.get(camel).or_else(|| p.get(snake)).cloned();
        let rejected = match field("rejectedSpans", "rejected_spans") {
            Some(serde_json::Value::Number(n)) => n.as_u64().unwrap_or(0),
            Some(serde_json::Value::String(s)) => s.parse().unwrap_or(0),
            _ => 0,
        };
        let message = field("errorMessage", "error_message")
            .and_then(|m| m.as_str().map(str::to_string))
            .unwrap_or_default();
        (rejected, message)
    };
    (rejected > 0 || !message.is_empty()).then_some(PartialSuccess {
        rejected_spans: rejected,
        error_message: message,
    })
}

/// A blocking HTTP client with the request timeout of the OpenTelemetry SDK default (10 s).
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("tokentrace/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("HTTP client builds")
}

/// gzip-compresses a body.
pub fn gzip(body: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(
        Vec::with_capacity(body.len() / 4),
        flate2::Compression::fast(),
    );
    enc.write_all(body).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

/// `Retry-After`: delay-seconds or an HTTP date.
pub fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let delta = when.as_millisecond() - jiff::Timestamp::now().as_millisecond();
    Some(Duration::from_millis(delta.max(0) as u64))
}

/// Sends one payload. `content_type` is `application/x-protobuf` or `application/json`; `timeout`, when
/// given, replaces the client's 10 s for this request. Messages show the URL with its user info masked.
pub fn post(
    client: &reqwest::blocking::Client,
    url: &str,
    headers: &[(String, String)],
    content_type: &str,
    body: &[u8],
    compress: bool,
    timeout: Option<Duration>,
) -> Outcome {
    let shown = super::endpoint::mask_url(url);
    let mut req = client.post(url).header("Content-Type", content_type);
    if let Some(t) = timeout {
        req = req.timeout(t);
    }
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = if compress {
        req.header("Content-Encoding", "gzip").body(gzip(body))
    } else {
        req.body(body.to_vec())
    };
    match req.send() {
        Err(e) => Outcome::Retry {
            error: super::endpoint::mask_credentials_in(&format!(
                "cannot reach {shown}: {}",
                error_chain(&e)
            ))
            .into_owned(),
            retry_after: None,
        },
        Ok(resp) => {
            let status = resp.status();
            if status.is_success() {
                let content_type = resp
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let body = resp.bytes().unwrap_or_default();
                return Outcome::Delivered {
                    partial: partial_success(&content_type, &body),
                };
            }
            let after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(retry_after);
            let text = resp.text().unwrap_or_default();
            let error = format!(
                "{shown} answered {status}: {}",
                text.chars().take(500).collect::<String>().trim()
            );
            let code = status.as_u16();
            if code == 408 || code == 429 || status.is_server_error() {
                Outcome::Retry {
                    error,
                    retry_after: after,
                }
            } else {
                Outcome::Refused { error }
            }
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// Exponential backoff with jitter: a random delay between half and all of `min(30 s, 250 ms · 2^attempt)`.
pub fn backoff(attempt: u32, seed: &mut u64) -> Duration {
    let base_ms = 250u64;
    let cap_ms = 30_000u64;
    let ceiling = base_ms.saturating_mul(1u64 << attempt.min(16)).min(cap_ms);
    // xorshift: no need for a random crate to spread retries.
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    Duration::from_millis(ceiling / 2 + *seed % (ceiling / 2 + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_success_from_protobuf_and_json_bodies() {
        use opentelemetry_proto::tonic::collector::trace::v1::{
            ExportTracePartialSuccess, ExportTraceServiceResponse,
        };
        use prost::Message;
        let pb = ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans: 3,
                error_message: "spans too old".into(),
            }),
        }
        .encode_to_vec();
        let want = Some(PartialSuccess {
            rejected_spans: 3,
            error_message: "spans too old".into(),
        });
        assert_eq!(partial_success("application/x-protobuf", &pb), want);
        let json = br#"{"partialSuccess":{"rejectedSpans":"3","errorMessage":"spans too old"}}"#;
        assert_eq!(partial_success("application/json", json), want);
        let snake = br#"{"partial_success":{"rejected_spans":3,"error_message":"spans too old"}}"#;
        assert_eq!(partial_success("application/json", snake), want);
        // Full success, Langfuse's answers, an empty partial success, and garbage: nothing to report.
        let ok = ExportTraceServiceResponse::default().encode_to_vec();
        assert_eq!(partial_success("application/x-protobuf", &ok), None);
        assert_eq!(partial_success("application/json", b"{}"), None);
        assert_eq!(
            partial_success("application/json", br#"{"id":"job-1"}"#),
            None
        );
        assert_eq!(
            partial_success("application/json", br#"{"partialSuccess":{}}"#),
            None
        );
        assert_eq!(partial_success("application/x-protobuf", b"\xff\xff"), None);
        assert_eq!(partial_success("text/plain", b"ok"), None);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon"), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut seed = 42;
        let first = backoff(0, &mut seed);
        assert!(first <= Duration::from_millis(250) && first >= Duration::from_millis(125));
        let late = backoff(20, &mut seed);
        assert!(late <= Duration::from_secs(30) && late >= Duration::from_secs(15));
    }
}
