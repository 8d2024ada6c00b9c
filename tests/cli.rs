//! The command line end to end on the shipped examples.

mod common;

use std::process::{Command, Output};

fn run(args: &[&str], data: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tokentrace"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env("HOME", data)
        .env_remove("TOKENTRACE_DATA_DIR")
        .env_remove("TOKENTRACE_CONFIG")
        .env_remove("XDG_CONFIG_HOME")
        .current_dir(common::repo())
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn daily_report_over_the_examples() {
    let data = tempfile::tempdir().unwrap();
    let out = run(
        &[
            "report", "daily", "--path", "examples", "--tz", "UTC", "--json",
        ],
        data.path(),
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["grouping"], "daily");
    let rows = doc["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["key"], "2026-11-23");
    // 20 runs: sums of their expected.json files.
    assert_eq!(doc["totals"]["sessions"], 20);
    assert_eq!(doc["totals"]["prompts"], 27);
    assert_eq!(doc["totals"]["generations"], 59);
    assert_eq!(doc["totals"]["generation_errors"], 8);
    assert_eq!(doc["totals"]["tokens"]["input"], 14_050);
    assert_eq!(doc["totals"]["tokens"]["cache_read"], 53_600);

    let agents = run(
        &[
            "report",
            "agent",
            "--path",
            "examples",
            "--json",
            "--no-import",
        ],
        data.path(),
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout(&agents)).unwrap();
    let keys: Vec<_> = doc["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, vec!["omp", "pi"]);

    // --source and --since filter.
    let omp = run(
        &[
            "report", "session", "--path", "examples", "--source", "omp", "--json",
        ],
        data.path(),
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout(&omp)).unwrap();
    assert_eq!(doc["sessions"].as_array().unwrap().len(), 3);
    let later = run(
        &[
            "report", "daily", "--path", "examples", "--since", "20261124", "--tz", "UTC", "--json",
        ],
        data.path(),
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout(&later)).unwrap();
    assert_eq!(doc["totals"]["generations"], 0);

    let table = stdout(&run(
        &["report", "daily", "--path", "examples", "--tz", "UTC"],
        data.path(),
    ));
    assert!(
        table.contains("2026-11-23") && table.contains("14,050"),
        "{table}"
    );
}

#[test]
fn show_prints_the_trace_tree() {
    let data = tempfile::tempdir().unwrap();
    stdout(&run(
        &[
            "report",
            "session",
            "--path",
            "examples/pi/pi-0.87.1/09-tree-branch",
        ],
        data.path(),
    ));
    let tree = stdout(&run(&["show", "01a20986-dbd7"], data.path()));
    assert!(tree.contains("pi prompt 1"), "{tree}");
    assert!(tree.contains("pi prompt 3"), "{tree}");
    assert!(tree.contains("generation branch_summary"), "{tree}");
    assert!(tree.contains("tool bash"), "{tree}");
    assert!(
        tree.contains("in 400 out 25 cache r/w 1100/0  $0.001905 (agent)"),
        "{tree}"
    );
    let missing = run(&["show", "ffffffff"], data.path());
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no session or trace matches"));
}

#[test]
fn prices_explains_the_rule() {
    let data = tempfile::tempdir().unwrap();
    let out = stdout(&run(
        &["prices", "claude-sonnet-4-5-20250929", "--json"],
        data.path(),
    ));
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["key"], "claude-sonnet-4-5-20250929");
    assert_eq!(doc["usd_per_mtok"]["input"], 3.0);
    let unknown = stdout(&run(&["prices", "mock-gpt"], data.path()));
    assert!(unknown.contains("no price found"), "{unknown}");
    let tiers = stdout(&run(&["prices", "gemini-2.5-pro"], data.path()));
    assert!(tiers.contains("above 200k"), "{tiers}");
}

#[test]
fn overrides_from_the_config_file_price_unknown_models() {
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("config.toml");
    // Re-price the mock model at $1/$2 per Mtok: 01-print-openai has 600 input, 65 output, 2100 cache read
    // (cache read falls back to the input price): 600e-6 + 130e-6 + 2100e-6 = $0.00283.
    std::fs::write(
        &config,
        "[prices.\"mock-gpt\"]\ninput = 1.0\noutput = 2.0\n",
    )
    .unwrap();
    let out = stdout(&run(
        &[
            "--config",
            config.to_str().unwrap(),
            "report",
            "session",
            "--path",
            "examples/pi/pi-0.87.1/01-print-openai",
            "--json",
        ],
        data.path(),
    ));
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["sessions"][0]["cost_source"], "override");
    assert!(
        (doc["totals"]["cost_usd"].as_f64().unwrap() - 0.00283).abs() < 1e-12,
        "{out}"
    );
}

#[test]
fn doctor_reports_discovery_and_bad_arguments_fail_clearly() {
    let data = tempfile::tempdir().unwrap();
    let out = stdout(&run(
        &["doctor", "--path", "examples", "--json"],
        data.path(),
    ));
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["sources"][0]["files"], 20);
    assert_eq!(doc["store"]["exists"], false);
    let bad = run(&["report", "--source", "vim"], data.path());
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown --source 'vim'"));
    let bad_tz = run(
        &["report", "--tz", "Mars/Olympus", "--path", "examples"],
        data.path(),
    );
    assert!(String::from_utf8_lossy(&bad_tz.stderr).contains("unknown time zone"));
}

#[test]
fn gemini_side_call_gap_is_reported() {
    let Some(corpus) = common::shared_corpus() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let home = corpus.join("gemini/gemini-0.61.0/run5-compress/home");
    let table = stdout(&run(
        &["report", "session", "--path", home.to_str().unwrap()],
        data.path(),
    ));
    assert!(table.contains("side calls"), "{table}");
    let doc: serde_json::Value =
        serde_json::from_str(&stdout(&run(&["doctor", "--json"], data.path()))).unwrap();
    assert_eq!(doc["known_gaps"][0]["sessions"], 1);
    assert!(doc["known_gaps"][0]["gap"]
        .as_str()
        .unwrap()
        .contains("not recorded"));
}

/// Sessions, prompts, generations, tool calls and input + output tokens of an `expected.json` or a report row.
fn summary(v: &serde_json::Value) -> [u64; 5] {
    let n = |k: &str| v[k].as_u64().unwrap();
    let t = |k: &str| v["tokens"][k].as_u64().unwrap();
    [
        n("sessions"),
        n("prompts"),
        n("generations"),
        n("tool_calls"),
        t("input") + t("output"),
    ]
}

fn add(into: &mut [u64; 5], x: [u64; 5]) {
    into.iter_mut().zip(x).for_each(|(a, b)| *a += b);
}

#[test]
fn daily_report_over_the_whole_corpus_shows_every_agent_exactly() {
    // Every run folder together (session files next to streams, telemetry captures and ground truth): each
    // agent's totals equal the sum of its runs' expected.json.
    let Some(corpus) = common::shared_corpus() else {
        return;
    };
    let mut expected: std::collections::BTreeMap<String, [u64; 5]> = Default::default();
    for agent in ["pi", "omp", "claude", "codex", "gemini"] {
        for r in common::runs(&corpus, &[agent]) {
            let e = common::expected(&r);
            add(
                expected
                    .entry(e["agent"].as_str().unwrap().to_string())
                    .or_default(),
                summary(&e),
            );
        }
    }
    let data = tempfile::tempdir().unwrap();
    let report = |args: &[&str]| {
        let mut all = vec!["report"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--path", corpus.to_str().unwrap(), "--tz", "UTC"]);
        stdout(&run(&all, data.path()))
    };
    let doc: serde_json::Value = serde_json::from_str(&report(&["agent", "--json"])).unwrap();
    let mut got: std::collections::BTreeMap<String, [u64; 5]> = Default::default();
    for row in doc["rows"].as_array().unwrap() {
        got.insert(row["key"].as_str().unwrap().to_string(), summary(row));
        assert!(
            row["unpriced_models"].as_array().unwrap().is_empty()
                || row["key"] == "pi"
                || row["key"] == "omp"
        );
    }
    assert_eq!(got, expected);
    assert_eq!(
        got.len(),
        5,
        "pi, omp, claude, codex and gemini all present"
    );
    let daily = report(&["daily", "--json", "--no-import"]);
    let doc: serde_json::Value = serde_json::from_str(&daily).unwrap();
    assert_eq!(
        doc["totals"]["sessions"].as_u64().unwrap(),
        expected.values().map(|x| x[0]).sum::<u64>()
    );
    // Each day splits by agent, and the splits add up to each agent's expected totals.
    let mut per_agent: std::collections::BTreeMap<String, [u64; 5]> = Default::default();
    let mut day_cost = 0.0;
    for row in doc["rows"].as_array().unwrap() {
        let mut split_cost = 0.0;
        for a in row["agents"].as_array().unwrap() {
            add(
                per_agent
                    .entry(a["agent"].as_str().unwrap().to_string())
                    .or_default(),
                summary(a),
            );
            split_cost += a["cost_usd"].as_f64().unwrap();
        }
        assert!((split_cost - row["cost_usd"].as_f64().unwrap()).abs() < 1e-9);
        day_cost += split_cost;
    }
    assert_eq!(per_agent, expected, "per-agent split of the daily rows");
    assert!(day_cost > 2.0, "the corpus costs ${day_cost:.2}");
    let table = report(&["daily", "--no-import"]);
    for agent in ["pi", "omp", "claude", "codex", "gemini"] {
        assert!(
            table.contains(&format!("└ {agent} ")),
            "{agent} has its own line in the daily table:\n{table}"
        );
    }
}

#[test]
fn a_closed_stdout_ends_the_report_quietly() {
    // `tokentrace report | head -1`: the reader goes away before the report is written.
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokentrace"))
        .args([
            "report",
            "session",
            "--json",
            "--path",
            "examples",
            "--data-dir",
        ])
        .arg(data.path())
        .env("HOME", data.path())
        .current_dir(common::repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "ended by SIGPIPE like other Unix tools: {:?}, stderr: {stderr}",
        out.status
    );
}

/// The README's quick start (the `cargo run -- …` line), run with the built binary and `HOME` in a temp dir,
/// leaves nothing behind under `HOME`.
#[test]
fn the_readme_quick_start_leaves_nothing_in_home() {
    let readme = std::fs::read_to_string(common::repo().join("README.md")).unwrap();
    let line = readme
        .lines()
        .find(|l| l.trim_start().starts_with("cargo run -- "))
        .expect("a `cargo run -- …` quick start line");
    let args: Vec<&str> = line
        .trim()
        .trim_start_matches("cargo run -- ")
        .split_whitespace()
        .collect();
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tokentrace"))
        .args(&args)
        .env("HOME", home.path())
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("TOKENTRACE_DATA_DIR")
        .env_remove("TOKENTRACE_CONFIG")
        .current_dir(common::repo())
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(text.contains("Total"), "{text}");
    let left: Vec<_> = walkdir::WalkDir::new(home.path())
        .min_depth(1)
        .into_iter()
        .filter_map(Result::ok)
        .map(|e| e.path().display().to_string())
        .collect();
    assert!(left.is_empty(), "the quick start wrote {left:?}");
}

/// `tokentrace` alone is the daily report, and report options work without the subcommand (as in ccusage).
#[test]
fn no_subcommand_is_the_daily_report() {
    let data = tempfile::tempdir().unwrap();
    let args = ["--path", "examples", "--tz", "UTC", "--json", "--ephemeral"];
    let bare = stdout(&run(&args, data.path()));
    let mut with = vec!["report", "daily"];
    with.extend(args);
    assert_eq!(bare, stdout(&run(&with, data.path())));
    let doc: serde_json::Value = serde_json::from_str(&bare).unwrap();
    assert_eq!(doc["grouping"], "daily");
}

#[test]
fn completions_are_generated_for_each_shell() {
    let data = tempfile::tempdir().unwrap();
    for (shell, marker) in [
        ("bash", "complete -F _tokentrace"),
        ("zsh", "#compdef tokentrace"),
        ("fish", "complete -c tokentrace"),
    ] {
        let text = stdout(&run(&["completions", shell], data.path()));
        assert!(text.contains(marker), "{shell}: {text:.200}");
        assert!(
            text.contains("report") && text.contains("doctor"),
            "{shell}"
        );
    }
}

/// Errors that teach: a missing `--config` file, a malformed endpoint (a config error at start naming the
/// variable, not "unreachable, will retry"); `doctor` still runs on a broken config and explains it first;
/// `sync --json` prints JSON when no backend is configured.
#[test]
fn configuration_errors_are_explained() {
    let data = tempfile::tempdir().unwrap();
    let missing = run(&["report", "--config", "/nonexistent/tt.toml"], data.path());
    assert_eq!(missing.status.code(), Some(1));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("/nonexistent/tt.toml") && err.contains("does not exist"),
        "{err}"
    );

    let bad = Command::new(env!("CARGO_BIN_EXE_tokentrace"))
        .args(["sync", "--ephemeral", "--path", "examples"])
        .env("HOME", data.path())
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318")
        .current_dir(common::repo())
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("OTEL_EXPORTER_OTLP_ENDPOINT") && err.contains("http://"),
        "{err}"
    );

    let cfg = data.path().join("broken.toml");
    std::fs::write(&cfg, "channel = [unclosed\n").unwrap();
    let doctor = run(&["doctor", "--config", cfg.to_str().unwrap()], data.path());
    // doctor runs through (and exits 1: the config is broken), the error first.
    assert_eq!(doctor.status.code(), Some(1));
    let text = String::from_utf8_lossy(&doctor.stdout).into_owned();
    assert!(
        text.lines()
            .next()
            .unwrap_or("")
            .contains("config cannot be used")
            && text.contains("broken.toml"),
        "{text}"
    );
    let report = run(&["report", "--config", cfg.to_str().unwrap()], data.path());
    assert_eq!(report.status.code(), Some(1));

    let sync = run(
        &["sync", "--json", "--ephemeral", "--path", "examples"],
        data.path(),
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout(&sync)).unwrap();
    assert_eq!(doc["sinks"], serde_json::json!([]));
}

/// `show` imports first, takes `--tz`, ends with the session's total, and draws one branch per prompt.
#[test]
fn show_imports_first_and_prints_local_times_and_a_total() {
    let data = tempfile::tempdir().unwrap();
    let tree = stdout(&run(
        &[
            "show",
            "01a20986-dbd7",
            "--path",
            "examples/pi/pi-0.87.1/09-tree-branch",
            "--tz",
            "Asia/Tokyo",
        ],
        data.path(),
    ));
    assert!(tree.lines().next().unwrap().contains("JST"), "{tree}");
    assert!(
        tree.contains("├─ pi prompt 1") && tree.contains("└─ pi prompt 3"),
        "{tree}"
    );
    let total = tree.lines().last().unwrap();
    assert!(
        total.starts_with("total: 3 prompt(s), 7 model call(s)") && total.ends_with("$0.012120"),
        "{total}"
    );
}

/// `-v` logs carry no colour codes into a pipe.
#[test]
fn verbose_logs_have_no_colour_codes_in_pipes() {
    let data = tempfile::tempdir().unwrap();
    let out = run(
        &["report", "-v", "--path", "examples", "--ephemeral"],
        data.path(),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("imported"), "{err}");
    assert!(!err.contains('\u{1b}'), "{err:?}");
}
