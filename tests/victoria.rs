//! OTLP metrics reach a real VictoriaMetrics (Debian sid's build, installed by `scripts/test` into
//! target/vm; `VICTORIA_METRICS` names the binary) over OTLP/HTTP protobuf, and its query API returns the
//! report's totals.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::net::{encode, free_port, get, Killed};
use serde_json::Value;

/// `sum by (label) (metric)` from VictoriaMetrics' query API, as label value → value.
fn sum_by(port: u16, metric: &str, label: &str) -> std::collections::BTreeMap<String, f64> {
    let q = format!("sum by ({label}) ({{__name__=\"{metric}\"}})");
    let body = get(port, &format!("/api/v1/query?query={}", encode(&q)))
        .map(|(_, b)| b)
        .unwrap_or_default();
    let doc: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    doc["data"]["result"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    (
                        r["metric"][label].as_str().unwrap_or("").to_string(),
                        r["value"][1].as_str().unwrap().parse::<f64>().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn otlp_metrics_reach_victoriametrics_with_the_reports_totals() {
    let Some(vm) =
        std::env::var_os("VICTORIA_METRICS").filter(|p| std::path::Path::new(p).exists())
    else {
        return common::skip_missing(
            "VictoriaMetrics (VICTORIA_METRICS)",
            "scripts/test installs it into target/vm",
        );
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _vm = Killed(
        Command::new(vm)
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!(
                "-storageDataPath={}",
                dir.path().join("vm").display()
            ))
            // Instant queries see the newest points at once (the default hides the last 30 s).
            .arg("-search.latencyOffset=0")
            .arg("-search.disableCache")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let until = Instant::now() + Duration::from_secs(20);
    while get(port, "/health").is_none_or(|(_, b)| !b.contains("OK")) {
        assert!(Instant::now() < until, "VictoriaMetrics did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let data = dir.path().join("data");
    let out = common::recordings_command(
        &data,
        &["sync", "--json", "--retry-budget", "10"],
        &[(
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            format!("http://127.0.0.1:{port}/opentelemetry/v1/metrics"),
        )],
    )
    .output()
    .unwrap();
    let sync: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(sync["metrics"]["error"].is_null(), "{sync}");
    // The report, per model: cost and output tokens.
    let report = Command::new(env!("CARGO_BIN_EXE_tokentrace"))
        .args(["report", "model", "--json", "--no-import", "--data-dir"])
        .arg(&data)
        .env("HOME", &data)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&report.stdout).unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert!(rows.len() >= 3);
    // Stored within about a second once flushed.
    let until = Instant::now() + Duration::from_secs(15);
    let (cost, output) = loop {
        get(port, "/internal/force_flush");
        let cost = sum_by(port, "tokentrace.cost.usage", "gen_ai.response.model");
        let output = sum_by(
            port,
            "gen_ai.client.inference.usage.output_tokens",
            "gen_ai.response.model",
        );
        if cost.len() >= rows.len() || Instant::now() > until {
            break (cost, output);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    for row in rows {
        let model = row["key"].as_str().unwrap();
        let want = row["cost_usd"].as_f64().unwrap();
        let got = cost.get(model).copied().unwrap_or(f64::NAN);
        assert!(
            (got - want).abs() < 1e-9,
            "{model}: cost {got} vs the report's {want}"
        );
        let want = row["tokens"]["output"].as_f64().unwrap();
        assert_eq!(
            output.get(model).copied(),
            Some(want),
            "{model}: output tokens"
        );
    }
    assert_eq!(cost.len(), rows.len(), "{cost:?}");
}
