//! The JSON behind every page of `tokentrace ui` (`/api/...`), computed from the store with `report`'s
//! aggregation ([`crate::report`]): the same numbers as `report --json`, in the same shapes where a report
//! exists (`rows`, `totals`, counters, `cost_usd`), plus what only the dashboard shows (spend per period, the
//! trace tree of a session, the price of each model).
//!
//! Every function here is a pure read of the store: no file is parsed, nothing is written.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result};
use jiff::civil::Date;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::model::pico_to_usd;
use crate::pricing::Pricer;
use crate::report::{render_json, Aggregate, Grouping, Selection, TableOptions, Window};
use crate::store::read::{Fact, FactKind, Filter, SessionRow};
use crate::store::Store;

/// Filters and view options, as the page's URL carries them (`?since=2026-11-01&agent=claude&…`), so a view
/// can be bookmarked and shared. Empty values mean "not set".
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Query {
    /// First day (YYYY-MM-DD, in `tz`).
    pub since: Option<String>,
    /// Last day, inclusive.
    pub until: Option<String>,
    /// Agent program (`claude`, `codex`, `pi`, `omp`, `gemini`).
    pub agent: Option<String>,
    /// Only model calls of this model (the one the provider answered with, else the requested one).
    pub model: Option<String>,
    /// Only sessions whose working directory contains this text.
    pub project: Option<String>,
    /// Only sessions of this channel.
    pub channel: Option<String>,
    /// IANA time zone of days and periods; default: the server's.
    pub tz: Option<String>,
    /// Sessions page: text searched in the session id, project and channel.
    pub q: Option<String>,
    /// Sessions page: column to sort by (`start`, `cost`, `tokens`, `generations`, `tool_calls`, `errors`,
    /// `prompts`, `agent`, `project`); default `start`.
    pub sort: Option<String>,
    /// Sessions page: `asc` or `desc` (default).
    pub dir: Option<String>,
    /// Sessions page: 1-based page number.
    pub page: Option<usize>,
    /// Sessions page: rows per page (at most 500; default 50).
    pub per: Option<usize>,
}

/// A query the API cannot answer (a bad date, time zone or sort): the server answers 400 with its message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadQuery(pub String);

impl Query {
    fn get(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }

    fn window(&self) -> Result<Window> {
        let date = |v: &Option<String>| -> Result<Option<Date>> {
            Self::get(v)
                .map(|s| crate::cli::report::parse_date(s).map_err(|e| BadQuery(e).into()))
                .transpose()
        };
        let tz = crate::cli::report::time_zone(Self::get(&self.tz))
            .map_err(|e| BadQuery(format!("{e:#}")))?;
        Ok(Window {
            tz,
            since: date(&self.since)?,
            until: date(&self.until)?,
        })
    }
}

/// The sessions a query covers, by key, and the window of its facts.
struct Scope {
    window: Window,
    sessions: BTreeMap<String, SessionRow>,
    model: Option<String>,
}

fn scope(store: &Store, q: &Query) -> Result<Scope> {
    let filter = Filter {
        agents: Query::get(&q.agent)
            .map(str::to_string)
            .into_iter()
            .collect(),
        project: Query::get(&q.project).map(str::to_string),
        path_prefixes: Vec::new(),
    };
    let channel = Query::get(&q.channel);
    let sessions = store
        .sessions(&filter)?
        .into_iter()
        .filter(|s| channel.is_none_or(|c| s.channel.as_deref() == Some(c)))
        .map(|s| (s.key.clone(), s))
        .collect();
    Ok(Scope {
        window: q.window()?,
        sessions,
        model: Query::get(&q.model).map(str::to_string),
    })
}

/// One pass over the store's facts into an [`Aggregate`] per grouping (a pass over the 1 GB benchmark's
/// store is most of a request's time: the overview's six views share one).
fn aggregate(store: &Store, scope: &Scope, groupings: &[Grouping]) -> Result<Vec<Aggregate>> {
    aggregate_seeing(store, scope, groupings, |_| {})
}

/// [`aggregate`], also showing `each` every fact of the scope's sessions (before the window and model filters).
fn aggregate_seeing(
    store: &Store,
    scope: &Scope,
    groupings: &[Grouping],
    mut each: impl FnMut(&Fact),
) -> Result<Vec<Aggregate>> {
    let mut aggs: Vec<Aggregate> = groupings.iter().map(|_| Aggregate::default()).collect();
    let keep_model = |f: &Fact| {
        scope
            .model
            .as_deref()
            .is_none_or(|m| f.kind == FactKind::Generation && f.model.as_deref() == Some(m))
    };
    store.for_each_fact(
        |key| scope.sessions.contains_key(key),
        |f| {
            each(f);
            if keep_model(f) {
                for (g, agg) in groupings.iter().zip(aggs.iter_mut()) {
                    agg.add(*g, &scope.window, &scope.sessions, f);
                }
            }
        },
    )?;
    Ok(aggs)
}

/// The `report <grouping> --json` document of `agg` (`--breakdown` with `breakdown`).
fn report_doc(grouping: Grouping, scope: &Scope, agg: &Aggregate, breakdown: bool) -> Value {
    let opts = TableOptions {
        width: None,
        color: false,
        breakdown,
        compact: false,
        select: Selection::default(),
    };
    render_json(grouping, &scope.window, agg, &scope.sessions, &opts)
}

/// Takes the `rows` out of a report document.
fn take_rows(doc: &mut Value) -> Vec<Value> {
    match doc["rows"].take() {
        Value::Array(rows) => rows,
        _ => Vec::new(),
    }
}

/// `GET /api/overview`: spend today / this week / this month / in the window, the unpriced share, the daily
/// rows (split by agent and by model, for the stacked chart), cost by model, agent, channel and project,
/// tokens by type with the cache hit ratio, and the ten costliest sessions. `daily` and the `by_*` documents
/// are `report <grouping> --json` documents (`daily` with `--breakdown`).
pub fn overview(store: &Store, q: &Query, now_ms: i64) -> Result<Value> {
    let scope = scope(store, q)?;
    const VIEWS: [Grouping; 6] = [
        Grouping::Daily,
        Grouping::Model,
        Grouping::Agent,
        Grouping::Channel,
        Grouping::Project,
        Grouping::Session,
    ];
    let aggs = aggregate(store, &scope, &VIEWS)?;
    let doc = |i: usize, breakdown: bool| report_doc(VIEWS[i], &scope, &aggs[i], breakdown);
    let daily = doc(0, true);
    let starts = crate::status::period_starts(now_ms, &scope.window.tz);
    let day_of = |ms: i64| scope.window.date(ms).map(|d| d.to_string());
    let (today, week, month) = (
        day_of(starts.day).unwrap_or_default(),
        day_of(starts.week).unwrap_or_default(),
        day_of(starts.month).unwrap_or_default(),
    );
    // Period spend from the daily rows: the same sums as the daily report's.
    let since = |first: &str| -> f64 {
        aggs[0]
            .rows
            .iter()
            .filter(|(day, _)| day.as_str() >= first && day.as_str() <= today.as_str())
            .map(|(_, t)| t.cost_pico)
            .sum::<i64>() as f64
            / 1e12
    };
    let totals = &aggs[0].totals;
    let t = totals.tokens;
    let prompt_tokens = t.input + t.cache_read + t.cache_write;
    let mut sessions = doc(5, false);
    let top = top_rows(&mut sessions, "cost_usd", 10);
    Ok(json!({
        "window": window_json(&scope.window),
        "spend": {
            "today_usd": since(&today),
            "week_usd": since(&week),
            "month_usd": since(&month),
            "window_usd": pico_to_usd(totals.cost_pico),
            "today": today,
            "week_start": week,
            "month_start": month,
            "generations": totals.generations,
            "unpriced_generations": totals.unpriced_generations,
            "unpriced_share": if totals.generations == 0 { 0.0 } else {
                totals.unpriced_generations as f64 / totals.generations as f64
            },
            "unpriced_models": totals.unpriced_models,
        },
        "tokens": {
            "input": t.input,
            "cache_read": t.cache_read,
            "cache_write": t.cache_write,
            "output": t.output,
            "reasoning": t.reasoning,
            "total": t.total(),
            "cache_hit_ratio": if prompt_tokens == 0 { 0.0 } else { t.cache_read as f64 / prompt_tokens as f64 },
        },
        "totals": daily["totals"].clone(),
        "daily": daily,
        "by_model": doc(1, false),
        "by_agent": doc(2, false),
        "by_channel": doc(3, false),
        "by_project": doc(4, false),
        "top_sessions": top,
    }))
}

fn window_json(w: &Window) -> Value {
    json!({
        "since": w.since.map(|d| d.to_string()),
        "until": w.until.map(|d| d.to_string()),
        "tz": w.tz.iana_name().unwrap_or("UTC"),
    })
}

/// The `n` rows of a report document with the highest `field`.
fn top_rows(doc: &mut Value, field: &str, n: usize) -> Vec<Value> {
    let mut rows = take_rows(doc);
    rows.sort_by(|a, b| {
        let v = |r: &Value| r[field].as_f64().unwrap_or(0.0);
        v(b).total_cmp(&v(a))
    });
    rows.truncate(n);
    rows
}

/// `GET /api/sessions`: the `report session --json` rows of the query (plus each session's channel and
/// error count), searched, sorted and cut into a page on the server: `{"total", "page", "per", "pages",
/// "sort", "dir", "rows", "totals"}`.
pub fn sessions(store: &Store, q: &Query) -> Result<Value> {
    let scope = scope(store, q)?;
    let aggs = aggregate(store, &scope, &[Grouping::Session])?;
    let mut agg = aggs.into_iter().next().unwrap_or_default();
    if !scope.window.is_bounded() && scope.model.is_none() {
        // Sessions without any prompt or call still exist (as in `report session`).
        for key in scope.sessions.keys() {
            agg.rows.entry(key.clone()).or_default();
        }
    }
    let mut doc = report_doc(Grouping::Session, &scope, &agg, false);
    let mut rows = take_rows(&mut doc);
    for row in &mut rows {
        let s = row["key"].as_str().and_then(|k| scope.sessions.get(k));
        row["channel"] = json!(s.and_then(|s| s.channel.clone()));
        row["errors"] = json!(
            row["generation_errors"].as_u64().unwrap_or(0)
                + row["tool_errors"].as_u64().unwrap_or(0)
        );
        row["total_tokens"] = json!(["input", "cache_read", "cache_write", "output"]
            .iter()
            .map(|k| row["tokens"][k].as_u64().unwrap_or(0))
            .sum::<u64>());
    }
    if let Some(text) = Query::get(&q.q).map(str::to_lowercase) {
        rows.retain(|r| {
            ["session_id", "project", "channel", "agent"]
                .iter()
                .any(|f| {
                    r[f].as_str()
                        .is_some_and(|v| v.to_lowercase().contains(&text))
                })
        });
    }
    let sort = Query::get(&q.sort).unwrap_or("start");
    let field = match sort {
        "cost" => "cost_usd",
        "tokens" => "total_tokens",
        "generations" | "tool_calls" | "errors" | "prompts" | "agent" | "project" | "start" => sort,
        other => {
            return Err(BadQuery(format!(
                "unknown sort '{other}': expected start, cost, tokens, generations, tool_calls, errors, prompts, agent or project"
            ))
            .into())
        }
    };
    let ascending = Query::get(&q.dir) == Some("asc");
    rows.sort_by(|a, b| {
        let (a, b) = (&a[field], &b[field]);
        let ord = match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => a
                .as_str()
                .unwrap_or_default()
                .cmp(b.as_str().unwrap_or_default()),
        };
        if ascending {
            ord
        } else {
            ord.reverse()
        }
    });
    let per = q.per.unwrap_or(50).clamp(1, 500);
    let total = rows.len();
    let pages = total.div_ceil(per).max(1);
    let page = q.page.unwrap_or(1).clamp(1, pages);
    let rows: Vec<Value> = rows.into_iter().skip((page - 1) * per).take(per).collect();
    Ok(json!({
        "total": total,
        "page": page,
        "per": per,
        "pages": pages,
        "sort": sort,
        "dir": if ascending { "asc" } else { "desc" },
        "rows": rows,
        "totals": doc["totals"].take(),
    }))
}

/// Longest text of one content field sent to the page (chars); the rest is counted, not sent: a session page
/// with 1,000 generations stays small and fast.
pub const CONTENT_CHARS: usize = 4000;

/// `GET /api/session/{key}`: the session (its `report session` row and fields) and the trace tree of every
/// prompt: each trace with its observations (agent root, turns, generations with model, tokens by bucket,
/// cost and error; tools with duration, error, and the arguments and result the capture policy kept;
/// subagents; events such as compactions and model changes), each with its `parent_id`. `None` when no
/// session has this key.
pub fn session(store: &Store, key: &str, q: &Query) -> Result<Option<Value>> {
    let Some(row) = store.session(key)? else {
        return Ok(None);
    };
    let window = q.window()?;
    let sessions: BTreeMap<String, SessionRow> = [(row.key.clone(), row.clone())].into();
    let scope = Scope {
        window: Window {
            tz: window.tz.clone(),
            since: None,
            until: None,
        },
        sessions,
        model: None,
    };
    let mut agg = Aggregate::default();
    store.for_each_fact_of(key, |f| {
        agg.add(Grouping::Session, &scope.window, &scope.sessions, f)
    })?;
    agg.rows.entry(row.key.clone()).or_default();
    let mut doc = report_doc(Grouping::Session, &scope, &agg, false);
    let summary = doc["rows"][0].take();
    let mut traces = Vec::new();
    for t in store.traces_of(key)? {
        let observations: Vec<Value> = store
            .observations_of(&t.id)?
            .into_iter()
            .map(|o| {
                json!({
                    "id": o.id,
                    "parent_id": o.parent_id,
                    "kind": o.kind.as_str(),
                    "name": o.name,
                    "start_ms": o.start_ms,
                    "end_ms": o.end_ms,
                    "duration_ms": o.start_ms.zip(o.end_ms).map(|(s, e)| e - s),
                    "level": o.level.as_str(),
                    "error": o.status_message,
                    "model": o.model,
                    "tokens": o.usage.map(|u| json!({
                        "input": u.input,
                        "cache_read": u.cache_read,
                        "cache_write": u.cache_write(),
                        "output": u.output,
                        "reasoning": u.reasoning,
                    })),
                    "cost_usd": o.cost_pico.map(pico_to_usd),
                    "cost_source": o.cost_source,
                    "unpriced": o.unpriced,
                    "input": content(o.input.as_deref()),
                    "output": content(o.output.as_deref()),
                })
            })
            .collect();
        traces.push(json!({
            "id": t.id,
            "root_span_id": t.root_span_id,
            "is_prompt": t.is_prompt,
            "name": t.name,
            "start_ms": t.start_ms,
            "end_ms": t.end_ms,
            "input": content(t.input.as_deref()),
            "output": content(t.output.as_deref()),
            "observations": observations,
        }));
    }
    // Subagents that ran as sessions of their own (Codex's delegated tasks) and the session this one ran
    // under; Claude Code's subagents are nested in the trace tree itself.
    let all = store.sessions(&Filter::default())?;
    let link = |s: &SessionRow| json!({ "key": s.key, "session_id": s.session_id, "agent": s.agent, "name": s.name });
    let children: Vec<Value> = all
        .iter()
        .filter(|s| {
            s.parent_session.as_deref() == Some(row.session_id.as_str())
                || s.parent_session.as_deref() == Some(row.key.as_str())
        })
        .map(link)
        .collect();
    let parent = row
        .parent_session
        .as_deref()
        .and_then(|p| all.iter().find(|s| s.session_id == p || s.key == p))
        .map(link);
    Ok(Some(json!({
        "parent": parent,
        "children": children,
        "session": {
            "key": row.key,
            "agent": row.agent,
            "agent_version": row.agent_version,
            "session_id": row.session_id,
            "project": row.cwd,
            "channel": row.channel,
            "user": row.user,
            "name": row.name,
            "parent_session": row.parent_session,
            "start_ms": row.start_ms,
            "end_ms": row.end_ms,
        },
        "summary": summary,
        "traces": traces,
    })))
}

/// A content field cut to [`CONTENT_CHARS`]: `{"text", "chars"}` (`chars` is the whole length), or null.
fn content(text: Option<&str>) -> Value {
    match text {
        None => Value::Null,
        Some(t) => {
            let chars = t.chars().count();
            let cut: String = t.chars().take(CONTENT_CHARS).collect();
            json!({ "text": cut, "chars": chars })
        }
    }
}

/// `GET /api/models`: every model with model calls in the query, its calls, tokens and cost (the `report
/// model --json` rows) and the price it got and why (`tokentrace prices MODEL --json`); unpriced models have
/// `"priced": false`.
pub fn models(store: &Store, q: &Query, pricer: &Pricer) -> Result<Value> {
    let scope = scope(store, q)?;
    // The provider of each model, for its price lookup (the first seen), read in the same pass.
    let mut providers: BTreeMap<String, Option<String>> = BTreeMap::new();
    let aggs = aggregate_seeing(store, &scope, &[Grouping::Model], |f| {
        if let (FactKind::Generation, Some(m)) = (f.kind, &f.model) {
            if !providers.contains_key(m) {
                providers.insert(m.clone(), f.provider.clone());
            }
        }
    })?;
    let mut doc = report_doc(Grouping::Model, &scope, &aggs[0], false);
    let mut rows = take_rows(&mut doc);
    for row in &mut rows {
        let model = row["key"].as_str().unwrap_or_default().to_string();
        let provider = providers.get(&model).cloned().flatten();
        row["provider"] = json!(provider);
        row["price"] = crate::cli::prices::quote_json(pricer, provider.as_deref(), &model);
    }
    rows.sort_by(|a, b| {
        let v = |r: &Value| r["cost_usd"].as_f64().unwrap_or(0.0);
        v(b).total_cmp(&v(a))
    });
    Ok(json!({
        "window": window_json(&scope.window),
        "rows": rows,
        "totals": doc["totals"].take(),
    }))
}

/// `GET /api/changes`: a number that changes whenever another process (an import, `watch`) commits to the
/// store, as this connection sees it ([`Store::data_version`]): cheap enough for pages to poll every few
/// seconds.
pub fn changes(store: &Store) -> Result<Value> {
    let version = store
        .data_version()
        .context("cannot read the store's change counter")?;
    Ok(json!({ "version": version }))
}
