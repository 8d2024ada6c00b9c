//! Helpers of the export tests (`export.rs`, `phoenix.rs`): the pi / oh-my-pi corpus as one folder, what the
//! dry run says will be sent, and OTLP requests decoded into comparable spans.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tokentrace")
}

/// `tokentrace sync --json [args] --path corpus --data-dir data` with `HOME=data`, no backend or config from
/// the environment but `env`, stdout and stderr piped (callers may set their own).
pub fn sync_command(corpus: &Path, data: &Path, args: &[&str], env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(["sync", "--json"])
        .args(args)
        .arg("--path")
        .arg(corpus)
        .arg("--data-dir")
        .arg(data)
        .env("HOME", data)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_HEADERS")
        .env_remove("TOKENTRACE_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// A copy of every pi / oh-my-pi run's `home/` (from examples/, the shared corpus copy) under one folder.
pub fn pi_corpus_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (i, run) in super::runs(&super::repo().join("examples"), &["pi", "omp"])
        .iter()
        .enumerate()
    {
        super::copy_tree(&run.join("home"), &dir.path().join(format!("run{i:02}")));
    }
    dir
}

/// Sum of `expected.json` token fields over the pi / oh-my-pi runs: (prompt tokens incl. cache, output).
pub fn expected_tokens() -> (u64, u64) {
    let mut sums = (0, 0);
    for run in super::runs(&super::repo().join("examples"), &["pi", "omp"]) {
        let t = &super::expected(&run)["tokens"];
        let n = |k: &str| t[k].as_u64().unwrap();
        sums.0 += n("input") + n("cache_read") + n("cache_write");
        sums.1 += n("output");
    }
    sums
}

/// One span, as our encoding (or a collector) shows it. Attribute values as text.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Got {
    pub trace_id: String,
    pub span_id: String,
    pub parent: String,
    pub name: String,
    pub start_ns: u64,
    pub end_ns: u64,
    /// Status code ERROR.
    pub error: bool,
    pub attrs: BTreeMap<String, String>,
}

/// The request files `sync --dry-run` writes for `corpus` (in a fresh store, no backend configured: the
/// generic OTLP sink's folder `out/otlp/`), in order, with their contents.
pub fn dry_run(corpus: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let data = tempfile::tempdir().unwrap();
    let top = data.path().join("out");
    let out = top.join("otlp");
    let status = Command::new(bin())
        .args(["sync", "--path"])
        .arg(corpus)
        .arg("--data-dir")
        .arg(data.path())
        .arg("--dry-run")
        .arg(&top)
        .env("HOME", data.path())
        .env_remove("LANGFUSE_PUBLIC_KEY")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .status()
        .unwrap();
    assert!(status.success());
    let mut files: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(&f).unwrap();
            (f.strip_prefix(&out).unwrap().to_path_buf(), bytes)
        })
        .collect()
}

/// The spans the dry run (our own encoding, from the store) says will be sent, in request order.
pub fn dry_run_spans(corpus: &Path) -> Vec<Got> {
    let mut spans = Vec::new();
    for (_, bytes) in dry_run(corpus) {
        let req: ExportTraceServiceRequest = serde_json::from_slice(&bytes).unwrap();
        spans.extend(from_request(&req));
    }
    spans
}

/// Every span of a request, ids as lowercase hex.
pub fn from_request(req: &ExportTraceServiceRequest) -> Vec<Got> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value as V;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let mut out = Vec::new();
    for s in req
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
    {
        let attrs = s
            .attributes
            .iter()
            .map(|kv| {
                let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(V::StringValue(x)) => x.clone(),
                    Some(V::IntValue(x)) => x.to_string(),
                    Some(V::BoolValue(x)) => x.to_string(),
                    Some(V::DoubleValue(x)) => x.to_string(),
                    Some(other) => format!("{other:?}"),
                    None => String::new(),
                };
                (kv.key.clone(), v)
            })
            .collect();
        out.push(Got {
            trace_id: hex(&s.trace_id),
            span_id: hex(&s.span_id),
            parent: hex(&s.parent_span_id),
            name: s.name.clone(),
            start_ns: s.start_time_unix_nano,
            end_ns: s.end_time_unix_nano,
            error: s
                .status
                .as_ref()
                .is_some_and(|st| st.code == StatusCode::Error as i32),
            attrs,
        });
    }
    out
}
