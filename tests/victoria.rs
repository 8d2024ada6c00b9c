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

/// A VictoriaMetrics on a free port with its data in `dir`, up and healthy; `None` (skipped, or failed under
/// `TOKENTRACE_REQUIRE_BACKENDS`) when it is not installed.
fn start_vm(dir: &std::path::Path) -> Option<(Killed, u16)> {
    let Some(vm) =
        std::env::var_os("VICTORIA_METRICS").filter(|p| std::path::Path::new(p).exists())
    else {
        common::skip_missing(
            "VictoriaMetrics (VICTORIA_METRICS)",
            "scripts/test installs it into target/vm",
        );
        return None;
    };
    let port = free_port();
    let vm = Killed(
        Command::new(vm)
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!("-storageDataPath={}", dir.join("vm").display()))
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
    Some((vm, port))
}

#[test]
fn otlp_metrics_reach_victoriametrics_with_the_reports_totals() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_vm, port)) = start_vm(dir.path()) else {
        return;
    };
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

/// `metrics export` (OpenMetrics with timestamps) goes into VictoriaMetrics through its import API
/// (`/api/v1/import/prometheus`), and the cumulative cost at the end of each reported day there equals the sum
/// of `report daily` up to that day.
#[test]
fn the_exported_history_imports_into_victoriametrics_with_each_days_cost() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_vm, port)) = start_vm(dir.path()) else {
        return;
    };
    let data = dir.path().join("data");
    let export = common::recordings_command(&data, &["metrics", "export", "--step", "1h"], &[])
        .output()
        .unwrap();
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::{Read, Write};
    write!(
        stream,
        "POST /api/v1/import/prometheus HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n",
        export.stdout.len()
    )
    .unwrap();
    stream.write_all(&export.stdout).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 204") || answer.starts_with("HTTP/1.0 204"),
        "{answer}"
    );
    get(port, "/internal/force_flush");
    let daily = Command::new(env!("CARGO_BIN_EXE_tokentrace"))
        .args([
            "report",
            "daily",
            "--json",
            "--tz",
            "UTC",
            "--no-import",
            "--data-dir",
        ])
        .arg(&data)
        .env("HOME", &data)
        .output()
        .unwrap();
    let daily: Value = serde_json::from_slice(&daily.stdout).unwrap();
    let rows = daily["rows"].as_array().unwrap();
    assert!(rows.len() >= 2, "{daily}");
    let mut cumulative = 0.0;
    for row in rows {
        cumulative += row["cost_usd"].as_f64().unwrap();
        // The end of the day (UTC): the first export step of the next day.
        let day: jiff::civil::Date = row["key"].as_str().unwrap().parse().unwrap();
        let end = day
            .tomorrow()
            .unwrap()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .unwrap()
            .timestamp()
            .as_second();
        let q = encode("sum(tokentrace_cost_usage_USD_total)");
        let until = Instant::now() + Duration::from_secs(10);
        let got = loop {
            let body = get(port, &format!("/api/v1/query?query={q}&time={end}"))
                .map(|(_, b)| b)
                .unwrap_or_default();
            let doc: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let v = doc["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok());
            match v {
                Some(v) => break v,
                None if Instant::now() < until => std::thread::sleep(Duration::from_millis(200)),
                None => panic!("no value at {end}: {body}"),
            }
        };
        assert!(
            (got - cumulative).abs() < 1e-6,
            "{day}: {got} in VictoriaMetrics vs {cumulative} by the report"
        );
    }
}
