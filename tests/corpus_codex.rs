//! Codex CLI rollouts: every recorded run (the shared corpus and `tests/fixtures/unseen/codex`, recordings the
//! parser was not developed against) reports exactly its `expected.json` through `report session --json`; and
//! the cases the recordings do not cover are built from them in a temp dir: a fork whose file replays its
//! parent's history, an archived copy next to the original, a rollout imported in two halves cut mid-line.

mod common;

use common::{expected, report_session as report};

use std::path::{Path, PathBuf};

use serde_json::Value;
use tokentrace::store::Store;

/// Files above this size are not used (the recordings are all far below).
const MAX_FILE_BYTES: u64 = 2 * 1024 * 1024;

fn check(run: &Path) -> Result<(), String> {
    let expected = expected(run);
    let got = report(&run.join("home"));
    let sessions = got["sessions"].as_array().unwrap();
    let mut diffs = common::totals_diff(sessions.len(), &got["totals"], &expected);
    for s in sessions {
        if s["agent"] != "codex" {
            diffs.push(format!("agent {} != codex", s["agent"]));
        }
        if s["agent_version"] != expected["agent_version"] {
            diffs.push(format!(
                "agent_version {} != {}",
                s["agent_version"], expected["agent_version"]
            ));
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {}", run.display(), diffs.join(", ")))
    }
}

fn check_all(base: &Path) -> usize {
    let runs = common::runs(base, &["codex"]);
    let failures: Vec<String> = runs.iter().filter_map(|r| check(r).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} runs differ:\n{}",
        failures.len(),
        runs.len(),
        failures.join("\n")
    );
    runs.len()
}

fn unseen() -> PathBuf {
    common::repo().join("tests/fixtures/unseen")
}

/// Fork runs (two rollouts, one with `forked_from_id`): the shared corpus's when present, and the unseen ones.
fn fork_runs() -> Vec<PathBuf> {
    let mut bases = vec![unseen()];
    bases.extend(common::shared_corpus());
    bases
        .iter()
        .flat_map(|b| common::runs(b, &["codex"]))
        .filter(|r| rollouts(r).len() == 2)
        .collect()
}

/// The rollouts of a run, oldest first (file names start with the creation time).
fn rollouts(run: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(run.join("home"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("rollout-"))
        .filter(|e| e.metadata().is_ok_and(|m| m.len() <= MAX_FILE_BYTES))
        .map(|e| e.into_path())
        .collect();
    files.sort_by_key(|p| p.file_name().unwrap().to_os_string());
    files
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn is_fork(path: &Path) -> bool {
    let first: Value = serde_json::from_str(&lines(path)[0]).unwrap();
    first["payload"]["forked_from_id"].is_string()
}

/// `(sessions, totals)` of a store, in the report's JSON shape.
fn store_totals(store: &Store) -> (usize, Value) {
    let t = common::totals(store);
    let sessions = store.sessions(&Default::default()).unwrap().len();
    let totals = serde_json::json!({
        "prompts": t.prompts, "generations": t.generations, "generation_errors": t.generation_errors,
        "tool_calls": t.tool_calls, "tool_errors": t.tool_errors, "subagents": t.subagents,
        "tokens": {"input": t.tokens.input, "cache_read": t.tokens.cache_read, "cache_write": t.tokens.cache_write,
                   "output": t.tokens.output, "reasoning": t.tokens.reasoning},
    });
    (sessions, totals)
}

fn import(dir: &Path) -> Store {
    let mut store = Store::open_in_memory().unwrap();
    let summary = common::import_dir(&mut store, dir);
    assert_eq!(summary.warnings, 0, "{:?}", summary.warning_samples);
    store
}

/// Writes `content` to `home/.codex/<rel>`.
fn put(home: &Path, rel: &str, content: &str) -> PathBuf {
    let path = home.join(".codex").join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    path
}

fn sessions_rel(path: &Path) -> String {
    let s = path.to_string_lossy();
    let i = s.find("/.codex/").unwrap();
    s[i + "/.codex/".len()..].to_string()
}

#[test]
fn shared_corpus_codex_runs_match_expected() {
    let Some(corpus) = common::shared_corpus() else {
        eprintln!("../shared/corpus not present; the unseen recordings are checked instead");
        return;
    };
    assert!(check_all(&corpus) >= 5);
}

#[test]
fn unseen_codex_recordings_match_expected() {
    assert!(check_all(&unseen()) >= 4);
}

#[test]
fn codex_0_171_recordings_match_expected() {
    assert!(check_all(&common::repo().join("tests/fixtures/recorded")) >= 8);
}

/// Codex 0.171 with `request_max_retries = 0`: the turn's HTTP 500 is recorded only as `task_complete.error`;
/// it is one failed generation (level ERROR, the error's message, no tokens) in the prompt's trace.
#[test]
fn a_turn_that_failed_without_retries_is_a_failed_generation() {
    let run =
        common::repo().join("tests/fixtures/recorded/codex/codex-0.171.0/run19-failed-turn-500");
    let mut store = tokentrace::store::Store::open_in_memory().unwrap();
    common::import_dir(&mut store, &run.join("home"));
    let session = &store.sessions(&Default::default()).unwrap()[0];
    let failed: Vec<_> = store
        .traces_of(&session.key)
        .unwrap()
        .iter()
        .flat_map(|t| store.observations_of(&t.id).unwrap())
        .filter(|o| o.level == tokentrace::model::Level::Error)
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    let g = &failed[0];
    assert_eq!(g.kind, tokentrace::model::Kind::Generation);
    assert!(g.usage.is_none_or(|u| u.is_zero()));
    let msg = g.status_message.as_deref().unwrap_or_default();
    assert!(
        msg.contains("500") || msg.to_lowercase().contains("error"),
        "{msg}"
    );
}

#[test]
fn fork_replaying_its_parents_history_is_counted_once() {
    let runs = fork_runs();
    assert!(!runs.is_empty());
    for run in runs {
        let files = rollouts(&run);
        let (parent, child): (Vec<_>, Vec<_>) = files.iter().partition(|f| !is_fork(f));
        let (parent, child) = (parent[0], child[0]);
        // The fork as legacy Codex wrote it: its header, then a copy of the parent's lines (header, token_counts
        // and usage records included, ordinals below `forked_from_ordinal_exclusive`), then its own lines.
        let child_lines = lines(child);
        let mut replayed = vec![child_lines[0].clone()];
        replayed.extend(lines(parent));
        replayed.extend(child_lines[1..].iter().cloned());
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        put(
            &home,
            &sessions_rel(parent),
            &(lines(parent).join("\n") + "\n"),
        );
        put(&home, &sessions_rel(child), &(replayed.join("\n") + "\n"));

        let store = import(&home);
        let (sessions, totals) = store_totals(&store);
        let diffs = common::totals_diff(sessions, &totals, &expected(&run));
        assert!(
            diffs.is_empty(),
            "{}: the replayed history was counted again: {diffs:?}",
            run.display()
        );

        // The fork alone counts only its own calls: the copy moves its running total, nothing else.
        let alone = tempfile::tempdir().unwrap();
        put(
            alone.path(),
            &sessions_rel(child),
            &(replayed.join("\n") + "\n"),
        );
        let (_, with_copy) = store_totals(&import(alone.path()));
        let plain = tempfile::tempdir().unwrap();
        put(
            plain.path(),
            &sessions_rel(child),
            &(child_lines.join("\n") + "\n"),
        );
        let (_, without_copy) = store_totals(&import(plain.path()));
        assert_eq!(with_copy, without_copy, "{}", run.display());
        assert!(without_copy["generations"].as_u64().unwrap() > 0);
    }
}

#[test]
fn fork_totals_are_not_the_sum_of_each_files_last_total() {
    for run in fork_runs() {
        // The naive count: the last `total_token_usage` of each rollout, added up.
        let mut naive = 0u64;
        for f in rollouts(&run) {
            let last = lines(&f)
                .iter()
                .rev()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find_map(|v| v["payload"]["info"]["total_token_usage"]["total_tokens"].as_u64())
                .unwrap();
            naive += last;
        }
        let got = report(&run.join("home"));
        let t = &got["totals"]["tokens"];
        let ours = ["input", "cache_read", "cache_write", "output"]
            .iter()
            .map(|k| t[*k].as_u64().unwrap())
            .sum::<u64>();
        let e = &expected(&run)["tokens"];
        let truth = ["input", "cache_read", "cache_write", "output"]
            .iter()
            .map(|k| e[*k].as_u64().unwrap())
            .sum::<u64>();
        assert_eq!(ours, truth, "{}", run.display());
        assert!(
            naive > ours,
            "{}: naive {naive} vs {ours}: the fork's totals continue its parent's",
            run.display()
        );
    }
}

#[test]
fn archived_copy_next_to_the_original_is_counted_once() {
    let runs: Vec<PathBuf> = common::runs(&unseen(), &["codex"])
        .into_iter()
        .filter(|r| rollouts(r).len() == 1)
        .collect();
    assert!(!runs.is_empty());
    for run in runs {
        let file = &rollouts(&run)[0];
        let content = std::fs::read_to_string(file).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let rel = sessions_rel(file);
        let original = put(tmp.path(), &rel, &content);
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        put(tmp.path(), &format!("archived_sessions/{name}"), &content);

        let store = import(tmp.path());
        let (sessions, totals) = store_totals(&store);
        let diffs = common::totals_diff(sessions, &totals, &expected(&run));
        assert!(diffs.is_empty(), "{}: {diffs:?}", run.display());
        // `sessions/` wins: the session stays attached to the original file.
        let rows = store.sessions(&Default::default()).unwrap();
        assert_eq!(
            rows[0].file.as_deref(),
            Some(original.to_string_lossy().as_ref())
        );
        // The original alone gives the same store, row for row.
        let once = import(&tmp.path().join(".codex/sessions"));
        assert_eq!(
            once.snapshot().unwrap(),
            store.snapshot().unwrap(),
            "{}",
            run.display()
        );
    }
}

#[test]
fn import_in_two_halves_cut_mid_line_equals_whole() {
    let runs = common::runs(&unseen(), &["codex"]);
    assert!(!runs.is_empty());
    for run in runs {
        for file in rollouts(&run) {
            let bytes = std::fs::read(&file).unwrap();
            let rel = sessions_rel(&file);
            let whole = {
                let tmp = tempfile::tempdir().unwrap();
                let path = tmp.path().join(".codex").join(&rel);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &bytes).unwrap();
                import(tmp.path()).snapshot().unwrap()
            };
            // Cuts inside the (long) session_meta line, inside later lines, and one right after a newline.
            let after_newline = bytes.iter().position(|b| *b == b'\n').unwrap() + 1;
            for cut in [
                100,
                after_newline,
                bytes.len() / 3,
                bytes.len() / 2,
                bytes.len() - 7,
            ] {
                let tmp = tempfile::tempdir().unwrap();
                let path = tmp.path().join(".codex").join(&rel);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &bytes[..cut]).unwrap();
                let mut store = Store::open_in_memory().unwrap();
                common::import_dir(&mut store, tmp.path());
                std::fs::write(&path, &bytes).unwrap();
                common::import_dir(&mut store, tmp.path());
                assert_eq!(
                    store.snapshot().unwrap(),
                    whole,
                    "{} cut at byte {cut}",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn trace_tree_of_a_compacted_session() {
    // run11-compact: 3 prompts; the pre-turn compaction call of prompt 2 is in prompt 2's trace.
    let run = unseen().join("codex/codex-0.169.0/run11-compact");
    let store = import(&run.join("home"));
    let sessions = store.sessions(&Default::default()).unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].agent_version.as_deref(), Some("0.169.0"));
    let traces = store.traces_of(&sessions[0].key).unwrap();
    let prompts: Vec<_> = traces.iter().filter(|t| t.is_prompt).collect();
    assert_eq!(prompts.len(), 3);
    assert_eq!(traces.len(), 3, "every Codex turn here had a prompt");
    assert!(prompts[1]
        .input
        .as_deref()
        .unwrap()
        .contains("Without running anything"));
    assert!(prompts[0].output.as_deref().unwrap().contains("Done."));
    let second = store.observations_of(&prompts[1].id).unwrap();
    let compaction = second
        .iter()
        .find(|o| o.name == "compaction" && o.kind == tokentrace::model::Kind::Span)
        .expect("compaction span");
    let call = second
        .iter()
        .find(|o| o.parent_id.as_ref() == Some(&compaction.id))
        .expect("compaction call under its span");
    assert_eq!(call.kind, tokentrace::model::Kind::Generation);
    assert_eq!(call.usage.unwrap().input, 1131);
    for t in &traces {
        let obs = store.observations_of(&t.id).unwrap();
        for o in obs
            .iter()
            .filter(|o| o.kind == tokentrace::model::Kind::Tool)
        {
            let parent = obs
                .iter()
                .find(|p| Some(&p.id) == o.parent_id.as_ref())
                .unwrap();
            assert_eq!(parent.kind, tokentrace::model::Kind::Generation);
            assert_eq!(parent.model.as_deref(), Some("gpt-5.5"));
        }
    }
}
