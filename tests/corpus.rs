//! Every recorded pi / oh-my-pi run: `report session --json --path RUN/home` equals the run's
//! `expected.json` (sessions, counts, tokens, the agent's cost). Runs come from the shared corpus, the copy
//! under `examples/`, and `tests/fixtures/unseen/` (recordings made with `../shared/rig` that the parser was
//! not developed against).

mod common;

use common::report_session as report;

use std::path::Path;

use serde_json::Value;

fn check(run: &Path) -> Result<(), String> {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("expected.json")).unwrap()).unwrap();
    let got = report(&run.join("home"));
    let totals = &got["totals"];
    let mut diffs = Vec::new();
    let sessions = got["sessions"].as_array().map_or(0, Vec::len);
    if sessions as u64 != expected["sessions"].as_u64().unwrap() {
        diffs.push(format!("sessions {sessions} != {}", expected["sessions"]));
    }
    for k in [
        "prompts",
        "generations",
        "generation_errors",
        "tool_calls",
        "tool_errors",
        "subagents",
    ] {
        if totals[k] != expected[k] {
            diffs.push(format!("{k} {} != {}", totals[k], expected[k]));
        }
    }
    for k in ["input", "cache_read", "cache_write", "output", "reasoning"] {
        if totals["tokens"][k] != expected["tokens"][k] {
            diffs.push(format!(
                "tokens.{k} {} != {}",
                totals["tokens"][k], expected["tokens"][k]
            ));
        }
    }
    if let Some(cost) = expected["cost_usd"].as_f64() {
        let ours = totals["cost_usd"].as_f64().unwrap();
        if (ours - cost).abs() > 1e-12 {
            diffs.push(format!("cost_usd {ours} != {cost}"));
        }
        for s in got["sessions"].as_array().unwrap() {
            if s["cost_source"] != "agent" {
                diffs.push(format!("cost_source {} != agent", s["cost_source"]));
            }
        }
    }
    for s in got["sessions"].as_array().unwrap() {
        if s["agent"] != expected["agent"] {
            diffs.push(format!("agent {} != {}", s["agent"], expected["agent"]));
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {}", run.display(), diffs.join(", ")))
    }
}

fn check_all(base: &Path) -> usize {
    let runs = common::runs(base, &["pi", "omp"]);
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

#[test]
fn shared_corpus_pi_and_omp_runs_match_expected() {
    let Some(corpus) = common::shared_corpus() else {
        eprintln!("../shared/corpus not present; the examples/ copy is checked instead");
        return;
    };
    assert!(check_all(&corpus) >= 20);
}

#[test]
fn example_runs_match_expected() {
    assert_eq!(check_all(&common::repo().join("examples")), 20);
}

#[test]
fn unseen_recordings_match_expected() {
    assert!(check_all(&common::repo().join("tests/fixtures/unseen")) >= 13);
}

/// pi 1.6.0 (`durationMs`, `thinkingLevel`, `usage.cost.totalFromProvider`), recorded with `../shared/rig`.
#[test]
fn pi_1_6_recordings_match_expected() {
    assert!(check_all(&common::repo().join("tests/fixtures/recorded")) >= 11);
}

#[test]
fn trace_tree_links_are_consistent() {
    // 09-tree-branch: 3 prompts, an abandoned branch, a branch summary with usage.
    let run = common::repo().join("examples/pi/pi-0.87.1/09-tree-branch");
    let mut store = tokentrace::store::Store::open_in_memory().unwrap();
    common::import_dir(&mut store, &run.join("home"));
    let sessions = store.sessions(&Default::default()).unwrap();
    assert_eq!(sessions.len(), 1);
    let traces = store.traces_of(&sessions[0].key).unwrap();
    assert_eq!(traces.iter().filter(|t| t.is_prompt).count(), 3);
    assert_eq!(
        traces[0].input.as_deref(),
        Some("List the files in the current directory")
    );
    assert_eq!(
        traces[0].output.as_deref(),
        Some("I listed the directory. Done. ")
    );
    assert_eq!(
        traces[0].id,
        tokentrace::model::ids::trace_id("pi", &sessions[0].session_id, "5a6a99a7"),
        "trace id = sha256 of agent, session id and the user entry id"
    );
    for t in &traces {
        let obs = store.observations_of(&t.id).unwrap();
        let ids: std::collections::HashSet<_> = obs.iter().map(|o| o.id.clone()).collect();
        for o in &obs {
            if let Some(p) = &o.parent_id {
                assert!(
                    ids.contains(p),
                    "{} {} has a parent outside its trace",
                    o.kind.as_str(),
                    o.name
                );
            }
            match o.kind {
                tokentrace::model::Kind::Tool => {
                    let parent = obs
                        .iter()
                        .find(|p| Some(&p.id) == o.parent_id.as_ref())
                        .unwrap();
                    assert_eq!(
                        parent.kind,
                        tokentrace::model::Kind::Generation,
                        "tools hang under their generation"
                    );
                    assert!(o.end_ms >= o.start_ms);
                }
                tokentrace::model::Kind::Generation if o.name != "branch_summary" => {
                    let parent = obs
                        .iter()
                        .find(|p| Some(&p.id) == o.parent_id.as_ref())
                        .unwrap();
                    assert!(
                        parent.name.starts_with("turn "),
                        "generations hang under their turn"
                    );
                }
                _ => {}
            }
        }
    }
    // The branch summary's usage is one generation under a branch_summary span (in the latest trace).
    let second = store.observations_of(&traces[1].id).unwrap();
    let summary = second
        .iter()
        .find(|o| o.name == "branch_summary" && o.kind == tokentrace::model::Kind::Generation)
        .unwrap();
    assert_eq!(summary.usage.unwrap().input, 400);
    assert_eq!(summary.cost_pico, Some(1_905_000_000));
}
