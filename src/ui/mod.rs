//! `tokentrace ui`: a local dashboard over the store — overview, sessions, a session's trace tree and
//! waterfall, models and their prices — served with `axum` from pages embedded in the binary (no CDN, no
//! node at run time) and the JSON of [`api`]. A reader of the store like a sink: it never parses agent files
//! (the command imports first, through the same path as `report`).
//!
//! Security ([`guard`]): loopback by default; any other address needs a token; read-only (GET and HEAD
//! only); a strict Content-Security-Policy (scripts and styles from this server only, nothing inline, no
//! third-party requests); pages build every piece of session content as text nodes, never as markup.

pub mod api;
mod guard;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::pricing::Pricer;
use crate::store::Store;

/// How the dashboard is served.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address to listen on (default `127.0.0.1:7878`; port 0 picks a free one).
    pub listen: SocketAddr,
    /// Required on every request when set (`Authorization: Bearer …`, the `tokentrace_ui` cookie, or
    /// `?token=…`, which sets the cookie); mandatory for a non-loopback address.
    pub token: Option<String>,
}

/// What every request handler shares: the store (one read connection: `PRAGMA data_version` is counted per
/// connection), the pricer for the models page, and the security settings.
struct Shared {
    store: Mutex<Store>,
    pricer: Pricer,
    guard: guard::Guard,
    /// Answers by request URI, with the store's change counter they were computed at: the numbers cannot
    /// change until the store does, and an overview of the 1 GB benchmark's store takes ~0.3 s to compute.
    answers: Mutex<HashMap<String, (i64, Arc<String>)>>,
}

/// Answers kept at most (a dashboard asks for a handful of views; filters make more).
const ANSWERS_KEPT: usize = 256;

/// Checks `opts` before any work: a non-loopback address needs a token.
pub fn check_options(opts: &Options) -> Result<()> {
    guard::Guard::new(opts.listen, opts.token.clone()).map(|_| ())
}

/// Serves until the process is stopped. `ready` is called with the bound address (the port when `listen`
/// asked for 0) once requests are accepted. Errors: the address cannot be bound, or a non-loopback address
/// without a token.
pub fn serve(
    store: Store,
    pricer: Pricer,
    opts: Options,
    ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let guard = guard::Guard::new(opts.listen, opts.token)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_io()
        .build()
        .context("cannot start the dashboard's runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("cannot listen on {}", opts.listen))?;
        let bound = listener.local_addr()?;
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            pricer,
            guard: guard.bound_to(bound),
            answers: Mutex::new(HashMap::new()),
        });
        ready(bound);
        axum::serve(listener, router(shared))
            .await
            .context("the dashboard's server stopped")
    })
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/sessions", get(page))
        .route("/session/{key}", get(page))
        .route("/models", get(page))
        .route(
            "/assets/app.js",
            get(|| async { embedded("text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/assets/style.css",
            get(|| async { embedded("text/css; charset=utf-8", STYLE_CSS) }),
        )
        .route("/api/overview", get(overview))
        .route("/api/sessions", get(sessions))
        .route("/api/session/{key}", get(session))
        .route("/api/models", get(models))
        .route("/api/changes", get(changes))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            guard::check,
        ))
        .with_state(shared)
}

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// A file embedded in the binary, with its content type.
/// Every page is the same document: its script draws the page the path names.
async fn page() -> Response {
    embedded("text/html; charset=utf-8", INDEX_HTML)
}

fn embedded(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// Runs a store read off the async workers and answers its JSON (with a `key`: from [`Shared::answers`] when
/// the store has not changed since it was kept under that key): 400 for a bad query (date, time zone, sort), 404 when there is nothing at that
/// address, 500 for a store error.
async fn answer(
    shared: Arc<Shared>,
    key: Option<String>,
    read: impl FnOnce(&Shared, &Store) -> Result<Option<serde_json::Value>> + Send + 'static,
) -> Response {
    let done = tokio::task::spawn_blocking(move || -> Result<Option<Arc<String>>> {
        let store = shared.store.lock().unwrap_or_else(|e| e.into_inner());
        let Some(key) = key else {
            return Ok(read(&shared, &store)?.map(|doc| Arc::new(doc.to_string())));
        };
        let version = store.data_version()?;
        let kept = |answers: &HashMap<String, (i64, Arc<String>)>| {
            answers
                .get(&key)
                .filter(|(v, _)| *v == version)
                .map(|(_, doc)| doc.clone())
        };
        if let Some(doc) = kept(&shared.answers.lock().unwrap_or_else(|e| e.into_inner())) {
            return Ok(Some(doc));
        }
        let Some(doc) = read(&shared, &store)? else {
            return Ok(None);
        };
        let doc = Arc::new(doc.to_string());
        let mut answers = shared.answers.lock().unwrap_or_else(|e| e.into_inner());
        if answers.len() >= ANSWERS_KEPT {
            answers.clear();
        }
        answers.insert(key, (version, doc.clone()));
        Ok(Some(doc))
    })
    .await;
    match done {
        Ok(Ok(Some(doc))) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            doc.to_string(),
        )
            .into_response(),
        Ok(Ok(None)) => (StatusCode::NOT_FOUND, json_error("no such session")).into_response(),
        Ok(Err(e)) if e.is::<api::BadQuery>() => {
            (StatusCode::BAD_REQUEST, json_error(&format!("{e:#}"))).into_response()
        }
        Ok(Err(e)) => {
            tracing::warn!("dashboard: {e:#}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                json_error(&format!("{e:#}")),
            )
                .into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            json_error(&e.to_string()),
        )
            .into_response(),
    }
}

fn json_error(message: &str) -> ([(header::HeaderName, &'static str); 1], String) {
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "error": message }).to_string(),
    )
}

async fn overview(State(s): State<Arc<Shared>>, uri: Uri, Query(q): Query<api::Query>) -> Response {
    // "Today" moves with the clock: the day is part of the key.
    let now = crate::cli::now_ms();
    let day = now / 86_400_000;
    answer(s, Some(format!("{uri}#{day}")), move |_, store| {
        api::overview(store, &q, now).map(Some)
    })
    .await
}

async fn sessions(State(s): State<Arc<Shared>>, uri: Uri, Query(q): Query<api::Query>) -> Response {
    answer(s, Some(uri.to_string()), move |_, store| {
        api::sessions(store, &q).map(Some)
    })
    .await
}

async fn session(
    State(s): State<Arc<Shared>>,
    uri: Uri,
    Path(key): Path<String>,
    Query(q): Query<api::Query>,
) -> Response {
    answer(s, Some(uri.to_string()), move |_, store| {
        api::session(store, &key, &q)
    })
    .await
}

async fn models(State(s): State<Arc<Shared>>, uri: Uri, Query(q): Query<api::Query>) -> Response {
    answer(s, Some(uri.to_string()), move |shared, store| {
        api::models(store, &q, &shared.pricer).map(Some)
    })
    .await
}

async fn changes(State(s): State<Arc<Shared>>) -> Response {
    // Never kept: it is what tells the pages the store changed.
    answer(s, None, |_, store| api::changes(store).map(Some)).await
}
