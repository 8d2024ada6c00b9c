//! Prices follow the config: an override added (or removed) after an import re-prices what is already in
//! the store, and the traces whose cost changed are sent again (issue "Nothing dropped silently, nothing
//! leaked", item 7).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tokentrace::pricing::Pricer;
use tokentrace::store::Store;

/// The invented model id the copied run is renamed to: no bundled price matches it.
const MODEL: &str = "my-custom-model";
/// Override rates, USD per million tokens, as pico-USD per token (1 USD/Mtok = 1,000,000 pico-USD/token).
const CONFIG: &str = "[prices.\"my-custom-model\"]\ninput = 2.0\noutput = 8.0\ncache_read = 0.5\ncache_write = 4.0\n";
const PICO_PER_TOKEN: [i64; 4] = [2_000_000, 8_000_000, 500_000, 4_000_000];

/// A Codex run (its model priced by the bundled table): the shared corpus's run1-simple, else the
/// repository's own recording.
fn source_run() -> PathBuf {
    match common::shared_corpus() {
        Some(c) => c.join("codex/codex-0.169.0/run1-simple"),
        None => common::repo().join("tests/fixtures/recorded/codex/codex-0.171.0/run14-multi"),
    }
}

/// Copies `run/home` to `dest` with the model id `gpt-5.5` renamed to [`MODEL`] in every session file.
fn copy_renamed(run: &Path, dest: &Path) {
    let home = run.join("home");
    for entry in walkdir::WalkDir::new(&home).into_iter().flatten() {
        let rel = entry.path().strip_prefix(&home).unwrap();
        let to = dest.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&to).unwrap();
        } else {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            assert!(text.contains("\"gpt-5.5\"") || !rel.to_string_lossy().ends_with(".jsonl"));
            std::fs::write(&to, text.replace("\"gpt-5.5\"", &format!("\"{MODEL}\""))).unwrap();
        }
    }
}

struct Env {
    _tmp: tempfile::TempDir,
    sessions: PathBuf,
    data: PathBuf,
    config: PathBuf,
    /// Token totals of the run (`expected.json`): input, output, cache read, cache write.
    tokens: [i64; 4],
}

impl Env {
    fn new() -> Env {
        let run = source_run();
        let tmp = tempfile::tempdir().unwrap();
        let sessions = tmp.path().join("sessions");
        copy_renamed(&run, &sessions);
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("expected.json")).unwrap())
                .unwrap();
        let t = |k: &str| expected["tokens"][k].as_i64().unwrap();
        // An empty config file: an explicit --config must exist; overrides are written into it later.
        std::fs::write(tmp.path().join("config.toml"), "").unwrap();
        Env {
            data: tmp.path().join("data"),
            config: tmp.path().join("config.toml"),
            tokens: [t("input"), t("output"), t("cache_read"), t("cache_write")],
            sessions,
            _tmp: tmp,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_tokentrace"))
            .arg("--data-dir")
            .arg(&self.data)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("HOME", &self.data)
            .env_remove("TOKENTRACE_DATA_DIR")
            .env_remove("TOKENTRACE_CONFIG")
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .env_remove("LANGFUSE_PUBLIC_KEY")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `report session --json` over the copied run: the document and stderr.
    fn report(&self) -> (serde_json::Value, String) {
        let out = self.run(&[
            "report",
            "session",
            "--path",
            self.sessions.to_str().unwrap(),
            "--json",
        ]);
        (
            serde_json::from_slice(&out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.data.join("tokentrace.db")).unwrap()
    }

    /// `(trace id, seq)` of every trace, by id.
    fn seqs(&self) -> Vec<(String, i64)> {
        let db = self.db();
        let mut stmt = db
            .prepare("SELECT id, seq FROM traces ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    /// The cost of the run at the override rates, pico-USD, from its token totals.
    fn expected_pico(&self) -> i64 {
        self.tokens
            .iter()
            .zip(PICO_PER_TOKEN)
            .map(|(tokens, rate)| tokens * rate)
            .sum()
    }

    /// Generations of [`MODEL`] with tokens, and the traces holding them.
    fn priced_generations(&self) -> (i64, i64) {
        self.db()
            .query_row(
                "SELECT COUNT(*), COUNT(DISTINCT trace_id) FROM observations
                 WHERE kind = 'generation' AND model = ?1
                   AND input_tokens + output_tokens + cache_read_tokens + cache_write_5m_tokens + cache_write_1h_tokens > 0",
                [MODEL],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    }
}

/// Every span of an OTLP/JSON request.
fn spans(req: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut out = Vec::new();
    for rs in req["resourceSpans"].as_array().unwrap() {
        for ss in rs["scopeSpans"].as_array().unwrap() {
            out.extend(ss["spans"].as_array().unwrap());
        }
    }
    out
}

/// The report lists the invented model (as `provider/model`) as unpriced, and nothing else.
fn assert_unpriced(doc: &serde_json::Value) {
    let models = unpriced_models(doc);
    assert!(
        !models.is_empty()
            && models
                .iter()
                .all(|m| m.ends_with(&format!("/{MODEL}")) || m == MODEL),
        "{doc}"
    );
}

fn unpriced_models(doc: &serde_json::Value) -> Vec<String> {
    doc["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["unpriced_models"].as_array().unwrap().iter())
        .map(|m| m.as_str().unwrap().to_string())
        .collect()
}

/// Reproduction: an override added after the import used to reach nothing until the store was deleted.
#[test]
fn a_price_override_added_after_the_import_reprices_the_store() {
    let env = Env::new();
    let expected = env.expected_pico();
    if source_run().ends_with("run1-simple") {
        // 232 × $2 + 82 × $8 + 23,004 × $0.50 per Mtok = (464 + 656 + 11,502) / 1e6 = $0.012622
        assert_eq!(expected, 12_622_000_000);
    }

    // 1. No override: the invented model is unpriced, never a silent price.
    let (doc, stderr) = env.report();
    assert_unpriced(&doc);
    assert_eq!(doc["totals"]["cost_usd"], 0.0);
    assert!(!stderr.contains("prices changed"), "{stderr}");
    let fingerprint: String = env
        .db()
        .query_row(
            "SELECT value FROM meta WHERE key = 'price_fingerprint'",
            [],
            |r| r.get(0),
        )
        .expect("a fresh store records the prices it was priced with");
    assert!(fingerprint.ends_with("overrides=none"), "{fingerprint}");
    let (generations, traces) = env.priced_generations();
    assert!(generations > 0 && traces > 0);
    // A sink delivered every trace as it was.
    let before = env.seqs();
    {
        let db = env.db();
        for (id, seq) in &before {
            db.execute(
                "INSERT INTO delivery (sink, trace_id, sent_seq) VALUES ('otlp', ?1, ?2)",
                rusqlite::params![id, seq],
            )
            .unwrap();
        }
    }

    // 2. The override the report's hint asks for: the stored generations are priced with it.
    std::fs::write(&env.config, CONFIG).unwrap();
    let (doc, stderr) = env.report();
    assert!(unpriced_models(&doc).is_empty(), "{doc}");
    assert_eq!(
        doc["totals"]["cost_usd"].as_f64().unwrap(),
        expected as f64 / 1e12,
        "{doc}"
    );
    assert_eq!(doc["sessions"][0]["cost_source"], "override");
    let stored: i64 = env
        .db()
        .query_row(
            "SELECT SUM(cost_total) FROM observations WHERE kind = 'generation'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, expected);
    assert!(
        stderr.contains(&format!(
            "prices changed (config overrides): re-priced {generations} generation(s) in {traces} trace(s)"
        )),
        "{stderr}"
    );
    // The re-priced traces moved past what the sink acknowledged: they are pending again.
    let after = env.seqs();
    let advanced = before
        .iter()
        .zip(&after)
        .filter(|((a, s0), (b, s1))| {
            assert_eq!(a, b);
            s1 > s0
        })
        .count() as i64;
    assert_eq!(advanced, traces);
    let pending: i64 = env
        .db()
        .query_row(
            "SELECT COUNT(*) FROM traces t JOIN delivery d ON d.trace_id = t.id AND d.sink = 'otlp'
             WHERE t.seq > d.sent_seq",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(pending, traces);
    // What a sink would send carries the new cost.
    let out_dir = env.data.join("dry-run");
    env.run(&[
        "sync",
        "--no-import",
        "--dry-run",
        out_dir.to_str().unwrap(),
    ]);
    let mut sent = 0.0;
    let mut override_spans = 0;
    for f in std::fs::read_dir(out_dir.join("otlp")).unwrap() {
        let req: serde_json::Value =
            serde_json::from_slice(&std::fs::read(f.unwrap().path()).unwrap()).unwrap();
        for span in spans(&req) {
            for a in span["attributes"].as_array().unwrap() {
                match a["key"].as_str().unwrap() {
                    "llm.cost.total" => sent += a["value"]["doubleValue"].as_f64().unwrap(),
                    "tokentrace.cost.source" if a["value"]["stringValue"] == "override" => {
                        override_spans += 1
                    }
                    _ => {}
                }
            }
        }
    }
    assert!((sent - expected as f64 / 1e12).abs() < 1e-12, "{sent}");
    assert_eq!(override_spans, generations);

    // 3. The same config again: nothing to re-price, nothing re-sent, no note.
    let (doc, stderr) = env.report();
    assert_eq!(
        doc["totals"]["cost_usd"].as_f64().unwrap(),
        expected as f64 / 1e12
    );
    assert!(!stderr.contains("prices changed"), "{stderr}");
    assert_eq!(env.seqs(), after);

    // 4. The override removed: unpriced again (not the old override's cost, not $0 presented as a price).
    std::fs::write(&env.config, "").unwrap();
    let (doc, stderr) = env.report();
    assert_unpriced(&doc);
    assert_eq!(doc["totals"]["cost_usd"], 0.0);
    assert!(
        stderr.contains(&format!(
            "prices changed (config overrides): re-priced {generations} generation(s) in {traces} trace(s)"
        )),
        "{stderr}"
    );
    let again = env
        .seqs()
        .iter()
        .zip(&after)
        .filter(|(a, b)| a.1 > b.1)
        .count() as i64;
    assert_eq!(again, traces);
}

#[test]
fn the_reprice_command_forces_it_and_says_what_changed() {
    let env = Env::new();
    let expected = env.expected_pico();
    env.report();
    let (generations, traces) = env.priced_generations();

    // Prices unchanged: nothing changes.
    let out = env.run(&["reprice", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["repriced_generations"], 0, "{doc}");
    assert_eq!(doc["repriced_traces"], 0);
    assert!(doc["generations"].as_i64().unwrap() >= generations);
    assert_eq!(doc["models"].as_array().unwrap().len(), 0);

    std::fs::write(&env.config, CONFIG).unwrap();
    let before = env.seqs();
    let out = env.run(&["reprice", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["repriced_generations"], generations, "{doc}");
    assert_eq!(doc["repriced_traces"], traces);
    assert_eq!(doc["cost_before_usd"], 0.0);
    assert_eq!(
        doc["cost_after_usd"].as_f64().unwrap(),
        expected as f64 / 1e12
    );
    assert_eq!(doc["unpriced_before"], generations);
    assert_eq!(doc["unpriced_after"], 0);
    let models = doc["models"].as_array().unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0]["model"], MODEL);
    assert_eq!(models[0]["repriced_generations"], generations);
    assert_eq!(
        models[0]["cost_after_usd"].as_f64().unwrap(),
        expected as f64 / 1e12
    );
    let bumped = env
        .seqs()
        .iter()
        .zip(&before)
        .filter(|(a, b)| a.1 > b.1)
        .count() as i64;
    assert_eq!(bumped, traces);

    // The forced re-price recorded the prices: the next import has nothing to do.
    let (_, stderr) = env.report();
    assert!(!stderr.contains("prices changed"), "{stderr}");

    // The text form names the model and both totals.
    std::fs::write(&env.config, "").unwrap();
    let text = String::from_utf8(env.run(&["reprice"]).stdout).unwrap();
    assert!(
        text.contains(&format!("Re-priced {generations} of ")) && text.contains(MODEL),
        "{text}"
    );
    assert!(
        text.contains(&format!("${:.6} → $0.000000", expected as f64 / 1e12)),
        "{text}"
    );
}

/// Re-pricing with the prices the import used changes nothing anywhere: the stored columns are all
/// pricing needs, and agent costs survive the round trip (pi, oh-my-pi, Claude Code's recovered calls).
#[test]
fn repricing_with_unchanged_prices_changes_no_stored_cost() {
    let mut store = Store::open_in_memory().unwrap();
    let mut dirs = vec![
        common::repo().join("examples"),
        common::repo().join("tests/fixtures"),
    ];
    dirs.extend(common::shared_corpus());
    for dir in &dirs {
        common::import_dir(&mut store, dir);
    }
    let pricer = Pricer::default();
    let r = store
        .reprice(&pricer, &pricer.fingerprint().encode())
        .unwrap();
    assert!(r.generations > 100, "{r:?}");
    assert_eq!((r.repriced, r.traces), (0, 0), "{:?}", r.models);
    assert_eq!(r.before, r.after);
    assert!(r.before > 0);
    // The fingerprint is recorded: the check on the next import has nothing to do.
    assert!(store
        .reprice_if_changed(&pricer, &pricer.fingerprint().encode())
        .unwrap()
        .is_none());
}
