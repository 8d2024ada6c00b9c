//! `/metrics` over HTTP for `watch --metrics-listen ADDR`: each scrape reads the store (read-only, its own
//! connection) and answers the Prometheus text exposition, so what Prometheus sees is what the store holds,
//! restarts included.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};

use super::collect::Compat;
use crate::store::Store;

/// Serves `/metrics` for the store at `store_path` on `addr` from a background thread; returns the bound
/// address (port 0 picks a free one). Errors: the address cannot be bound.
pub fn spawn(addr: SocketAddr, store_path: PathBuf, compat: Compat) -> Result<SocketAddr> {
    let server = tiny_http::Server::http(addr)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("cannot listen on {addr} for --metrics-listen"))?;
    let bound = server
        .server_addr()
        .to_ip()
        .context("the metrics endpoint is not on an IP address")?;
    std::thread::Builder::new()
        .name("tt-metrics".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                let response = answer(request.url(), &store_path, compat);
                let _ = request.respond(response);
            }
        })
        .context("cannot start the metrics thread")?;
    Ok(bound)
}

fn answer(
    url: &str,
    store_path: &std::path::Path,
    compat: Compat,
) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let header = |v: &str| {
        tiny_http::Header::from_bytes(&b"Content-Type"[..], v.as_bytes()).expect("valid header")
    };
    let path = url.split('?').next().unwrap_or("");
    if path != "/metrics" {
        return tiny_http::Response::from_string("not found: try /metrics\n")
            .with_status_code(404)
            .with_header(header("text/plain; charset=utf-8"));
    }
    match Store::open_read_only(store_path).and_then(|s| super::collect::collect(&s, compat)) {
        Ok(snapshot) => tiny_http::Response::from_string(super::prometheus::render(&snapshot))
            .with_header(header(super::prometheus::CONTENT_TYPE)),
        Err(e) => {
            tracing::warn!("metrics scrape failed: {e:#}");
            tiny_http::Response::from_string(format!("store error: {e:#}\n"))
                .with_status_code(500)
                .with_header(header("text/plain; charset=utf-8"))
        }
    }
}
