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
#[derive(Clone, PartialEq)]
pub struct Endpoint {
    /// Sink name, used for the delivery state: `otlp` or `langfuse`.
    pub name: &'static str,
    /// Full traces URL, as configured (it may carry `user:password@`: show it with [`mask_url`]).
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub protocol: Protocol,
    /// Langfuse: also POST scores to `{base}/api/public/scores`.
    pub scores_url: Option<String>,
    /// Values that must never be shown, logged or stored: the header values the user configured, the
    /// Langfuse keys and their `Basic` credential, the URL's user info. See [`Endpoint::scrub`].
    pub secrets: Vec<String>,
}

/// Debug output never shows credentials: URL masked, header values replaced by `***`.
impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("name", &self.name)
            .field("url", &mask_url(&self.url))
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(k, _)| format!("{k}: ***"))
                    .collect::<Vec<_>>(),
            )
            .field("protocol", &self.protocol)
            .field("scores_url", &self.scores_url.as_deref().map(mask_url))
            .finish()
    }
}

impl Endpoint {
    /// The traces URL as it may be shown (user info masked: `http://user:***@host/v1/traces`).
    pub fn display_url(&self) -> String {
        mask_url(&self.url)
    }

    /// `text` (an error message, a server's answer) with every credential of this endpoint replaced by
    /// `***` and the password of any `scheme://user:password@` URL masked.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = mask_credentials_in(text).into_owned();
        let mut secrets: Vec<&String> = self.secrets.iter().filter(|s| s.len() >= 4).collect();
        // Longest first: a value containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        for s in secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "***");
            }
        }
        out
    }

    /// What of this endpoint is a credential, in words (for the insecure-transport error); `None` when it
    /// sends none.
    fn credentials(&self) -> Option<String> {
        let mut what = Vec::new();
        if self.name == "langfuse" {
            what.push("the Langfuse keys");
        } else if !self.headers.is_empty() {
            what.push("the OTEL_EXPORTER_OTLP_HEADERS values");
        }
        if reqwest::Url::parse(&self.url)
            .is_ok_and(|u| !u.username().is_empty() || u.password().is_some())
        {
            what.push("the user and password in the URL");
        }
        (!what.is_empty()).then(|| what.join(" and "))
    }
}

/// True when `url`'s host is this machine's loopback interface: `127.0.0.0/8`, `::1` (also as
/// `::ffff:127.x.y.z`), `localhost` or a name under `.localhost`.
pub fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => a.is_loopback(),
        Ok(std::net::IpAddr::V6(a)) => {
            a.is_loopback() || a.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => {
            let d = host.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
    }
}

/// Refuses to send credentials in clear text over the network: an endpoint that carries any (header
/// values, Langfuse keys, a password in the URL) must use `https://` unless its host is loopback, or the
/// user opted in (`allow_insecure`: `TOKENTRACE_ALLOW_INSECURE=1` or `allow_insecure = true` in the config).
///
/// Errors: the URL does not parse, or the refusal, saying why and how to opt in.
pub fn check_transport(endpoint: &Endpoint, allow_insecure: bool) -> Result<()> {
    let url = reqwest::Url::parse(&endpoint.url).map_err(|e| {
        anyhow::anyhow!(
            "the {} endpoint {} is not a valid URL: {e}",
            endpoint.name,
            endpoint.display_url()
        )
    })?;
    if url.scheme() != "http" || allow_insecure || is_loopback(&url) {
        return Ok(());
    }
    if let Some(what) = endpoint.credentials() {
        bail!(
            "refusing to send {what} over plain http to {} (the {} endpoint {}): anyone on the network \
             path could read them. Use an https:// endpoint, or set TOKENTRACE_ALLOW_INSECURE=1 (or \
             `allow_insecure = true` in the config file) to send them anyway",
            url.host_str().unwrap_or("?"),
            endpoint.name,
            endpoint.display_url()
        );
    }
    Ok(())
}

/// `url` with its user info masked: `http://user:***@host/…` (a user name alone, which is often a
/// token, becomes `***`). Text that is not a URL is masked like any text ([`mask_credentials_in`]).
pub fn mask_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() || !u.username().is_empty() => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            } else {
                let _ = u.set_username("***");
            }
            u.to_string()
        }
        Ok(_) => url.to_string(),
        Err(_) => mask_credentials_in(url).into_owned(),
    }
}

/// Masks the password of every `scheme://user:password@` URL in free text (`scheme://user:***@`).
pub fn mask_credentials_in(text: &str) -> std::borrow::Cow<'_, str> {
    static RE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"([A-Za-z][A-Za-z0-9+.\-]*://)([^\s/@:]*):([^\s/@]*)@")
            .expect("pattern compiles")
    });
    RE.replace_all(text, "${1}${2}:***@")
}

/// `k1=v1,k2=v2` with percent-encoded values (OpenTelemetry SDK environment specification), from the
/// variable `var` (named in errors).
///
/// Errors: a `%` not followed by two hex digits, or a value that is not UTF-8 once decoded. The message
/// names the variable and the key, never the value (it is often a credential).
pub fn parse_pairs(var: &str, list: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for pair in list.split(',') {
        let Some((k, v)) = pair.split_once('=') else {
            continue;
        };
        let k = k.trim();
        if k.is_empty() {
            continue;
        }
        let value = percent_decode(v.trim())
            .map_err(|why| anyhow::anyhow!("{var}: the value of '{k}' {why}"))?;
        out.push((k.to_string(), value));
    }
    Ok(out)
}

/// Decodes `%XX` escapes byte-wise; the result must be UTF-8.
fn percent_decode(s: &str) -> std::result::Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: u8| (b as char).to_digit(16);
            match (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 3;
                    continue;
                }
                _ => {
                    return Err(format!(
                    "has an invalid percent escape at byte {i}: '%' must be followed by two hex \
                         digits (write a literal '%' as %25)"
                ))
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "is not valid UTF-8 once percent-decoded".to_string())
}

/// Credential values of the backends the environment configures (header values, Langfuse keys and their
/// `Basic` credential, URL user info), for the privacy layer to redact wherever they appear in sessions.
/// Lenient: values of a variable that does not parse are taken as written.
pub fn credential_values(vars: &std::collections::HashMap<String, String>) -> Vec<String> {
    let env = Env {
        home: None,
        vars: vars.clone(),
    };
    let mut out: Vec<String> = match configured(&env) {
        Ok(eps) => eps.into_iter().flat_map(|e| e.secrets).collect(),
        Err(_) => Vec::new(),
    };
    for (name, value) in vars {
        if name.starts_with("OTEL_EXPORTER_OTLP_") && name.ends_with("HEADERS") {
            for pair in value.split(',') {
                if let Some((_, v)) = pair.split_once('=') {
                    out.push(v.trim().to_string());
                    out.extend(percent_decode(v.trim()).ok());
                }
            }
        }
        if (name.starts_with("OTEL_EXPORTER_OTLP_") && name.ends_with("ENDPOINT"))
            || name == "LANGFUSE_BASE_URL"
            || name == "LANGFUSE_HOST"
        {
            out.extend(url_secrets(value));
        }
    }
    out.retain(|v| !v.trim().is_empty());
    out.sort();
    out.dedup();
    out
}

/// The user info of a URL: password (as written and decoded) and, when there is no password, the user
/// name (then usually a token).
fn url_secrets(url: &str) -> Vec<String> {
    let Ok(u) = reqwest::Url::parse(url) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut both = |raw: &str| {
        out.push(raw.to_string());
        if let Ok(decoded) = percent_decode(raw) {
            out.push(decoded);
        }
    };
    match u.password() {
        Some(p) => both(p),
        None if !u.username().is_empty() => both(u.username()),
        None => {}
    }
    out
}

/// Secrets of a header value: the whole value and, for `Scheme credential` forms (`Bearer …`, `Basic …`),
/// the credential alone.
fn header_secrets(value: &str) -> Vec<String> {
    let mut out = vec![value.to_string()];
    if let Some((_, token)) = value.trim().split_once(' ') {
        out.push(token.trim().to_string());
    }
    out
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

/// The protocol of a signal: `OTEL_EXPORTER_OTLP_{TRACES,METRICS}_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`.
fn protocol(env: &Env, signal: &str) -> Result<Protocol> {
    let value = env
        .var(&format!("OTEL_EXPORTER_OTLP_{signal}_PROTOCOL"))
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
/// Checks that `url` (the value of `var`) is an absolute `http(s)://host…` URL: a typo is a configuration
/// error at start, naming the variable, not "backend unreachable, will retry" later.
fn check_url(var: &str, url: &str) -> Result<()> {
    let parsed = reqwest::Url::parse(url);
    match parsed {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()) => {
            Ok(())
        }
        Ok(u) => bail!(
            "{var}: {} is not an http:// or https:// URL with a host (scheme `{}`); expected e.g. http://127.0.0.1:4318",
            mask_url(url),
            u.scheme()
        ),
        Err(e) => bail!(
            "{var}: {} is not a URL ({e}); expected e.g. http://127.0.0.1:4318",
            mask_url(url)
        ),
    }
}

/// The OTLP metrics backend: `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` (the full URL), else, with
/// `OTEL_METRICS_EXPORTER=otlp`, `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/metrics`; headers from
/// `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_EXPORTER_OTLP_METRICS_HEADERS`. `None` otherwise, and with
/// `OTEL_METRICS_EXPORTER=none`. Opt-in, unlike the SDKs' default: many trace backends people point
/// `OTEL_EXPORTER_OTLP_ENDPOINT` at (Phoenix, Langfuse's OTLP endpoint) refuse metrics. Errors: a malformed
/// URL, header list or protocol.
pub fn metrics_endpoint(env: &Env) -> Result<Option<Endpoint>> {
    let exporter = env.var("OTEL_METRICS_EXPORTER").unwrap_or("");
    if exporter == "none" {
        return Ok(None);
    }
    for var in [
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ] {
        if let Some(url) = env.var(var) {
            check_url(var, url)?;
        }
    }
    let url = match env.var("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") {
        Some(url) => url.to_string(),
        None => match env.var("OTEL_EXPORTER_OTLP_ENDPOINT") {
            Some(base) if exporter == "otlp" => {
                format!("{}/v1/metrics", base.trim_end_matches('/'))
            }
            _ => return Ok(None),
        },
    };
    let (headers, secrets) = otlp_headers(env, "METRICS", &url)?;
    Ok(Some(Endpoint {
        name: "otlp-metrics",
        url,
        headers,
        protocol: protocol(env, "METRICS")?,
        scores_url: None,
        secrets,
    }))
}

/// Header name and value pairs.
type Headers = Vec<(String, String)>;

/// The headers of a signal (`OTEL_EXPORTER_OTLP_HEADERS`, then `OTEL_EXPORTER_OTLP_{signal}_HEADERS`) and the
/// values never to show: header values and the password in `url`.
fn otlp_headers(env: &Env, signal: &str, url: &str) -> Result<(Headers, Vec<String>)> {
    let mut headers = Vec::new();
    for var in [
        "OTEL_EXPORTER_OTLP_HEADERS".to_string(),
        format!("OTEL_EXPORTER_OTLP_{signal}_HEADERS"),
    ] {
        if let Some(list) = env.var(&var) {
            headers.extend(parse_pairs(&var, list)?);
        }
    }
    let mut secrets: Vec<String> = headers
        .iter()
        .flat_map(|(_, v)| header_secrets(v))
        .collect();
    secrets.extend(url_secrets(url));
    Ok((headers, secrets))
}

pub fn configured(env: &Env) -> Result<Vec<Endpoint>> {
    let mut out = Vec::new();
    for var in [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "LANGFUSE_BASE_URL",
        "LANGFUSE_HOST",
    ] {
        if let Some(url) = env.var(var) {
            check_url(var, url)?;
        }
    }
    let traces_url = env
        .var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .map(str::to_string)
        .or_else(|| {
            env.var("OTEL_EXPORTER_OTLP_ENDPOINT")
                .map(|base| format!("{}/v1/traces", base.trim_end_matches('/')))
        });
    if let Some(url) = traces_url {
        let (headers, secrets) = otlp_headers(env, "TRACES", &url)?;
        out.push(Endpoint {
            name: "otlp",
            url,
            headers,
            protocol: protocol(env, "TRACES")?,
            scores_url: None,
            secrets,
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
            let basic = base64(format!("{pk}:{sk}").as_bytes());
            let mut secrets = vec![sk.to_string(), format!("Basic {basic}"), basic.clone()];
            secrets.extend(url_secrets(&base));
            out.push(Endpoint {
                name: "langfuse",
                url: format!("{base}/api/public/otel/v1/traces"),
                secrets,
                headers: vec![
                    ("Authorization".into(), format!("Basic {basic}")),
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

    /// Item 11: `%` followed by a multi-byte character (`x=%é`) used to slice a `&str` inside the character
    /// and panic (exit 101). Now a config error naming the variable and the key, never the value.
    #[test]
    fn percent_then_multibyte_char_is_an_error_not_a_panic() {
        // "%€" and "%1é" panicked: the old code sliced `s[i + 1..i + 3]` inside the character.
        for bad in [
            "k=%€", "k=x%1é", "k=%é", "k=a%", "k=%4", "k=%zz", "k=%C3%28",
        ] {
            let err = parse_pairs("OTEL_RESOURCE_ATTRIBUTES", bad)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("OTEL_RESOURCE_ATTRIBUTES") && err.contains("'k'"),
                "{bad}: {err}"
            );
        }
        let err = configured(&env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s3cr%€t"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("OTEL_EXPORTER_OTLP_HEADERS"), "{err}");
        assert!(!err.contains("s3cr"), "the value is not echoed: {err}");
        // Bytes decode as UTF-8 sequences; an escape at the very end decodes too.
        assert_eq!(
            parse_pairs("V", "a=caf%C3%A9,b=x%3D").unwrap(),
            vec![("a".into(), "café".into()), ("b".into(), "x=".into())]
        );
        assert_eq!(parse_pairs("V", "a=é").unwrap()[0].1, "é");
    }

    #[test]
    fn loopback_hosts() {
        for u in [
            "http://127.0.0.1:4318/v1/traces",
            "http://127.1.2.3/",
            "http://[::1]:4318/",
            "http://localhost:3000",
            "http://LOCALHOST./x",
            "http://lf.localhost/",
            "http://[::ffff:127.0.0.1]/",
        ] {
            assert!(is_loopback(&reqwest::Url::parse(u).unwrap()), "{u}");
        }
        for u in [
            "http://10.0.0.1/",
            "http://0.0.0.0:4318/",
            "http://localhost.example.com/",
            "http://[::2]/",
            "http://lf:3000/",
        ] {
            assert!(!is_loopback(&reqwest::Url::parse(u).unwrap()), "{u}");
        }
    }

    /// Item 12: credentials over plain http to another machine are refused unless the user opted in.
    #[test]
    fn credentials_over_plain_http_to_a_remote_host_are_refused() {
        let lf = configured(&env(&[
            ("LANGFUSE_PUBLIC_KEY", "pk-lf-1"),
            ("LANGFUSE_SECRET_KEY", "sk-lf-2"),
            ("LANGFUSE_HOST", "http://lf.example.com:3000/"),
        ]))
        .unwrap();
        let err = check_transport(&lf[0], false).unwrap_err().to_string();
        assert!(
            err.contains("Langfuse keys")
                && err.contains("TOKENTRACE_ALLOW_INSECURE=1")
                && err.contains("allow_insecure"),
            "{err}"
        );
        assert!(check_transport(&lf[0], true).is_ok());
        let otlp = |vars: &[(&str, &str)]| configured(&env(vars)).unwrap().remove(0);
        let with_header = otlp(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=abc"),
        ]);
        assert!(check_transport(&with_header, false).is_err());
        let with_password = otlp(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://u:pw@collector:4318")]);
        let err = check_transport(&with_password, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("u:***@") && !err.contains(":pw@"), "{err}");
        // No credentials, https, or loopback: fine.
        for ok in [
            otlp(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")]),
            otlp(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=abc"),
            ]),
            otlp(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://u:pw@127.0.0.1:4318"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=abc"),
            ]),
        ] {
            assert!(check_transport(&ok, false).is_ok(), "{ok:?}");
        }
    }

    /// Item 13: user info is masked wherever a URL is shown.
    #[test]
    fn urls_and_messages_are_masked() {
        assert_eq!(
            mask_url("http://user:s3cret@h:1/v1/traces"),
            "http://user:***@h:1/v1/traces"
        );
        assert_eq!(mask_url("https://tok123@h/"), "https://***@h/");
        assert_eq!(mask_url("http://h/x"), "http://h/x");
        assert_eq!(
            mask_credentials_in("cannot reach http://a:b%40c@h/x: refused"),
            "cannot reach http://a:***@h/x: refused"
        );
        let e = configured(&env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://al:pw123456@h:4318"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "Authorization=Bearer tok-abcdef",
            ),
        ]))
        .unwrap()
        .remove(0);
        assert_eq!(
            e.scrub("server said: bad token tok-abcdef for pw123456"),
            "server said: bad token *** for ***"
        );
        let debug = format!("{e:?}");
        assert!(
            !debug.contains("tok-abcdef") && !debug.contains("pw123456"),
            "{debug}"
        );
    }

    /// Item 14: what the privacy layer redacts from sessions.
    #[test]
    fn credential_values_cover_headers_keys_and_url_passwords() {
        let vars: std::collections::HashMap<String, String> = [
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://al:pw%2F123456@h:4318",
            ),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "x-api-key=hdr-value-123,Authorization=Bearer tok-abcdef",
            ),
            ("LANGFUSE_PUBLIC_KEY", "pk-lf-1"),
            ("LANGFUSE_SECRET_KEY", "sk-lf-2"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let got = credential_values(&vars);
        for want in [
            "hdr-value-123",
            "Bearer tok-abcdef",
            "tok-abcdef",
            "pw%2F123456",
            "pw/123456",
            "sk-lf-2",
            "cGstbGYtMTpzay1sZi0y",
        ] {
            assert!(got.iter().any(|g| g == want), "{want} missing from {got:?}");
        }
        assert!(
            !got.iter().any(|g| g == "tokentrace" || g == "4"),
            "{got:?}"
        );
    }
}
