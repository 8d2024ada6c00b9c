//! `tokentrace sync`: import what is new, then deliver everything pending to every configured backend.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Args;
use serde_json::json;

use super::{print_import_warnings, Context, SourceArgs};
use crate::report::printable;
use crate::sinks::{self, endpoint, DeliveryOptions, ExportSettings};

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub sources: SourceArgs,
    /// Write what each configured backend would be sent into DIR/<sink>/ instead of sending anything: the
    /// OTLP/JSON requests (request-NNNN.json) and, for Langfuse, the score bodies (scores.jsonl). With no
    /// backend configured, a generic OTLP backend's requests (DIR/otlp/).
    #[arg(long, value_name = "DIR")]
    pub dry_run: Option<PathBuf>,
    /// Also resend traces a backend refused earlier (4xx).
    #[arg(long)]
    pub retry_failed: bool,
    /// Seconds to keep retrying an unreachable or overloaded backend before leaving the rest for the next run.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub retry_budget: u64,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Delivery settings from the environment: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES` (plus the config's
/// `[resource]`),
/// `LANGFUSE_ENVIRONMENT`, `LANGFUSE_RELEASE`, `TOKENTRACE_SAMPLE_RATE`, `TOKENTRACE_BATCH_SPANS` (spans per
/// request, default 2000), tags from `TOKENTRACE_TAGS` / config.
pub fn delivery_options(ctx: &Context) -> Result<DeliveryOptions> {
    let env = &ctx.env;
    let sample_rate = match env.var("TOKENTRACE_SAMPLE_RATE") {
        Some(v) => {
            let r: f64 = v
                .parse()
                .with_context(|| format!("TOKENTRACE_SAMPLE_RATE={v} is not a number"))?;
            anyhow::ensure!(
                (0.0..=1.0).contains(&r),
                "TOKENTRACE_SAMPLE_RATE={v} must be between 0 and 1"
            );
            r
        }
        None => 1.0,
    };
    let mut resource_attributes = match env.var("OTEL_RESOURCE_ATTRIBUTES") {
        Some(list) => endpoint::parse_pairs("OTEL_RESOURCE_ATTRIBUTES", list)?,
        None => Vec::new(),
    };
    // Identity and team attributes from the config's `[resource]` (`user.email`, `team.id`, …); the
    // environment's win.
    for (k, v) in &ctx.config.resource {
        if !resource_attributes.iter().any(|(key, _)| key == k) {
            resource_attributes.push((k.clone(), v.clone()));
        }
    }
    let environment = env
        .var("LANGFUSE_ENVIRONMENT")
        .map(str::to_string)
        .or_else(|| {
            resource_attributes
                .iter()
                .find(|(k, _)| k == "deployment.environment.name")
                .map(|(_, v)| v.clone())
        });
    let defaults = DeliveryOptions::default();
    let max_batch_spans = match env.var("TOKENTRACE_BATCH_SPANS") {
        Some(v) => v
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| format!("TOKENTRACE_BATCH_SPANS={v} is not a positive number"))?,
        None => defaults.max_batch_spans,
    };
    Ok(DeliveryOptions {
        sample_rate,
        max_batch_spans,
        settings: ExportSettings {
            service_name: env
                .var("OTEL_SERVICE_NAME")
                .unwrap_or("tokentrace")
                .to_string(),
            environment,
            release: env.var("LANGFUSE_RELEASE").map(str::to_string),
            resource_attributes,
            tags: ctx.config.tags.clone(),
            content_values: true,
        },
        ..defaults
    })
}

pub fn run(ctx: &Context, args: SyncArgs) -> Result<()> {
    let json_out = args.json;
    let result = run_sync(ctx, args);
    // `--json` prints JSON in every outcome: an error too (`{"error": …}` on stdout, exit 1).
    if let (true, Err(e)) = (json_out, &result) {
        println!("{}", json!({ "error": format!("{e:#}") }));
    }
    result
}

fn run_sync(ctx: &Context, args: SyncArgs) -> Result<()> {
    // Configuration errors first, before any work: bad variables, credentials over plain http.
    let mut opts = delivery_options(ctx)?;
    let endpoints = endpoint::configured(&ctx.env)?;
    if args.dry_run.is_none() {
        for ep in &endpoints {
            endpoint::check_transport(ep, ctx.config.allow_insecure)?;
        }
    }
    let mut store = ctx.open_store()?;
    if !args.sources.no_import {
        let summary = ctx.import(&mut store, &args.sources)?;
        print_import_warnings(&summary);
    }
    opts.retry_failed = args.retry_failed;
    opts.retry_budget = Duration::from_secs(args.retry_budget);
    if let Some(dir) = &args.dry_run {
        let sinks: Vec<_> = endpoints.iter().map(|e| (e.name, e.protocol)).collect();
        let reports = sinks::dry_run(&store, dir, &sinks, &opts)?;
        if args.json {
            let doc: Vec<_> = reports
                .iter()
                .map(|r| json!({ "sink": r.sink, "requests": r.requests, "spans": r.spans, "scores": r.scores }))
                .collect();
            println!("{}", json!({ "dry_run": dir, "sinks": doc }));
        } else {
            for r in &reports {
                let scores = if r.sink == "langfuse" {
                    format!(" and {} score(s)", r.scores)
                } else {
                    String::new()
                };
                println!(
                    "dry run: {}: {} request(s) with {} span(s){scores} written to {}",
                    r.sink,
                    r.requests,
                    r.spans,
                    dir.join(&r.sink).display()
                );
            }
        }
        return Ok(());
    }
    let metrics_endpoint = endpoint::metrics_endpoint(&ctx.env)?;
    if let Some(ep) = &metrics_endpoint {
        endpoint::check_transport(ep, ctx.config.allow_insecure)?;
    }
    // Runaway and budget alerts ([alerts] in the config): sent once each, whatever backends there are.
    let alerted = sinks::alerts::send_due(&store, &ctx.config.alerts, super::status::now_ms())?;
    if alerted.failed > 0 {
        eprintln!(
            "tokentrace: {} alert(s) could not be delivered to the webhook; the next sync or watch retries",
            alerted.failed
        );
    }
    if endpoints.is_empty() && metrics_endpoint.is_none() {
        if args.json {
            println!(
                "{}",
                json!({ "sinks": [], "note": "no backend configured: set OTEL_EXPORTER_OTLP_ENDPOINT or LANGFUSE_PUBLIC_KEY + LANGFUSE_SECRET_KEY" })
            );
        } else {
            println!(
                "The store is up to date. No backend is configured: set OTEL_EXPORTER_OTLP_ENDPOINT (any OTLP/HTTP backend) \
                 or LANGFUSE_PUBLIC_KEY + LANGFUSE_SECRET_KEY (+ LANGFUSE_BASE_URL) to deliver traces."
            );
        }
        return Ok(());
    }
    let mut reports = Vec::new();
    for ep in &endpoints {
        let total = store.backlog(ep.name)?.pending;
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(total),
            indicatif::ProgressDrawTarget::hidden(),
        );
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) && total > 200 {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} sending to {msg} [{bar:30}] {pos}/{len} traces ({eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(ep.name);
        let report = sinks::deliver(&mut store, ep, &opts, |n| bar.inc(n))?;
        bar.finish_and_clear();
        reports.push(report);
    }
    // After the traces: a metrics backend that is down must not eat their retry budget.
    let metrics = match &metrics_endpoint {
        Some(ep) => {
            let temporality = sinks::metrics::Temporality::parse(
                ctx.env
                    .var("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"),
            )?;
            let compat = ctx.metrics_compat(&[])?;
            Some(push_metrics(ep, &store, &opts, compat, temporality)?)
        }
        None => None,
    };
    let incomplete = reports.iter().any(|r| {
        r.backlog.pending > 0
            || r.backlog.failed > 0
            || r.backlog.scores_pending > 0
            || r.backlog.scores_failed > 0
    }) || metrics.as_ref().is_some_and(|m| m.error.is_some());
    if args.json {
        let doc: Vec<_> = reports
            .iter()
            .map(|r| {
                json!({
                    "sink": r.sink, "url": r.url, "requests": r.requests, "traces_sent": r.traces_sent,
                    "spans_sent": r.spans_sent, "spans_rejected": r.spans_rejected, "traces_refused": r.traces_refused, "sampled_out": r.sampled_out,
                    "scores_sent": r.scores_sent, "scores_failed": r.scores_failed, "retries": r.retries,
                    "scores_pending": r.backlog.scores_pending, "scores_refused": r.backlog.scores_failed,
                    "pending": r.backlog.pending, "failed": r.backlog.failed, "delivered": r.backlog.sent,
                    "last_error": r.backlog.last_error, "gave_up": r.gave_up,
                })
            })
            .collect();
        let metrics = metrics.as_ref().map(|m| {
            json!({ "url": m.url, "points": m.points, "attempts": m.attempts, "error": m.error })
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "sinks": doc, "metrics": metrics }))?
        );
    } else {
        for r in &reports {
            let scores = if r.scores_sent + r.backlog.scores_pending + r.backlog.scores_failed > 0 {
                format!(
                    "; scores: sent {}, pending {}, refused {}",
                    r.scores_sent, r.backlog.scores_pending, r.backlog.scores_failed
                )
            } else {
                String::new()
            };
            println!(
                "{}: sent {} trace(s), {} span(s) in {} request(s){}; pending {}, failed {}{scores}{}",
                r.sink,
                r.traces_sent,
                r.spans_sent,
                r.requests,
                if r.sampled_out > 0 {
                    format!(", {} sampled out", r.sampled_out)
                } else {
                    String::new()
                },
                r.backlog.pending,
                r.backlog.failed,
                match (&r.gave_up, &r.backlog.last_error) {
                    (Some(e), _) =>
                        format!("\n  stopped early, the next run goes on: {}", printable(e)),
                    (None, Some(e)) if r.backlog.failed + r.backlog.scores_failed > 0 =>
                        format!("\n  refused: {} (`tokentrace sync --retry-failed` resends)", printable(e)),
                    (None, Some(e)) if r.spans_rejected > 0 => format!("\n  {}", printable(e)),
                    _ => String::new(),
                }
            );
        }
    }
    if let (false, Some(m)) = (args.json, &metrics) {
        match &m.error {
            None => println!("metrics: {} series pushed to {}", m.points, m.url),
            Some(e) => println!("metrics: not pushed to {}: {}", m.url, printable(e)),
        }
    }
    if incomplete {
        std::process::exit(2);
    }
    Ok(())
}

/// Pushes the metric set to the OTLP metrics endpoint (see [`endpoint::metrics_endpoint`]) within the run's
/// retry budget.
fn push_metrics(
    ep: &endpoint::Endpoint,
    store: &crate::store::Store,
    opts: &DeliveryOptions,
    compat: crate::metrics::collect::Compat,
    temporality: sinks::metrics::Temporality,
) -> Result<sinks::metrics::PushReport> {
    let snapshot = crate::metrics::collect::collect(store, compat)?;
    let now = jiff::Timestamp::now().as_millisecond();
    let report = sinks::metrics::push(
        ep,
        &snapshot,
        &opts.settings,
        now,
        opts.retry_budget,
        temporality,
        store,
    )?;
    if let Some(e) = &report.error {
        tracing::warn!("metrics push to {} failed: {e}", report.url);
    }
    Ok(report)
}
