//! The directory walk under a session root: every candidate session file (`.jsonl`, `.json`) with its
//! metadata, read on a few threads.
//!
//! A run with nothing new costs this walk and nothing else on the file system, and `status` runs it every few
//! seconds from status bars. On the 1 GB benchmark history (1,278 folders, 5,613 sessions) `walkdir` followed by
//! a `stat` of each session by path took ~30 ms; this walk, which opens each folder relative to its parent,
//! reads names in place from the `getdents` buffer, stats each file once relative to its open folder (an
//! `fstatat` that skips the path lookup) and reads folders on two threads, takes 10–12 ms in a warm process
//! (19 ms on one thread; more than two hardly help on the 2-core benchmark machine). The result does not
//! depend on the threads: files come back sorted by their path's bytes (see [`import_order`]).
//!
//! Symbolic links are followed; a link to one of its own ancestor folders is reported (as a loop), not walked.

use std::fs::Metadata;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

/// A candidate session file and what `stat` said when the walk saw it (the target's, for a link).
#[derive(Debug, Clone)]
pub struct Found {
    pub path: PathBuf,
    pub stat: FileStat,
}

/// What the import needs of a file's `stat`: which file it is (device and inode) and whether it changed
/// (size in bytes, modification time in ns since the Unix epoch), as the store keeps them (`files.dev`,
/// `ino`, `size`, `mtime_ns`). 32 bytes where `std::fs::Metadata` is 176: a walk of the 1 GB benchmark
/// keeps 5,613 of them and moves each twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
}

impl FileStat {
    /// `stat` of `path`, following links.
    ///
    /// # Errors
    /// What `stat` answers: not found, permission denied, an I/O error.
    pub fn of(path: &Path) -> std::io::Result<Self> {
        std::fs::metadata(path).map(|meta| Self::from(&meta))
    }

    /// From a `stat` the walk made itself (`fstatat` relative to an open folder).
    fn from_stat(st: &rustix::fs::Stat) -> Self {
        Self {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size as u64,
            mtime_ns: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec as i64,
        }
    }
}

impl From<&Metadata> for FileStat {
    fn from(meta: &Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        }
    }
}

/// What a walk found: files in [`import_order`], and what could not be read (a folder, a dangling link, a loop)
/// with the reason.
#[derive(Debug, Default)]
pub struct Walk {
    pub files: Vec<Found>,
    pub errors: Vec<(PathBuf, String)>,
}

/// Whether a file name can be a session: `.jsonl` (pi, Claude Code, Codex) or a Gemini chat (`session-*.json`;
/// other `.json` files, such as Claude's 2,322 subagent `.meta.json` in the 1 GB benchmark, are not even
/// stat'ed).
pub fn is_candidate(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    is_candidate_name(bytes.rsplit(|b| *b == b'/').next().unwrap_or(bytes))
}

/// [`is_candidate`] for a file name (no `/`). On the name's bytes, as `Path::extension` has it (a dot file
/// `.jsonl` has none): `extension` parses path components from the back, ~1,000 instructions for each of
/// the walk's 9,000 files.
fn is_candidate_name(name: &[u8]) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let has = |ext: &[u8]| name.len() > ext.len() && name.ends_with(ext);
    has(b".jsonl")
        || (has(b".json")
            && super::gemini::may_be_document(Path::new(std::ffi::OsStr::from_bytes(name))))
}

/// Walks `root` (which must be a folder or a link to one) on up to `threads` threads.
pub fn walk(root: &Path, threads: usize) -> Walk {
    let shared = Shared {
        state: Mutex::new(State {
            queue: vec![Pending {
                path: root.to_path_buf(),
                parent: None,
            }],
            busy: 0,
            waiting: 0,
        }),
        wake: Condvar::new(),
    };
    let threads = threads.max(1);
    let mut parts: Vec<Walk> = std::thread::scope(|scope| {
        let workers: Vec<_> = (1..threads)
            .map(|_| scope.spawn(|| shared.work(root)))
            .collect();
        let mut parts = vec![shared.work(root)];
        parts.extend(workers.into_iter().map(|w| w.join().unwrap_or_default()));
        parts
    });
    let mut out = parts.pop().unwrap_or_default();
    for part in parts {
        out.files.extend(part.files);
        out.errors.extend(part.errors);
    }
    out.files
        .sort_unstable_by(|a, b| import_order(&a.path, &b.path));
    out.errors.sort();
    out
}

/// The import order: paths compared as bytes (one `memcmp`). A session's transcript `<id>.jsonl` comes before
/// the folder `<id>/` of its subagent transcripts (`.` sorts before `/`), so when the store writes a subagent's
/// rows the tool call that spawned it is already there and they join its trace at once instead of in a
/// linking pass at the end (0.2–0.3 s of a cold import of the 1 GB benchmark, which links 35k rows).
fn import_order(a: &Path, b: &Path) -> std::cmp::Ordering {
    use std::os::unix::ffi::OsStrExt;
    a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes())
}

/// A folder to read: its path, and the open folder it is in (`None` for the root), so it is opened by its
/// name there instead of by its whole path (no lookup of every component again).
struct Pending {
    path: PathBuf,
    parent: Option<Arc<OwnedFd>>,
}

/// The folders left to read, shared by the walking threads.
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

struct State {
    /// Taken from the end: depth first, so the open folders the queue holds (the parents of what it holds)
    /// stay few, about the tree's depth.
    queue: Vec<Pending>,
    /// Threads reading a folder now (each may queue more): the walk is over when none is and the queue is
    /// empty.
    busy: usize,
    /// Threads waiting for a folder: only they need waking (a wake-up for every folder was 1,400 futex
    /// calls on the 1 GB benchmark).
    waiting: usize,
}

impl Shared {
    /// One thread's share: takes folders from the queue until there are none left and no thread can add any.
    fn work(&self, root: &Path) -> Walk {
        let mut out = Walk::default();
        let mut subdirs = Vec::new();
        // One `getdents` buffer per thread, reused for every folder.
        let mut buf: Vec<u8> = Vec::with_capacity(DIRENT_BUFFER_BYTES);
        loop {
            let dir = {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if let Some(dir) = state.queue.pop() {
                        state.busy += 1;
                        break dir;
                    }
                    if state.busy == 0 {
                        if state.waiting > 0 {
                            self.wake.notify_all();
                        }
                        return out;
                    }
                    state.waiting += 1;
                    state = self.wake.wait(state).unwrap_or_else(|e| e.into_inner());
                    state.waiting -= 1;
                }
            };
            read_dir(root, dir, &mut buf, &mut out, &mut subdirs);
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.busy -= 1;
            let more = !subdirs.is_empty();
            state.queue.append(&mut subdirs);
            if state.waiting > 0 && (more || state.busy == 0) {
                self.wake.notify_all();
            }
        }
    }
}

/// The `getdents` buffer: 32 KiB, as glibc's `readdir` uses; a Claude project folder of 220 sessions is one
/// call.
const DIRENT_BUFFER_BYTES: usize = 32 * 1024;

/// Lists one folder: candidate files into `out.files`, folders into `subdirs`.
///
/// With `rustix` rather than `std::fs::read_dir`: names are read in place from the `getdents` buffer (`std`
/// copies each into a `CString`, the 2,300 `.meta.json` and tool outputs included), the folder is opened
/// relative to its parent and files are stat'ed relative to the folder. A `status --path` call on the 1 GB
/// benchmark (1,278 folders, 5,613 sessions): 114.6 → 105.8 M instructions, p50 31.5 → 28.5 ms.
fn read_dir(
    root: &Path,
    dir: Pending,
    buf: &mut Vec<u8>,
    out: &mut Walk,
    subdirs: &mut Vec<Pending>,
) {
    use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir};
    use std::os::unix::ffi::OsStrExt;
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let opened = match (&dir.parent, dir.path.file_name()) {
        (Some(parent), Some(name)) => rustix::fs::openat(parent, name, flags, Mode::empty()),
        _ => rustix::fs::openat(rustix::fs::CWD, &dir.path, flags, Mode::empty()),
    };
    let fd = match opened {
        Ok(fd) => Arc::new(fd),
        Err(e) => {
            out.errors.push((dir.path, io_error(e)));
            return;
        }
    };
    let mut entries = RawDir::new(&*fd, buf.spare_capacity_mut());
    while let Some(entry) = entries.next() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                out.errors.push((dir.path.clone(), io_error(e)));
                break;
            }
        };
        let name = entry.file_name();
        let bytes = name.to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        let mut kind = entry.file_type();
        // File systems that do not fill `d_type` (some network and older ones): ask, and keep the answer for a
        // regular file's own stat below.
        let mut asked = None;
        if kind == FileType::Unknown {
            match rustix::fs::statat(&*fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => {
                    kind = FileType::from_raw_mode(st.st_mode);
                    asked = Some(st);
                }
                Err(_) => continue, // gone since the listing
            }
        }
        match kind {
            FileType::Directory => subdirs.push(Pending {
                path: dir.path.join(std::ffi::OsStr::from_bytes(bytes)),
                parent: Some(Arc::clone(&fd)),
            }),
            FileType::Symlink => {
                let path = dir.path.join(std::ffi::OsStr::from_bytes(bytes));
                match std::fs::metadata(&path) {
                    Ok(meta) if meta.is_dir() => match ancestor_loop(root, &path, &meta) {
                        Some(ancestor) => out.errors.push((
                            path,
                            format!(
                                "file system loop found: it points to its ancestor {}",
                                ancestor.display()
                            ),
                        )),
                        // A link's target is opened by its path: its parent is not this folder.
                        None => subdirs.push(Pending { path, parent: None }),
                    },
                    Ok(meta) if meta.is_file() && is_candidate_name(bytes) => {
                        out.files.push(Found {
                            path,
                            stat: FileStat::from(&meta),
                        })
                    }
                    Ok(_) => {}
                    Err(e) => out.errors.push((path, e.to_string())),
                }
            }
            FileType::RegularFile if is_candidate_name(bytes) => {
                // Relative to the open folder: no path lookup (see the module comment).
                let stat = match asked {
                    Some(st) => Ok(st),
                    None => rustix::fs::statat(&*fd, name, AtFlags::SYMLINK_NOFOLLOW),
                };
                if let Ok(st) = stat {
                    out.files.push(Found {
                        path: dir.path.join(std::ffi::OsStr::from_bytes(bytes)),
                        stat: FileStat::from_stat(&st),
                    });
                }
            }
            _ => {}
        }
    }
}

/// A `rustix` error as `std` words it (`Permission denied (os error 13)`).
fn io_error(e: rustix::io::Errno) -> String {
    std::io::Error::from(e).to_string()
}

/// The ancestor of `link` (up to `root`) that is the folder `target` it points to, if any.
fn ancestor_loop(root: &Path, link: &Path, target: &Metadata) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    for ancestor in link.ancestors().skip(1) {
        if let Ok(meta) = std::fs::metadata(ancestor) {
            if meta.dev() == target.dev() && meta.ino() == target.ino() {
                return Some(ancestor.to_path_buf());
            }
        }
        if ancestor == root {
            break;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_jsonl_files_and_gemini_chats() {
        for (path, want) in [
            ("/a/b.jsonl", true),
            ("b.jsonl", true),
            ("/a/..jsonl", true),
            ("/a/.jsonl", false),
            ("/a/b.jsonl.bak", false),
            ("/a.jsonl/b", false),
            ("/a/session-1.json", true),
            ("/a/b.meta.json", false),
            ("/a/session-.json.tmp", false),
            ("/a/json", false),
        ] {
            assert_eq!(is_candidate(Path::new(path)), want, "{path}");
            let ext = Path::new(path).extension().and_then(|e| e.to_str());
            let by_extension = ext == Some("jsonl")
                || (ext == Some("json") && super::super::gemini::may_be_document(Path::new(path)));
            assert_eq!(want, by_extension, "{path}: as Path::extension has it");
        }
    }

    #[test]
    fn files_come_sorted_with_their_metadata_and_problems_are_listed() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for dir in ["b", "a/x", "a/y", "c", "a-b", "a.c"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        for (file, bytes) in [
            ("a-b/5.jsonl", 5),
            ("a.c/6.jsonl", 6),
            ("b/2.jsonl", 2),
            ("a/x/1.jsonl", 1),
            ("a/y/session-3.json", 3),
            ("a/y/3.meta.json", 5),
            ("a/y/skip.txt", 9),
            ("c/4.jsonl", 4),
            ("a/0.jsonl", 0),
        ] {
            std::fs::write(root.join(file), vec![b'x'; bytes]).unwrap();
        }
        std::os::unix::fs::symlink(root.join("c"), root.join("b/link")).unwrap();
        std::os::unix::fs::symlink(root.join("a"), root.join("a/x/up")).unwrap();
        std::os::unix::fs::symlink(root.join("gone"), root.join("c/dangling.jsonl")).unwrap();
        for threads in [1, 2, 4] {
            let got = walk(root, threads);
            for f in &got.files {
                // What the walk's own `fstatat` saw is what `std` sees: a different device or time encoding
                // would make every stored file look changed.
                assert_eq!(
                    f.stat,
                    FileStat::of(&f.path).unwrap(),
                    "{}",
                    f.path.display()
                );
            }
            let names: Vec<String> = got
                .files
                .iter()
                .map(|f| {
                    let rel = f.path.strip_prefix(root).unwrap().display().to_string();
                    format!("{rel}:{}", f.stat.size)
                })
                .collect();
            assert_eq!(
                names,
                [
                    "a-b/5.jsonl:5",
                    "a.c/6.jsonl:6",
                    "a/0.jsonl:0",
                    "a/x/1.jsonl:1",
                    "a/y/session-3.json:3",
                    "b/2.jsonl:2",
                    "b/link/4.jsonl:4",
                    "c/4.jsonl:4"
                ],
                "{threads} threads"
            );
            let errors: Vec<String> = got
                .errors
                .iter()
                .map(|(p, why)| format!("{}: {why}", p.strip_prefix(root).unwrap().display()))
                .collect();
            // The dangling link is reported under both its paths (`b/link` is `c`), like its file would be.
            assert_eq!(errors.len(), 3, "{errors:?}");
            assert!(
                errors[0].starts_with("a/x/up: file system loop found"),
                "{errors:?}"
            );
            assert!(
                errors[1].starts_with("b/link/dangling.jsonl: "),
                "{errors:?}"
            );
            assert!(errors[2].starts_with("c/dangling.jsonl: "), "{errors:?}");
        }
    }

    #[test]
    fn a_folder_that_cannot_be_opened_is_reported_in_std_words() {
        let tmp = tempfile::tempdir().unwrap();
        let gone = tmp.path().join("gone");
        let mut out = Walk::default();
        let mut subdirs = Vec::new();
        let pending = Pending {
            path: gone.clone(),
            parent: None,
        };
        read_dir(tmp.path(), pending, &mut Vec::new(), &mut out, &mut subdirs);
        assert!(out.files.is_empty() && subdirs.is_empty());
        assert_eq!(
            out.errors,
            [(gone, "No such file or directory (os error 2)".to_string())]
        );
    }
}
