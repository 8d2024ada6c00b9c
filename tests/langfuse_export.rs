//! What a Langfuse user sees (issue 13), checked on what `sync --dry-run` writes for the Langfuse sink
//! (`DIR/langfuse/request-NNNN.json`, `scores.jsonl`) for every recorded run of every agent:
//! usage keys Langfuse prices, token sums equal to the runs' `expected.json`, cost parts summing to the
//! total, typed ids (finish reasons, tool call ids), scores, the agent's version, failed prompts' roots.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Every usage key tokentrace may send (docs/langfuse.md).
const USAGE_KEYS: [&str; 8] = [
    "input",
    "input_cached_tokens",
    "input_cache_creation",
    "input_cache_creation_5m",
    "input_cache_creation_1h",
    "output",
    "output_reasoning_tokens",
    "output_reasoning",
];

/// One exported span: name, ids, attributes (string / int / bool / array values as JSON).
#[derive(Debug, Clone)]
struct Span {
    name: String,
    trace_id: String,
    span_id: String,
    parent: String,
    attrs: BTreeMap<String, Value>,
    error_status: bool,
}

impl Span {
    fn str(&self, k: &str) -> Option<&str> {
        self.attrs.get(k).and_then(Value::as_str)
    }
    fn kind(&self) -> &str {
        self.str("langfuse.observation.type").unwrap_or("")
    }
    fn json(&self, k: &str) -> Option<Value> {
        self.str(k).map(|s| serde_json::from_str(s).unwrap())
    }
}

/// What the dry run wrote for the Langfuse sink.
struct Export {
    spans: Vec<Span>,
    scores: Vec<Value>,
    /// Raw bytes of every file, by name, to compare runs.
    files: BTreeMap<String, Vec<u8>>,
}

fn langfuse_env(cmd: &mut Command) -> &mut Command {
    cmd.env("LANGFUSE_PUBLIC_KEY", "pk-lf-test")
        .env("LANGFUSE_SECRET_KEY", "sk-lf-test")
        .env("LANGFUSE_BASE_URL", "https://langfuse.invalid")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("TOKENTRACE_CAPTURE")
}

/// `sync --dry-run` of `home` into a fresh store (or `data`), in Langfuse mode.
fn export_with(home: &Path, data: &Path, extra: &[(&str, &str)]) -> Export {
    let out = data.join("out");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokentrace"));
    cmd.args(["sync", "--path"])
        .arg(home)
        .arg("--data-dir")
        .arg(data)
        .arg("--dry-run")
        .arg(&out)
        .env("HOME", data);
    langfuse_env(&mut cmd);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let res = cmd.output().unwrap();
    assert!(
        res.status.success(),
        "{}: {}",
        home.display(),
        String::from_utf8_lossy(&res.stderr)
    );
    let dir = out.join("langfuse");
    let mut files = BTreeMap::new();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut spans = Vec::new();
    let mut scores = Vec::new();
    for name in names {
        let bytes = std::fs::read(dir.join(&name)).unwrap();
        if name == "scores.jsonl" {
            for line in String::from_utf8(bytes.clone()).unwrap().lines() {
                scores.push(serde_json::from_str(line).unwrap());
            }
        } else {
            let req: Value = serde_json::from_slice(&bytes).unwrap();
            for rs in req["resourceSpans"].as_array().unwrap() {
                for ss in rs["scopeSpans"].as_array().unwrap() {
                    for s in ss["spans"].as_array().unwrap() {
                        spans.push(span_of(s));
                    }
                }
            }
        }
        files.insert(name, bytes);
    }
    Export {
        spans,
        scores,
        files,
    }
}

fn export(home: &Path) -> Export {
    let data = tempfile::tempdir().unwrap();
    export_with(home, data.path(), &[])
}

fn span_of(s: &Value) -> Span {
    let mut attrs = BTreeMap::new();
    for kv in s["attributes"].as_array().unwrap() {
        let v = &kv["value"];
        let value = if let Some(x) = v.get("stringValue") {
            x.clone()
        } else if let Some(i) = v.get("intValue") {
            Value::from(
                i.as_str()
                    .map(|s| s.parse::<i64>().unwrap())
                    .or(i.as_i64())
                    .unwrap(),
            )
        } else if let Some(b) = v.get("boolValue") {
            b.clone()
        } else if let Some(d) = v.get("doubleValue") {
            d.clone()
        } else if let Some(a) = v.get("arrayValue") {
            Value::Array(
                a["values"]
                    .as_array()
                    .map(|vs| vs.iter().map(|x| x["stringValue"].clone()).collect())
                    .unwrap_or_default(),
            )
        } else {
            Value::Null
        };
        attrs.insert(kv["key"].as_str().unwrap().to_string(), value);
    }
    Span {
        name: s["name"].as_str().unwrap_or("").to_string(),
        trace_id: s["traceId"].as_str().unwrap_or("").to_string(),
        span_id: s["spanId"].as_str().unwrap_or("").to_string(),
        parent: s["parentSpanId"].as_str().unwrap_or("").to_string(),
        attrs,
        error_status: s["status"]["code"] == 2 || s["status"]["code"] == "STATUS_CODE_ERROR",
    }
}

/// Every run (with `expected.json`) of every agent under the shared corpus and `tests/fixtures/{unseen,recorded}`.
fn all_runs() -> Vec<PathBuf> {
    let agents = ["pi", "omp", "claude", "codex", "gemini"];
    let mut runs = Vec::new();
    if let Some(shared) = common::shared_corpus() {
        runs.extend(common::runs(&shared, &agents));
    }
    for base in ["tests/fixtures/unseen", "tests/fixtures/recorded"] {
        runs.extend(common::runs(&common::repo().join(base), &agents));
    }
    runs
}

fn agent_of(run: &Path) -> String {
    common::expected(run)["agent"].as_str().unwrap().to_string()
}

/// Token sums of a run's generations as Langfuse would store them.
#[derive(Debug, Default, PartialEq)]
struct Sums {
    prompt: u64,
    output: u64,
    reasoning: u64,
    cache_write_1h: u64,
}

/// Claude message ids whose transcript lines all have `stop_reason: null` (a streaming-partial message the
/// agent never rewrote): the files do not record why that call stopped.
fn claude_unfinished(home: &Path) -> BTreeSet<String> {
    let mut stopped: BTreeMap<String, bool> = BTreeMap::new();
    for e in walkdir::WalkDir::new(home).into_iter().flatten() {
        if e.path().extension().is_none_or(|x| x != "jsonl") {
            continue;
        }
        for line in std::fs::read_to_string(e.path())
            .unwrap_or_default()
            .lines()
        {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if v["type"] != "assistant" {
                continue;
            }
            if let Some(id) = v["message"]["id"].as_str() {
                *stopped.entry(id.to_string()).or_default() |=
                    v["message"]["stop_reason"].is_string();
            }
        }
    }
    stopped
        .into_iter()
        .filter(|(_, s)| !s)
        .map(|(id, _)| id)
        .collect()
}

/// Checks one run; returns what is wrong with it.
fn check_run(run: &Path) -> Vec<String> {
    let agent = agent_of(run);
    let e = export(&run.join("home"));
    let unfinished = claude_unfinished(&run.join("home"));
    let mut problems = Vec::new();
    let mut sums = Sums::default();
    for s in e.spans.iter().filter(|s| s.kind() == "generation") {
        let Some(usage) = s.json("langfuse.observation.usage_details") else {
            continue;
        };
        let usage = usage.as_object().unwrap();
        let model = s.str("langfuse.observation.model.name").unwrap_or("");
        for (k, v) in usage {
            if !USAGE_KEYS.contains(&k.as_str()) {
                problems.push(format!("usage key {k}"));
            }
            let n = v.as_u64().unwrap();
            match k.as_str() {
                "input"
                | "input_cached_tokens"
                | "input_cache_creation"
                | "input_cache_creation_5m" => sums.prompt += n,
                "input_cache_creation_1h" => {
                    sums.prompt += n;
                    sums.cache_write_1h += n;
                }
                "output" => sums.output += n,
                "output_reasoning_tokens" | "output_reasoning" => {
                    sums.output += n;
                    sums.reasoning += n;
                    let gemini_key = model.contains("gemini");
                    if gemini_key != (k == "output_reasoning") {
                        problems.push(format!("reasoning key {k} for model {model}"));
                    }
                }
                _ => {}
            }
        }
        // The gen_ai.* view agrees (inclusive input, output with reasoning).
        let gen_in = s.attrs["gen_ai.usage.input_tokens"].as_u64().unwrap();
        let lf_in: u64 = usage
            .iter()
            .filter(|(k, _)| k.starts_with("input"))
            .map(|(_, v)| v.as_u64().unwrap())
            .sum();
        if gen_in != lf_in {
            problems.push(format!("gen_ai input {gen_in} != usage_details {lf_in}"));
        }
        if let Some(cost) = s.json("langfuse.observation.cost_details") {
            let cost = cost.as_object().unwrap();
            let total = cost["total"].as_f64().unwrap();
            let parts: f64 = cost
                .iter()
                .filter(|(k, _)| *k != "total")
                .map(|(_, v)| v.as_f64().unwrap())
                .sum();
            if (parts - total).abs() > 1e-12 {
                problems.push(format!("cost parts {parts} != total {total}"));
            }
            for k in cost.keys().filter(|k| *k != "total") {
                if !usage.contains_key(k) {
                    problems.push(format!("cost key {k} without usage"));
                }
            }
            for k in usage.keys() {
                if !cost.contains_key(k) {
                    problems.push(format!("usage key {k} without cost"));
                }
            }
        }
    }
    let expected = common::expected(run);
    let t = &expected["tokens"];
    let n = |k: &str| t[k].as_u64().unwrap();
    let want = (
        n("input") + n("cache_read") + n("cache_write"),
        n("output"),
        n("reasoning"),
    );
    if (sums.prompt, sums.output, sums.reasoning) != want {
        problems.push(format!(
            "tokens (prompt, output, reasoning) {:?} != expected {want:?}",
            (sums.prompt, sums.output, sums.reasoning)
        ));
    }
    // Typed ids: the agent's tool call id on every tool span, a finish reason on every generation whose
    // agent records one (see docs/langfuse.md for which do not).
    for s in &e.spans {
        match s.kind() {
            "tool" => match s.str("gen_ai.tool.call.id") {
                None => problems.push(format!("tool {} without a call id", s.span_id)),
                Some(id) if id.starts_with("tool:") || id.is_empty() => {
                    problems.push(format!("tool call id {id} is tokentrace's key"))
                }
                _ => {}
            },
            "generation" if records_finish_reason(&agent) && answered(s) => {
                let partial = s
                    .str("gen_ai.response.id")
                    .is_some_and(|id| unfinished.contains(id));
                if !s.attrs.contains_key("gen_ai.response.finish_reasons") && !partial {
                    problems.push(format!(
                        "generation {} ({}) without a finish reason",
                        s.span_id,
                        s.str("langfuse.trace.name").unwrap_or("")
                    ));
                }
            }
            _ => {}
        }
        // Every WARNING / ERROR has a status message.
        if matches!(
            s.str("langfuse.observation.level"),
            Some("WARNING" | "ERROR")
        ) && s
            .str("langfuse.observation.status_message")
            .is_none_or(|m| m.trim().is_empty())
        {
            problems.push(format!(
                "{} {} without a status message",
                s.kind(),
                s.span_id
            ));
        }
        if s.error_status && s.str("langfuse.observation.level") != Some("ERROR") {
            problems.push(format!("{} with an error status but not ERROR", s.span_id));
        }
    }
    // The agent's version, where its files record it.
    if let Some(v) = expected["agent_version"].as_str() {
        if matches!(agent.as_str(), "claude" | "codex") {
            for s in &e.spans {
                if s.str("langfuse.version") != Some(v) {
                    problems.push(format!(
                        "langfuse.version {:?} != {v}",
                        s.str("langfuse.version")
                    ));
                    break;
                }
            }
        }
    }
    problems
}

/// pi, oh-my-pi and Claude Code record why each model call stopped; Codex's rollouts and Gemini CLI's
/// chat files (0.61) do not.
fn records_finish_reason(agent: &str) -> bool {
    matches!(agent, "pi" | "omp" | "claude")
}

/// A model call that answered: not a failed or aborted attempt, not a call the agent billed without writing
/// it (Claude `cost-state` recovery), not usage reported inside a tool result (pi), not a compaction summary.
fn answered(s: &Span) -> bool {
    s.str("langfuse.observation.level").is_none()
        && s.attrs.contains_key("langfuse.observation.output")
}

#[test]
fn every_run_exports_what_langfuse_prices() {
    let runs = all_runs();
    assert!(runs.len() >= 60, "{} runs", runs.len());
    let mut failures = Vec::new();
    let mut agents = BTreeSet::new();
    for run in &runs {
        agents.insert(agent_of(run));
        let problems = check_run(run);
        if !problems.is_empty() {
            let mut p: Vec<_> = problems
                .into_iter()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            p.truncate(6);
            failures.push(format!("{}: {}", run.display(), p.join("; ")));
        }
    }
    assert_eq!(
        agents.into_iter().collect::<Vec<_>>(),
        ["claude", "codex", "gemini", "omp", "pi"]
    );
    assert!(
        failures.is_empty(),
        "{} of {} runs:\n{}",
        failures.len(),
        runs.len(),
        failures.join("\n")
    );
}

/// The 1-hour share of the cache writes of the Claude run with parallel subagents is what the mock sent.
#[test]
fn claude_one_hour_cache_writes_match_the_mock() {
    let Some(shared) = common::shared_corpus() else {
        eprintln!("skipped: no ../shared/corpus");
        return;
    };
    let run = shared.join("claude/claude-2.1.197/run9-parallel");
    let truth: u64 = std::fs::read_to_string(run.join("ground_truth.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| {
            v.pointer("/usage/cache_write_1h")
                .or_else(|| v.get("cache_write_1h"))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        })
        .sum();
    assert!(truth > 0, "the mock sent 1h cache writes");
    let e = export(&run.join("home"));
    let (mut one_hour, mut five_min) = (0, 0);
    for s in e.spans.iter().filter(|s| s.kind() == "generation") {
        if let Some(u) = s.json("langfuse.observation.usage_details") {
            one_hour += u["input_cache_creation_1h"].as_u64().unwrap_or(0);
            five_min += u["input_cache_creation_5m"].as_u64().unwrap_or(0);
            assert!(u.get("input_cache_creation").is_none(), "split known: {u}");
        }
    }
    assert_eq!(one_hour, truth);
    assert_eq!(one_hour + five_min, 85_527, "expected.json cache_write");
    assert_eq!(one_hour, 42_768, "expected.json notes");
}

/// Copies a run's `home/` to a temp folder with every `"model":"<from>"` renamed to `to`.
fn renamed_copy(run: &Path, from: &[&str], to: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::copy_tree(&run.join("home"), dir.path());
    for e in walkdir::WalkDir::new(dir.path()).into_iter().flatten() {
        if !e.file_type().is_file() {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let mut renamed = text.clone();
        for f in from {
            renamed = renamed.replace(
                &format!("\"model\":\"{f}\""),
                &format!("\"model\":\"{to}\""),
            );
        }
        if renamed != text {
            std::fs::write(e.path(), renamed).unwrap();
        }
    }
    dir
}

/// The pinned entries of Langfuse's default model prices (`data/langfuse-model-prices.json`): for `model`,
/// the price keys of its default tier.
fn langfuse_price_keys(model: &str) -> Option<BTreeSet<String>> {
    let table: Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo().join("data/langfuse-model-prices.json")).unwrap(),
    )
    .unwrap();
    assert!(table["source"]
        .as_str()
        .unwrap()
        .contains("default-model-prices.json"));
    table["models"].as_array().unwrap().iter().find_map(|m| {
        let pattern = regex::Regex::new(m["matchPattern"].as_str().unwrap()).unwrap();
        pattern.is_match(model).then(|| {
            m["pricingTiers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["isDefault"] == true)
                .unwrap()["prices"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect()
        })
    })
}

/// A model only Langfuse's table prices: tokentrace sends no cost, Langfuse prices the usage itself, so
/// every usage key must be one that Langfuse's entry for that model prices.
#[test]
fn models_only_langfuse_prices_get_keys_it_prices() {
    let Some(shared) = common::shared_corpus() else {
        eprintln!("skipped: no ../shared/corpus");
        return;
    };
    let cases = [
        (
            shared.join("gemini/gemini-0.61.0/run5-compress"),
            &["gemini-3.1-pro-preview-customtools", "gemini-2.5-flash"][..],
            "gemini-3-pro-preview",
        ),
        (
            shared.join("claude/claude-2.1.197/run9-parallel"),
            &["claude-opus-4-8"][..],
            "claude-sonnet-4-20250514",
        ),
    ];
    for (run, from, to) in cases {
        let priced = langfuse_price_keys(to).expect("a pinned entry");
        let home = renamed_copy(&run, from, to);
        let e = export(home.path());
        let gens: Vec<_> = e
            .spans
            .iter()
            .filter(|s| s.kind() == "generation")
            .filter(|s| s.str("langfuse.observation.model.name") == Some(to))
            .collect();
        assert!(!gens.is_empty(), "{to}: no generation renamed");
        let mut keys = BTreeSet::new();
        for s in gens {
            let Some(usage) = s.json("langfuse.observation.usage_details") else {
                continue;
            };
            for (k, v) in usage.as_object().unwrap() {
                if v.as_u64() != Some(0) {
                    keys.insert(k.clone());
                }
            }
            if let Some(cost) = s.json("langfuse.observation.cost_details") {
                // When tokentrace prices the model, Langfuse stores that cost: then every key has a cost.
                for k in usage.as_object().unwrap().keys() {
                    assert!(cost.get(k).is_some(), "{to}: {k} has no cost");
                }
            }
        }
        let unpriced: Vec<_> = keys.iter().filter(|k| !priced.contains(*k)).collect();
        assert!(
            unpriced.is_empty(),
            "{to}: Langfuse prices none of {unpriced:?} (sent {keys:?})"
        );
        // The run exercises the cache-read key (and, for Gemini, reasoning; for Claude, the 1h split).
        assert!(keys.contains("input_cached_tokens"), "{to}: {keys:?}");
        if to.starts_with("gemini") {
            assert!(keys.contains("output_reasoning"), "{to}: {keys:?}");
        } else {
            assert!(keys.contains("input_cache_creation_1h"), "{to}: {keys:?}");
        }
    }
}

/// Scores: session scores once per session (with `sessionId`, deterministic ids, updated in place when the
/// session grows), trace scores per trace, `tool_success_rate` only with tool calls, `turn_count` = the main
/// agent's turn spans, `generation_count` = model calls.
#[test]
fn scores_mean_what_their_names_say() {
    let Some(shared) = common::shared_corpus() else {
        eprintln!("skipped: no ../shared/corpus");
        return;
    };
    let run = shared.join("claude/claude-2.1.197/run9-parallel");
    let e = export(&run.join("home"));
    let by_name = |n: &str| -> Vec<&Value> { e.scores.iter().filter(|s| s["name"] == n).collect() };
    // One session: one of each session score, on the session.
    for name in ["session_had_errors", "session_cost_usd"] {
        let s = by_name(name);
        assert_eq!(s.len(), 1, "{name}: {s:?}");
        assert!(s[0].get("traceId").is_none() && s[0]["sessionId"].is_string());
    }
    assert_eq!(by_name("session_had_errors")[0]["value"], 0.0);
    assert!(by_name("session_cost_usd")[0]["value"].as_f64().unwrap() > 0.0);
    // Trace scores, against the spans.
    let traces: BTreeSet<&str> = e.spans.iter().map(|s| s.trace_id.as_str()).collect();
    for t in &traces {
        let spans: Vec<_> = e.spans.iter().filter(|s| s.trace_id == *t).collect();
        let score = |n: &str| {
            e.scores
                .iter()
                .find(|s| s["name"] == n && s["traceId"] == *t)
                .map(|s| s["value"].as_f64().unwrap())
        };
        let tools = spans.iter().filter(|s| s.kind() == "tool").count();
        let gens = spans.iter().filter(|s| s.kind() == "generation").count();
        assert_eq!(score("tool_call_count"), Some(tools as f64));
        assert_eq!(score("generation_count"), Some(gens as f64));
        assert_eq!(score("tool_success_rate").is_some(), tools > 0);
        // Turn spans of the main agent: `turn N` spans with no subagent (`agent` span) above them.
        let by_id: BTreeMap<&str, &&Span> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
        let in_sub = |s: &Span| {
            let mut p = s.parent.as_str();
            while let Some(x) = by_id.get(p) {
                if x.kind() == "agent" && !x.parent.is_empty() {
                    return true;
                }
                p = x.parent.as_str();
            }
            false
        };
        let main_turns = spans
            .iter()
            .filter(|s| s.kind() == "span" && s.name.starts_with("turn ") && !in_sub(s))
            .count();
        assert_eq!(score("turn_count"), Some(main_turns as f64));
        assert!(score("turn_count").unwrap() >= 1.0);
        assert!(score("turn_count").unwrap() <= gens as f64);
        assert!(
            score("session_had_errors").is_none(),
            "no per-trace session score"
        );
    }
    // This run: one prompt, 9 model calls (7 of them in two subagents), 2 turns of the main agent.
    assert_eq!(traces.len(), 1);
    let v = |n: &str| by_name(n)[0]["value"].as_f64().unwrap();
    assert_eq!(v("generation_count"), 9.0);
    assert!(
        v("turn_count") < 9.0,
        "turns are not model calls: {}",
        v("turn_count")
    );

    // A growing session: the session scores keep their ids, with new values; nothing is duplicated.
    let pi_run = common::runs(&shared, &["pi"])
        .into_iter()
        .find(|r| common::expected(r)["prompts"].as_u64().unwrap() >= 2)
        .expect("a pi run with two prompts");
    let file = common::session_file(&pi_run);
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let second_prompt = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("\"role\":\"user\""))
        .nth(1)
        .map(|(i, _)| i)
        .expect("a second prompt");
    let home = tempfile::tempdir().unwrap();
    let target = home.path().join("s.jsonl");
    std::fs::write(&target, lines[..second_prompt].join("\n") + "\n").unwrap();
    let data = tempfile::tempdir().unwrap();
    let first = export_with(home.path(), data.path(), &[]);
    std::fs::write(&target, text.clone()).unwrap();
    let second = export_with(home.path(), data.path(), &[]);
    let session = |e: &Export| -> BTreeMap<String, (String, Value)> {
        e.scores
            .iter()
            .filter(|s| s.get("sessionId").is_some())
            .map(|s| {
                (
                    s["id"].as_str().unwrap().to_string(),
                    (s["name"].as_str().unwrap().to_string(), s["value"].clone()),
                )
            })
            .collect()
    };
    let (a, b) = (session(&first), session(&second));
    assert_eq!(a.len(), 2);
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "same ids"
    );
    let cost = |m: &BTreeMap<String, (String, Value)>| {
        m.values()
            .find(|(n, _)| n == "session_cost_usd")
            .unwrap()
            .1
            .as_f64()
            .unwrap()
    };
    assert!(cost(&b) > cost(&a), "updated: {} -> {}", cost(&a), cost(&b));
}

/// A prompt whose turn failed or was aborted: the root says so (level, status message) and shows what the
/// user saw.
#[test]
fn failed_and_aborted_prompts_show_on_the_root() {
    let mut seen = BTreeSet::new();
    for run in all_runs() {
        let e = export(&run.join("home"));
        for root in e.spans.iter().filter(|s| s.parent.is_empty()) {
            let Some(level) = root.str("langfuse.observation.level") else {
                continue;
            };
            let status = root.str("langfuse.observation.status_message");
            assert!(
                status.is_some_and(|s| !s.is_empty()),
                "{}: root {level} without a status",
                run.display()
            );
            assert!(
                root.attrs.contains_key("langfuse.observation.output"),
                "{}: root {level} without an output",
                run.display()
            );
            assert_eq!(root.error_status, level == "ERROR");
            seen.insert((agent_of(&run), level.to_string()));
        }
    }
    // The corpus holds failed prompts (pi API errors, Claude API errors) and aborted ones (pi, Codex).
    for want in [("pi", "ERROR"), ("pi", "WARNING"), ("codex", "WARNING")] {
        assert!(
            seen.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} not seen: {seen:?}"
        );
    }
}

/// Generations carry chat messages: input = the prompt or the tool results that fed the call, output = the
/// answer with its tool calls (name, arguments, the agent's id), so Langfuse finds the tool calls.
#[test]
fn generations_carry_chat_messages_with_tool_calls() {
    let Some(shared) = common::shared_corpus() else {
        eprintln!("skipped: no ../shared/corpus");
        return;
    };
    for agent in ["pi", "claude", "codex", "gemini"] {
        let runs = common::runs(&shared, &[agent]);
        let run = runs
            .iter()
            .find(|r| common::expected(r)["tool_calls"].as_u64().unwrap() > 0)
            .unwrap();
        let e = export(&run.join("home"));
        let tools: BTreeMap<&str, &Span> = e
            .spans
            .iter()
            .filter(|s| s.kind() == "tool")
            .map(|s| (s.span_id.as_str(), s))
            .collect();
        let mut calls = 0;
        let mut fed = 0;
        for g in e.spans.iter().filter(|s| s.kind() == "generation") {
            if let Some(out) = g.json("langfuse.observation.output") {
                assert_eq!(out["role"], "assistant", "{agent}");
                for c in out["tool_calls"].as_array().into_iter().flatten() {
                    calls += 1;
                    let id = c["id"].as_str().unwrap();
                    // The same id as a tool span child of this generation.
                    assert!(
                        tools.values().any(|t| t.parent == g.span_id
                            && t.str("gen_ai.tool.call.id") == Some(id)
                            && t.str("gen_ai.tool.name") == c["function"]["name"].as_str()),
                        "{agent}: tool call {c}"
                    );
                    assert!(c["function"]["arguments"].is_string(), "{agent}: {c}");
                }
            }
            if let Some(input) = g.json("langfuse.observation.input") {
                let msgs = input.as_array().unwrap();
                assert!(!msgs.is_empty());
                for m in msgs {
                    assert!(m["role"] == "user" || m["role"] == "tool", "{agent}: {m}");
                    if m["role"] == "tool" {
                        fed += 1;
                    }
                }
            }
        }
        assert!(
            calls > 0 && fed > 0,
            "{agent}: {calls} tool calls, {fed} results fed"
        );
    }
}

/// Under `TOKENTRACE_CAPTURE=metadata` the typed ids survive, content does not.
#[test]
fn ids_survive_the_metadata_policy() {
    let Some(shared) = common::shared_corpus() else {
        eprintln!("skipped: no ../shared/corpus");
        return;
    };
    let run = shared.join("claude/claude-2.1.197/run9-parallel");
    let data = tempfile::tempdir().unwrap();
    let e = export_with(
        &run.join("home"),
        data.path(),
        &[("TOKENTRACE_CAPTURE", "metadata")],
    );
    let unfinished = claude_unfinished(&run.join("home"));
    assert_eq!(
        unfinished.len(),
        1,
        "one streaming-partial message in this run"
    );
    let gens: Vec<_> = e
        .spans
        .iter()
        .filter(|s| s.kind() == "generation")
        .collect();
    assert_eq!(gens.len(), 9);
    for g in &gens {
        let id = g.str("gen_ai.response.id").unwrap();
        assert!(id.starts_with("msg_"), "{id}");
        assert_eq!(
            g.attrs.contains_key("gen_ai.response.finish_reasons"),
            !unfinished.contains(id),
            "{id}"
        );
    }
    let tools: Vec<_> = e.spans.iter().filter(|s| s.kind() == "tool").collect();
    assert!(!tools.is_empty());
    assert!(tools.iter().all(|t| t
        .str("gen_ai.tool.call.id")
        .is_some_and(|id| id.starts_with("toolu_"))));
    // No content: no prompt, no tool arguments or results, no answer text.
    for s in &e.spans {
        assert!(!s.attrs.contains_key("langfuse.observation.input"), "{s:?}");
        if s.kind() == "generation" {
            if let Some(out) = s.json("langfuse.observation.output") {
                assert_eq!(out["content"], "", "{out}");
                for c in out["tool_calls"].as_array().into_iter().flatten() {
                    assert!(c["function"].get("arguments").is_none(), "{c}");
                }
            }
        } else {
            assert!(
                !s.attrs.contains_key("langfuse.observation.output"),
                "{s:?}"
            );
        }
    }
}

/// The dry run is byte-identical across runs, private, per sink, and replaces only its own files.
#[test]
fn dry_run_is_per_sink_deterministic_and_private() {
    use std::os::unix::fs::PermissionsExt;
    let run = common::runs(&common::repo().join("examples"), &["omp"])
        .into_iter()
        .next()
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let otlp = [("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector.invalid")];
    let a = export_with(&run.join("home"), data.path(), &otlp);
    let b = export_with(&run.join("home"), data.path(), &otlp);
    assert_eq!(a.files, b.files, "byte-identical");
    assert!(a.files.contains_key("scores.jsonl") && a.files.contains_key("request-0001.json"));
    let out = data.path().join("out");
    let otlp_dir = out.join("otlp");
    assert!(
        otlp_dir.join("request-0001.json").is_file(),
        "the OTLP sink's folder"
    );
    for p in [&out, &otlp_dir, &out.join("langfuse")] {
        assert_eq!(
            std::fs::metadata(p).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }
    assert_eq!(
        std::fs::metadata(out.join("langfuse/scores.jsonl"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    // The Langfuse requests leave out OpenInference content copies; the OTLP ones keep them.
    let has = |dir: &Path, key: &str| {
        std::fs::read_to_string(dir.join("request-0001.json"))
            .unwrap()
            .contains(&format!("\"{key}\""))
    };
    assert!(!has(&out.join("langfuse"), "input.value"));
    assert!(has(&otlp_dir, "input.value"));
    // A foreign file: refused, nothing removed.
    std::fs::write(out.join("langfuse/notes.txt"), "mine").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokentrace"));
    cmd.args(["sync", "--path"])
        .arg(run.join("home"))
        .arg("--data-dir")
        .arg(data.path())
        .arg("--dry-run")
        .arg(&out)
        .env("HOME", data.path());
    langfuse_env(&mut cmd);
    let res = cmd.output().unwrap();
    assert!(!res.status.success());
    assert!(out.join("langfuse/request-0001.json").is_file());
}
