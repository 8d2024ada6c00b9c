//! The Langfuse span contract: for one real trace (oh-my-pi, with time to first token), the official
//! Langfuse Python SDK 5.0.4 is asked to emit the same trace (root agent → generation → tool), and every
//! `langfuse.*`, `session.id`, `user.id` and `gen_ai.*` attribute it emits must be on our spans with the same
//! value (JSON-string values compared as JSON, timestamps as instants). Reference:
//! `../shared/oracles/langfuse/py_sdk_reference.py`.
//!
//! Needs a Python with `langfuse==5.0.4` (CI: `target/lfpy`, made by `.ci/run`; or `$LANGFUSE_PYTHON`).

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};

const SDK_SCRIPT: &str = r#"
import json, sys
from datetime import datetime
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from langfuse import Langfuse, propagate_attributes

spec = json.load(open(sys.argv[1]))
exp = InMemorySpanExporter()
lf = Langfuse(public_key="pk-lf-test", secret_key="sk-lf-test", base_url="http://127.0.0.1:9",
              span_exporter=exp, environment=spec["environment"], release=spec["release"])
r, g, t = spec["root"], spec["generation"], spec["tool"]
with lf.start_as_current_observation(name=r["name"], as_type="agent", input=r["input"]) as root:
    with propagate_attributes(user_id=spec["user"], session_id=spec["session"], tags=spec["tags"], trace_name=spec["trace_name"]):
        with lf.start_as_current_observation(name=g["name"], as_type="generation", model=g["model"]) as gen:
            kw = dict(output=g["output"], usage_details=g["usage_details"], cost_details=g["cost_details"])
            if g.get("completion_start_time"):
                kw["completion_start_time"] = datetime.fromisoformat(g["completion_start_time"].replace("Z", "+00:00"))
            gen.update(**kw)
        with lf.start_as_current_observation(name=t["name"], as_type="tool", input=t["input"]) as tool:
            tool.update(output=t["output"])
    root.update(output=r["output"])
lf.flush()
out = {}
for s in exp.get_finished_spans():
    out[s.attributes.get("langfuse.observation.type")] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in s.attributes.items()}
json.dump(out, sys.stdout, default=str)
"#;

/// How to install the SDK the oracle tests compare with.
const LANGFUSE_INSTALL: &str =
    "python3 -m venv target/lfpy && target/lfpy/bin/pip install langfuse==5.0.4";

fn python() -> Option<PathBuf> {
    let candidates = [
        std::env::var("LANGFUSE_PYTHON").ok().map(PathBuf::from),
        Some(common::repo().join("target/lfpy/bin/python")),
        Some(PathBuf::from("/tmp/lfpy/bin/python")),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .args([
                "-c",
                "import langfuse, sys; sys.exit(0 if langfuse.__version__ == '5.0.4' else 1)",
            ])
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Our spans of the first trace of the oh-my-pi run, by observation type, as `{key: value}` (values as the
/// SDK's Python would see them: strings, ints, bools, lists).
fn our_spans(data: &std::path::Path) -> BTreeMap<String, BTreeMap<String, Value>> {
    let run = common::repo().join("examples/omp/omp-18.2.3/01-print-openai/home");
    let out = data.join("out");
    let status = Command::new(env!("CARGO_BIN_EXE_tokentrace"))
        .args(["sync", "--path"])
        .arg(&run)
        .arg("--data-dir")
        .arg(data)
        .arg("--dry-run")
        .arg(&out)
        .env("HOME", data)
        .env("TOKENTRACE_USER", "alice")
        .env("TOKENTRACE_TAGS", "coding-agent")
        .env("LANGFUSE_ENVIRONMENT", "dev")
        .env("LANGFUSE_RELEASE", "r1")
        .env("LANGFUSE_PUBLIC_KEY", "pk-lf-test")
        .env("LANGFUSE_SECRET_KEY", "sk-lf-test")
        .env("LANGFUSE_BASE_URL", "https://langfuse.invalid")
        .status()
        .unwrap();
    assert!(status.success());
    // Exactly what the Langfuse sink sends.
    let req: Value =
        serde_json::from_slice(&std::fs::read(out.join("langfuse/request-0001.json")).unwrap())
            .unwrap();
    let spans = req["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array()
        .unwrap();
    let mut by_type = BTreeMap::new();
    for span in spans {
        let mut attrs = BTreeMap::new();
        for kv in span["attributes"].as_array().unwrap() {
            let v = &kv["value"];
            let value = if let Some(s) = v.get("stringValue") {
                s.clone()
            } else if let Some(i) = v.get("intValue") {
                json!(i.as_str().map(|s| s.parse::<i64>().unwrap()).or(i.as_i64()))
            } else if let Some(b) = v.get("boolValue") {
                b.clone()
            } else if let Some(d) = v.get("doubleValue") {
                d.clone()
            } else if let Some(a) = v.get("arrayValue") {
                json!(a["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x["stringValue"].clone())
                    .collect::<Vec<_>>())
            } else {
                Value::Null
            };
            attrs.insert(kv["key"].as_str().unwrap().to_string(), value);
        }
        let ty = attrs["langfuse.observation.type"]
            .as_str()
            .unwrap()
            .to_string();
        // The first span of each type: the root, the first generation, the first tool.
        by_type.entry(ty).or_insert(attrs);
    }
    by_type
}

fn parse_json(v: &Value) -> Value {
    v.as_str()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_else(|| v.clone())
}

#[test]
fn langfuse_attributes_match_the_official_sdk() {
    let Some(py) = python() else {
        common::skip_missing("langfuse==5.0.4", LANGFUSE_INSTALL);
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let ours = our_spans(data.path());
    let (root, gen, tool) = (&ours["agent"], &ours["generation"], &ours["tool"]);
    // Ask the SDK for the same trace, built from the values we exported.
    let text = |m: &BTreeMap<String, Value>, k: &str| parse_json(&m[k]);
    let spec = json!({
        "environment": root["langfuse.environment"], "release": root["langfuse.release"],
        "user": root["user.id"], "session": root["session.id"], "tags": root["langfuse.trace.tags"],
        "trace_name": root["langfuse.trace.name"],
        "root": { "name": "root", "input": text(root, "langfuse.observation.input"), "output": text(root, "langfuse.observation.output") },
        "generation": {
            "name": "generation", "model": gen["langfuse.observation.model.name"],
            "output": text(gen, "langfuse.observation.output"),
            "usage_details": text(gen, "langfuse.observation.usage_details"),
            "cost_details": text(gen, "langfuse.observation.cost_details"),
            "completion_start_time": gen.get("langfuse.observation.completion_start_time").map(parse_json),
        },
        "tool": { "name": tool["gen_ai.tool.name"], "input": text(tool, "langfuse.observation.input"), "output": text(tool, "langfuse.observation.output") },
    });
    assert!(
        spec["generation"]["completion_start_time"].is_string(),
        "the oh-my-pi run records ttft"
    );
    let out = run_sdk(&py, data.path(), SDK_SCRIPT, &spec);
    let sdk: BTreeMap<String, BTreeMap<String, Value>> =
        serde_json::from_slice(&out.stdout).unwrap();

    let mut checked = 0;
    for (ty, sdk_attrs) in &sdk {
        let mine = &ours[ty];
        for (k, v) in sdk_attrs {
            let relevant = k.starts_with("langfuse.")
                || k.starts_with("gen_ai.")
                || k == "session.id"
                || k == "user.id";
            if !relevant {
                continue;
            }
            let ours_v = mine
                .get(k)
                .unwrap_or_else(|| panic!("{ty} span lacks {k} (SDK: {v})"));
            let same = if k.ends_with("completion_start_time") {
                let instant = |x: &Value| {
                    parse_json(x)
                        .as_str()
                        .unwrap()
                        .parse::<jiff::Timestamp>()
                        .unwrap()
                };
                instant(ours_v) == instant(v)
            } else {
                parse_json(ours_v) == parse_json(v)
            };
            assert!(same, "{ty} {k}: ours {ours_v} vs SDK {v}");
            checked += 1;
        }
    }
    assert!(checked >= 25, "{checked} attributes compared");
    // DESIGN §6 values on top of the SDK's: usage excludes cache in usage_details, includes it in gen_ai.*.
    let usage = parse_json(&gen["langfuse.observation.usage_details"]);
    // Langfuse's own price keys (docs/langfuse.md): uncached input, cache reads, output without reasoning.
    assert_eq!(
        usage,
        json!({ "input": 200, "input_cached_tokens": 1000, "output": 40 })
    );
    assert_eq!(gen["gen_ai.usage.input_tokens"], json!(1200));
    // The agent's cost per bucket under the same keys, the parts summing to the total.
    assert_eq!(
        parse_json(&gen["langfuse.observation.cost_details"]),
        json!({ "input": 0.0006, "input_cached_tokens": 0.0003, "output": 0.0006, "total": 0.0015 })
    );
    assert_eq!(gen["gen_ai.response.finish_reasons"], json!(["toolUse"]));
    assert!(tool["gen_ai.tool.call.id"]
        .as_str()
        .is_some_and(|id| !id.starts_with("tool:")));
    // oh-my-pi's files record no agent version: no `langfuse.version` (Langfuse falls back to the
    // resource's `service.version`, tokentrace's).
    assert!(!root.contains_key("langfuse.version"));
    assert!(
        !root
            .keys()
            .any(|k| k.contains("usage") || k.contains("cost")),
        "no usage or cost on the root"
    );
}

const SDK_SCRIPT_2: &str = r#"
import json, sys, threading, gzip
from http.server import BaseHTTPRequestHandler, HTTPServer
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from langfuse import Langfuse, propagate_attributes

posted = []
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        posted.append((self.path, json.loads(body)))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")
    def log_message(self, *a):
        pass
srv = HTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()

spec = json.load(open(sys.argv[1]))
exp = InMemorySpanExporter()
lf = Langfuse(public_key="pk-lf-test", secret_key="sk-lf-test", base_url="http://127.0.0.1:%d" % srv.server_port,
              span_exporter=exp, environment=spec["environment"])
r = spec["root"]
with lf.start_as_current_observation(name="root", as_type="agent", input=r["input"], level=r["level"],
                                     status_message=r["status_message"]) as root:
    with propagate_attributes(session_id=spec["session"], version=spec["version"]):
        pass
    root.update(output=r["output"], version=spec["version"])
for s in spec["scores"]:
    lf.create_score(name=s["name"], value=s["value"], data_type=s["dataType"], session_id=s.get("sessionId"),
                    trace_id=s.get("traceId"), observation_id=s.get("observationId"), score_id=s["id"])
lf.flush()
lf.shutdown()
spans = {s.attributes.get("langfuse.observation.type"): {k: (list(v) if isinstance(v, tuple) else v) for k, v in s.attributes.items()} for s in exp.get_finished_spans()}
scores = [x for path, body in posted if path.endswith("/api/public/scores") for x in (body if isinstance(body, list) else [body])]
json.dump({"spans": spans, "scores": scores}, sys.stdout, default=str)
"#;

/// The aborted Codex prompt: its root (level WARNING, the status message, what the user saw, the agent's
/// version) and the session scores, against what the official SDK emits for the same values.
#[test]
fn failed_root_version_and_session_scores_match_the_official_sdk() {
    let Some(py) = python() else {
        common::skip_missing("langfuse==5.0.4", LANGFUSE_INSTALL);
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let run = common::repo().join("tests/fixtures/recorded/codex/codex-0.171.0/run17-abort/home");
    let out = data.path().join("out");
    let status = Command::new(env!("CARGO_BIN_EXE_tokentrace"))
        .args(["sync", "--path"])
        .arg(&run)
        .arg("--data-dir")
        .arg(data.path())
        .arg("--dry-run")
        .arg(&out)
        .env("HOME", data.path())
        .env("LANGFUSE_ENVIRONMENT", "dev")
        .env("LANGFUSE_PUBLIC_KEY", "pk-lf-test")
        .env("LANGFUSE_SECRET_KEY", "sk-lf-test")
        .env("LANGFUSE_BASE_URL", "https://langfuse.invalid")
        .status()
        .unwrap();
    assert!(status.success());
    let mut roots = Vec::new();
    for f in std::fs::read_dir(out.join("langfuse")).unwrap().flatten() {
        if f.file_name() == "scores.jsonl" {
            continue;
        }
        let req: Value = serde_json::from_slice(&std::fs::read(f.path()).unwrap()).unwrap();
        for span in req["resourceSpans"][0]["scopeSpans"][0]["spans"]
            .as_array()
            .unwrap()
        {
            if span["parentSpanId"].as_str().unwrap_or("").is_empty() {
                let attrs: BTreeMap<String, Value> = span["attributes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|kv| {
                        Some((
                            kv["key"].as_str()?.to_string(),
                            kv["value"].get("stringValue")?.clone(),
                        ))
                    })
                    .collect();
                roots.push(attrs);
            }
        }
    }
    let root = roots
        .iter()
        .find(|r| r.contains_key("langfuse.observation.level"))
        .expect("the aborted prompt's root");
    assert_eq!(root["langfuse.observation.level"], "WARNING");
    assert_eq!(
        root["langfuse.observation.status_message"],
        "aborted by the user"
    );
    assert_eq!(root["langfuse.version"], "0.171.0");
    assert!(
        root.contains_key("langfuse.observation.output"),
        "what the user saw"
    );
    let scores: Vec<Value> = std::fs::read_to_string(out.join("langfuse/scores.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let session_scores: Vec<&Value> = scores
        .iter()
        .filter(|s| s.get("sessionId").is_some())
        .collect();
    assert_eq!(session_scores.len(), 2, "{scores:?}");

    let spec = json!({
        "environment": "dev", "session": root["session.id"], "version": root["langfuse.version"],
        "root": {
            "input": parse_json(&root["langfuse.observation.input"]),
            "output": parse_json(&root["langfuse.observation.output"]),
            "level": root["langfuse.observation.level"],
            "status_message": root["langfuse.observation.status_message"],
        },
        "scores": scores,
    });
    let res = run_sdk(&py, data.path(), SDK_SCRIPT_2, &spec);
    let sdk: Value = serde_json::from_slice(&res.stdout).unwrap();
    let sdk_root = sdk["spans"]["agent"].as_object().unwrap();
    let mut checked = 0;
    for k in [
        "langfuse.observation.level",
        "langfuse.observation.status_message",
        "langfuse.version",
        "session.id",
        "langfuse.environment",
        "langfuse.observation.output",
    ] {
        let theirs = sdk_root
            .get(k)
            .unwrap_or_else(|| panic!("SDK root lacks {k}"));
        assert_eq!(parse_json(&root[k]), parse_json(theirs), "{k}");
        checked += 1;
    }
    assert_eq!(checked, 6);
    // Every score we post, field by field as the SDK posts it (same id, name, value, data type, target).
    let sdk_scores = sdk["scores"].as_array().unwrap();
    assert_eq!(sdk_scores.len(), scores.len());
    for ours in &scores {
        let theirs = sdk_scores
            .iter()
            .find(|s| s["id"] == ours["id"])
            .unwrap_or_else(|| panic!("the SDK posted no score {}", ours["id"]));
        for (k, v) in ours.as_object().unwrap() {
            assert_eq!(&theirs[k], v, "score {} field {k}", ours["name"]);
        }
        for k in ["traceId", "sessionId", "observationId"] {
            assert_eq!(
                theirs.get(k),
                ours.get(k),
                "score {} target {k}",
                ours["name"]
            );
        }
    }
}

/// Runs `script` (Python, with the official SDK) on `spec` (written as JSON into `dir`); panics with its stderr
/// when it fails.
fn run_sdk(
    py: &std::path::Path,
    dir: &std::path::Path,
    script: &str,
    spec: &Value,
) -> std::process::Output {
    let spec_path = dir.join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let script_path = dir.join("sdk.py");
    std::fs::write(&script_path, script).unwrap();
    let out = Command::new(py)
        .arg(&script_path)
        .arg(&spec_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
