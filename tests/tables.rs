//! Report tables at 60, 80 and 120 columns and at an unknown width, for every grouping, on the shared corpus
//! (every agent): no line is wider than the terminal, no cell is split over two lines, the compact layout
//! appears below 100 columns, and the tables are as snapshotted (`tests/snapshots/`; review changes with
//! `cargo insta review`, or `INSTA_UPDATE=always cargo test --test tables`).

mod common;

use std::process::Command;

use unicode_width::UnicodeWidthStr;

const GROUPINGS: [&str; 9] = [
    "daily", "weekly", "monthly", "session", "model", "project", "channel", "agent", "tool",
];

/// `report GROUPING` over every shared corpus run, in a store imported once.
fn table(data: &std::path::Path, grouping: &str, columns: Option<usize>) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokentrace"));
    cmd.args([
        "report",
        grouping,
        "--no-import",
        "--tz",
        "UTC",
        "--color",
        "never",
        "--data-dir",
    ])
    .arg(data)
    .env("HOME", data)
    .env_remove("NO_COLOR");
    match columns {
        Some(c) => cmd.env("COLUMNS", c.to_string()),
        None => cmd.env_remove("COLUMNS"),
    };
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn import_corpus(data: &std::path::Path) {
    let corpus = common::shared_corpus()
        .expect("the table snapshots are taken on ../shared/corpus, which this checkout lacks");
    let runs = common::runs(&corpus, &["pi", "omp", "claude", "codex", "gemini"]);
    assert!(runs.len() >= 35);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokentrace"));
    cmd.args(["report", "--tz", "UTC", "--data-dir"])
        .arg(data)
        .env("HOME", data);
    for r in &runs {
        cmd.arg("--path").arg(r.join("home"));
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn tables_fit_every_width_without_splitting_a_cell() {
    let data = tempfile::tempdir().unwrap();
    import_corpus(data.path());
    for grouping in GROUPINGS {
        let full = table(data.path(), grouping, None);
        let table_lines = |t: &str| t.lines().take_while(|l| !l.starts_with('└')).count();
        for width in [Some(60), Some(80), Some(120), None] {
            let t = table(data.path(), grouping, width);
            let name = format!(
                "{grouping}_{}",
                width.map_or("unknown".to_string(), |w| w.to_string())
            );
            // Every line of the table (and of the notes) fits.
            if let Some(w) = width {
                for line in t.lines() {
                    assert!(line.width() <= w, "{name}: {} > {w}: {line}", line.width());
                }
            }
            // A cell split over lines would add lines: the table has exactly one line per row.
            assert_eq!(
                table_lines(&t),
                table_lines(&full),
                "{name}: a cell was wrapped"
            );
            // Below 100 columns the cache columns give way (the compact layout) and the note says so.
            if grouping != "tool" && width.is_some_and(|w| w < 100) {
                assert!(!t.lines().next().unwrap().contains("Cache read"), "{name}");
                assert!(
                    t.contains("Not shown to fit") && t.contains("Cache read"),
                    "{name}"
                );
            }
            if width.is_none() && grouping != "tool" {
                assert!(
                    t.lines().nth(1).unwrap().contains("Cache read"),
                    "{name}: full width"
                );
            }
            insta::assert_snapshot!(name, t);
        }
    }
}
