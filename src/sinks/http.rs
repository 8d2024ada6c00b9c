//! OTLP/HTTP delivery: gzip, one POST, and the classification that drives retries (DESIGN §5).

use std::io::Write;
use std::time::Duration;

use flate2::write::GzEncoder;

/// What to do after one attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// 2xx: acknowledge.
    Delivered,
    /// Connection error, timeout, 408, 429 or 5xx: try again later, not before `retry_after` if the server
    /// said so.
    Retry {
        error: String,
        retry_after: Option<Duration>,
    },
    /// Any other 4xx: the server refused this batch; record it as failed with its message.
    Refused { error: String },
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

/// Sends one payload. `content_type` is `application/x-protobuf` or `application/json`.
pub fn post(
    client: &reqwest::blocking::Client,
    url: &str,
    headers: &[(String, String)],
    content_type: &str,
    body: &[u8],
    compress: bool,
) -> Outcome {
    let mut req = client.post(url).header("Content-Type", content_type);
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
            error: format!("cannot reach {url}: {}", error_chain(&e)),
            retry_after: None,
        },
        Ok(resp) => {
            let status = resp.status();
            if status.is_success() {
                return Outcome::Delivered;
            }
            let after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(retry_after);
            let text = resp.text().unwrap_or_default();
            let error = format!(
                "{url} answered {status}: {}",
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
