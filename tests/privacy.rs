//! Privacy: planted secrets never reach the store; look-alikes do. Built from a copy of a real pi session
//! (examples/pi/pi-0.87.1/04-extension-events) with secrets planted in prompts, tool arguments, tool outputs,
//! thinking, file contents, JSON strings with escapes and multi-line blocks.

mod common;

use std::collections::HashMap;

use serde_json::{json, Value};
use tokentrace::config::Config;
use tokentrace::ingest::{import, Enricher};
use tokentrace::model::Agent;
use tokentrace::sources::{discover, Root};
use tokentrace::store::Store;

/// Deterministic pseudo-random strings over an alphabet (xorshift), so the secrets look real but the test
/// is reproducible.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn string(&mut self, alphabet: &str, len: usize) -> String {
        let a: Vec<char> = alphabet.chars().collect();
        (0..len)
            .map(|_| a[(self.next() % a.len() as u64) as usize])
            .collect()
    }
}

const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const UPPER_NUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const B64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URLSAFE: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const HEX: &str = "0123456789abcdef";

/// The value of an environment variable with a secret-looking name (planted too).
const ENV_SECRET: (&str, &str) = ("ACME_DEPLOY_TOKEN", "zq9Xk2PwL7vR4tYbNc3M");
/// A literal listed in the config file.
const CONFIG_LITERAL: &str = "orchid-velvet-harbor-42";

/// (kind, secret, context it is written in: `{}` is the secret).
fn secrets() -> Vec<(&'static str, String, &'static str)> {
    let mut g = Gen(0x9e3779b97f4a7c15);
    let mut s: Vec<(&'static str, String, &'static str)> = Vec::new();
    for _ in 0..5 {
        s.push((
            "openai-key",
            format!("sk-proj-{}", g.string(URLSAFE, 48)),
            "OPENAI_API_KEY={}",
        ));
        s.push((
            "openai-key",
            format!("sk-{}", g.string(ALNUM, 48)),
            "use key {} for the call",
        ));
        s.push((
            "anthropic-key",
            format!("sk-ant-api03-{}", g.string(URLSAFE, 93)),
            "export ANTHROPIC_API_KEY=\"{}\"",
        ));
        s.push((
            "langfuse-key",
            format!(
                "sk-lf-{}",
                g.string(HEX, 8) + "-" + &g.string(HEX, 4) + "-" + &g.string(HEX, 12)
            ),
            "LANGFUSE_SECRET_KEY={}",
        ));
        s.push((
            "langfuse-key",
            format!(
                "pk-lf-{}",
                g.string(HEX, 8) + "-" + &g.string(HEX, 4) + "-" + &g.string(HEX, 12)
            ),
            "public key {}",
        ));
        s.push((
            "aws-access-key-id",
            format!("AKIA{}", g.string(UPPER_NUM, 16)),
            "aws_access_key_id = {}",
        ));
        s.push((
            "aws-secret-key",
            g.string(B64, 40),
            "aws_secret_access_key = {}",
        ));
        s.push((
            "github-token",
            format!("ghp_{}", g.string(ALNUM, 36)),
            "git remote set-url origin https://x:{}@github.com/o/r",
        ));
        s.push((
            "github-token",
            format!(
                "github_pat_{}",
                g.string(ALNUM, 22) + "_" + &g.string(ALNUM, 59)
            ),
            "token: {}",
        ));
        s.push((
            "slack-token",
            format!(
                "xoxb-{}-{}-{}",
                g.string("0123456789", 12),
                g.string("0123456789", 13),
                g.string(ALNUM, 24)
            ),
            "SLACK_BOT={}",
        ));
        s.push((
            "google-api-key",
            format!("AIza{}", g.string(URLSAFE, 35)),
            "maps key {} in config",
        ));
        s.push((
            "stripe-key",
            format!("sk_live_{}", g.string(ALNUM, 24)),
            "stripe.api_key = '{}'",
        ));
        s.push((
            "jwt",
            format!(
                "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ{}.{}",
                g.string(URLSAFE, 40),
                g.string(URLSAFE, 43)
            ),
            "cookie session={}; Path=/",
        ));
        s.push((
            "bearer-token",
            g.string(URLSAFE, 32),
            "curl -H 'Authorization: Bearer {}' https://api.example.com",
        ));
        s.push((
            "url-credentials",
            g.string(ALNUM, 16),
            "DATABASE_URL=postgres://app:{}@db.internal:5432/prod",
        ));
        s.push(("env-secret", g.string(ALNUM, 20), "DB_PASSWORD={}"));
    }
    s.push((
        "env-value",
        ENV_SECRET.1.to_string(),
        "deploying with {} now",
    ));
    s.push((
        "literal",
        CONFIG_LITERAL.to_string(),
        "the vault phrase is {}",
    ));
    s
}

/// A PEM private key, split across lines.
fn pem(g: &mut Gen) -> (String, Vec<String>) {
    let lines: Vec<String> = (0..6).map(|_| g.string(B64, 64)).collect();
    let block = format!(
        "-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----",
        lines.join("\n")
    );
    (block, lines)
}

/// Strings that look like secrets but are not.
fn look_alikes() -> Vec<String> {
    let mut g = Gen(0x51afd7ed558ccd);
    let mut v = Vec::new();
    for _ in 0..15 {
        v.push(g.string(HEX, 40)); // git SHAs
    }
    for _ in 0..15 {
        v.push(format!(
            "{}-{}-4{}-a{}-{}",
            g.string(HEX, 8),
            g.string(HEX, 4),
            g.string(HEX, 3),
            g.string(HEX, 3),
            g.string(HEX, 12)
        )); // UUIDs
    }
    for text in [
        "The quick brown fox jumps over the lazy dog",
        "release notes for version two point one",
        "please summarize the attached meeting",
        "hello world from the build server today",
        "tokens are counted per model call here",
        "cache reads are cheaper than cache writes",
        "the session ended after three prompts",
        "compaction keeps the recent turns only",
        "a tool call failed with exit code one",
        "subagents report their own usage too",
    ] {
        v.push(base64(text.as_bytes())); // base64 of ordinary text
    }
    for id in [
        "AbstractSingletonProxyFactoryBeanConfigurationLoader",
        "handle_incoming_webhook_event_for_repository_sync",
        "TOKENTRACE_DEFAULT_MAX_FIELD_CHARACTERS_LIMIT",
        "skeleton_key_generation_benchmark_results_2026",
        "task-scheduler-worker-pool-autoscaling-policy",
        "sk8board-rental-inventory-management-service",
        "ghost_writer_pipeline_stage_three_retry_handler",
        "xoxo-greeting-card-template-renderer",
        "AIzawa_family_tree_genealogy_records_import",
        "eyJustAVariableNameThatStartsLikeAJwtHeader",
    ] {
        v.push(id.to_string()); // long identifiers
    }
    for _ in 0..10 {
        v.push(g.string(HEX, 64)); // sha256 digests
    }
    v
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The session file with everything planted. Returns the file and the PEM body lines.
fn planted_session() -> (Vec<u8>, Vec<String>) {
    let run = common::repo().join("examples/pi/pi-0.87.1/04-extension-events");
    let text = std::fs::read_to_string(common::session_file(&run)).unwrap();
    let mut entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let secrets = secrets();
    let lines: Vec<String> = secrets
        .iter()
        .map(|(_, s, ctx)| ctx.replace("{}", s))
        .collect();
    let look = look_alikes();
    let mut g = Gen(7);
    let (pem, pem_lines) = pem(&mut g);
    // Spread the secrets over six places, each a different kind of field.
    let parts: Vec<Vec<String>> = (0..6)
        .map(|k| lines.iter().skip(k).step_by(6).cloned().collect())
        .collect();
    let mut user_seen = 0;
    for e in entries.iter_mut() {
        let role = e["message"]["role"].as_str().unwrap_or("").to_string();
        match role.as_str() {
            "user" if user_seen == 0 => {
                user_seen += 1;
                let t = format!(
                    "{}\nmy keys:\n{}\nrefs: {}",
                    e["message"]["content"][0]["text"].as_str().unwrap(),
                    parts[0].join("\n"),
                    look[..20].join(" ")
                );
                e["message"]["content"][0]["text"] = json!(t);
            }
            "assistant"
                if e["message"]["content"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|b| b["type"] == "toolCall") =>
            {
                let blocks = e["message"]["content"].as_array_mut().unwrap();
                // thinking
                blocks.insert(0, json!({ "type": "thinking", "thinking": format!("I should not leak these:\n{}", parts[1].join("\n")) }));
                for b in blocks.iter_mut().filter(|b| b["type"] == "toolCall") {
                    // tool arguments, with a JSON document encoded inside a JSON string (escaped quotes)
                    let inner = json!({ "env": parts[2].clone(), "note": look[20..35].join(",") })
                        .to_string();
                    b["arguments"] = json!({ "command": parts[3].join(" && "), "payload": inner });
                }
            }
            "toolResult" => {
                // file contents: a .env file and a private key, split across lines
                let t = format!(
                    "# .env\n{}\n{}\n# ids\n{}",
                    parts[4].join("\n"),
                    pem,
                    look[35..].join("\n")
                );
                e["message"]["content"][0]["text"] = json!(t);
            }
            _ => {}
        }
    }
    // The last part goes into an unknown entry type and a custom message (metadata and content paths).
    let last = entries.len();
    entries.insert(
        last,
        json!({ "type": "custom_message", "id": "c0ffee01", "parentId": null, "timestamp": "2026-11-23T03:06:22.000Z",
                "customType": "notes", "content": parts[5].join("\n"), "data": { "secrets": parts[5] } }),
    );
    let mut out = entries
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    (out.into_bytes(), pem_lines)
}

fn import_planted(config: Config) -> (tempfile::TempDir, Store, tokentrace::ingest::ImportSummary) {
    let (content, _) = planted_session();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sessions")).unwrap();
    std::fs::write(
        dir.path()
            .join("sessions/2026-11-23T03-06-20-897Z_planted.jsonl"),
        content,
    )
    .unwrap();
    let db = dir.path().join(tokentrace::store::DB_FILE);
    let mut store = Store::open(&db).unwrap();
    let env: HashMap<String, String> = [(ENV_SECRET.0.to_string(), ENV_SECRET.1.to_string())]
        .into_iter()
        .collect();
    let enricher = Enricher::try_new(config, None, &env).unwrap();
    let roots = [Root {
        agent: None,
        dir: dir.path().join("sessions"),
        origin: "test".into(),
    }];
    let summary = import(&mut store, &discover(&roots, &Agent::ALL), &enricher, false).unwrap();
    (dir, store, summary)
}

/// Everything the store holds, as text: the snapshot and the raw database bytes.
fn store_text(dir: &tempfile::TempDir, store: &Store) -> String {
    let mut text = store.snapshot().unwrap().join("\n");
    for f in ["tokentrace.db", "tokentrace.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.path().join(f)) {
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    text
}

#[test]
fn no_planted_secret_reaches_the_store_and_look_alikes_survive() {
    let config = Config {
        redact: vec![CONFIG_LITERAL.to_string()],
        ..Config::default()
    };
    let (dir, store, summary) = import_planted(config);
    let text = store_text(&dir, &store);
    let secrets = secrets();
    assert!(secrets.len() >= 60, "{} planted secrets", secrets.len());
    let leaked: Vec<_> = secrets
        .iter()
        .filter(|(_, s, _)| text.contains(s.as_str()))
        .collect();
    assert!(
        leaked.is_empty(),
        "recall must be 100%; leaked: {leaked:#?}"
    );
    let (_, pem_lines) = planted_session();
    for line in &pem_lines {
        assert!(!text.contains(line.as_str()), "private key line leaked");
    }
    // The usage accounting is untouched.
    let t = common::totals(&store);
    assert_eq!(
        (t.prompts, t.generations, t.tool_calls, t.tokens.input),
        (2, 4, 2, 1050)
    );

    let look = look_alikes();
    assert!(look.len() >= 60, "{} look-alikes", look.len());
    let lost: Vec<_> = look.iter().filter(|s| !text.contains(s.as_str())).collect();
    assert!(lost.len() <= 2, "false positives: {lost:#?}");

    // Every kind was recognised as its own kind (each secret counted once per field it appears in).
    for kind in [
        "openai-key",
        "anthropic-key",
        "langfuse-key",
        "aws-access-key-id",
        "aws-secret-key",
        "github-token",
        "slack-token",
        "google-api-key",
        "stripe-key",
        "jwt",
        "bearer-token",
        "url-credentials",
        "env-secret",
        "env-value",
        "literal",
        "private-key",
    ] {
        assert!(
            summary.redactions.get(kind).copied().unwrap_or(0) >= 1,
            "no {kind} redaction: {:?}",
            summary.redactions
        );
        assert!(
            text.contains(&format!("[REDACTED:{kind}]")),
            "marker for {kind}"
        );
    }
}

#[test]
fn metadata_policy_stores_no_content_at_all() {
    let config = Config {
        capture: Some("metadata".into()),
        ..Config::default()
    };
    let (dir, store, _) = import_planted(config);
    let text = store_text(&dir, &store);
    for needle in [
        "List the files",
        "my keys",
        "I should not leak",
        "# .env",
        "ls -la",
        "I listed the directory",
    ] {
        assert!(
            !text.contains(needle),
            "'{needle}' stored under the metadata policy"
        );
    }
    // Names, tokens and cost are still there.
    assert!(text.contains("bash"));
    let t = common::totals(&store);
    assert_eq!(
        (t.generations, t.tool_calls, t.cost_pico),
        (4, 2, 6_922_500_000)
    );
}

#[test]
fn prompts_policy_keeps_prompts_and_answers_only() {
    let config = Config {
        capture: Some("prompts".into()),
        ..Config::default()
    };
    let (dir, store, _) = import_planted(config);
    let text = store_text(&dir, &store);
    assert!(
        text.contains("List the files in the current directory"),
        "the prompt is kept"
    );
    assert!(
        text.contains("I listed the directory. Done."),
        "the final answer is kept"
    );
    for needle in ["I should not leak", "# .env", "ls -la", "Let me look."] {
        assert!(
            !text.contains(needle),
            "'{needle}' stored under the prompts policy"
        );
    }
}

#[test]
fn the_exported_otlp_contains_no_planted_secret() {
    let config = Config {
        redact: vec![CONFIG_LITERAL.to_string()],
        ..Config::default()
    };
    let (dir, store, _) = import_planted(config);
    drop(store);
    // The dry run writes exactly the OTLP/JSON requests `sync` would send, from the store.
    let out = dir.path().join("otlp");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_tokentrace"))
        .args(["sync", "--no-import", "--data-dir"])
        .arg(dir.path())
        .arg("--dry-run")
        .arg(&out)
        .env("HOME", dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let mut exported = String::new();
    for f in std::fs::read_dir(out.join("otlp")).unwrap().flatten() {
        exported.push_str(&std::fs::read_to_string(f.path()).unwrap());
    }
    assert!(
        exported.contains("[REDACTED:github-token]"),
        "the planted trace was exported"
    );
    assert!(
        exported.contains("List the files in the current directory"),
        "content is exported under the full policy"
    );
    let leaked: Vec<_> = secrets()
        .into_iter()
        .filter(|(_, s, _)| exported.contains(s.as_str()))
        .collect();
    assert!(leaked.is_empty(), "leaked into OTLP: {leaked:#?}");
    let (_, pem_lines) = planted_session();
    assert!(pem_lines.iter().all(|l| !exported.contains(l.as_str())));
}
