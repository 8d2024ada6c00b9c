//! `tokentrace ui` end to end: the server on recorded sessions, its JSON against `report --json`, and its
//! pages in a real headless Chromium (`chromium --headless --dump-dom` runs the page's JavaScript): totals,
//! every session listed, a session's generations and tool calls with their tokens and cost, charts drawn,
//! session content that carries markup shown as text with no script run, and the token on a public address.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// A running `tokentrace ui`; killed on drop.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tokentrace(data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokentrace"));
    cmd.arg("--data-dir").arg(data).env("HOME", data);
    cmd
}

/// Starts `ui` on a free port of 127.0.0.1 with `args` and waits for its address.
fn start(data: &Path, args: &[&str]) -> Server {
    start_with(
        tokentrace(data)
            .args(["ui", "--listen", "127.0.0.1:0"])
            .args(args),
    )
}

/// Spawns a `ui` command and waits for the address it serves at (as 127.0.0.1:PORT).
fn start_with(cmd: &mut Command) -> Server {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let port = loop {
        let line = lines.next().expect("ui exited before serving").unwrap();
        if let Some(rest) = line.split("dashboard at http://").nth(1) {
            let addr = rest.split('/').next().unwrap();
            break addr.rsplit(':').next().unwrap().to_string();
        }
    };
    // Keep draining stderr so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        addr: format!("127.0.0.1:{port}"),
    }
}

fn get(url: &str) -> reqwest::blocking::Response {
    reqwest::blocking::Client::new().get(url).send().unwrap()
}

fn get_json(url: &str) -> Value {
    let resp = get(url);
    assert_eq!(resp.status(), 200, "{url}");
    serde_json::from_str(&resp.text().unwrap()).unwrap()
}

fn report(data: &Path, grouping: &str) -> Value {
    let out = common::tokentrace_stdout(data, &["report", grouping, "--json", "--no-import"]);
    serde_json::from_slice(&out).unwrap()
}

/// The DOM of `url` after its scripts ran, from headless Chromium; `None` (skipped, or failed under
/// `TOKENTRACE_REQUIRE_BACKENDS=1`) when Chromium is not installed.
fn dump_dom(url: &str) -> Option<String> {
    let chromium = ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let Some(chromium) = chromium else {
        common::skip_missing("chromium", "apt-get install chromium");
        return None;
    };
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--virtual-time-budget=15000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8(out.stdout).unwrap();
    assert!(
        dom.contains("data-rendered="),
        "the page did not finish rendering:\n{dom}"
    );
    Some(dom)
}

/// Values of `attr="…"` on the elements whose opening tag contains `marker`.
fn attrs(dom: &str, marker: &str, attr: &str) -> Vec<String> {
    let needle = format!("{attr}=\"");
    dom.split('<')
        .filter(|tag| tag.contains(marker))
        .filter_map(|tag| {
            let tag = tag.split('>').next()?;
            let start = tag.find(&needle)? + needle.len();
            Some(tag[start..].split('"').next()?.to_string())
        })
        .collect()
}

fn num(v: &str) -> f64 {
    v.parse().unwrap_or_else(|_| panic!("not a number: {v}"))
}

/// Session homes to serve: the shared corpus's runs when this checkout has it beside it, else the recorded
/// runs kept in the repository.
fn homes() -> Vec<PathBuf> {
    let base =
        common::shared_corpus().unwrap_or_else(|| common::repo().join("tests/fixtures/recorded"));
    let runs = common::runs(&base, &["claude", "codex", "pi"]);
    assert!(runs.len() >= 10, "too few runs under {}", base.display());
    runs.into_iter().map(|r| r.join("home")).collect()
}

#[test]
fn the_dashboard_shows_the_reports_numbers_in_a_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut args: Vec<String> = Vec::new();
    for home in homes() {
        args.push("--path".into());
        args.push(home.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = start(&data, &args);
    let base = format!("http://{}", server.addr);

    // The JSON is the report's.
    let daily = report(&data, "daily");
    let overview = get_json(&format!("{base}/api/overview"));
    assert_eq!(overview["totals"], daily["totals"]);
    assert_eq!(
        overview["daily"]["rows"].as_array().unwrap().len(),
        daily["rows"].as_array().unwrap().len()
    );
    let by_model = report(&data, "model");
    assert_eq!(overview["by_model"]["rows"], by_model["rows"]);
    let sessions = report(&data, "session");
    let keys: std::collections::BTreeSet<String> = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap().to_string())
        .collect();
    assert!(keys.len() >= 10);
    let page = get_json(&format!("{base}/api/sessions?per=500"));
    assert_eq!(page["total"].as_u64().unwrap() as usize, keys.len());
    assert_eq!(
        get(&format!("{base}/api/sessions?sort=bogus")).status(),
        400
    );
    assert_eq!(
        get(&format!("{base}/api/session/nope:nothing")).status(),
        404
    );
    // A subagent that ran as a session of its own links to its parent and back.
    let mut pairs = 0;
    for key in &keys {
        let doc = get_json(&format!("{base}/api/session/{}", urlencode(key)));
        if let Some(parent) = doc["parent"]["key"].as_str() {
            let up = get_json(&format!("{base}/api/session/{}", urlencode(parent)));
            let listed = up["children"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["key"] == key.as_str());
            assert!(listed, "{parent} does not list its subagent session {key}");
            pairs += 1;
        }
    }
    if common::shared_corpus().is_some() {
        assert!(pairs >= 1, "the shared corpus has Codex subagent sessions");
    }
    // Every answer carries the policy; the server is read-only.
    let resp = get(&format!("{base}/"));
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    let post = reqwest::blocking::Client::new()
        .post(format!("{base}/api/overview"))
        .send()
        .unwrap();
    assert_eq!(post.status(), 405);

    // The pages, in a browser.
    let Some(dom) = dump_dom(&format!("{base}/")) else {
        return;
    };
    let total = attrs(&dom, "id=\"total-cost\"", "data-usd");
    assert_eq!(total.len(), 1, "{dom}");
    assert!((num(&total[0]) - daily["totals"]["cost_usd"].as_f64().unwrap()).abs() < 1e-9);
    assert_eq!(
        attrs(&dom, "id=\"total-generations\"", "data-count"),
        [daily["totals"]["generations"].to_string()]
    );
    assert_eq!(
        attrs(&dom, "id=\"total-sessions\"", "data-count"),
        [keys.len().to_string()]
    );
    let bars = attrs(&dom, "data-series=", "data-usd");
    assert!(!bars.is_empty(), "no bars in the daily chart:\n{dom}");
    let charted: f64 = bars.iter().map(|v| num(v)).sum();
    assert!((charted - daily["totals"]["cost_usd"].as_f64().unwrap()).abs() < 1e-6);

    let dom = dump_dom(&format!("{base}/sessions?per=500")).unwrap();
    let listed: std::collections::BTreeSet<String> =
        attrs(&dom, "data-session-key=", "data-session-key")
            .into_iter()
            .map(|k| k.replace("&amp;", "&"))
            .collect();
    assert_eq!(listed, keys);

    // The session with the most model calls (and no subagents, whose calls live in their own sessions).
    let s = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["subagents"] == 0)
        .max_by_key(|s| s["generations"].as_u64().unwrap())
        .unwrap();
    let key = s["key"].as_str().unwrap();
    let dom = dump_dom(&format!("{base}/session/{}", urlencode(key))).unwrap();
    let costs = attrs(&dom, "data-kind=\"generation\"", "data-usd");
    assert_eq!(
        attrs(&dom, "data-kind=\"generation\"", "data-obs-id").len() as u64,
        s["generations"].as_u64().unwrap(),
        "{key}"
    );
    assert_eq!(
        attrs(&dom, "data-kind=\"tool\"", "data-obs-id").len() as u64,
        s["tool_calls"].as_u64().unwrap()
    );
    let cost: f64 = costs.iter().map(|v| num(v)).sum();
    assert!(
        (cost - s["cost_usd"].as_f64().unwrap()).abs() < 1e-9,
        "{cost} vs {}",
        s["cost_usd"]
    );
    for (attr, bucket) in [
        ("data-input", "input"),
        ("data-output", "output"),
        ("data-cache-read", "cache_read"),
    ] {
        let sum: u64 = attrs(&dom, "data-kind=\"generation\"", attr)
            .iter()
            .map(|v| v.parse::<u64>().unwrap())
            .sum();
        assert_eq!(sum, s["tokens"][bucket].as_u64().unwrap(), "{attr}");
    }
    assert!(dom.contains("class=\"waterfall\""), "no waterfall");

    let dom = dump_dom(&format!("{base}/models")).unwrap();
    let models = attrs(&dom, "data-model=", "data-model");
    let expected: Vec<String> = by_model["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(models.len(), expected.len());
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The markup an agent session can carry, in a prompt and a tool result.
const PAYLOAD: &str = "<script>document.body.dataset.pwned='script'</script>\
    <img src=x onerror=\"document.body.dataset.pwned='img'\">\
    <a href=\"javascript:document.body.dataset.pwned='link'\">click</a>";

#[test]
fn session_content_with_markup_is_shown_as_text_and_nothing_runs() {
    let run = common::repo().join("tests/fixtures/recorded/claude/claude-2.1.332/run23-multi");
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    common::copy_tree(&run.join("home"), &home);
    let file = walkdir::WalkDir::new(&home)
        .into_iter()
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "jsonl"))
        .unwrap()
        .into_path();
    // The prompt and one tool result carry the payload.
    let text = std::fs::read_to_string(&file).unwrap();
    let mut planted = 0;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let mut v: Value = serde_json::from_str(line).unwrap();
            if v["type"] == "user" {
                let content = &mut v["message"]["content"];
                if content.is_string() {
                    *content = Value::String(format!("List the files {PAYLOAD}"));
                    planted += 1;
                } else if let Some(first) = content.get_mut(0) {
                    if first["type"] == "tool_result" && first["content"].is_string() && planted < 2
                    {
                        first["content"] = Value::String(format!("result {PAYLOAD}"));
                        planted += 1;
                    }
                }
            }
            v.to_string()
        })
        .collect();
    assert_eq!(planted, 2);
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let data = tmp.path().join("data");
    let server = start(&data, &["--path", home.to_str().unwrap()]);
    let base = format!("http://{}", server.addr);
    let sessions = report(&data, "session");
    let key = sessions["sessions"][0]["key"].as_str().unwrap().to_string();
    // The API hands the content over as it is (JSON-escaped).
    let doc = get_json(&format!("{base}/api/session/{}", urlencode(&key)));
    assert!(doc
        .to_string()
        .contains("<script>document.body.dataset.pwned"));
    let Some(dom) = dump_dom(&format!("{base}/session/{}", urlencode(&key))) else {
        return;
    };
    assert!(!dom.contains("data-pwned"), "a payload ran:\n{dom}");
    assert_eq!(
        dom.matches("&lt;script&gt;document.body.dataset.pwned")
            .count(),
        2,
        "{dom}"
    );
    assert!(dom.contains("&lt;img src=x onerror="), "{dom}");
    assert!(
        !dom.contains("<img"),
        "an image element was created:\n{dom}"
    );
    assert!(dom.contains("&lt;a href=\"javascript:"), "{dom}");
    assert!(
        !dom.contains("<a href=\"javascript:"),
        "a javascript: link was created:\n{dom}"
    );
    // Only the dashboard's own script element is in the page.
    assert_eq!(dom.matches("<script").count(), 1, "{dom}");
}

#[test]
fn a_public_address_needs_a_token_and_every_request_carries_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let examples = common::repo().join("examples");
    let out = tokentrace(&data)
        .args([
            "ui",
            "--listen",
            "0.0.0.0:0",
            "--path",
            examples.to_str().unwrap(),
        ])
        .env_remove("TOKENTRACE_UI_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("without a token"), "{err}");
    // Refused before anything was imported.
    assert!(!data.join("tokentrace.db").exists());

    let server = start_with(
        tokentrace(&data)
            .args([
                "ui",
                "--listen",
                "0.0.0.0:0",
                "--path",
                examples.to_str().unwrap(),
            ])
            .env("TOKENTRACE_UI_TOKEN", "s3cret-Token_1"),
    );
    let base = format!("http://{}", server.addr);
    let client = reqwest::blocking::Client::new();
    for path in ["/", "/api/overview", "/api/changes", "/assets/app.js"] {
        assert_eq!(get(&format!("{base}{path}")).status(), 401, "{path}");
    }
    let wrong = client
        .get(format!("{base}/api/changes"))
        .bearer_auth("s3cret-Token_2")
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = client
        .get(format!("{base}/api/overview"))
        .bearer_auth("s3cret-Token_1")
        .send()
        .unwrap();
    assert_eq!(right.status(), 200);
    let doc: Value = serde_json::from_str(&right.text().unwrap()).unwrap();
    assert_eq!(doc["totals"], report(&data, "daily")["totals"]);
    let by_query = get(&format!("{base}/?token=s3cret-Token_1"));
    assert_eq!(by_query.status(), 200);
    let cookie = by_query.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.starts_with("tokentrace_ui=s3cret-Token_1;") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let with_cookie = client
        .get(format!("{base}/api/changes"))
        .header("cookie", "tokentrace_ui=s3cret-Token_1")
        .send()
        .unwrap();
    assert_eq!(with_cookie.status(), 200);

    // On loopback, a page elsewhere cannot reach the server under another host name (DNS rebinding).
    let local = start(&data, &["--no-import"]);
    let foreign = client
        .get(format!("http://{}/api/overview", local.addr))
        .header("host", "attacker.example")
        .send()
        .unwrap();
    assert_eq!(foreign.status(), 421);
    assert_eq!(
        get(&format!("http://{}/api/changes", local.addr)).status(),
        200
    );
}

/// `ui --watch`: the watch runs in the same process; a session written after the start shows up in the
/// answers, and the change counter the pages poll moves.
#[test]
fn with_watch_the_dashboard_follows_new_sessions() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let server = start(&data, &["--watch", "--path", home.to_str().unwrap()]);
    let base = format!("http://{}", server.addr);
    let before = get_json(&format!("{base}/api/changes"))["version"].clone();
    assert_eq!(
        get_json(&format!("{base}/api/overview"))["totals"]["generations"],
        0
    );
    let run = common::repo().join("tests/fixtures/recorded/claude/claude-2.1.332/run23-multi");
    common::copy_tree(&run.join("home"), &home);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let overview = loop {
        let doc = get_json(&format!("{base}/api/overview"));
        if doc["totals"]["generations"].as_u64().unwrap_or(0) > 0 {
            break doc;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the watch did not import the new session"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_ne!(get_json(&format!("{base}/api/changes"))["version"], before);
    // What the dashboard shows is what the report of the same files says.
    let other = tmp.path().join("other");
    let out = tokentrace(&other)
        .args(["report", "--json", "--path", home.to_str().unwrap()])
        .output()
        .unwrap();
    let expected: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(expected["totals"]["generations"].as_u64().unwrap() > 0);
    // The watch may still be importing the last lines: wait for the same totals.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut got = overview["totals"].clone();
    while got != expected["totals"] && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
        got = get_json(&format!("{base}/api/overview"))["totals"].clone();
    }
    assert_eq!(got, expected["totals"]);
}
