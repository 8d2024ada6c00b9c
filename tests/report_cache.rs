//! A report re-run with nothing new prints the report kept from the previous run (schema 16), and only then:
//! new data, a renamed file, other arguments or other prices are read again.

mod common;

use std::path::Path;

/// `tokentrace ARGS` in `cwd` with the store in `data`: its stdout (the run must succeed).
fn run_in(cwd: &Path, data: &Path, args: &[&str]) -> String {
    let out = common::tokentrace_in(cwd, data, args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `tokentrace [GLOBAL] report session --json --path DIR [LOCAL]`: its stdout (`--tz` goes in LOCAL).
fn report(data: &Path, dir: &Path, global: &[&str], local: &[&str]) -> String {
    let dir = dir.to_str().unwrap();
    let args: Vec<&str> = global
        .iter()
        .copied()
        .chain(["report", "session", "--json", "--path", dir])
        .chain(local.iter().copied())
        .collect();
    run_in(&common::repo(), data, &args)
}

/// Replaces every kept report's body with a marker: a run that prints the marker used a kept report.
fn mark_kept(data: &Path) -> usize {
    let db = rusqlite::Connection::open(data.join("tokentrace.db")).unwrap();
    db.execute("UPDATE report_cache SET body = 'KEPT\n'", [])
        .unwrap()
}

fn sessions(out: &str) -> u64 {
    let doc: serde_json::Value = serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"));
    doc["totals"]["sessions"].as_u64().unwrap()
}

fn example(run: &str) -> std::path::PathBuf {
    let base = common::repo().join("examples/pi/pi-0.87.1").join(run);
    common::session_file(&base)
}

#[test]
fn a_report_is_kept_until_the_data_or_the_question_changes() {
    let data = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("a.jsonl");
    std::fs::copy(example("01-print-openai"), &first).unwrap();
    let utc = |data: &Path| report(data, dir.path(), &[], &["--tz", "UTC"]);
    let tokyo = |data: &Path| report(data, dir.path(), &[], &["--tz", "Asia/Tokyo"]);

    assert_eq!(sessions(&utc(data.path())), 1);
    assert_eq!(mark_kept(data.path()), 1, "the report was kept");
    assert_eq!(utc(data.path()), "KEPT\n", "nothing new: the kept report");

    // Another question: its own report, kept beside the first.
    assert_eq!(sessions(&tokyo(data.path())), 1);
    assert_eq!(mark_kept(data.path()), 2);
    assert_eq!(tokyo(data.path()), "KEPT\n");

    // New data: the run that imports it reads again (it wrote), and so does the next run of another
    // question, whose kept report is from before (the data version moved).
    std::fs::copy(
        example("03-json-anthropic-thinking-read"),
        dir.path().join("b.jsonl"),
    )
    .unwrap();
    assert_eq!(sessions(&utc(data.path())), 2);
    assert_eq!(sessions(&tokyo(data.path())), 2);

    // A renamed file, the same way.
    assert_eq!(mark_kept(data.path()), 2);
    std::fs::rename(&first, dir.path().join("c.jsonl")).unwrap();
    assert_eq!(sessions(&utc(data.path())), 2);
    assert_ne!(tokyo(data.path()), "KEPT\n", "kept before the rename");

    // Other prices: the config is part of the key.
    assert_eq!(mark_kept(data.path()), 2);
    let config = data.path().join("config.toml");
    std::fs::write(
        &config,
        "[prices.\"mock-gpt\"]\ninput = 1.0\noutput = 2.0\n",
    )
    .unwrap();
    let repriced = report(
        data.path(),
        dir.path(),
        &["--config", config.to_str().unwrap()],
        &["--tz", "UTC"],
    );
    let doc: serde_json::Value = serde_json::from_str(&repriced).unwrap();
    assert_eq!(doc["sessions"].as_array().unwrap().len(), 2);
    assert!(
        doc["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["cost_source"] == "override"),
        "{repriced}"
    );

    // The same prices named in another process: the same key (a map's order is not part of it).
    std::fs::write(
        &config,
        "[prices.\"mock-gpt\"]\ninput = 1.0\noutput = 2.0\n[prices.\"m-b\"]\ninput = 3.0\noutput = 4.0\n\
         [prices.\"m-c\"]\ninput = 5.0\noutput = 6.0\n[prices.\"m-d\"]\ninput = 7.0\noutput = 8.0\n",
    )
    .unwrap();
    let with_four = |data: &Path| {
        report(
            data,
            dir.path(),
            &["--config", config.to_str().unwrap()],
            &["--tz", "UTC"],
        )
    };
    assert_ne!(with_four(data.path()), "KEPT\n");
    for _ in 0..3 {
        mark_kept(data.path());
        assert_eq!(with_four(data.path()), "KEPT\n");
    }

    // Blocks depend on the time now: never kept.
    let before = mark_kept(data.path());
    let dir_arg = dir.path().to_str().unwrap();
    let args = [
        "report", "blocks", "--json", "--source", "pi", "--path", dir_arg,
    ];
    run_in(&common::repo(), data.path(), &args);
    assert_eq!(mark_kept(data.path()), before, "no report kept for blocks");
}

#[test]
fn the_same_relative_path_from_another_folder_is_another_report() {
    let data = tempfile::tempdir().unwrap();
    let (x, y) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for (base, run) in [
        (&x, "01-print-openai"),
        (&y, "03-json-anthropic-thinking-read"),
    ] {
        std::fs::create_dir(base.path().join("d")).unwrap();
        std::fs::copy(example(run), base.path().join("d/s.jsonl")).unwrap();
    }
    let session_ids = |cwd: &Path| -> Vec<String> {
        let args = ["report", "session", "--json", "--tz", "UTC", "--path", "d"];
        let doc: serde_json::Value =
            serde_json::from_str(&run_in(cwd, data.path(), &args)).unwrap();
        doc["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["session_id"].as_str().unwrap().to_string())
            .collect()
    };
    let in_x = session_ids(x.path());
    let in_y = session_ids(y.path());
    assert_eq!(in_x.len(), 1);
    assert_eq!(in_y.len(), 1);
    assert_ne!(in_x, in_y);
    // Both imported: nothing new from either folder now, and each still gets its own sessions.
    for _ in 0..2 {
        assert_eq!(session_ids(x.path()), in_x);
        assert_eq!(session_ids(y.path()), in_y);
    }
}
