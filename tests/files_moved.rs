//! The same content never counts twice, whatever its path history: a session file that is moved, moved and
//! rewritten with new entry ids (pi's format migration does that), moved and shrunk, or rewritten in place
//! with the same size, reports what the file holds now. Built from a real corpus file in a temp dir.

mod common;

use std::path::{Path, PathBuf};

use tokentrace::store::Store;

/// pi 0.87.1, two prompts, four generations.
fn sample() -> (Vec<u8>, String) {
    let run = common::repo().join("examples/pi/pi-0.87.1/04-extension-events");
    let path = common::session_file(&run);
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    (std::fs::read(path).unwrap(), name)
}

/// Token totals and counts of a store: (prompts, generations, tool calls, input, cache read, output).
fn sums(store: &Store) -> (u64, u64, u64, u64, u64, u64) {
    let t = common::totals(store);
    (
        t.prompts,
        t.generations,
        t.tool_calls,
        t.tokens.input,
        t.tokens.cache_read,
        t.tokens.output,
    )
}

fn fresh(content: &[u8], name: &str) -> (u64, u64, u64, u64, u64, u64) {
    let (_dir, store, _) = common::store_of(content, name);
    sums(&store)
}

/// Every entry id (and parent id) replaced by a new one, as pi's migration to a newer format does.
fn new_ids(content: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(content.to_vec()).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["type"] != "session" {
            for k in ["id", "parentId"] {
                if let Some(id) = v[k].as_str() {
                    v[k] = format!("{id}-m").into();
                }
            }
        }
        out.push_str(&v.to_string());
        out.push('\n');
    }
    out.into_bytes()
}

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    store: Store,
}

fn imported(content: &[u8], rel: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("sessions");
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    let mut store = Store::open(&dir.path().join("t.db")).unwrap();
    common::import_dir(&mut store, &root);
    Setup {
        _dir: dir,
        root,
        store,
    }
}

fn reimport(s: &mut Setup) {
    common::import_dir(&mut s.store, &s.root);
}

fn moved(s: &Setup, from: &str, to: &str) -> PathBuf {
    let to = s.root.join(to);
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::rename(s.root.join(from), &to).unwrap();
    to
}

/// Reproduction: a file moved, then rewritten with new entry ids, kept the old path's rows: counted twice.
#[test]
fn a_moved_file_rewritten_with_new_ids_counts_once() {
    let (content, name) = sample();
    let want = fresh(&content, &name);
    let mut s = imported(&content, &format!("a/{name}"));
    let new = moved(&s, &format!("a/{name}"), &format!("b/{name}"));
    std::fs::write(&new, new_ids(&content)).unwrap();
    reimport(&mut s);
    assert_eq!(sums(&s.store), want);
}

/// The same across file systems: a copy at the new path (new inode), the old one deleted, then rewritten.
#[test]
fn a_copied_then_deleted_file_rewritten_with_new_ids_counts_once() {
    let (content, name) = sample();
    let want = fresh(&content, &name);
    let mut s = imported(&content, &format!("a/{name}"));
    std::fs::remove_file(s.root.join(format!("a/{name}"))).unwrap();
    let new = s.root.join(format!("b/{name}"));
    std::fs::create_dir_all(new.parent().unwrap()).unwrap();
    std::fs::write(&new, new_ids(&content)).unwrap();
    reimport(&mut s);
    assert_eq!(sums(&s.store), want);
}

/// Reproduction: a moved file that shrank kept the rows of the lines it lost.
#[test]
fn a_moved_file_that_shrank_reports_what_it_holds_now() {
    let (content, name) = sample();
    let text = String::from_utf8(content.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut half = lines[..lines.len() / 2].join("\n");
    half.push('\n');
    let want = fresh(half.as_bytes(), &name);
    assert_ne!(want, fresh(&content, &name));
    let mut s = imported(&content, &format!("a/{name}"));
    let new = moved(&s, &format!("a/{name}"), &format!("b/{name}"));
    std::fs::write(&new, &half).unwrap();
    reimport(&mut s);
    assert_eq!(sums(&s.store), want);
}

/// A plain move is followed (same device and inode): nothing is read again or counted twice.
#[test]
fn a_moved_file_is_followed_not_read_again() {
    let (content, name) = sample();
    let want = fresh(&content, &name);
    let mut s = imported(&content, &format!("a/{name}"));
    moved(&s, &format!("a/{name}"), &format!("b/{name}"));
    let summary = common::import_dir(&mut s.store, &s.root);
    assert_eq!(summary.bytes_read, 0, "a renamed file is not read again");
    assert_eq!(summary.files_changed, 1, "the stored row moved with it");
    assert_eq!(sums(&s.store), want);
    let files = s.store.files().unwrap();
    assert_eq!(files.len(), 1);
    assert!(files.keys().next().unwrap().ends_with(&format!("b/{name}")));
}

/// Reproduction: a rewrite that keeps the size and the first 1 KiB (size and mtime change, head hash equal,
/// offset = size) was never noticed.
#[test]
fn a_same_size_rewrite_past_the_head_is_noticed() {
    let (content, name) = sample();
    let text = String::from_utf8(content.clone()).unwrap();
    // The last assistant message's output tokens 25 → 95: same length, far past the first KiB.
    let at = text.rfind("\"output\":25,").expect("an assistant usage");
    assert!(at > 1024);
    let mut changed = text.clone();
    changed.replace_range(at..at + 12, "\"output\":95,");
    assert_eq!(changed.len(), text.len());
    let want = fresh(changed.as_bytes(), &name);
    assert_eq!(want.5, fresh(&content, &name).5 + 70);
    let mut s = imported(&content, &name);
    let path = s.root.join(&name);
    std::fs::write(&path, &changed).unwrap();
    bump_mtime(&path);
    reimport(&mut s);
    assert_eq!(sums(&s.store), want);
}

fn bump_mtime(path: &Path) {
    let f = std::fs::File::options().append(true).open(path).unwrap();
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    f.set_modified(later).unwrap();
}

/// A last line that never gets its newline waits visibly: `doctor` shows the bytes per file.
#[test]
fn doctor_shows_the_bytes_that_wait_for_a_newline() {
    let (content, name) = sample();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut partial = content.clone();
    partial.extend_from_slice(b"{\"type\":\"message\",\"id\":\"zz\"");
    std::fs::write(home.join(&name), &partial).unwrap();
    let data = dir.path().join("data");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tokentrace"))
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .env("HOME", dir.path())
            .output()
            .unwrap()
    };
    assert!(run(&["report", "--path", home.to_str().unwrap()])
        .status
        .success());
    let out = run(&["doctor", "--json", "--path", home.to_str().unwrap()]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let w = doc["waiting_for_newline"].as_array().unwrap();
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0]["bytes"], 27);
    let out = run(&["doctor", "--path", home.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("{name}: 27 byte(s)")), "{text}");
}

/// A Gemini session spread over two chat files (a resumed chat): a deleted chat keeps its data (as any deleted
/// file does), even when its sibling is re-read from its start.
#[test]
fn a_deleted_gemini_chat_keeps_its_data_when_its_sibling_is_reread() {
    let run = common::repo().join("tests/fixtures/unseen/gemini/gemini-0.61.0/run7-compress");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("home");
    common::copy_tree(&run.join("home"), &root);
    let mut store = Store::open(&dir.path().join("t.db")).unwrap();
    common::import_dir(&mut store, &root);
    let want = sums(&store);
    let mut chats: Vec<PathBuf> = walkdir::WalkDir::new(&root)
        .into_iter()
        .filter_map(Result::ok)
        .map(|e| e.into_path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    chats.sort();
    assert_eq!(chats.len(), 2);
    // The newer chat (the session's owner, written last) goes; the older one is replaced by an identical copy
    // (a new inode), so it is read again from its start.
    std::fs::remove_file(&chats[1]).unwrap();
    let text = std::fs::read(&chats[0]).unwrap();
    std::fs::remove_file(&chats[0]).unwrap();
    std::fs::write(&chats[0], text).unwrap();
    let summary = common::import_dir(&mut store, &root);
    assert!(summary.files_read >= 1);
    assert_eq!(sums(&store), want);
}
