//! `tokentrace metrics`: import what is new, then print the metric set in the Prometheus text format (what
//! `watch --metrics-listen` serves); `metrics export` writes its history as OpenMetrics for backfill.

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};

use super::{print_import_warnings, Context, SourceArgs};
use crate::metrics::{collect, openmetrics, prometheus};

#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "\
Examples:
  tokentrace metrics                                   every series, computed from the store
  tokentrace metrics --no-import | promtool check metrics
  tokentrace metrics > /var/lib/node_exporter/textfile/tokentrace.prom
  tokentrace metrics export --since 2026-09-01 > history.om
  promtool tsdb create-blocks-from openmetrics history.om /var/lib/prometheus/metrics2
Series (OpenTelemetry names; Prometheus adds unit suffixes and _total):
  gen_ai.client.inference.usage.* token counters, the gen_ai.client.token.usage and
  gen_ai.client.operation.duration histograms, tokentrace.cost.usage (USD), prompts,
  generations, generation errors, tool calls, tool errors, tool duration, sessions,
  session duration.
Labels: agent, model, provider, token type, tool, channel, user; never a session or
trace id."
)]
pub struct MetricsArgs {
    #[command(subcommand)]
    pub command: Option<MetricsCommand>,
    /// Also emit an agent's own metric names for its sessions, so that dashboards built on its telemetry
    /// show the history: claude_code (claude_code_token_usage_tokens_total{type,model},
    /// claude_code_cost_usage_USD_total{model}, claude_code_session_count_total) and codex
    /// (codex_turn_token_usage{model,token_type}). Config: metrics_compat.
    #[arg(long, global = true, value_delimiter = ',', value_name = "AGENT")]
    pub metrics_compat: Vec<String>,
    #[command(flatten)]
    pub sources: SourceArgs,
}

#[derive(Debug, Subcommand)]
pub enum MetricsCommand {
    /// Write the metric history as OpenMetrics text with timestamps (one sample per series and step, the
    /// cumulative value at that time) for `promtool tsdb create-blocks-from openmetrics`; its series
    /// continue into what `watch --metrics-listen` serves.
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub sources: SourceArgs,
    /// First step: a day (YYYY-MM-DD, UTC midnight) or an RFC 3339 time; default: the first measurement.
    #[arg(long, value_name = "DATE")]
    pub since: Option<String>,
    /// Last day (inclusive: up to the next midnight, UTC) or an RFC 3339 time; default: now.
    #[arg(long, value_name = "DATE")]
    pub until: Option<String>,
    /// Time between samples: 30s, 5m, 1h, 1d.
    #[arg(long, value_name = "STEP", default_value = "1h")]
    pub step: String,
}

/// `YYYY-MM-DD` (UTC midnight, plus a day when `end_of_day`) or an RFC 3339 time, as ms since the epoch.
fn parse_time(text: &str, end_of_day: bool, option: &str) -> Result<i64> {
    if let Ok(date) = text.parse::<jiff::civil::Date>() {
        let date = if end_of_day {
            date.tomorrow().context("date out of range")?
        } else {
            date
        };
        return Ok(date
            .to_zoned(jiff::tz::TimeZone::UTC)?
            .timestamp()
            .as_millisecond());
    }
    let ts: jiff::Timestamp = text.parse().with_context(|| {
        format!("{option} {text}: expected a day (2026-11-01) or an RFC 3339 time (2026-11-01T12:00:00Z)")
    })?;
    Ok(ts.as_millisecond())
}

/// `30s`, `5m`, `1h`, `1d` in ms.
fn parse_step(text: &str) -> Result<i64> {
    let (n, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: i64 = n.parse().ok().filter(|n| *n > 0).with_context(|| {
        format!("--step {text}: expected a positive number and a unit (30s, 5m, 1h, 1d)")
    })?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => anyhow::bail!("--step {text}: the unit must be s, m, h or d"),
    };
    Ok(n * unit_ms)
}

pub fn run(ctx: &Context, args: MetricsArgs) -> Result<()> {
    let sources = match &args.command {
        Some(MetricsCommand::Export(e)) => &e.sources,
        None => &args.sources,
    };
    let compat = ctx.metrics_compat(&args.metrics_compat)?;
    let mut store = ctx.open_store()?;
    if !sources.no_import {
        let summary = ctx.import(&mut store, sources)?;
        print_import_warnings(&summary);
    }
    match args.command {
        None => print!("{}", prometheus::render(&collect::collect(&store, compat)?)),
        Some(MetricsCommand::Export(e)) => {
            let step = parse_step(&e.step)?;
            let since = e
                .since
                .as_deref()
                .map(|s| parse_time(s, false, "--since"))
                .transpose()?;
            let until = match e.until.as_deref() {
                Some(u) => parse_time(u, true, "--until")?,
                None => jiff::Timestamp::now().as_millisecond(),
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let summary = openmetrics::export(&store, compat, since, until, step, &mut out)?;
            let at = |ms: Option<i64>| {
                ms.and_then(|m| jiff::Timestamp::from_millisecond(m).ok())
                    .map_or("-".to_string(), |t| t.to_string())
            };
            eprintln!(
                "tokentrace: wrote {} series, {} samples from {} to {}",
                summary.series,
                summary.samples,
                at(summary.first_ms),
                at(summary.last_ms)
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_times_parse() {
        assert_eq!(parse_step("1h").unwrap(), 3_600_000);
        assert_eq!(parse_step("30s").unwrap(), 30_000);
        assert!(parse_step("0h").is_err() && parse_step("h").is_err() && parse_step("5w").is_err());
        let day = parse_time("2026-11-23", false, "--since").unwrap();
        assert_eq!(day, 1_795_392_000_000);
        assert_eq!(
            parse_time("2026-11-23", true, "--until").unwrap(),
            day + 86_400_000
        );
        assert_eq!(
            parse_time("2026-11-23T00:00:00Z", false, "--since").unwrap(),
            day
        );
        assert!(parse_time("yesterday", false, "--since").is_err());
    }
}
