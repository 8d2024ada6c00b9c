//! Backfill: the metric history as OpenMetrics text with timestamps (seconds), for `promtool tsdb
//! create-blocks-from openmetrics` (Prometheus).
//!
//! Every series gets a sample at each step boundary `t` from the first step that follows its first
//! measurement: its cumulative value over everything that happened before `t` — the value
//! `tokentrace metrics` would have shown at `t`. So `increase(x[1d])` at midnight is that day's amount, and the
//! series go on seamlessly into what `watch --metrics-listen` serves afterwards (same names, labels and
//! cumulative values). Families are written one after the other, each series whole with rising timestamps,
//! as OpenMetrics requires, then `# EOF`.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Result;

use super::collect::{families, for_each_sample, Compat, Labels};
use super::prometheus::{metric_name, type_name, write_series};
use crate::store::Store;

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ExportSummary {
    pub series: u64,
    pub samples: u64,
    /// The first and last step written (ms since the epoch), if any.
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
}

/// Writes the history from `since_ms` (default: the step of the first measurement) to `until_ms`, one sample
/// per series every `step_ms`, to `out`. Measurements without a time count from the start. Errors: the
/// store cannot be read, `out` cannot be written, or `step_ms` is not positive.
pub fn export(
    store: &Store,
    compat: Compat,
    since_ms: Option<i64>,
    until_ms: i64,
    step_ms: i64,
    out: &mut dyn Write,
) -> Result<ExportSummary> {
    anyhow::ensure!(step_ms > 0, "the step must be positive");
    // Measurements by series, in arrival order; a family's series sorted by labels.
    let mut groups: BTreeMap<(usize, Labels), Vec<(i64, f64)>> = BTreeMap::new();
    let mut first: Option<i64> = None;
    for_each_sample(store, compat, |at, family, labels, value| {
        let at = at.unwrap_or(i64::MIN);
        if at != i64::MIN {
            first = Some(first.map_or(at, |f| f.min(at)));
        }
        groups
            .entry((family, labels.clone()))
            .or_default()
            .push((at, value));
    })?;
    let floor = |t: i64| t.div_euclid(step_ms) * step_ms;
    let start = floor(since_ms.or(first).unwrap_or(until_ms));
    let end = floor(until_ms);
    let mut summary = ExportSummary::default();
    let templates = families();
    let mut text = String::new();
    for (index, template) in templates.iter().enumerate() {
        let base = metric_name(template);
        let mut wrote_header = false;
        for ((_, labels), samples) in groups.iter_mut().filter(|((f, _), _)| *f == index) {
            samples.sort_by_key(|(at, _)| *at);
            // The series' running value, kept in a one-series family.
            let mut running = template.clone();
            let mut next = 0;
            let mut t = start;
            let mut wrote_series = false;
            while t <= end {
                while next < samples.len() && samples[next].0 < t {
                    running.add(labels, samples[next].1);
                    next += 1;
                }
                if let Some(value) = running.series.get(labels) {
                    if !wrote_header {
                        text.push_str(&format!(
                            "# HELP {base} {}\n# TYPE {base} {}\n",
                            template.help,
                            type_name(template)
                        ));
                        wrote_header = true;
                    }
                    write_series(
                        &mut text,
                        template,
                        &base,
                        labels,
                        value,
                        Some(t as f64 / 1000.0),
                    );
                    summary.samples += 1;
                    summary.first_ms = Some(summary.first_ms.map_or(t, |f| f.min(t)));
                    summary.last_ms = Some(summary.last_ms.map_or(t, |l| l.max(t)));
                    wrote_series = true;
                }
                t += step_ms;
                if text.len() > 1 << 20 {
                    out.write_all(text.as_bytes())?;
                    text.clear();
                }
            }
            if wrote_series {
                summary.series += 1;
            }
        }
    }
    text.push_str("# EOF\n");
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(summary)
}
