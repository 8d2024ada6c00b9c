//! Incremental import: resumable at any byte, idempotent, robust to bad lines. Every variant is built in a
//! temporary directory from a real corpus file (the corpus itself is never modified).

mod common;

use std::io::Write;

use tokentrace::store::Store;

/// pi 0.87.1, two prompts, two tool calls, four generations (examples/ copy of the shared corpus run).
fn sample() -> (Vec<u8>, String) {
    let run = common::repo().join("examples/pi/pi-0.87.1/04-extension-events");
    let path = common::session_file(&run);
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    (std::fs::read(path).unwrap(), name)
}

fn lines(content: &[u8]) -> Vec<String> {
    String::from_utf8(content.to_vec())
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn join(lines: &[String]) -> Vec<u8> {
    let mut out = lines.join("\n").into_bytes();
    out.push(b'\n');
    out
}

fn assert_sample_totals(store: &Store) {
    let t = common::totals(store);
    assert_eq!((t.prompts, t.generations, t.tool_calls), (2, 4, 2));
    assert_eq!(
        (
            t.tokens.input,
            t.tokens.cache_read,
            t.tokens.cache_write,
            t.tokens.output
        ),
        (1050, 4200, 150, 130)
    );
    assert_eq!(
        t.cost_pico, 6_922_500_000,
        "0.0069225 USD as recorded by pi"
    );
}

#[test]
fn importing_in_two_halves_cut_mid_line_equals_importing_whole() {
    let (content, name) = sample();
    let (_d1, whole, _) = common::store_of(&content, &name);
    assert_sample_totals(&whole);

    // Cut inside a line in the middle of the file (not at a newline).
    let mut cut = content.len() / 2;
    while content[cut - 1] == b'\n' {
        cut += 1;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(&name);
    std::fs::write(&path, &content[..cut]).unwrap();
    let mut halves = Store::open_in_memory().unwrap();
    let first = common::import_dir(&mut halves, dir.path());
    let consumed = content[..cut].iter().rposition(|b| *b == b'\n').unwrap() + 1;
    assert_eq!(
        first.bytes_read, consumed as u64,
        "the partial last line is not consumed"
    );
    let partial_totals = common::totals(&halves);
    assert!(partial_totals.generations < 4);

    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&content[cut..])
        .unwrap();
    let second = common::import_dir(&mut halves, dir.path());
    assert_eq!(
        second.bytes_read,
        (content.len() - consumed) as u64,
        "resumed at the saved offset"
    );
    assert_eq!(second.files_restarted, 0);
    assert_eq!(halves.snapshot().unwrap(), whole.snapshot().unwrap());
}

#[test]
fn every_cut_point_gives_the_same_store() {
    let (content, name) = sample();
    let (_d, whole, _) = common::store_of(&content, &name);
    let expected = whole.snapshot().unwrap();
    // Cut after each line and in the middle of each line.
    let mut cuts = Vec::new();
    for (i, b) in content.iter().enumerate() {
        if *b == b'\n' {
            cuts.push(i + 1);
            cuts.push(i.saturating_sub(7));
        }
    }
    for cut in cuts {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(&name);
        std::fs::write(&path, &content[..cut]).unwrap();
        let mut store = Store::open_in_memory().unwrap();
        common::import_dir(&mut store, dir.path());
        std::fs::write(&path, &content).unwrap();
        common::import_dir(&mut store, dir.path());
        assert_eq!(store.snapshot().unwrap(), expected, "cut at byte {cut}");
    }
}

#[test]
fn importing_twice_changes_nothing() {
    let (content, name) = sample();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(&name), &content).unwrap();
    let mut store = Store::open_in_memory().unwrap();
    let first = common::import_dir(&mut store, dir.path());
    assert_eq!((first.files_changed, first.files_read), (1, 1));
    let before = store.snapshot().unwrap();
    let again = common::import_dir(&mut store, dir.path());
    assert_eq!(
        (
            again.files_seen,
            again.files_changed,
            again.files_read,
            again.bytes_read
        ),
        (1, 0, 0, 0)
    );
    assert_eq!(store.snapshot().unwrap(), before);
    // Touching the file (mtime changes, nothing new) re-checks it but still changes nothing.
    let f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join(&name))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();
    let touched = common::import_dir(&mut store, dir.path());
    assert_eq!((touched.files_changed, touched.bytes_read), (1, 0));
    assert_eq!(store.snapshot().unwrap(), before);
    assert_sample_totals(&store);
}

#[test]
fn a_rewritten_file_is_read_again_from_the_start() {
    // pi migrates v1/v2 files to v3 in place, with fresh entry ids: the old records must go.
    let old_run = common::repo().join("examples/pi/pi-0.30.2/12-legacy-formats");
    let old = std::fs::read(common::session_file(&old_run)).unwrap();
    let (new, _) = sample();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.jsonl");
    std::fs::write(&path, &old).unwrap();
    let mut store = Store::open_in_memory().unwrap();
    common::import_dir(&mut store, dir.path());
    assert_eq!(common::totals(&store).tokens.input, 600);

    // Same path, different head (and longer): re-read from the start.
    std::fs::write(&path, &new).unwrap();
    let summary = common::import_dir(&mut store, dir.path());
    assert_eq!(summary.files_restarted, 1);
    assert_sample_totals(&store);
    let (_d, fresh, _) = common::store_of(&new, "session.jsonl");
    assert_eq!(store.snapshot().unwrap(), fresh.snapshot().unwrap());

    // A file that shrank is re-read too.
    let half = lines(&new)[..6].to_vec();
    std::fs::write(&path, join(&half)).unwrap();
    let summary = common::import_dir(&mut store, dir.path());
    assert_eq!(summary.files_restarted, 1);
    let t = common::totals(&store);
    assert_eq!((t.prompts, t.generations), (1, 1));
}

#[test]
fn a_corrupt_line_is_a_warning_and_loses_nothing_else() {
    let (content, name) = sample();
    let mut l = lines(&content);
    l.insert(
        6,
        r#"{"type":"message","id":"dead","message":{"role":"assis"#.to_string(),
    );
    l.insert(3, "this is not json at all".to_string());
    let (_d, store, summary) = common::store_of(&join(&l), &name);
    assert_eq!(summary.warnings, 2, "{:?}", summary.warning_samples);
    assert!(summary.warning_samples[0].contains("not a JSON line"));
    assert_sample_totals(&store);
}

#[test]
fn an_unknown_entry_type_is_kept_as_an_event() {
    let (content, name) = sample();
    let mut l = lines(&content);
    l.insert(
        7,
        r#"{"type":"hologram_projection","id":"f00dcafe","parentId":"9653fcbd","timestamp":"2026-11-23T03:06:21.900Z","beam":{"watts":3}}"#
            .to_string(),
    );
    let (_d, store, summary) = common::store_of(&join(&l), &name);
    assert_eq!(summary.warnings, 0);
    assert_sample_totals(&store);
    let rows = store.snapshot().unwrap();
    let event = rows
        .iter()
        .find(|r| r.contains("hologram_projection"))
        .expect("kept as an event");
    assert!(event.contains("\\\"watts\\\":3"), "{event}");
}

#[test]
fn invalid_utf8_is_repaired_with_a_warning() {
    let (content, name) = sample();
    let text = String::from_utf8(content).unwrap();
    let mut bytes = text
        .replacen(
            "List the files in the current directory",
            "List the files in the current directory \u{1}",
            1,
        )
        .into_bytes();
    let at = bytes.iter().position(|b| *b == 1).unwrap();
    bytes[at] = 0xff; // a byte that is never valid UTF-8, inside the first prompt
    let (_d, store, summary) = common::store_of(&bytes, &name);
    assert_eq!(summary.warnings, 1);
    assert!(summary.warning_samples[0].contains("invalid UTF-8"));
    assert_sample_totals(&store);
    let traces = store
        .traces_of(&store.sessions(&Default::default()).unwrap()[0].key)
        .unwrap();
    assert_eq!(
        traces[0].input.as_deref(),
        Some("List the files in the current directory \u{fffd}")
    );
}

#[test]
fn a_5mb_tool_output_is_imported_and_capped() {
    let (content, name) = sample();
    let mut l = lines(&content);
    let idx = l
        .iter()
        .position(|x| x.contains("\"role\":\"toolResult\""))
        .unwrap();
    let mut entry: serde_json::Value = serde_json::from_str(&l[idx]).unwrap();
    let huge = "x".repeat(5 * 1024 * 1024);
    entry["message"]["content"][0]["text"] = serde_json::Value::String(huge);
    l[idx] = entry.to_string();
    let (_d, store, summary) = common::store_of(&join(&l), &name);
    assert_eq!(summary.warnings, 0, "a long output is no broken line");
    assert_eq!(
        summary.redactions.get("truncated"),
        Some(&1),
        "the cut is counted (reported as a note on import)"
    );
    assert_sample_totals(&store);
    assert_eq!(store.redaction_counts().unwrap().get("truncated"), Some(&1));
    let rows = store.snapshot().unwrap();
    let marker = format!("…[truncated {} chars]", 5 * 1024 * 1024 - 20_000);
    assert!(
        rows.iter().any(|r| r.contains(&marker)),
        "the tool output is capped at 20,000 chars"
    );
    assert!(rows.iter().all(|r| r.len() < 100_000));
}

#[test]
fn a_file_deleted_before_it_is_read_is_a_warning() {
    let (content, name) = sample();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(&name), &content).unwrap();
    std::fs::write(dir.path().join("other.jsonl"), &content).unwrap();
    let roots = [tokentrace::sources::Root {
        agent: None,
        dir: dir.path().to_path_buf(),
        origin: "test".into(),
    }];
    let files = tokentrace::sources::discover(&roots, &tokentrace::model::Agent::ALL);
    assert_eq!(files.len(), 2);
    std::fs::remove_file(dir.path().join("other.jsonl")).unwrap();
    let mut store = Store::open_in_memory().unwrap();
    let enricher = tokentrace::ingest::Enricher::new(Default::default(), None);
    let summary = tokentrace::ingest::import(&mut store, &files, &enricher, false).unwrap();
    assert_eq!(summary.warnings, 1);
    assert!(summary.warning_samples[0].contains("cannot read"));
    assert_sample_totals(&store);
}

#[test]
fn a_file_deleted_after_import_keeps_its_data() {
    let (content, name) = sample();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(&name), &content).unwrap();
    let mut store = Store::open_in_memory().unwrap();
    common::import_dir(&mut store, dir.path());
    std::fs::remove_file(dir.path().join(&name)).unwrap();
    let summary = common::import_dir(&mut store, dir.path());
    assert_eq!(summary.files_seen, 0);
    assert_sample_totals(&store);
}
