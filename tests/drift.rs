//! Format drift: every recorded file is fully classified (a line type or usage field the parser does not
//! know fails this test, so a new agent release is noticed the day it is recorded), and `doctor` names what
//! an unknown release writes, with the agent version.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use tokentrace::store::Store;

/// Every run folder with a `home/`: the shared corpus, `examples/` and both fixture sets.
fn every_run() -> Vec<PathBuf> {
    let agents = ["pi", "omp", "claude", "codex", "gemini"];
    let mut bases = vec![
        common::repo().join("examples"),
        common::repo().join("tests/fixtures/unseen"),
        common::repo().join("tests/fixtures/recorded"),
    ];
    bases.extend(common::shared_corpus());
    let mut runs = Vec::new();
    for base in bases {
        runs.extend(common::runs(&base, &agents));
    }
    runs
}

#[test]
fn every_recorded_file_is_fully_classified() {
    let runs = every_run();
    assert!(runs.len() >= 60, "only {} runs found", runs.len());
    let mut unknown = Vec::new();
    for run in &runs {
        let mut store = Store::open_in_memory().unwrap();
        common::import_dir(&mut store, &run.join("home"));
        for d in store.drift().unwrap() {
            unknown.push(format!(
                "{}: {} {:?} {} `{}` ×{} e.g. {}",
                run.display(),
                d.agent,
                d.agent_version,
                d.what,
                d.name,
                d.count,
                d.example.unwrap_or_default()
            ));
        }
    }
    assert!(
        unknown.is_empty(),
        "unclassified line types / usage fields (add them to the source's known or ignored list, with an \
         example in its README):\n{}",
        unknown.join("\n")
    );
}

fn tokentrace(data: &Path, args: &[&str]) -> Output {
    common::tokentrace(data, args)
}

/// A Claude Code 2.1.332 transcript with an invented line type and an invented usage field: the import keeps
/// every known total, and `doctor` (table and JSON) names both with the agent version.
#[test]
fn doctor_names_an_invented_line_type_and_usage_field_with_the_agent_version() {
    let run = common::repo().join("tests/fixtures/recorded/claude/claude-2.1.332/run21-simple");
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    common::copy_tree(&run.join("home"), &home);
    let file = walkdir::WalkDir::new(&home)
        .into_iter()
        .filter_map(Result::ok)
        .find(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .unwrap()
        .into_path();
    let text = std::fs::read_to_string(&file).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let mut line = line.to_string();
        if line.contains("\"type\":\"assistant\"") && line.contains("\"output_tokens\":") {
            line = line.replacen(
                "\"output_tokens\":",
                "\"lunar_tokens\":7,\"output_tokens\":",
                1,
            );
        }
        out.push_str(&line);
        out.push('\n');
    }
    let sid = text
        .lines()
        .find_map(|l| {
            serde_json::from_str::<serde_json::Value>(l).ok()?["sessionId"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap();
    out.push_str(&format!(
        "{{\"type\":\"moon-phase\",\"phase\":\"waxing\",\"sessionId\":\"{sid}\",\"version\":\"2.1.332\"}}\n"
    ));
    std::fs::write(&file, out).unwrap();
    let data = tmp.path().join("data");
    let report = tokentrace(
        &data,
        &[
            "report",
            "session",
            "--json",
            "--path",
            home.to_str().unwrap(),
        ],
    );
    assert!(report.status.success());
    let got: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    let diffs = common::totals_diff(1, &got["totals"], &common::expected(&run));
    assert!(diffs.is_empty(), "{diffs:?}");

    let doctor = tokentrace(&data, &["doctor"]);
    let text = String::from_utf8_lossy(&doctor.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("unknown line type"))
        .unwrap_or_else(|| panic!("no drift line in:\n{text}"));
    assert!(
        line.contains("Claude Code 2.1.332") && line.contains("moon-phase"),
        "{line}"
    );
    let line = text
        .lines()
        .find(|l| l.contains("unknown usage field"))
        .unwrap_or_else(|| panic!("no usage drift in:\n{text}"));
    assert!(
        line.contains("2.1.332") && line.contains("lunar_tokens"),
        "{line}"
    );

    let doctor = tokentrace(&data, &["doctor", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let names: Vec<(String, String, String)> = doc["format_drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["agent_version"].as_str().unwrap_or("").to_string(),
                d["what"].as_str().unwrap().to_string(),
                d["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            ("2.1.332".into(), "line type".into(), "moon-phase".into()),
            (
                "2.1.332".into(),
                "usage field".into(),
                "lunar_tokens".into()
            ),
        ]
    );
    let count = doc["format_drift"][1]["count"].as_u64().unwrap();
    assert!(
        count >= 2,
        "every assistant line of the run counts: {count}"
    );
}
