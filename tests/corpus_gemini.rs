//! Gemini CLI chats: every recorded run (`../shared/corpus/gemini` and `tests/fixtures/unseen/gemini`)
//! reports exactly its `expected.json`, and the format's traps are handled: the same message id written
//! several times (last wins), `$set.messages` history rewrites (no tokens, fresh ids), the whole-document
//! `.json` format, imports resumed mid-file, shell failures Gemini marks `success`, subagent chats.
//! Variants are built in temporary directories from the recorded files (which are never modified).

mod common;

use common::report_session as report;

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tokentrace::store::Store;

// ---- helpers ------------------------------------------------------------------------------------------

fn expected_of(run: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("expected.json")).unwrap()).unwrap()
}

/// Differences between the report of `home` and a run's `expected.json`.
fn diff(home: &Path, expected: &Value) -> Vec<String> {
    let got = report(home);
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
        if s["agent"] != "gemini" {
            diffs.push(format!("agent {} != gemini", s["agent"]));
        }
        // The project directory comes from the files Gemini keeps beside the chats.
        if let Some(root) = project_root(home) {
            if s["project"] != json!(root) {
                diffs.push(format!("project {} != {root}", s["project"]));
            }
        }
    }
    diffs
}

/// The `.project_root` of the (single) project under `home`, if any.
fn project_root(home: &Path) -> Option<String> {
    walkdir::WalkDir::new(home)
        .into_iter()
        .flatten()
        .find(|e| e.file_name() == ".project_root")
        .map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap()
                .trim()
                .to_string()
        })
}

fn check(run: &Path) -> Result<(), String> {
    let diffs = diff(&run.join("home"), &expected_of(run));
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(format!("{}: {}", run.display(), diffs.join(", ")))
    }
}

fn check_all(runs: &[PathBuf]) {
    let failures: Vec<String> = runs.iter().filter_map(|r| check(r).err()).collect();
    assert!(
        failures.is_empty(),
        "{} of {} runs differ:\n{}",
        failures.len(),
        runs.len(),
        failures.join("\n")
    );
}

fn unseen_runs() -> Vec<PathBuf> {
    common::runs(&common::repo().join("tests/fixtures/unseen"), &["gemini"])
}

fn corpus_runs() -> Vec<PathBuf> {
    common::shared_corpus().map_or_else(Vec::new, |c| common::runs(&c, &["gemini"]))
}

/// Every Gemini run available: the shared corpus (when present) and the unseen recordings.
fn all_runs() -> Vec<PathBuf> {
    let mut runs = corpus_runs();
    runs.extend(unseen_runs());
    assert!(!runs.is_empty());
    runs
}

/// The first run whose name contains `scenario`.
fn run_named(scenario: &str) -> PathBuf {
    all_runs()
        .into_iter()
        .find(|r| r.file_name().unwrap().to_string_lossy().contains(scenario))
        .unwrap_or_else(|| panic!("no gemini run named *{scenario}*"))
}

/// The main chat file of a run: its largest `.jsonl` (a resume can leave a second, startup-only file).
fn main_chat(run: &Path) -> PathBuf {
    walkdir::WalkDir::new(run.join("home"))
        .into_iter()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .max_by_key(|e| e.metadata().unwrap().len())
        .map(|e| e.into_path())
        .unwrap_or_else(|| panic!("{}: no chat file", run.display()))
}

/// A copy of `run/home` in a temporary directory, and the path of its main chat file in the copy.
fn copy_home(run: &Path) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let src = run.join("home");
    let chat = main_chat(run);
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    for entry in walkdir::WalkDir::new(&src).into_iter().flatten() {
        let to = home.join(entry.path().strip_prefix(&src).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&to).unwrap();
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
    let chat = home.join(chat.strip_prefix(&src).unwrap());
    (dir, home, chat)
}

fn records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn write_records(path: &Path, records: &[Value]) {
    let mut out = String::new();
    for r in records {
        out.push_str(&r.to_string());
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

fn is_gemini(r: &Value) -> bool {
    r["id"].is_string() && r["type"] == "gemini"
}

fn store_of_home(home: &Path) -> Store {
    let mut store = Store::open_in_memory().unwrap();
    common::import_dir(&mut store, home);
    store
}

fn token_totals(store: &Store) -> [u64; 5] {
    let t = common::totals(store).tokens;
    [t.input, t.cache_read, t.cache_write, t.output, t.reasoning]
}

fn expected_tokens(run: &Path) -> [u64; 5] {
    let e = expected_of(run);
    ["input", "cache_read", "cache_write", "output", "reasoning"]
        .map(|k| e["tokens"][k].as_u64().unwrap())
}

// ---- recorded runs --------------------------------------------------------------------------------------

#[test]
fn shared_corpus_gemini_runs_match_expected() {
    let runs = corpus_runs();
    if runs.is_empty() {
        eprintln!("../shared/corpus not present; the unseen recordings are checked instead");
        return;
    }
    assert!(runs.len() >= 4);
    check_all(&runs);
}

#[test]
fn unseen_gemini_recordings_match_expected() {
    let runs = unseen_runs();
    assert!(runs.len() >= 2, "{runs:?}");
    check_all(&runs);
}

// ---- last record per message id -----------------------------------------------------------------------

#[test]
fn the_last_record_of_a_message_id_wins() {
    for run in all_runs() {
        let (_dir, home, chat) = copy_home(&run);
        let original = records(&chat);
        let ids: Vec<String> = original
            .iter()
            .filter(|r| is_gemini(r))
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        let rewritten: Vec<&String> = ids
            .iter()
            .filter(|id| ids.iter().filter(|x| x == id).count() > 1)
            .collect();
        assert!(
            !rewritten.is_empty(),
            "{}: Gemini writes a message id more than once",
            run.display()
        );

        // Earlier records of a rewritten id get other tokens: the totals are still the last records'.
        let mut variant = original.clone();
        let mut seen = std::collections::HashSet::new();
        for r in variant.iter_mut().filter(|r| is_gemini(r)) {
            let id = r["id"].as_str().unwrap().to_string();
            if rewritten.contains(&&id) && seen.insert(id) {
                r["tokens"] = json!({"input": 999_999, "output": 7777, "cached": 5, "thoughts": 333, "tool": 0, "total": 1_008_114});
            }
        }
        write_records(&chat, &variant);
        assert_eq!(
            token_totals(&store_of_home(&home)),
            expected_tokens(&run),
            "{}: first records' tokens must not count",
            run.display()
        );

        // The last record of one id carries other tokens: those are the ones counted.
        let mut variant = original.clone();
        let target = rewritten[0].clone();
        let last = variant
            .iter()
            .rposition(|r| is_gemini(r) && r["id"] == json!(target))
            .unwrap();
        let old = variant[last]["tokens"].clone();
        let n = |k: &str| old[k].as_u64().unwrap();
        variant[last]["tokens"] = json!({"input": n("input") + 1000, "output": n("output") + 20,
            "cached": n("cached") + 300, "thoughts": n("thoughts") + 4, "tool": 0, "total": 0});
        write_records(&chat, &variant);
        let mut want = expected_tokens(&run);
        want[0] += 700; // input − cached
        want[1] += 300;
        want[3] += 24; // output + thoughts
        want[4] += 4;
        assert_eq!(
            token_totals(&store_of_home(&home)),
            want,
            "{}: the last record's tokens count",
            run.display()
        );
    }
}

// ---- $set.messages rewrites -----------------------------------------------------------------------------

#[test]
fn history_rewrites_never_drop_or_double_count() {
    for run in all_runs() {
        let (_dir, home, chat) = copy_home(&run);
        let mut variant = records(&chat);
        // Every message as last written, re-listed once under the same ids (with zeroed tokens) and once under
        // fresh ids (with their tokens), the way a resume or a compression re-lists history.
        let mut last: Vec<Value> = Vec::new();
        for r in variant.iter().filter(|r| r["id"].is_string()) {
            match last.iter_mut().find(|m| m["id"] == r["id"]) {
                Some(m) => *m = r.clone(),
                None => last.push(r.clone()),
            }
        }
        let zeroed: Vec<Value> = last
            .iter()
            .cloned()
            .map(|mut m| {
                if m["tokens"].is_object() {
                    m["tokens"] = json!({"input": 0, "output": 0, "cached": 0, "thoughts": 0, "tool": 0, "total": 0});
                }
                m
            })
            .collect();
        let fresh: Vec<Value> = last
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, mut m)| {
                m["id"] = json!(format!("rewritten-{i}"));
                m
            })
            .collect();
        variant
            .push(json!({"$set": {"messages": zeroed, "lastUpdated": "2026-11-23T23:00:00.000Z"}}));
        variant.push(json!({"$set": {"messages": fresh}}));
        write_records(&chat, &variant);
        let diffs = diff(&home, &expected_of(&run));
        assert!(diffs.is_empty(), "{}: {}", run.display(), diffs.join(", "));
    }
}

#[test]
fn a_compression_is_a_span_and_its_session_marks_the_side_call_gap() {
    let run = run_named("compress");
    let store = store_of_home(&run.join("home"));
    let rows = store.snapshot().unwrap();
    let compressions = rows
        .iter()
        .filter(|r| r.contains("Text(\"span\") Text(\"compression\")"))
        .count();
    assert_eq!(compressions, 1, "one compression summary, one span");
    let session = rows.iter().find(|r| r.starts_with("sessions:")).unwrap();
    assert!(session.contains("known_gaps"), "{session}");
    assert!(session.contains("side calls"), "{session}");
}

// ---- whole-document `.json` ---------------------------------------------------------------------------------

/// The whole-document form of a `.jsonl` chat: its header with every message as last written.
fn document_of(jsonl: &[Value]) -> Value {
    let mut doc = serde_json::Map::new();
    let header = &jsonl[0];
    for k in ["sessionId", "projectHash", "startTime", "lastUpdated"] {
        doc.insert(k.into(), header[k].clone());
    }
    let mut messages: Vec<Value> = Vec::new();
    for r in jsonl.iter().filter(|r| r["id"].is_string()) {
        match messages.iter_mut().find(|m| m["id"] == r["id"]) {
            Some(m) => *m = r.clone(),
            None => messages.push(r.clone()),
        }
    }
    doc.insert("messages".into(), Value::Array(messages));
    Value::Object(doc)
}

#[test]
fn a_whole_document_json_chat_gives_the_same_totals_as_its_jsonl() {
    for run in all_runs() {
        let (_dir, home, chat) = copy_home(&run);
        let doc = document_of(&records(&chat));
        std::fs::remove_file(&chat).unwrap();
        let json_path = chat.with_extension("json");
        // Gemini wrote these with JSON.stringify(conversation, null, 2).
        std::fs::write(&json_path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        let diffs = diff(&home, &expected_of(&run));
        assert!(
            diffs.is_empty(),
            "{} as .json: {}",
            run.display(),
            diffs.join(", ")
        );
    }
}

#[test]
fn a_document_rewritten_in_place_replaces_what_came_from_it() {
    let run = run_named("multi");
    let (_dir, home, chat) = copy_home(&run);
    let full = document_of(&records(&chat));
    std::fs::remove_file(&chat).unwrap();
    let json_path = chat.with_extension("json");
    let mut partial = full.clone();
    partial["messages"].as_array_mut().unwrap().truncate(3);
    std::fs::write(&json_path, serde_json::to_string_pretty(&partial).unwrap()).unwrap();
    let mut store = Store::open_in_memory().unwrap();
    common::import_dir(&mut store, &home);
    assert!(
        common::totals(&store).generations < expected_of(&run)["generations"].as_u64().unwrap()
    );
    std::fs::write(&json_path, serde_json::to_string_pretty(&full).unwrap()).unwrap();
    common::import_dir(&mut store, &home);
    assert_eq!(
        store.snapshot().unwrap(),
        store_of_home(&home).snapshot().unwrap()
    );
}

// ---- resumable imports ----------------------------------------------------------------------------------

/// Imports `content` written up to `cut` first, then the rest; returns the store.
fn import_in_two_parts(home: &Path, chat: &Path, content: &[u8], cut: usize) -> Store {
    std::fs::write(chat, &content[..cut]).unwrap();
    // Other chat files of the run (a resume's startup-only file) are read whole.
    let others: u64 = walkdir::WalkDir::new(home)
        .into_iter()
        .flatten()
        .filter(|e| e.path() != chat && e.path().extension().is_some_and(|x| x == "jsonl"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    let mut store = Store::open_in_memory().unwrap();
    let first = common::import_dir(&mut store, home);
    let consumed = content[..cut]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    assert_eq!(
        first.bytes_read,
        consumed as u64 + others,
        "a partial line is not consumed"
    );
    std::fs::OpenOptions::new()
        .append(true)
        .open(chat)
        .unwrap()
        .write_all(&content[cut..])
        .unwrap();
    common::import_dir(&mut store, home);
    store
}

#[test]
fn importing_a_chat_in_two_halves_cut_mid_line_equals_importing_it_whole() {
    for run in all_runs() {
        let (_dir, home, chat) = copy_home(&run);
        let content = std::fs::read(&chat).unwrap();
        let whole = store_of_home(&home).snapshot().unwrap();
        let mut cut = content.len() / 2;
        while content[cut - 1] == b'\n' || content[cut] == b'\n' {
            cut += 1;
        }
        let halves = import_in_two_parts(&home, &chat, &content, cut);
        assert_eq!(halves.snapshot().unwrap(), whole, "{}", run.display());
        assert_eq!(token_totals(&halves), expected_tokens(&run));
    }
}

#[test]
fn every_line_of_a_resumed_and_compressed_chat_is_a_safe_cut_point() {
    let run = run_named("compress");
    let (_dir, home, chat) = copy_home(&run);
    let content = std::fs::read(&chat).unwrap();
    let whole = store_of_home(&home).snapshot().unwrap();
    let mut start = 0;
    for (i, b) in content.iter().enumerate() {
        if *b != b'\n' {
            continue;
        }
        // The middle of each line, and each line boundary.
        for cut in [start + (i - start) / 2 + 1, i + 1] {
            if cut >= content.len() {
                continue;
            }
            let store = import_in_two_parts(&home, &chat, &content, cut);
            assert_eq!(store.snapshot().unwrap(), whole, "cut at byte {cut}");
        }
        start = i + 1;
    }
}

#[test]
fn importing_twice_changes_nothing() {
    let run = run_named("compress");
    let mut store = Store::open_in_memory().unwrap();
    common::import_dir(&mut store, &run.join("home"));
    let before = store.snapshot().unwrap();
    let again = common::import_dir(&mut store, &run.join("home"));
    assert_eq!(again.bytes_read, 0);
    assert_eq!(store.snapshot().unwrap(), before);
}

// ---- tool errors ----------------------------------------------------------------------------------------

#[test]
fn a_shell_command_with_exit_code_1_is_a_tool_error_although_gemini_says_success() {
    // The recorded multi runs: `cat /nonexistent/missing.txt` is status "success" with "Exit Code: 1".
    let run = run_named("multi");
    let store = store_of_home(&run.join("home"));
    let sessions = store.sessions(&Default::default()).unwrap();
    let mut shell_failures = 0;
    for t in store.traces_of(&sessions[0].key).unwrap() {
        for o in store.observations_of(&t.id).unwrap() {
            if o.kind == tokentrace::model::Kind::Tool
                && o.status_message.as_deref() == Some("exit code 1")
            {
                assert_eq!(o.name, "run_shell_command");
                assert_eq!(o.level, tokentrace::model::Level::Error);
                shell_failures += 1;
            }
        }
    }
    assert_eq!(shell_failures, 1);
    assert_eq!(
        common::totals(&store).tool_errors,
        2,
        "plus the read_file with status error"
    );

    // A successful `ls` made to report `Exit Code: 1` (status still "success") becomes an error.
    let run = run_named("simple");
    let (_dir, home, chat) = copy_home(&run);
    let mut variant = records(&chat);
    let mut changed = 0;
    for r in variant.iter_mut().filter(|r| is_gemini(r)) {
        for call in r["toolCalls"].as_array_mut().into_iter().flatten() {
            assert_eq!(call["status"], "success");
            for part in call["result"].as_array_mut().into_iter().flatten() {
                let out = &mut part["functionResponse"]["response"]["output"];
                let text = out
                    .as_str()
                    .unwrap()
                    .replace("Process Group PGID", "Exit Code: 1\nProcess Group PGID");
                *out = json!(text);
                changed += 1;
            }
        }
    }
    assert!(changed > 0);
    write_records(&chat, &variant);
    let totals = common::totals(&store_of_home(&home));
    assert_eq!((totals.tool_calls, totals.tool_errors), (1, 1));
}

// ---- subagents ------------------------------------------------------------------------------------------

#[test]
fn a_subagent_chat_joins_the_main_session_under_the_tool_call_that_ran_it() {
    let dir = tempfile::tempdir().unwrap();
    let chats = dir.path().join(".gemini/tmp/proj/chats");
    let main_id = "11111111-2222-3333-4444-555555555555";
    let agent_id = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";
    std::fs::create_dir_all(chats.join(main_id)).unwrap();
    std::fs::write(
        dir.path().join(".gemini/tmp/proj/.project_root"),
        "/work/proj\n",
    )
    .unwrap();
    let header = |id: &str, kind: &str| {
        json!({"sessionId": id, "projectHash": "ab", "startTime": "2026-11-23T10:00:00.000Z",
               "lastUpdated": "2026-11-23T10:00:00.000Z", "kind": kind})
    };
    let tokens = |i: u64| json!({"input": 1000 * i + 10, "output": 20, "cached": 1000 * i, "thoughts": 5, "tool": 0, "total": 0});
    let main = vec![
        header(main_id, "main"),
        json!({"id": "u1", "timestamp": "2026-11-23T10:00:01.000Z", "type": "user", "content": [{"text": "Investigate the code base"}]}),
        json!({"id": "g1", "timestamp": "2026-11-23T10:00:02.000Z", "type": "gemini", "content": "", "tokens": tokens(1), "model": "gemini-2.5-pro",
               "toolCalls": [{"id": "call-1", "name": "codebase_investigator", "args": {"objective": "map it"}, "status": "success",
                              "timestamp": "2026-11-23T10:00:09.000Z", "agentId": agent_id,
                              "result": [{"functionResponse": {"id": "call-1", "name": "codebase_investigator", "response": {"output": "Subagent 'codebase_investigator' finished."}}}]}]}),
        json!({"id": "u2", "timestamp": "2026-11-23T10:00:09.100Z", "type": "user", "content": [{"functionResponse": {"id": "call-1", "name": "codebase_investigator", "response": {"output": "Subagent 'codebase_investigator' finished."}}}]}),
        json!({"id": "g2", "timestamp": "2026-11-23T10:00:10.000Z", "type": "gemini", "content": "Done.", "tokens": tokens(2), "model": "gemini-2.5-pro"}),
    ];
    let sub = vec![
        header(agent_id, "subagent"),
        json!({"id": "s1", "timestamp": "2026-11-23T10:00:03.000Z", "type": "user", "content": [{"text": "Your task: map it"}]}),
        json!({"id": "s2", "timestamp": "2026-11-23T10:00:04.000Z", "type": "gemini", "content": "", "tokens": tokens(3), "model": "gemini-2.5-flash",
               "toolCalls": [{"id": "call-2", "name": "run_shell_command", "args": {"command": "false"}, "status": "success",
                              "timestamp": "2026-11-23T10:00:05.000Z",
                              "result": [{"functionResponse": {"id": "call-2", "name": "run_shell_command", "response": {"output": "Output: (empty)\nExit Code: 1"}}}]}]}),
        json!({"id": "s3", "timestamp": "2026-11-23T10:00:08.000Z", "type": "gemini", "content": "Mapped.", "tokens": tokens(4), "model": "gemini-2.5-flash"}),
    ];
    write_records(
        &chats.join("session-2026-11-23T10-00-11111111.jsonl"),
        &main,
    );
    write_records(&chats.join(main_id).join(format!("{agent_id}.jsonl")), &sub);

    let store = store_of_home(dir.path());
    let t = common::totals(&store);
    assert_eq!(
        t.sessions.len(),
        1,
        "the subagent chat belongs to the main session"
    );
    assert_eq!(
        (
            t.prompts,
            t.generations,
            t.tool_calls,
            t.tool_errors,
            t.subagents
        ),
        (1, 4, 2, 1, 1)
    );
    assert_eq!(t.tokens.cache_read, 1000 + 2000 + 3000 + 4000);
    assert_eq!(t.tokens.input, 40);
    assert_eq!(t.tokens.output, 100);

    // The subagent's observations end up in the main prompt's trace, under the tool call that ran it.
    let sessions = store.sessions(&Default::default()).unwrap();
    assert_eq!(sessions[0].session_id, main_id);
    assert_eq!(sessions[0].cwd.as_deref(), Some("/work/proj"));
    let traces = store.traces_of(&sessions[0].key).unwrap();
    assert_eq!(traces.len(), 1);
    let obs = store.observations_of(&traces[0].id).unwrap();
    let agent = obs
        .iter()
        .find(|o| o.kind == tokentrace::model::Kind::Agent)
        .expect("agent observation in the prompt's trace");
    assert_eq!(agent.name, "codebase_investigator");
    let tool = obs
        .iter()
        .find(|o| Some(&o.id) == agent.parent_id.as_ref())
        .unwrap();
    assert_eq!(tool.kind, tokentrace::model::Kind::Tool);
    let sub_gens = obs
        .iter()
        .filter(|o| {
            o.kind == tokentrace::model::Kind::Generation
                && o.model.as_deref() == Some("gemini-2.5-flash")
        })
        .count();
    assert_eq!(sub_gens, 2, "the subagent's generations joined the trace");

    // The same store whichever file is imported first.
    let mut reversed = Store::open_in_memory().unwrap();
    common::import_dir(&mut reversed, &chats.join(main_id));
    common::import_dir(&mut reversed, dir.path());
    assert_eq!(reversed.snapshot().unwrap(), store.snapshot().unwrap());
}

// ---- robustness -----------------------------------------------------------------------------------------

#[test]
fn unknown_records_and_message_types_are_kept_as_events() {
    let run = run_named("simple");
    let (_dir, home, chat) = copy_home(&run);
    let mut variant = records(&chat);
    variant.insert(2, json!({"$future": {"x": 1}}));
    variant.insert(3, json!({"id": "i1", "timestamp": "2026-11-23T03:10:32.300Z", "type": "info", "content": "Switched model"}));
    variant.insert(4, json!({"id": "w1", "timestamp": "2026-11-23T03:10:32.301Z", "type": "hologram", "content": "?"}));
    variant.push(json!({"$rewindTo": "nothing"}));
    write_records(&chat, &variant);
    let diffs = diff(&home, &expected_of(&run));
    assert!(diffs.is_empty(), "{}", diffs.join(", "));
    let rows = store_of_home(&home).snapshot().unwrap();
    for name in ["unknown_record", "info", "hologram_message", "rewind"] {
        assert!(
            rows.iter()
                .any(|r| r.contains(&format!("Text(\"event\") Text(\"{name}\")"))),
            "event {name} missing"
        );
    }
}
