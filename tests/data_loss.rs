//! Nothing is lost without a word: every corpus run with its first line damaged (garbage before it, cut in
//! half, a line type no release wrote yet) is still imported with the same totals as the clean run, and the
//! warning names the file and the line number; files that cannot be read are warned about and listed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

struct Run {
    out: serde_json::Value,
    stderr: String,
}

fn report(home: &Path) -> Run {
    let data = tempfile::tempdir().unwrap();
    let (out, stderr) = common::report_session_in(data.path(), home, &[]);
    Run { out, stderr }
}

/// The session files of a run (`.jsonl`, not a subagent transcript), sorted.
fn main_files(home: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(home)
        .into_iter()
        .filter_map(Result::ok)
        .map(|e| e.into_path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "jsonl")
                && !p.components().any(|c| c.as_os_str() == "subagents")
        })
        .collect();
    files.sort();
    files
}

type Damage = fn(&str) -> String;

/// Each damage of a file's first line, and whether it leaves a bad line that must be warned about.
const DAMAGES: &[(&str, Damage, bool)] = &[
    (
        "garbage line before",
        |text| format!("\u{0}\u{7}garbage{{{{ not json\n{text}"),
        true,
    ),
    (
        "first line cut in half",
        |text| {
            let (first, rest) = text.split_once('\n').unwrap();
            let mut cut = first.len() / 2;
            while !first.is_char_boundary(cut) {
                cut -= 1;
            }
            format!("{}\n{rest}", &first[..cut])
        },
        true,
    ),
    (
        "unknown line type first",
        |text| {
            format!("{{\"type\":\"x-future-line\",\"timestamp\":\"2026-12-01T00:00:00Z\",\"data\":{{\"n\":1}}}}\n{text}")
        },
        false,
    ),
];

/// The totals a damaged first line may change: none, except what that line itself carried.
fn totals(r: &Run) -> (usize, serde_json::Value) {
    let t = &r.out["totals"];
    let sessions = r.out["sessions"].as_array().map_or(0, Vec::len);
    let keep = [
        "generations",
        "generation_errors",
        "tool_calls",
        "tool_errors",
        "subagents",
        "tokens",
    ];
    let v = keep
        .iter()
        .map(|k| (k.to_string(), t[*k].clone()))
        .collect();
    (sessions, serde_json::Value::Object(v))
}

#[test]
fn a_damaged_first_line_loses_nothing_else_and_is_named_by_line_number() {
    let mut bases = vec![
        common::repo().join("tests/fixtures/unseen"),
        common::repo().join("tests/fixtures/recorded"),
    ];
    bases.extend(common::shared_corpus());
    let runs: Vec<PathBuf> = bases
        .iter()
        .flat_map(|b| common::runs(b, &["pi", "omp", "claude", "codex", "gemini"]))
        .collect();
    assert!(runs.len() >= 60);
    let mut failures = Vec::new();
    let mut checked = 0;
    for run in &runs {
        let clean = report(&run.join("home"));
        let want = totals(&clean);
        for (name, damage, warns) in DAMAGES {
            let tmp = tempfile::tempdir().unwrap();
            let home = tmp.path().join("home");
            common::copy_tree(&run.join("home"), &home);
            let files = main_files(&home);
            let Some(file) = files.first() else { continue };
            let Ok(text) = std::fs::read_to_string(file) else {
                continue;
            };
            std::fs::write(file, damage(&text)).unwrap();
            let got = report(&home);
            checked += 1;
            // A header cut in half loses the session id it carried: a session spread over several files
            // (a resumed Gemini chat) may then show as two; every count and token stays.
            let (mut got_t, want_t) = (totals(&got), want.clone());
            if *name == "first line cut in half" && got_t.0 > want_t.0 {
                got_t.0 = want_t.0;
            }
            if got_t != want_t {
                failures.push(format!(
                    "{} [{name}]: {:?} != clean {:?}",
                    run.display(),
                    totals(&got),
                    want
                ));
            }
            let fname = file.file_name().unwrap().to_string_lossy().into_owned();
            if *warns
                && !got
                    .stderr
                    .lines()
                    .any(|l| l.contains(&fname) && l.contains("line 1 "))
            {
                failures.push(format!(
                    "{} [{name}]: no warning naming {fname} line 1 in:\n{}",
                    run.display(),
                    got.stderr
                ));
            }
        }
    }
    assert!(checked >= 150, "only {checked} damaged variants");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Files that cannot be read (here: a read that fails with an I/O error, a dangling link, a link loop; they
/// work for root as well as for users) are warned about, counted under the report, and listed by doctor.
#[test]
fn unreadable_session_files_are_warned_about_and_listed() {
    let run = common::repo().join("tests/fixtures/recorded/claude/claude-2.1.332/run21-simple");
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    common::copy_tree(&run.join("home"), &home);
    let dir = main_files(&home)[0].parent().unwrap().to_path_buf();
    std::os::unix::fs::symlink("/proc/self/mem", dir.join("io-error.jsonl")).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("gone"), dir.join("dangling.jsonl")).unwrap();
    std::os::unix::fs::symlink(&dir, dir.join("loop")).unwrap();
    let data = tmp.path().join("data");
    let run_cmd = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tokentrace"))
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .env("HOME", tmp.path())
            .output()
            .unwrap()
    };
    let out = run_cmd(&["report", "session", "--path", home.to_str().unwrap()]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for name in ["io-error.jsonl", "dangling.jsonl", "loop"] {
        assert!(stderr.contains(name), "no warning for {name}:\n{stderr}");
    }
    assert!(
        stdout.contains("3 session file(s) or folder(s) could not be read"),
        "{stdout}"
    );
    // The readable session is all there.
    let clean = report(&run.join("home"));
    let out = run_cmd(&[
        "report",
        "session",
        "--json",
        "--path",
        home.to_str().unwrap(),
    ]);
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["totals"], clean.out["totals"]);
    // doctor lists them, with the reason.
    let out = run_cmd(&["doctor", "--json", "--path", home.to_str().unwrap()]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed: Vec<String> = doc["unreadable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(doc["unreadable"][0]["reason"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
}

/// A `.jsonl` file in an agent's own session folder that does not read as its session is listed by doctor
/// with the reason (under `--path` anything may live beside sessions, so only default locations count).
#[test]
fn a_file_in_an_agents_folder_that_yields_nothing_is_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(".claude/projects/-tmp-x");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.jsonl"), "hello\nworld\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tokentrace"))
        .args(["doctor", "--json", "--data-dir"])
        .arg(tmp.path().join("data"))
        .env("HOME", tmp.path())
        .env_remove("CLAUDE_CONFIG_DIR")
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = doc["unrecognized"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert!(list[0]["path"].as_str().unwrap().ends_with("notes.jsonl"));
    assert_eq!(list[0]["agent"], "claude");
}

/// Reproduction: one absurd Codex token field (2^63) made a session cost -$9,223,371.98. Impossible values
/// (≥ 2^63, > 10^12, negative) are rejected for their record with a warning naming the file; the record is
/// flagged, every other value is counted, and no sum wraps.
#[test]
fn impossible_token_counts_are_rejected_and_flagged_never_summed() {
    let run = common::repo().join("tests/fixtures/recorded/codex/codex-0.171.0/run13-simple");
    let clean = report(&run.join("home"));
    for (what, bad) in [
        ("2^63", "9223372036854775808"),
        ("over 10^12", "5000000000000"),
        ("negative", "-4000"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        common::copy_tree(&run.join("home"), &home);
        let file = main_files(&home)[0].clone();
        let text = std::fs::read_to_string(&file).unwrap();
        // The first usage record's output tokens.
        let at = text
            .find("\"type\":\"token_usage_record\"")
            .expect("a usage record");
        let key = "\"output_tokens\":";
        let start = at + text[at..].find(key).unwrap() + key.len();
        let end = start + text[start..].find([',', '}']).unwrap();
        let old: u64 = text[start..end].parse().unwrap();
        let mut damaged = text.clone();
        damaged.replace_range(start..end, bad);
        std::fs::write(&file, damaged).unwrap();
        let got = report(&home);
        let t = &got.out["totals"];
        let c = &clean.out["totals"];
        assert_eq!(t["generations"], c["generations"], "{what}");
        assert_eq!(t["tokens"]["input"], c["tokens"]["input"], "{what}");
        assert_eq!(
            t["tokens"]["output"].as_u64().unwrap(),
            c["tokens"]["output"].as_u64().unwrap() - old,
            "{what}: only the bad value is left out"
        );
        assert_eq!(t["flagged_calls"], 1, "{what}");
        let cost = t["cost_usd"].as_f64().unwrap();
        assert!(
            cost >= 0.0 && cost <= c["cost_usd"].as_f64().unwrap(),
            "{what}: {cost}"
        );
        let fname = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            got.stderr.contains(&fname) && got.stderr.contains("impossible"),
            "{what}: {}",
            got.stderr
        );
    }
}
