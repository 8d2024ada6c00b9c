//! File stamps: what the store knows of each session file without reading it again (agent, identity, size,
//! mtime), enough for an import to tell which files changed. A run that finds nothing new (a status bar's
//! `status` call) compares every file of the walk with its stamp and does nothing else, so the stamps are
//! kept in the walk's order and looked up in that order.

use std::cell::Cell;

use anyhow::Result;

use super::{by_path, Store};
use crate::model::Agent;

/// What the store knows of a file without reading it again: enough to tell it changed ([`Store::file_stamps`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    /// `files.id`.
    pub id: i64,
    /// `None` for an agent name this build does not know.
    pub agent: Option<Agent>,
    pub dev: u64,
    pub ino: u64,
    /// Bytes.
    pub size: u64,
    /// ns since the epoch.
    pub mtime_ns: i64,
}

/// Stamps by path, sorted by the path's bytes: the order of a directory walk
/// ([`crate::sources::walk::walk`]). Looked up in that order, each [`FileStamps::get`] is one comparison with
/// the entry after the previous hit; any other lookup is a binary search. On the 1 GB benchmark (5,613 files)
/// this replaced a `HashMap` whose build and SipHash lookups were 13 % of a `status` call's instructions.
#[derive(Debug, Default)]
pub struct FileStamps {
    entries: Vec<(String, FileStamp)>,
    /// Where the next lookup in walk order will find its path.
    next: Cell<usize>,
}

impl FileStamps {
    /// From stamps in any order; a path given twice keeps its last stamp.
    pub fn new(mut entries: Vec<(String, FileStamp)>) -> FileStamps {
        // Stable sort: rows read in `files.id` order are already sorted after a first import (files are
        // imported in path order), with later files appended in runs, which this sort merges in linear time.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries.reverse();
        entries.dedup_by(|a, b| a.0 == b.0);
        entries.reverse();
        FileStamps {
            entries,
            next: Cell::new(0),
        }
    }

    /// The stamp of `path`, if the store knows it.
    pub fn get(&self, path: &str) -> Option<&FileStamp> {
        let hint = self.next.get();
        if let Some((p, stamp)) = self.entries.get(hint) {
            if p == path {
                self.next.set(hint + 1);
                return Some(stamp);
            }
        }
        match self.entries.binary_search_by(|(p, _)| p.as_str().cmp(path)) {
            Ok(i) => {
                self.next.set(i + 1);
                Some(&self.entries[i].1)
            }
            Err(i) => {
                self.next.set(i);
                None
            }
        }
    }

    pub fn contains(&self, path: &str) -> bool {
        self.get(path).is_some()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every (path, stamp), in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &FileStamp)> {
        self.entries.iter().map(|(p, s)| (p.as_str(), s))
    }

    /// The file at `old` is now at `new` (a followed rename): same stamp, new path. Nothing if `old` is
    /// unknown.
    pub fn rename(&mut self, old: &str, new: String) {
        let Ok(i) = self.entries.binary_search_by(|(p, _)| p.as_str().cmp(old)) else {
            return;
        };
        let (_, stamp) = self.entries.remove(i);
        match self
            .entries
            .binary_search_by(|(p, _)| p.as_str().cmp(new.as_str()))
        {
            Ok(at) => self.entries[at].1 = stamp,
            Err(at) => self.entries.insert(at, (new, stamp)),
        }
        self.next.set(0);
    }
}

impl Store {
    /// What the import's stat pass compares with every known file, by path: agent, identity, size and mtime
    /// (six columns instead of [`Store::files`]'s fifteen). Discovery also reads the agent from it, so a known
    /// file is not opened to detect its agent.
    pub fn file_stamps(&self) -> Result<FileStamps> {
        let mut entries = Vec::new();
        self.file_stamps_where(None, &mut entries)?;
        Ok(FileStamps::new(entries))
    }

    /// [`Store::file_stamps`] of the known files among `paths` (an import of a few files).
    pub fn file_stamps_at(&self, paths: &[&str]) -> Result<FileStamps> {
        let mut entries = Vec::new();
        for path in paths {
            self.file_stamps_where(Some(path), &mut entries)?;
        }
        Ok(FileStamps::new(entries))
    }

    fn file_stamps_where(
        &self,
        path: Option<&str>,
        out: &mut Vec<(String, FileStamp)>,
    ) -> Result<()> {
        let sql = format!(
            "SELECT path, id, agent, dev, ino, size, mtime_ns FROM files{}",
            by_path(path)
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(path))?;
        while let Some(r) = rows.next()? {
            out.push((
                r.get(0)?,
                FileStamp {
                    id: r.get(1)?,
                    agent: Agent::parse(r.get_ref(2)?.as_str()?),
                    dev: r.get::<_, i64>(3)? as u64,
                    ino: r.get::<_, i64>(4)? as u64,
                    size: r.get::<_, i64>(5)? as u64,
                    mtime_ns: r.get(6)?,
                },
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(id: i64) -> FileStamp {
        FileStamp {
            id,
            agent: Some(Agent::Claude),
            dev: 1,
            ino: id as u64,
            size: 10,
            mtime_ns: 5,
        }
    }

    #[test]
    fn lookups_in_any_order_find_every_path_and_only_those() {
        let paths = [
            "/a/2.jsonl",
            "/a.b/1.jsonl",
            "/a/1.jsonl",
            "/a/1/x.jsonl",
            "/b/3.jsonl",
        ];
        let stamps = FileStamps::new(
            paths
                .iter()
                .enumerate()
                .map(|(i, p)| (p.to_string(), stamp(i as i64)))
                .collect(),
        );
        let listed: Vec<&str> = stamps.iter().map(|(p, _)| p).collect();
        // Byte order: '.' (0x2e) < '/' (0x2f) < '1' (0x31).
        assert_eq!(
            listed,
            [
                "/a.b/1.jsonl",
                "/a/1.jsonl",
                "/a/1/x.jsonl",
                "/a/2.jsonl",
                "/b/3.jsonl"
            ]
        );
        // Walk order, with unknown paths between known ones; then backwards; then at random.
        let walk = [
            "/a.b/0.jsonl",
            "/a.b/1.jsonl",
            "/a/1.jsonl",
            "/a/1/x.jsonl",
            "/a/10.jsonl",
            "/a/2.jsonl",
            "/b/3.jsonl",
            "/c.jsonl",
        ];
        let mut orders = vec![walk.to_vec(), walk.iter().rev().copied().collect()];
        orders.push(vec![
            "/b/3.jsonl",
            "/a/10.jsonl",
            "/a/1.jsonl",
            "/zz",
            "/a/2.jsonl",
            "/",
        ]);
        for order in orders {
            for path in order {
                let want = paths.iter().position(|p| *p == path).map(|i| i as i64);
                assert_eq!(stamps.get(path).map(|s| s.id), want, "{path}");
            }
        }
    }

    #[test]
    fn a_rename_keeps_the_order_and_a_repeated_path_keeps_its_last_stamp() {
        let mut stamps = FileStamps::new(vec![
            ("/b".into(), stamp(1)),
            ("/d".into(), stamp(2)),
            ("/b".into(), stamp(3)),
        ]);
        assert_eq!(stamps.len(), 2);
        assert_eq!(stamps.get("/b").map(|s| s.id), Some(3));
        stamps.rename("/d", "/a".into());
        stamps.rename("/missing", "/z".into());
        let listed: Vec<(&str, i64)> = stamps.iter().map(|(p, s)| (p, s.id)).collect();
        assert_eq!(listed, [("/a", 2), ("/b", 3)]);
        assert!(!stamps.contains("/d") && stamps.contains("/a"));
    }
}
