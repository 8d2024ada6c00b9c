//! The import's speed-ups change nothing in the store: folding records of one chunk that share an id
//! (`model::merge::coalesce`) and parsing on several threads leave exactly the rows a single thread upserting
//! every record would write, on every recorded run of every agent.

mod common;

use std::path::{Path, PathBuf};

use tokentrace::config::Config;
use tokentrace::ingest::{import_with, Enricher, ImportOptions};
use tokentrace::store::Store;

/// Every run folder with its files: the shared corpus and the recordings in `tests/fixtures`.
fn all_runs() -> Vec<PathBuf> {
    let agents = ["claude", "codex", "pi", "omp", "gemini"];
    let mut runs = Vec::new();
    if let Some(corpus) = common::shared_corpus() {
        runs.extend(common::runs(&corpus, &agents));
    } else {
        assert!(
            std::env::var_os("TOKENTRACE_REQUIRE_BACKENDS").is_none(),
            "../shared/corpus is missing"
        );
    }
    for base in ["tests/fixtures/recorded", "tests/fixtures/unseen"] {
        runs.extend(common::runs(&common::repo().join(base), &agents));
    }
    runs.sort();
    runs.dedup();
    runs
}

fn snapshot(dir: &Path, options: ImportOptions) -> (Vec<String>, u64) {
    let files = common::discover_dir(dir);
    let enricher = Enricher::new(Config::default(), None);
    let mut store = Store::open_in_memory().unwrap();
    let summary = import_with(&mut store, &files, &enricher, options).unwrap();
    (store.snapshot().unwrap(), summary.records)
}

#[test]
fn folding_and_threads_leave_the_same_store_on_every_recorded_run() {
    let runs = all_runs();
    assert!(runs.len() >= 30, "only {} runs found", runs.len());
    let mut folded = 0;
    for run in &runs {
        let home = run.join("home");
        let plain = ImportOptions {
            threads: Some(1),
            coalesce: false,
            ..ImportOptions::default()
        };
        let (expected, raw_records) = snapshot(&home, plain);
        assert!(expected.len() > 1, "{}: nothing imported", run.display());
        let (one, records) = snapshot(
            &home,
            ImportOptions {
                threads: Some(1),
                ..ImportOptions::default()
            },
        );
        assert_eq!(
            one,
            expected,
            "{}: folding changed the store",
            run.display()
        );
        let (three, _) = snapshot(
            &home,
            ImportOptions {
                threads: Some(3),
                ..ImportOptions::default()
            },
        );
        assert_eq!(
            three,
            expected,
            "{}: threads changed the store",
            run.display()
        );
        assert!(records <= raw_records);
        folded += raw_records - records;
    }
    // Claude Code repeats a generation per content block: folding must actually have happened.
    assert!(
        folded > 100,
        "only {folded} records folded over {} runs",
        runs.len()
    );
}

#[test]
fn threads_leave_the_same_store_on_a_many_file_history() {
    // Every run's files side by side in one folder tree: several files per worker, round-robin order.
    let tmp = tempfile::tempdir().unwrap();
    for (i, run) in all_runs().iter().enumerate() {
        common::copy_tree(&run.join("home"), &tmp.path().join(format!("r{i:03}")));
    }
    let (expected, _) = snapshot(
        tmp.path(),
        ImportOptions {
            threads: Some(1),
            coalesce: false,
            ..ImportOptions::default()
        },
    );
    for threads in [2, 4] {
        let (got, _) = snapshot(
            tmp.path(),
            ImportOptions {
                threads: Some(threads),
                ..ImportOptions::default()
            },
        );
        assert_eq!(got, expected, "{threads} threads");
    }
}
