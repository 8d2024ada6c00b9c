//! File system notifications for `watch`: every session root watched recursively with `notify` (inotify on
//! Linux, FSEvents on macOS), roots that do not exist yet through their nearest existing parent.
//!
//! `~/.pi/agent/sessions` appears with pi's first session, `~/.codex/sessions/2026/12/02` with the day's
//! first rollout: a missing root is waited for by watching the closest folder that exists (not
//! recursively: a home directory is large), and every event re-checks the missing roots ([`FsWatch::refresh`]),
//! so each level of a `mkdir -p` moves the watch one level down until the root itself is watched. `notify`
//! adds watches for folders created inside a watched root; a file written into a new folder before its watch
//! existed is found by the caller, who reads a new folder whole ([`Change::new_dirs`]).

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;

use anyhow::{Context, Result};
use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecursiveMode, Watcher};

/// What one batch of events says changed.
#[derive(Debug, Default, PartialEq)]
pub struct Change {
    /// Files created, written or renamed into place.
    pub files: BTreeSet<PathBuf>,
    /// Folders created (or moved in): what they hold is read whole.
    pub new_dirs: BTreeSet<PathBuf>,
    /// The notification queue overflowed (or the backend asked for it): everything must be rescanned.
    pub rescan: bool,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty() && self.new_dirs.is_empty() && !self.rescan
    }

    /// Adds what one `notify` event says. Reads (`Access` events other than a close after writing) are left
    /// out: the import's own reads would otherwise wake the watcher again.
    pub fn add(&mut self, event: notify::Result<notify::Event>) {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("file notification error: {e}; rescanning");
                self.rescan = true;
                return;
            }
        };
        if event.need_rescan() {
            self.rescan = true;
        }
        let written = match event.kind {
            EventKind::Create(_) | EventKind::Modify(_) => true,
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
            // Removal keeps what was imported; reads are ours.
            EventKind::Remove(_) | EventKind::Access(_) => false,
            EventKind::Any | EventKind::Other => true,
        };
        if !written {
            return;
        }
        for path in event.paths {
            // The event may describe a folder (created, renamed into place): tell by looking.
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => {
                    self.new_dirs.insert(path);
                }
                Ok(_) => {
                    self.files.insert(path);
                }
                Err(_) => {} // gone again (a temp file renamed away)
            }
        }
    }
}

/// The watches of a set of roots.
pub struct FsWatch {
    watcher: notify::RecommendedWatcher,
    roots: Vec<PathBuf>,
    /// Watched paths and how (a root recursively, a parent of a missing root not).
    watched: HashMap<PathBuf, RecursiveMode>,
}

impl FsWatch {
    /// Starts watching `roots`; `send` receives every raw event (from `notify`'s thread). Errors: the
    /// platform's watcher cannot be created (inotify instance limit).
    pub fn new(
        roots: Vec<PathBuf>,
        send: impl Fn(notify::Result<notify::Event>) + Send + 'static,
    ) -> Result<FsWatch> {
        let watcher =
            notify::recommended_watcher(send).context("cannot start file notifications")?;
        let mut w = FsWatch {
            watcher,
            roots,
            watched: HashMap::new(),
        };
        w.refresh();
        Ok(w)
    }

    /// A sender-based constructor for an event loop fed by one channel: each event is wrapped by `wrap`.
    pub fn with_channel<T: Send + 'static>(
        roots: Vec<PathBuf>,
        tx: Sender<T>,
        wrap: fn(notify::Result<notify::Event>) -> T,
    ) -> Result<FsWatch> {
        let tx = std::sync::Mutex::new(tx);
        FsWatch::new(roots, move |e| {
            if let Ok(tx) = tx.lock() {
                let _ = tx.send(wrap(e));
            }
        })
    }

    /// Brings the watches in line with what exists: an existing root watched recursively, a missing one
    /// through its nearest existing parent. Returns the roots that became watched in this call (their
    /// content is new to the caller: read them whole).
    pub fn refresh(&mut self) -> Vec<PathBuf> {
        let mut appeared = Vec::new();
        let mut wanted: HashMap<PathBuf, RecursiveMode> = HashMap::new();
        for root in &self.roots {
            if root.is_dir() {
                wanted.insert(root.clone(), RecursiveMode::Recursive);
            } else if let Some(parent) = root.ancestors().skip(1).find(|p| p.is_dir()) {
                wanted
                    .entry(parent.to_path_buf())
                    .or_insert(RecursiveMode::NonRecursive);
            }
        }
        // A root inside another watched root needs no watch of its own.
        let recursive: Vec<PathBuf> = wanted
            .iter()
            .filter(|(_, m)| **m == RecursiveMode::Recursive)
            .map(|(p, _)| p.clone())
            .collect();
        wanted.retain(|p, _| !recursive.iter().any(|r| r != p && p.starts_with(r)));
        let stale: Vec<PathBuf> = self
            .watched
            .iter()
            .filter(|(p, m)| wanted.get(*p) != Some(m))
            .map(|(p, _)| p.clone())
            .collect();
        for p in stale {
            let _ = self.watcher.unwatch(&p);
            self.watched.remove(&p);
        }
        for (path, mode) in wanted {
            if self.watched.contains_key(&path) {
                continue;
            }
            match self.watcher.watch(&path, mode) {
                Ok(()) => {
                    tracing::debug!("watching {} ({mode:?})", path.display());
                    if mode == RecursiveMode::Recursive {
                        appeared.push(path.clone());
                    }
                    self.watched.insert(path, mode);
                }
                Err(e) => tracing::warn!("cannot watch {}: {e}", path.display()),
            }
        }
        appeared
    }

    /// The roots watched themselves (not through a parent).
    pub fn watched_roots(&self) -> usize {
        self.watched
            .values()
            .filter(|m| **m == RecursiveMode::Recursive)
            .count()
    }

    /// True when `path` lies under one of the roots.
    pub fn covers(&self, path: &Path) -> bool {
        self.roots.iter().any(|r| path.starts_with(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    /// Collects events until `done` holds or `limit` passes.
    fn wait_for(
        rx: &mpsc::Receiver<notify::Result<notify::Event>>,
        change: &mut Change,
        limit: Duration,
        done: impl Fn(&Change) -> bool,
    ) {
        let until = Instant::now() + limit;
        while !done(change) && Instant::now() < until {
            if let Ok(e) = rx.recv_timeout(Duration::from_millis(50)) {
                change.add(e);
            }
        }
    }

    #[test]
    fn a_missing_root_is_watched_once_it_appears_level_by_level() {
        let home = tempfile::tempdir().unwrap();
        let root = home.path().join(".pi/agent/sessions");
        let (tx, rx) = mpsc::channel();
        let mut w = FsWatch::with_channel(vec![root.clone()], tx, |e| e).unwrap();
        assert_eq!(w.watched_roots(), 0);
        assert!(w.watched.contains_key(home.path()), "the nearest parent");
        let mut change = Change::default();
        for level in [".pi", ".pi/agent", ".pi/agent/sessions"] {
            std::fs::create_dir(home.path().join(level)).unwrap();
            wait_for(&rx, &mut change, Duration::from_secs(5), |c| {
                c.new_dirs.contains(&home.path().join(level))
            });
            w.refresh();
        }
        assert_eq!(w.watched_roots(), 1);
        assert_eq!(w.watched.len(), 1, "the parent watches are gone");
        // A new sub-folder of the root is reported (the caller reads it whole: a file written into it before
        // `notify` added its watch has no event of its own), and a file written into it later is seen.
        let day = root.join("--tmp-proj--");
        std::fs::create_dir(&day).unwrap();
        wait_for(&rx, &mut change, Duration::from_secs(5), |c| {
            c.new_dirs.contains(&day)
        });
        assert!(change.new_dirs.contains(&day), "{change:?}");
        std::thread::sleep(Duration::from_millis(300));
        let file = day.join("s.jsonl");
        std::fs::write(&file, "{}\n").unwrap();
        wait_for(&rx, &mut change, Duration::from_secs(5), |c| {
            c.files.contains(&file)
        });
        assert!(change.files.contains(&file), "{change:?}");
    }

    #[test]
    fn reads_do_not_count_as_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.jsonl");
        std::fs::write(&file, "{}\n").unwrap();
        let (tx, rx) = mpsc::channel();
        let _w = FsWatch::with_channel(vec![dir.path().to_path_buf()], tx, |e| e).unwrap();
        let _ = std::fs::read(&file).unwrap();
        let mut change = Change::default();
        wait_for(&rx, &mut change, Duration::from_millis(500), |_| false);
        assert!(change.is_empty(), "{change:?}");
    }
}
