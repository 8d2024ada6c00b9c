//! Claude Code transcripts: every recorded run (`../shared/corpus/claude` and
//! `tests/fixtures/unseen/claude`, recordings the parser was not developed against) reports exactly its
//! `expected.json`; the per-block line duplication is really deduplicated; subagent and 1-hour cache-write
//! costs are priced by hand here; an import cut mid-line equals a whole one.

mod common;

use common::{expected, report_session as report};

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tokentrace::model::Kind;
use tokentrace::store::Store;

fn check(run: &Path) -> Result<(), String> {
    let expected = expected(run);
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
    for s in got["sessions"].as_array().unwrap() {
        if s["agent"] != expected["agent"] {
            diffs.push(format!("agent {} != {}", s["agent"], expected["agent"]));
        }
        if s["agent_version"] != expected["agent_version"] {
            diffs.push(format!(
                "agent_version {} != {}",
                s["agent_version"], expected["agent_version"]
            ));
        }
        // Assistant lines carry no cost: they are priced from the table, nothing is unpriced. Calls recovered
        // from `cost-state` (2.1.3xx) carry the agent's own cost, so such a session's source is `mixed`.
        let recovered = expected.get("expected_without_recovery").is_some();
        let source_ok = s["cost_source"] == "table" || (recovered && s["cost_source"] == "mixed");
        if !source_ok || !s["unpriced_models"].as_array().unwrap().is_empty() {
            diffs.push(format!(
                "cost_source {} unpriced {}",
                s["cost_source"], s["unpriced_models"]
            ));
        }
        // Claude Code ≥ 2.1.3xx records its own session cost: nothing may stay unattributed.
        if expected["cost_usd"].is_number() {
            let un = s["unattributed_usd"].as_f64().unwrap_or(f64::NAN);
            if un.is_nan() || un.abs() > 1e-9 {
                diffs.push(format!("unattributed_usd {}", s["unattributed_usd"]));
            }
        }
    }
    // The session cost equals the agent's own figure (the last `cost-state.totalCostUSD`) to 1e-9.
    if let Some(cost) = expected["cost_usd"].as_f64() {
        let ours = totals["cost_usd"].as_f64().unwrap();
        if (ours - cost).abs() > 1e-9 {
            diffs.push(format!("cost_usd {ours} != {cost}"));
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {}", run.display(), diffs.join(", ")))
    }
}

fn check_all(base: &Path) -> usize {
    let runs = common::runs(base, &["claude"]);
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

/// Recordings of the newest releases made with `../shared/rig` for this repository (`tests/fixtures/recorded`).
fn recorded() -> PathBuf {
    common::repo().join("tests/fixtures/recorded")
}

fn unseen_run(name: &str) -> PathBuf {
    unseen().join("claude/claude-2.1.197").join(name)
}

fn corpus_run(name: &str) -> Option<PathBuf> {
    let run = common::shared_corpus()?
        .join("claude/claude-2.1.197")
        .join(name);
    run.is_dir().then_some(run)
}

/// Every `.jsonl` under a run's `home/` (main transcripts and subagent transcripts).
fn transcripts(run: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = walkdir::WalkDir::new(run.join("home"))
        .into_iter()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .map(|e| e.into_path())
        .collect();
    files.sort();
    files
}

fn assert_usd(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() < 1e-9,
        "{what}: {got} USD, expected {want} USD"
    );
}

/// claude-opus-4-8 in the bundled LiteLLM table (`data/prices/`), USD per token: input 5e-6, output
/// 25e-6, cache read 0.5e-6, 5-minute cache write 6.25e-6 (`cache_creation_input_token_cost`), 1-hour cache
/// write 10e-6 (`cache_creation_input_token_cost_above_1hr`); no long-context tier.
fn opus_4_8_usd(input: u64, cache_read: u64, write_5m: u64, write_1h: u64, output: u64) -> f64 {
    input as f64 * 5e-6
        + cache_read as f64 * 0.5e-6
        + write_5m as f64 * 6.25e-6
        + write_1h as f64 * 10e-6
        + output as f64 * 25e-6
}

#[test]
fn shared_corpus_claude_runs_match_expected() {
    let Some(corpus) = common::shared_corpus() else {
        eprintln!("../shared/corpus not present; only tests/fixtures/unseen/claude is checked");
        return;
    };
    assert!(check_all(&corpus) >= 6);
}

#[test]
fn unseen_claude_recordings_match_expected() {
    assert!(check_all(&unseen()) >= 6);
}

#[test]
fn claude_2_1_332_recordings_match_expected() {
    // thinking tokens, cost-state, api_error lines, async subagents, 1h cache writes
    assert!(check_all(&recorded()) >= 12);
}

/// Claude 2.1.332 `/compact`: the summarisation call has no assistant line; the growth of `cost-state` between
/// the invocations before and after `/compact` is recovered as a generation of its own, with exactly the
/// tokens the mock sent for it and the agent's cost delta, so the session equals the agent's own total.
#[test]
fn a_claude_compaction_call_is_recovered_from_cost_state() {
    let run = recorded().join("claude/claude-2.1.332/run26-compact-thinking");
    let truth: Vec<serde_json::Value> = std::fs::read_to_string(run.join("ground_truth.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let compaction = truth.iter().find(|t| t["kind"] == "compaction").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("t.db")).unwrap();
    common::import_dir(&mut store, &run.join("home"));
    let session = &store.sessions(&Default::default()).unwrap()[0];
    let trace_ids: Vec<String> = store
        .traces_of(&session.key)
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    let recovered: Vec<_> = trace_ids
        .iter()
        .flat_map(|t| store.observations_of(t).unwrap())
        .filter(|o| o.name == "compaction (recovered)")
        .collect();
    assert_eq!(recovered.len(), 1, "one recovered compaction call");
    let g = &recovered[0];
    let u = g.usage.expect("usage");
    assert_eq!(u.input, compaction["input"].as_u64().unwrap());
    assert_eq!(u.cache_read, compaction["cache_read"].as_u64().unwrap());
    assert_eq!(u.cache_write(), compaction["cache_write"].as_u64().unwrap());
    assert_eq!(u.output, compaction["output"].as_u64().unwrap());
    assert_eq!(u.reasoning, compaction["reasoning"].as_u64().unwrap());
    // Its cost is the agent's: the difference of the two cost-state totals around `/compact`.
    let costs: Vec<f64> = std::fs::read_to_string(transcripts(&run)[0].clone())
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"type\":\"cost-state\""))
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["totalCostUSD"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert_eq!(costs.len(), 3);
    assert_eq!(g.cost_source.as_deref(), Some("agent"));
    assert_usd(
        tokentrace::model::pico_to_usd(g.cost_pico.expect("priced")),
        costs[1] - costs[0],
        "recovered cost",
    );
    assert_eq!(
        session.agent_cost,
        Some(tokentrace::model::usd_to_pico(costs[2]))
    );
}

#[test]
fn naive_sum_of_output_tokens_is_larger_than_the_deduplicated_total() {
    // Every content block is its own line repeating the call's usage; the first line of a streamed call
    // can carry a partial `output_tokens`. The shared corpus run1 when present, always the unseen subagent
    // run (its subagent's first line says `output_tokens: 1`).
    let mut runs = vec![unseen_run("run6-subagent")];
    runs.extend(corpus_run("run1-simple"));
    for run in runs {
        let mut naive = 0u64;
        let mut first_wins = std::collections::HashMap::new();
        for file in transcripts(&run) {
            for line in std::fs::read_to_string(&file).unwrap().lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                if v["type"] != "assistant" {
                    continue;
                }
                let out = v["message"]["usage"]["output_tokens"].as_u64().unwrap_or(0);
                naive += out;
                let key = format!("{}:{}", v["message"]["id"], v["requestId"]);
                first_wins.entry(key).or_insert(out);
            }
        }
        let got = report(&run.join("home"));
        let deduped = got["totals"]["tokens"]["output"].as_u64().unwrap();
        assert_eq!(
            deduped,
            expected(&run)["tokens"]["output"].as_u64().unwrap(),
            "{}",
            run.display()
        );
        assert!(
            naive > deduped,
            "{}: naive {naive} vs deduplicated {deduped}",
            run.display()
        );
        let first: u64 = first_wins.values().sum();
        if run.ends_with("run6-subagent") {
            // run6: 129 + 134 + 139 + 144 = 546 (last line of each call); a first-line dedupe reads 1
            // instead of 134 for the subagent's first call.
            assert_eq!(deduped, 546);
            assert_eq!(first, 546 - 133, "first-wins undercounts the partial line");
            assert_eq!(naive, 3 * 129 + (1 + 134) + 139 + 2 * 144);
        }
    }
}

/// One model call: uncached input, cache read, 5-minute cache write, output tokens.
type Call = (u64, u64, u64, u64);

#[test]
fn subagent_generations_are_part_of_the_session_cost() {
    // Model calls (uncached input, cache read, cache write 5m, output) from ground_truth.jsonl; all
    // claude-opus-4-8, no 1-hour writes.
    let cases: Vec<(PathBuf, [Call; 2], [Call; 2])> = {
        let mut v = vec![(
            unseen_run("run6-subagent"),
            [(611, 61_002, 6_103, 129), (641, 64_002, 6_403, 144)],
            [(621, 62_002, 6_203, 134), (631, 63_002, 6_303, 139)],
        )];
        if let Some(run) = corpus_run("run3-subagent") {
            v.push((
                run,
                [(311, 31_002, 3_103, 69), (341, 34_002, 3_403, 84)],
                [(321, 32_002, 3_203, 74), (331, 33_002, 3_303, 79)],
            ));
        }
        v
    };
    for (run, main, sub) in cases {
        let usd = |calls: &[Call]| -> f64 {
            calls
                .iter()
                .map(|&(i, cr, cw, o)| opus_4_8_usd(i, cr, cw, 0, o))
                .sum()
        };
        // run6: main 1252 × 5e-6 + 125004 × 0.5e-6 + 12506 × 6.25e-6 + 273 × 25e-6 = 0.1537495, the
        // subagent the same again: 0.307499 USD for the session. run3: 0.0802495 × 2 = 0.160499 USD.
        let main_usd = usd(&main);
        let session_usd = main_usd + usd(&sub);
        let got = report(&run.join("home"));
        let sessions = got["sessions"].as_array().unwrap();
        assert_eq!(sessions.len(), 1, "the subagent is no session of its own");
        assert_eq!(sessions[0]["subagents"], 1);
        assert_eq!(sessions[0]["generations"], 4);
        assert_eq!(sessions[0]["cost_source"], "table");
        let cost = sessions[0]["cost_usd"].as_f64().unwrap();
        assert_usd(cost, session_usd, &run.display().to_string());
        assert!(cost > main_usd + 0.05, "the subagent's calls are included");
    }
    assert_usd(
        opus_4_8_usd(1252, 125_004, 12_506, 0, 273) * 2.0,
        0.307499,
        "run6 by hand",
    );
}

#[test]
fn one_hour_cache_writes_are_billed_at_the_one_hour_rate() {
    // A single call with 4551 5-minute and 4552 1-hour cache writes (claude run9's first call):
    // 911 × 5e-6 + 91002 × 0.5e-6 + 4551 × 6.25e-6 + 4552 × 10e-6 + 189 × 25e-6 = 0.12874475 USD
    // (all writes at the 5-minute rate would be 0.1116745 USD).
    let line = r#"{"parentUuid":null,"isSidechain":false,"type":"user","message":{"role":"user","content":"hi"},"uuid":"p1","timestamp":"2026-11-23T17:49:43.200Z","sessionId":"s-1h","version":"2.1.197","cwd":"/tmp/p"}
{"parentUuid":"p1","isSidechain":false,"message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-opus-4-8","content":[{"type":"text","text":"Done."}],"stop_reason":"end_turn","usage":{"input_tokens":911,"cache_creation_input_tokens":9103,"cache_read_input_tokens":91002,"output_tokens":189,"cache_creation":{"ephemeral_1h_input_tokens":4552,"ephemeral_5m_input_tokens":4551}}},"requestId":"req_1","type":"assistant","uuid":"a1","timestamp":"2026-11-23T17:49:43.400Z","sessionId":"s-1h","version":"2.1.197","cwd":"/tmp/p"}
"#;
    let (_dir, store, _) = common::store_of(line.as_bytes(), "s-1h.jsonl");
    let t = common::totals(&store);
    assert_eq!(t.tokens.cache_write, 9103);
    let want = opus_4_8_usd(911, 91_002, 4551, 4552, 189);
    assert_usd(want, 0.12874475, "by hand");
    assert_usd(t.cost_pico as f64 / 1e12, want, "one call");
    assert!((t.cost_pico as f64 / 1e12 - opus_4_8_usd(911, 91_002, 9103, 0, 189)).abs() > 0.01);

    // The whole recorded run9 (1-hour part 42768 of 85527 cache-write tokens):
    // 8559 × 5e-6 + 855018 × 0.5e-6 + 42759 × 6.25e-6 + 42768 × 10e-6 + 1683 × 25e-6 = 1.20730275 USD.
    let Some(run) = corpus_run("run9-parallel") else {
        eprintln!("../shared/corpus not present; run9 not checked");
        return;
    };
    let got = report(&run.join("home"));
    let want = opus_4_8_usd(8559, 855_018, 85_527 - 42_768, 42_768, 1683);
    assert_usd(want, 1.20730275, "run9 by hand");
    assert_usd(got["totals"]["cost_usd"].as_f64().unwrap(), want, "run9");
    let mut store = Store::open_in_memory().unwrap();
    common::import_dir(&mut store, &run.join("home"));
    let session = &store.sessions(&Default::default()).unwrap()[0];
    let mut one_hour = 0;
    for trace in store.traces_of(&session.key).unwrap() {
        for o in store.observations_of(&trace.id).unwrap() {
            if o.kind == Kind::Generation {
                let u = o.usage.unwrap();
                assert!(u.cache_write_1h > 0 && u.cache_write_5m > 0);
                one_hour += u.cache_write_1h;
            }
        }
    }
    assert_eq!(one_hour, 42_768, "9 calls, subagents' included");
}

/// Imports `content` cut at byte `cut` (the rest appended before a second import) and returns the store.
fn import_in_two_parts(content: &[u8], name: &str, cut: usize) -> Store {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, &content[..cut]).unwrap();
    let mut store = Store::open_in_memory().unwrap();
    common::import_dir(&mut store, dir.path());
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&content[cut..])
        .unwrap();
    let second = common::import_dir(&mut store, dir.path());
    assert_eq!(second.files_restarted, 0, "resumed, not re-read");
    store
}

#[test]
fn importing_a_transcript_in_two_halves_cut_mid_line_equals_importing_it_whole() {
    // Two prompts, a compaction, a synthetic line, interleaved block and result lines.
    let run = unseen_run("run10-compact");
    let path = &transcripts(&run)[0];
    let content = std::fs::read(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let (_d, whole, _) = common::store_of(&content, &name);
    let t = common::totals(&whole);
    assert_eq!((t.prompts, t.generations, t.tool_calls), (2, 4, 2));
    let expected = whole.snapshot().unwrap();

    let mut cut = content.len() / 2;
    while content[cut - 1] == b'\n' {
        cut += 1;
    }
    let halves = import_in_two_parts(&content, &name, cut);
    assert_eq!(halves.snapshot().unwrap(), expected);

    // And at every line boundary and inside every line.
    for (i, b) in content.iter().enumerate() {
        if *b != b'\n' {
            continue;
        }
        for cut in [i + 1, i.saturating_sub(7)] {
            let store = import_in_two_parts(&content, &name, cut);
            assert_eq!(store.snapshot().unwrap(), expected, "cut at byte {cut}");
        }
    }
}

#[test]
fn a_subagent_transcript_cut_mid_line_equals_importing_it_whole() {
    let run = unseen_run("run6-subagent");
    let whole_dir = tempfile::tempdir().unwrap();
    common::copy_tree(&run.join("home"), whole_dir.path());
    let mut whole = Store::open_in_memory().unwrap();
    common::import_dir(&mut whole, whole_dir.path());
    let expected = whole.snapshot().unwrap();

    let sub = transcripts(&run)
        .into_iter()
        .find(|p| p.to_string_lossy().contains("/subagents/"))
        .unwrap();
    let rel = sub.strip_prefix(run.join("home")).unwrap().to_path_buf();
    let content = std::fs::read(&sub).unwrap();
    let mut cut = content.len() / 2;
    while content[cut - 1] == b'\n' {
        cut += 1;
    }
    let dir = tempfile::tempdir().unwrap();
    common::copy_tree(&run.join("home"), dir.path());
    std::fs::write(dir.path().join(&rel), &content[..cut]).unwrap();
    let mut store = Store::open_in_memory().unwrap();
    common::import_dir(&mut store, dir.path());
    std::fs::write(dir.path().join(&rel), &content).unwrap();
    common::import_dir(&mut store, dir.path());
    assert_eq!(store.snapshot().unwrap(), expected);
}

#[test]
fn subagent_observations_hang_under_the_spawning_tool_call_in_the_prompts_trace() {
    let run = unseen_run("run6-subagent");
    let mut store = Store::open_in_memory().unwrap();
    common::import_dir(&mut store, &run.join("home"));
    let sessions = store.sessions(&Default::default()).unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].agent_version.as_deref(), Some("2.1.197"));
    assert!(
        !sessions[0].file.as_deref().unwrap().contains("/subagents/"),
        "the main transcript owns the session"
    );
    let traces = store.traces_of(&sessions[0].key).unwrap();
    assert_eq!(traces.len(), 1);
    assert_eq!(
        traces[0].output.as_deref(),
        Some("The subagent listed the project: README.md, notes.txt and src/. Done.")
    );
    let obs = store.observations_of(&traces[0].id).unwrap();
    let by_id = |id: &Option<String>| obs.iter().find(|o| Some(&o.id) == id.as_ref());
    let agent = obs.iter().find(|o| o.kind == Kind::Agent).unwrap();
    assert_eq!(agent.name, "general-purpose");
    let tool = by_id(&agent.parent_id).expect("the agent's parent is in the trace");
    assert_eq!((tool.kind, tool.name.as_str()), (Kind::Tool, "Agent"));
    let gens: Vec<_> = obs.iter().filter(|o| o.kind == Kind::Generation).collect();
    assert_eq!(
        gens.len(),
        4,
        "subagent generations were linked to the trace"
    );
    for o in &obs {
        if let Some(p) = &o.parent_id {
            assert!(
                obs.iter().any(|x| &x.id == p),
                "{} {} has a parent outside its trace",
                o.kind.as_str(),
                o.name
            );
        }
        if o.kind == Kind::Tool {
            assert_eq!(by_id(&o.parent_id).unwrap().kind, Kind::Generation);
        }
        if o.kind == Kind::Generation {
            assert!(by_id(&o.parent_id).unwrap().name.starts_with("turn "));
        }
    }
    // The subagent's two calls sit under its agent observation.
    let under_agent = gens
        .iter()
        .filter(|g| {
            let turn = by_id(&g.parent_id).unwrap();
            turn.parent_id.as_ref() == Some(&agent.id)
        })
        .count();
    assert_eq!(under_agent, 2);
}

#[test]
fn a_subagent_transcript_that_arrives_later_joins_its_parents_trace_and_the_trace_is_sent_again() {
    let run = unseen_run("run6-subagent");
    let dir = tempfile::tempdir().unwrap();
    common::copy_tree(&run.join("home"), dir.path());
    let subagents: Vec<PathBuf> = walkdir::WalkDir::new(dir.path())
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .filter(|p| p.ends_with("subagents"))
        .collect();
    assert_eq!(subagents.len(), 1);
    let elsewhere = tempfile::tempdir().unwrap();
    let aside = elsewhere.path().join("subagents");
    std::fs::rename(&subagents[0], &aside).unwrap();

    // The main transcript alone, delivered to a sink.
    let mut store = Store::open_in_memory().unwrap();
    common::import_dir(&mut store, dir.path());
    let pending = store.pending("test", 0, false, None, 100).unwrap();
    assert_eq!(pending.len(), 1);
    store.mark_sent("test", &pending).unwrap();
    assert!(store
        .pending("test", 0, false, None, 100)
        .unwrap()
        .is_empty());

    // The subagent's transcript arrives: its rows join the trace of the tool call that spawned it (as they
    // are written: see `store::write`'s tests), and the trace is pending again with its new rows.
    std::fs::rename(&aside, &subagents[0]).unwrap();
    common::import_dir(&mut store, dir.path());
    let again = store.pending("test", 0, false, None, 100).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].trace_id, pending[0].trace_id);
    assert!(again[0].seq > pending[0].seq);
    let obs = store.observations_of(&again[0].trace_id).unwrap();
    assert_eq!(obs.iter().filter(|o| o.kind == Kind::Agent).count(), 1);
    assert_eq!(
        obs.iter().filter(|o| o.kind == Kind::Generation).count(),
        4,
        "the main transcript's two calls and the subagent's two"
    );

    // The same store as one import of everything.
    let mut fresh = Store::open_in_memory().unwrap();
    common::import_dir(&mut fresh, dir.path());
    assert_eq!(fresh.snapshot().unwrap(), store.snapshot().unwrap());
}

#[test]
fn a_forked_session_does_not_count_the_copied_history_again() {
    let run = unseen_run("run11-fork-session");
    let got = report(&run.join("home"));
    let mut sessions: Vec<(u64, u64, u64)> = got["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["prompts"].as_u64().unwrap(),
                s["generations"].as_u64().unwrap(),
                s["tool_calls"].as_u64().unwrap(),
            )
        })
        .collect();
    sessions.sort();
    assert_eq!(sessions, vec![(1, 1, 0), (2, 4, 2)]);
}
