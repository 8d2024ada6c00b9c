//! Which backends to send to, from the standard environment variables (DESIGN §1):
//! the OpenTelemetry SDK's `OTEL_EXPORTER_OTLP_*` (endpoint, headers, protocol, service name, resource
//! attributes) and Langfuse's `LANGFUSE_*` keys.

use anyhow::{bail, Result};

use crate::sources::Env;

/// OTLP/HTTP payload encoding (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `http/protobuf` (default).
    Protobuf,
    /// `http/json` (OTLP/JSON: hex ids, string nanos).
    Json,
}

/// One trace backend.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    /// Sink name, used for the delivery state: `otlp` or `langfuse`.
    pub name: &'static str,
    /// Full traces URL.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub protocol: Protocol,
    /// Langfuse: also POST scores to `{base}/api/public/scores`.
    pub scores_url: Option<String>,
}

/// `k1=v1,k2=v2` with percent-encoded values (OpenTelemetry SDK environment specification).
pub fn parse_pairs(list: &str) -> Vec<(String, String)> {
    list.split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            let k = k.trim();
            (!k.is_empty()).then(|| (k.to_string(), percent_decode(v.trim())))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn base64(input: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            out.push(if k <= chunk.len() {
                T[((n >> (18 - 6 * k)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

fn protocol(env: &Env) -> Result<Protocol> {
    let value = env
        .var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| env.var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or("http/protobuf");
    match value {
        "http/protobuf" => Ok(Protocol::Protobuf),
        "http/json" => Ok(Protocol::Json),
        "grpc" => bail!(
            "OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported: use http/protobuf or http/json"
        ),
        other => bail!(
            "unknown OTEL_EXPORTER_OTLP_PROTOCOL '{other}': expected http/protobuf or http/json"
        ),
    }
}

/// The configured backends (none = local store and reports only).
pub fn configured(env: &Env) -> Result<Vec<Endpoint>> {
    let mut out = Vec::new();
    let traces_url = env
        .var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .map(str::to_string)
        .or_else(|| {
            env.var("OTEL_EXPORTER_OTLP_ENDPOINT")
                .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
        });
    if let Some(url) = traces_url {
        let mut headers = env
            .var("OTEL_EXPORTER_OTLP_HEADERS")
            .map(parse_pairs)
            .unwrap_or_default();
        headers.extend(
            env.var("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
                .map(parse_pairs)
                .unwrap_or_default(),
        );
        out.push(Endpoint {
            name: "otlp",
            url,
            headers,
            protocol: protocol(env)?,
            scores_url: None,
        });
    }
    match (
        env.var("LANGFUSE_PUBLIC_KEY"),
        env.var("LANGFUSE_SECRET_KEY"),
    ) {
        (Some(pk), Some(sk)) => {
            let base = env
                .var("LANGFUSE_BASE_URL")
                .or_else(|| env.var("LANGFUSE_HOST"))
                .unwrap_or("https://cloud.langfuse.com")
                .trim_end_matches('/')
                .to_string();
            out.push(Endpoint {
                name: "langfuse",
                url: format!("{base}/api/public/otel/v1/traces"),
                headers: vec![
                    (
                        "Authorization".into(),
                        format!("Basic {}", base64(format!("{pk}:{sk}").as_bytes())),
                    ),
                    ("x-langfuse-ingestion-version".into(), "4".into()),
                    ("x-langfuse-sdk-name".into(), "tokentrace".into()),
                    (
                        "x-langfuse-sdk-version".into(),
                        env!("CARGO_PKG_VERSION").into(),
                    ),
                    ("x-langfuse-public-key".into(), pk.to_string()),
                ],
                protocol: Protocol::Protobuf,
                scores_url: Some(format!("{base}/api/public/scores")),
            });
        }
        (Some(_), None) | (None, Some(_)) => {
            bail!(
                "Langfuse needs both LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY (only one is set)"
            )
        }
        (None, None) => {}
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Env {
        Env {
            home: None,
            vars: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn otlp_follows_the_sdk_environment_spec() {
        let e = configured(&env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=a%3Db,tenant=t1"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ]))
        .unwrap();
        assert_eq!(e[0].url, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(
            e[0].headers,
            vec![
                ("x-api-key".into(), "a=b".into()),
                ("tenant".into(), "t1".into())
            ]
        );
        assert_eq!(e[0].protocol, Protocol::Json);
        let direct = configured(&env(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://h/custom",
        )]))
        .unwrap();
        assert_eq!(
            (direct[0].url.as_str(), direct[0].protocol),
            ("http://h/custom", Protocol::Protobuf)
        );
        assert!(configured(&env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://h"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        ]))
        .is_err());
        assert!(configured(&env(&[])).unwrap().is_empty());
    }

    #[test]
    fn langfuse_uses_basic_auth_and_ingestion_version_4() {
        let e = configured(&env(&[
            ("LANGFUSE_PUBLIC_KEY", "pk-lf-1"),
            ("LANGFUSE_SECRET_KEY", "sk-lf-2"),
            ("LANGFUSE_HOST", "http://lf:3000/"),
        ]))
        .unwrap();
        assert_eq!(e[0].url, "http://lf:3000/api/public/otel/v1/traces");
        // base64("pk-lf-1:sk-lf-2")
        assert!(e[0]
            .headers
            .contains(&("Authorization".into(), "Basic cGstbGYtMTpzay1sZi0y".into())));
        assert!(e[0]
            .headers
            .contains(&("x-langfuse-ingestion-version".into(), "4".into())));
        assert_eq!(
            e[0].scores_url.as_deref(),
            Some("http://lf:3000/api/public/scores")
        );
        assert!(configured(&env(&[("LANGFUSE_PUBLIC_KEY", "pk")])).is_err());
    }
}
