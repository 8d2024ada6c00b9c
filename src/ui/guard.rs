//! What every request to the dashboard passes first: read-only methods, the Host a loopback server expects
//! (a web page elsewhere cannot reach it through DNS rebinding), the token when one is set, and the security
//! headers on every answer.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Shared;

/// The cookie that carries the token after a first visit with `?token=…`.
pub const COOKIE: &str = "tokentrace_ui";

/// Scripts, styles and requests from this server only; nothing inline; no frames, forms, plugins or base
/// changes. Pages build content with text nodes, so injected markup would not run anyway: this is the second
/// wall.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The security settings of one server.
#[derive(Debug, Clone)]
pub struct Guard {
    token: Option<String>,
    /// `Some(port)` when listening on loopback: only `localhost`, `127.0.0.1` and `[::1]` Hosts are served.
    loopback_port: Option<u16>,
}

impl Guard {
    /// Errors: a non-loopback address without a token.
    pub fn new(listen: SocketAddr, token: Option<String>) -> anyhow::Result<Guard> {
        let token = token.filter(|t| !t.is_empty());
        anyhow::ensure!(
            listen.ip().is_loopback() || token.is_some(),
            "refusing to serve the dashboard on {listen} without a token: anyone who can reach this address \
             would see every session. Pass --token (or set TOKENTRACE_UI_TOKEN), or listen on 127.0.0.1"
        );
        Ok(Guard {
            token,
            loopback_port: listen.ip().is_loopback().then_some(listen.port()),
        })
    }

    /// The guard once the port is known (`--listen 127.0.0.1:0`).
    pub fn bound_to(mut self, bound: SocketAddr) -> Guard {
        if self.loopback_port.is_some() {
            self.loopback_port = Some(bound.port());
        }
        self
    }

    fn host_ok(&self, host: Option<&str>) -> bool {
        let Some(port) = self.loopback_port else {
            return true;
        };
        let Some(host) = host else {
            return false;
        };
        ["localhost", "127.0.0.1", "[::1]"].iter().any(|name| {
            host.eq_ignore_ascii_case(name) || host.eq_ignore_ascii_case(&format!("{name}:{port}"))
        })
    }

    /// Which way the request proves the token, if it does: `Some(true)` by `?token=` (the answer sets the
    /// cookie), `Some(false)` by header or cookie.
    fn token_ok(&self, req: &Request) -> Option<bool> {
        let Some(token) = &self.token else {
            return Some(false);
        };
        let same = |given: &str| constant_time_eq(given.as_bytes(), token.as_bytes());
        let headers = req.headers();
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if bearer.is_some_and(same) {
            return Some(false);
        }
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .any(|(k, v)| k == COOKIE && same(v));
        if cookie {
            return Some(false);
        }
        let query = req
            .uri()
            .query()
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter_map(|kv| kv.split_once('='))
            .any(|(k, v)| k == "token" && same(v));
        query.then_some(true)
    }
}

/// Compares without leaking where the first difference is through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The middleware: 405 for anything but GET and HEAD, 421 for a foreign Host on loopback, 401 without the
/// token; the security headers on every answer.
pub async fn check(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let guard = &shared.guard;
    let mut resp = if req.method() != Method::GET && req.method() != Method::HEAD {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "the dashboard is read-only\n",
        )
            .into_response()
    } else if !guard.host_ok(
        req.headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok()),
    ) {
        (
            StatusCode::MISDIRECTED_REQUEST,
            "this dashboard answers to localhost only\n",
        )
            .into_response()
    } else {
        match guard.token_ok(&req) {
            None => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a token is required: open the address with ?token=… or send Authorization: Bearer …\n",
            )
                .into_response(),
            Some(by_query) => {
                let mut resp = next.run(req).await;
                if by_query {
                    if let Some(token) = &guard.token {
                        let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
                        if let Ok(v) = HeaderValue::from_str(&cookie) {
                            resp.headers_mut().insert(header::SET_COOKIE, v);
                        }
                    }
                }
                resp
            }
        }
    };
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_public_address_needs_a_token_and_loopback_checks_the_host() {
        let public: SocketAddr = "0.0.0.0:7878".parse().unwrap();
        let err = Guard::new(public, None).unwrap_err().to_string();
        assert!(err.contains("without a token"), "{err}");
        assert!(Guard::new(public, Some(String::new())).is_err());
        let g = Guard::new(public, Some("s3cret".into())).unwrap();
        assert!(g.host_ok(Some("tokentrace.example:7878")));
        let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let g = Guard::new(local, None)
            .unwrap()
            .bound_to("127.0.0.1:4321".parse().unwrap());
        assert!(g.host_ok(Some("127.0.0.1:4321")));
        assert!(g.host_ok(Some("localhost:4321")));
        assert!(!g.host_ok(Some("evil.example:4321")));
        assert!(!g.host_ok(Some("localhost:80")));
        assert!(!g.host_ok(None));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
