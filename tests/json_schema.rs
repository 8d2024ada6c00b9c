//! Every grouping's `report --json` (with and without `--breakdown`) validates against the schema in the repo
//! (`docs/report.schema.json`), with the official Python `jsonschema` package (CI installs it; without it the
//! test fails under `TOKENTRACE_REQUIRE_BACKENDS=1` and is reported as skipped otherwise).

mod common;

use std::process::{Command, Stdio};

const GROUPINGS: [&str; 9] = [
    "daily", "weekly", "monthly", "session", "model", "project", "channel", "agent", "tool",
];

fn have_jsonschema() -> bool {
    Command::new("python3")
        .args(["-c", "import jsonschema"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn every_grouping_validates_against_the_schema() {
    if !have_jsonschema() {
        common::skip_missing(
            "the jsonschema Python package",
            "python3 -m pip install jsonschema",
        );
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let mut docs = Vec::new();
    let paths = [
        common::repo().join("examples"),
        common::repo().join("tests/fixtures/recorded"),
    ];
    for grouping in GROUPINGS {
        for extra in [&[][..], &["--breakdown"][..]] {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokentrace"));
            cmd.args(["report", grouping, "--json", "--tz", "UTC", "--data-dir"])
                .arg(data.path())
                .args(extra)
                .env("HOME", data.path());
            for p in &paths {
                cmd.arg("--path").arg(p);
            }
            let out = cmd.output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(doc["grouping"], grouping);
            assert!(!doc["rows"].as_array().unwrap().is_empty(), "{grouping}");
            docs.push(doc);
        }
    }
    // A document that breaks the schema must fail, or the check proves nothing.
    let mut broken = docs[0].clone();
    broken["totals"]["tokens"]["input"] = serde_json::json!(-1);
    let check = |doc: &serde_json::Value| -> std::process::Output {
        let file = data.path().join("doc.json");
        std::fs::write(&file, doc.to_string()).unwrap();
        Command::new("python3")
            .args([
                "-c",
                "import json,sys,jsonschema; jsonschema.validate(json.load(open(sys.argv[2])), json.load(open(sys.argv[1])))",
            ])
            .arg(common::repo().join("docs/report.schema.json"))
            .arg(&file)
            .output()
            .unwrap()
    };
    let bad = check(&broken);
    assert!(
        !bad.status.success(),
        "the schema accepted a negative token count"
    );
    for doc in &docs {
        let out = check(doc);
        assert!(
            out.status.success(),
            "{} does not validate: {}",
            doc["grouping"],
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
