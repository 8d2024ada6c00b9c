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
        assert!(
            std::env::var("TOKENTRACE_REQUIRE_BACKENDS").as_deref() != Ok("1"),
            "langfuse==5.0.4 is not installed but TOKENTRACE_REQUIRE_BACKENDS=1"
        );
        eprintln!("skipped: no Python with langfuse==5.0.4 (python3 -m venv target/lfpy && target/lfpy/bin/pip install langfuse==5.0.4)");
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
    let spec_path = data.path().join("spec.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let script = data.path().join("sdk.py");
    std::fs::write(&script, SDK_SCRIPT).unwrap();
    let out = Command::new(&py)
        .arg(&script)
        .arg(&spec_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    assert_eq!(
        usage,
        json!({ "input": 200, "output": 40, "cache_read_input_tokens": 1000, "cache_creation_input_tokens": 0 })
    );
    assert_eq!(gen["gen_ai.usage.input_tokens"], json!(1200));
    assert_eq!(
        parse_json(&gen["langfuse.observation.cost_details"]),
        json!({ "total": 0.0015 })
    );
    assert!(
        !root
            .keys()
            .any(|k| k.contains("usage") || k.contains("cost")),
        "no usage or cost on the root"
    );
}
