//! `report blocks` against ccusage 20.0.24's `blocks --json` (installed by `scripts/test` into target/ccusage;
//! `CCUSAGE` names the binary) on the Claude Code recordings: the same blocks (start, end) and, where both
//! count the same calls, the same tokens.
//!
//! Where they differ, and why: on Claude Code 2.1.3xx transcripts tokentrace also counts the calls the
//! transcript records only in its `cost-state` (the `/compact` summary, recovered from the cost differences)
//! and failed attempts (`system`/`api_error` lines, as failed generations), so its block holds more calls and
//! tokens than ccusage's (see src/sources/claude/README.md). On the 2.1.197 recordings both count the same.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// (start, end) → [input, output, cache write, cache read].
type Blocks = BTreeMap<(String, String), [u64; 4]>;

/// Copies every `projects/` folder of the Claude runs under `runs` into `dir/.claude/projects`.
fn claude_home(runs: &[std::path::PathBuf], dir: &Path) {
    let projects = dir.join(".claude/projects");
    for run in runs {
        let from = run.join("home/.claude/projects");
        for entry in std::fs::read_dir(&from).unwrap().flatten() {
            common::copy_tree(&entry.path(), &projects.join(entry.file_name()));
        }
    }
}

/// Runs `cmd`, which must succeed, and parses its stdout as JSON.
fn json_of(cmd: &mut Command) -> Value {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ccusage_blocks(ccusage: &str, home: &Path) -> Blocks {
    let doc = json_of(
        Command::new(ccusage)
            .args(["blocks", "--offline", "--json"])
            .env("CLAUDE_CONFIG_DIR", home.join(".claude"))
            .env("HOME", home),
    );
    doc["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["isGap"] == false)
        .map(|b| {
            let t = &b["tokenCounts"];
            let n = |k: &str| t[k].as_u64().unwrap();
            // ccusage writes `…T20:00:00.000Z`.
            let time = |k: &str| b[k].as_str().unwrap().replace(".000Z", "Z");
            (
                (time("startTime"), time("endTime")),
                [
                    n("inputTokens"),
                    n("outputTokens"),
                    n("cacheCreationInputTokens"),
                    n("cacheReadInputTokens"),
                ],
            )
        })
        .collect()
}

fn our_blocks(home: &Path) -> Blocks {
    let data = tempfile::tempdir().unwrap();
    let home = home.to_str().unwrap();
    let args = ["report", "blocks", "--json", "--tz", "UTC", "--path", home];
    let doc: Value =
        serde_json::from_slice(&common::tokentrace_stdout(data.path(), &args)).unwrap();
    assert_eq!(doc["grouping"], "blocks");
    doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let key = r["key"].as_str().unwrap();
            let (start, agent) = key.split_once(' ').unwrap();
            assert_eq!(agent, "claude");
            let end = jiff::Timestamp::from_second(
                start.parse::<jiff::Timestamp>().unwrap().as_second() + 5 * 3600,
            )
            .unwrap()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
            let t = &r["tokens"];
            let n = |k: &str| t[k].as_u64().unwrap();
            (
                (start.to_string(), end),
                [n("input"), n("output"), n("cache_write"), n("cache_read")],
            )
        })
        .collect()
}

fn ccusage() -> Option<String> {
    std::env::var("CCUSAGE")
        .ok()
        .filter(|p| Path::new(p).exists())
}

#[test]
fn blocks_equal_ccusages_on_claude_code_2_1_197() {
    let (Some(ccusage), Some(corpus)) = (ccusage(), common::shared_corpus()) else {
        return common::skip_missing(
            "ccusage (CCUSAGE) and ../shared/corpus",
            "scripts/test installs ccusage",
        );
    };
    let runs = common::runs(&corpus, &["claude"]);
    assert!(runs.len() >= 5, "{runs:?}");
    let home = tempfile::tempdir().unwrap();
    claude_home(&runs, home.path());
    let theirs = ccusage_blocks(&ccusage, home.path());
    let ours = our_blocks(home.path());
    assert!(theirs.len() >= 2, "{theirs:?}");
    assert_eq!(ours, theirs);
}

#[test]
fn blocks_on_claude_code_2_1_332_have_ccusages_bounds_and_at_least_its_tokens() {
    let Some(ccusage) = ccusage() else {
        return common::skip_missing("ccusage (CCUSAGE)", "scripts/test installs ccusage");
    };
    let runs = common::runs(&common::repo().join("tests/fixtures/recorded"), &["claude"]);
    let home = tempfile::tempdir().unwrap();
    claude_home(&runs, home.path());
    let theirs = ccusage_blocks(&ccusage, home.path());
    let ours = our_blocks(home.path());
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "the same blocks"
    );
    for (block, t) in &theirs {
        let o = ours[block];
        // The calls ccusage does not see (recovered /compact summaries, failed attempts) only add.
        assert!(
            o.iter().zip(t).all(|(a, b)| a >= b),
            "{block:?}: ours {o:?}, ccusage {t:?}"
        );
    }
}

/// A synthetic history made by bench/gen.py from the 2.1.197 corpus runs (fresh ids), ending `ago` before now and
/// spread over `days` (0: every copy starts at the window's end).
fn synthetic(dir: &Path, days: u32, ago: jiff::SignedDuration) -> std::path::PathBuf {
    let hist = dir.join(format!("hist-{days}"));
    let end = jiff::Timestamp::now()
        .checked_sub(ago)
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let gen = Command::new("python3")
        .arg(common::repo().join("bench/gen.py"))
        .args(["claude", "3M"])
        .arg(&hist)
        .args([
            "--runs",
            "corpus/",
            "--days",
            &days.to_string(),
            "--end",
            &end,
        ])
        .args(["--seed", "1", "--big-share", "0"])
        .output()
        .unwrap();
    assert!(
        gen.status.success(),
        "{}",
        String::from_utf8_lossy(&gen.stderr)
    );
    hist
}

/// On a synthetic history spread over the last day, every block equals ccusage's. On one whose calls all lie
/// within the last hour (so that a block runs now, whatever the time of day), the running block has ccusage's
/// burn rate and projection (`blocks --active --json`).
#[test]
fn blocks_and_the_running_blocks_projection_equal_ccusages_on_a_synthetic_history() {
    let (Some(ccusage), Some(_)) = (ccusage(), common::shared_corpus()) else {
        return common::skip_missing(
            "ccusage (CCUSAGE) and ../shared/corpus",
            "scripts/test installs ccusage",
        );
    };
    let tmp = tempfile::tempdir().unwrap();
    let day = synthetic(tmp.path(), 1, jiff::SignedDuration::from_mins(10));
    let theirs = ccusage_blocks(&ccusage, &day);
    let ours = our_blocks(&day);
    assert!(theirs.len() >= 3, "{theirs:?}");
    assert_eq!(ours, theirs);

    // Every copy starts 30 minutes ago and lasts minutes: one block, running now.
    let hist = synthetic(tmp.path(), 0, jiff::SignedDuration::from_mins(30));
    let active = json_of(
        Command::new(&ccusage)
            .args(["blocks", "--active", "--offline", "--json"])
            .env("CLAUDE_CONFIG_DIR", hist.join(".claude"))
            .env("HOME", &hist),
    );
    let data = tempfile::tempdir().unwrap();
    let args = [
        "report",
        "blocks",
        "--active",
        "--json",
        "--tz",
        "UTC",
        "--path",
        hist.to_str().unwrap(),
    ];
    let mine: Value =
        serde_json::from_slice(&common::tokentrace_stdout(data.path(), &args)).unwrap();
    let (theirs, mine) = (&active["blocks"][0], &mine["rows"][0]["block"]);
    assert_eq!(mine["active"], true, "{mine}");
    assert_eq!(theirs["isActive"], true, "{theirs}");
    assert_eq!(
        mine["start"].as_str().unwrap(),
        theirs["startTime"].as_str().unwrap().replace(".000Z", "Z")
    );
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(1.0);
    let tpm = mine["burn"]["tokens_per_minute"].as_f64().unwrap();
    assert!(tpm > 0.0, "{mine}");
    assert!(
        close(tpm, theirs["burnRate"]["tokensPerMinute"].as_f64().unwrap()),
        "{mine} vs {theirs}"
    );
    assert!(close(
        mine["burn"]["cost_per_hour_usd"].as_f64().unwrap(),
        theirs["burnRate"]["costPerHour"].as_f64().unwrap()
    ));
    // Both project over the whole minutes left; the two commands ran a moment apart (a minute at most).
    let minutes = |v: &Value| v.as_i64().unwrap();
    let (m, t) = (
        minutes(&mine["projection"]["remaining_minutes"]),
        minutes(&theirs["projection"]["remainingMinutes"]),
    );
    assert!((m - t).abs() <= 1, "{m} vs {t} minutes left");
    let projected = mine["projection"]["total_tokens"].as_f64().unwrap();
    let expected = theirs["projection"]["totalTokens"].as_f64().unwrap() + (m - t) as f64 * tpm;
    assert!(
        (projected - expected).abs() <= 1.0,
        "{projected} vs {expected}"
    );
}

/// `--token-limit max` measures every block against the busiest finished one; a limit of 1 token is exceeded
/// by every block, and the table says so.
#[test]
fn token_limits_compare_blocks_with_the_busiest_or_a_number() {
    let mut runs = common::runs(&common::repo().join("tests/fixtures/recorded"), &["claude"]);
    runs.extend(common::shared_corpus().map_or(Vec::new(), |c| common::runs(&c, &["claude"])));
    let home = tempfile::tempdir().unwrap();
    claude_home(&runs, home.path());
    let data = tempfile::tempdir().unwrap();
    let path = home.path().to_str().unwrap();
    let doc: Value = serde_json::from_slice(&common::tokentrace_stdout(
        data.path(),
        &[
            "report",
            "blocks",
            "--json",
            "--token-limit",
            "max",
            "--path",
            path,
        ],
    ))
    .unwrap();
    let rows = doc["rows"].as_array().unwrap();
    assert!(rows.len() >= 2);
    let totals: Vec<u64> = rows
        .iter()
        .map(|r| r["block"]["total_tokens"].as_u64().unwrap())
        .collect();
    let max = *totals.iter().max().unwrap();
    for (r, total) in rows.iter().zip(&totals) {
        let t = &r["tokens"];
        let sum: u64 = ["input", "output", "cache_read", "cache_write"]
            .iter()
            .map(|k| t[*k].as_u64().unwrap())
            .sum();
        assert_eq!(*total, sum);
        assert_eq!(r["block"]["token_limit"]["limit"].as_u64(), Some(max));
        let share = r["block"]["token_limit"]["used_share"].as_f64().unwrap();
        assert!((share - *total as f64 / max as f64).abs() < 1e-12);
        assert_eq!(r["block"]["active"], false, "recordings are old");
    }
    let table = String::from_utf8(common::tokentrace_stdout(
        data.path(),
        &[
            "report",
            "blocks",
            "--token-limit",
            "1",
            "--no-import",
            "--path",
            path,
        ],
    ))
    .unwrap();
    assert_eq!(
        table.matches("exceeds the limit").count(),
        rows.len(),
        "{table}"
    );
    let err = common::tokentrace(data.path(), &["report", "daily", "--active"]);
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("`report blocks` only"));
}

/// An import that wrote keeps the first call of the newest open block as the point later `status` and
/// `statusline` calls place blocks from (schema 15's `block_anchors`), and keeps none when no block is open at
/// its "now".
#[test]
fn an_import_keeps_the_first_call_of_the_open_block_as_anchor() {
    let run =
        common::repo().join("tests/fixtures/recorded/claude/claude-2.1.332/run26-compact-thinking");
    let home = tempfile::tempdir().unwrap();
    claude_home(&[run], home.path());
    let projects = home.path().join(".claude/projects");
    let import = |now: Option<String>| {
        let data = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokentrace"));
        cmd.args(["report", "daily", "--json", "--path"])
            .arg(&projects)
            .arg("--data-dir")
            .arg(data.path())
            .env("HOME", data.path())
            .env_remove("TOKENTRACE_CONFIG");
        if let Some(now) = now {
            cmd.env("TOKENTRACE_NOW", now);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let store =
            tokentrace::store::Store::open_read_only(&data.path().join(tokentrace::store::DB_FILE))
                .unwrap();
        (data, store)
    };
    // Today: the recording's calls are days old, no block is open.
    let (_data, store) = import(None);
    assert_eq!(store.block_anchor("claude").unwrap(), None);
    // Every call up to the year 2100 (a gap as long as the epoch: no gap stops the read).
    let until = 4_102_444_800_000;
    let all = store
        .agent_calls_since_gap("claude", until, until, None)
        .unwrap();
    assert!(all.len() > 3, "{all:?}");
    let newest = tokentrace::report::blocks::place(&all).pop().unwrap();
    // A minute after the last call: its block is open and its first call is kept.
    let now = jiff::Timestamp::from_millisecond(all[all.len() - 1] + 60_000).unwrap();
    let (_data, store) = import(Some(now.to_string()));
    assert_eq!(store.block_anchor("claude").unwrap(), Some(newest.first_ms));
}
