//! A real Prometheus (Debian package `prometheus`, installed by `scripts/test`) scrapes `watch
//! --metrics-listen` and holds the history `metrics export` backfilled through `promtool tsdb
//! create-blocks-from openmetrics`: PromQL over the scraped series returns the report's total cost, and over the
//! backfilled ones each day's cost equals `report daily --json`.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::net::{encode, free_port, get, Killed};
use common::{tokentrace_stdout as tokentrace, RECORDINGS as PATHS};
use serde_json::Value;

/// The value of a PromQL instant query at `time` (seconds), summed over the result vector; `None` when the
/// result is empty.
fn query(port: u16, promql: &str, time: f64) -> Option<f64> {
    let (_, body) = get(
        port,
        &format!("/api/v1/query?query={}&time={time}", encode(promql)),
    )?;
    let doc: Value = serde_json::from_str(&body).ok()?;
    assert_eq!(doc["status"], "success", "{promql}: {body}");
    let result = doc["data"]["result"].as_array()?;
    if result.is_empty() {
        return None;
    }
    Some(
        result
            .iter()
            .map(|r| r["value"][1].as_str().unwrap().parse::<f64>().unwrap())
            .sum(),
    )
}

#[test]
fn prometheus_scrapes_the_endpoint_and_holds_the_backfilled_history_equal_to_the_report() {
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
        || Command::new("promtool").arg("--version").output().is_err()
    {
        return common::skip_missing("prometheus and promtool", "apt-get install prometheus");
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The history, backfilled: export up to the end of the last reported day.
    let mut import = vec!["report", "daily", "--json", "--tz", "UTC"];
    for p in PATHS {
        import.extend(["--path", p]);
    }
    let daily: Value = serde_json::from_slice(&tokentrace(&data, &import)).unwrap();
    let days: Vec<(String, f64)> = daily["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_string(),
                r["cost_usd"].as_f64().unwrap(),
            )
        })
        .collect();
    assert!(days.len() >= 2, "{days:?}");
    let last_day = days.last().unwrap().0.clone();
    let history = tokentrace(
        &data,
        &[
            "metrics",
            "export",
            "--no-import",
            "--until",
            &last_day,
            "--step",
            "1h",
        ],
    );
    let om = dir.path().join("history.om");
    std::fs::write(&om, &history).unwrap();
    let tsdb = dir.path().join("tsdb");
    let out = Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om)
        .arg(&tsdb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The live endpoint, on the same store.
    let metrics_port = free_port();
    let _watch = Killed(
        common::recordings_command(
            &data,
            &[
                "watch",
                "--metrics-listen",
                &format!("127.0.0.1:{metrics_port}"),
            ],
            &[],
        )
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let prom_port = free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: tokentrace\n    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
        ),
    )
    .unwrap();
    let _prometheus = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", tsdb.display()))
            .arg("--storage.tsdb.retention.time=100y")
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The scraped series: today's total equals the report's.
    let total: f64 = days.iter().map(|(_, c)| c).sum();
    let now = || jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
    let until = Instant::now() + Duration::from_secs(60);
    let scraped = loop {
        if let Some(v) = get(prom_port, "/-/ready")
            .filter(|(_, b)| b.contains("Ready"))
            .and_then(|_| {
                query(
                    prom_port,
                    "sum(tokentrace_cost_usage_USD_total{job=\"tokentrace\"})",
                    now(),
                )
            })
        {
            break v;
        }
        assert!(
            Instant::now() < until,
            "Prometheus never scraped the endpoint"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(
        (scraped - total).abs() < 1e-9,
        "scraped total {scraped} vs the report's {total}"
    );
    // The backfilled series (no job label): each day's increase is the report's cost of that day.
    let midnight = |day: &str| -> f64 {
        let date: jiff::civil::Date = day.parse().unwrap();
        date.to_zoned(jiff::tz::TimeZone::UTC)
            .unwrap()
            .timestamp()
            .as_second() as f64
    };
    let backfilled = "sum(tokentrace_cost_usage_USD_total{job=\"\"})";
    for (day, cost) in &days {
        let start = midnight(day);
        let before = query(prom_port, backfilled, start).unwrap_or(0.0);
        let after = query(prom_port, backfilled, start + 86_400.0)
            .unwrap_or_else(|| panic!("no backfilled sample at the end of {day}"));
        assert!(
            (after - before - cost).abs() < 1e-9,
            "{day}: Prometheus says {} USD, the report {cost}",
            after - before
        );
    }
    // Every query of the dashboard returns data for the recordings, at the end of the backfilled history,
    // over a 30-day range (Grafana's `$__range`).
    let end = midnight(&last_day) + 86_400.0;
    let dashboard = common::repo().join("dashboards/grafana/tokentrace.json");
    let doc: Value = serde_json::from_slice(&std::fs::read(&dashboard).unwrap()).unwrap();
    let panels = check_dashboard_structure(&doc);
    let mut queries = 0;
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap().replace("$__range", "30d");
            let (_, body) = get(
                prom_port,
                &format!("/api/v1/query?query={}&time={end}", encode(&expr)),
            )
            .unwrap();
            let result: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(result["status"], "success", "{expr}: {body}");
            let values: Vec<f64> = result["data"]["result"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["value"][1].as_str().unwrap().parse::<f64>().unwrap())
                .collect();
            assert!(
                values.iter().any(|v| v.is_finite()),
                "panel {:?}: {expr} returned no data: {body}",
                panel["title"]
            );
            queries += 1;
        }
    }
    assert!(queries >= 17, "{queries} queries");
}

/// A structural check of the dashboard (Grafana's schema is not installable here): a `datasource` template
/// variable and no hard-coded datasource UID anywhere, every panel with an id, a type, a title, a grid
/// position and PromQL targets with a refId. Returns the panels.
fn check_dashboard_structure(doc: &Value) -> &Vec<Value> {
    assert!(doc["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(doc["schemaVersion"].as_u64().is_some_and(|v| v >= 36));
    assert!(
        doc.get("uid").is_none_or(Value::is_null),
        "no fixed dashboard uid"
    );
    let vars = doc["templating"]["list"].as_array().unwrap();
    assert!(vars.iter().any(|v| v["name"] == "datasource"
        && v["type"] == "datasource"
        && v["query"] == "prometheus"));
    let text = doc.to_string();
    for uid in text.match_indices("\"uid\":") {
        let rest = &text[uid.0 + 6..];
        assert!(
            rest.starts_with("\"${datasource}\""),
            "a hard-coded uid: {}",
            &rest[..40.min(rest.len())]
        );
    }
    let panels = doc["panels"].as_array().unwrap();
    let mut ids = std::collections::BTreeSet::new();
    for p in panels {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "unique panel ids");
        assert!(p["type"].as_str().is_some() && p["title"].as_str().is_some());
        for k in ["h", "w", "x", "y"] {
            assert!(
                p["gridPos"][k].as_u64().is_some(),
                "{}: gridPos.{k}",
                p["title"]
            );
        }
        assert!(p["gridPos"]["x"].as_u64().unwrap() + p["gridPos"]["w"].as_u64().unwrap() <= 24);
        assert_eq!(p["datasource"]["uid"], "${datasource}");
        for t in p["targets"].as_array().unwrap() {
            assert!(t["refId"].as_str().is_some() && t["expr"].as_str().is_some());
        }
    }
    panels
}
