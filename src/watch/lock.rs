//! One `watch` per store: an exclusive `flock` on `<data dir>/watch.lock`, held for the process's life.
//!
//! The kernel drops the lock when the process ends, however it ends (SIGKILL included), so a stale lock file
//! never blocks the next start. The file holds the holder's pid, for the message a second `watch` prints.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = "watch.lock";

/// The held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct WatchLock {
    _file: File,
    pub path: PathBuf,
}

/// Takes the lock of the store in `data_dir` (created if missing). Errors: another process holds it (the
/// message names its pid), or the file cannot be created.
pub fn acquire(data_dir: &Path) -> Result<WatchLock> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let path = data_dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: flock on a file descriptor this function owns for the duration of the call.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            anyhow::bail!(
                "another tokentrace watch{} is already running on the store in {}; one watch per store \
                 (stop it first, or give this one another --data-dir)",
                if holder.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {holder})")
                },
                data_dir.display()
            );
        }
        return Err(err).with_context(|| format!("cannot lock {}", path.display()));
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    file.flush()?;
    Ok(WatchLock { _file: file, path })
}

/// Whether a `watch` holds the store in `data_dir`: its pid (0 when the file does not say), else `None`.
/// Commands that run often (`status`, `statusline`) then read the store only: the watch keeps it current.
pub fn running(data_dir: &Path) -> Option<u32> {
    let mut file = File::open(data_dir.join(LOCK_FILE)).ok()?;
    // SAFETY: flock on a file descriptor this function owns; a shared lock taken here is released when
    // `file` is dropped.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    if r == 0 {
        return None;
    }
    let mut holder = String::new();
    let _ = file.read_to_string(&mut holder);
    Some(holder.trim().parse().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_store_is_refused_with_the_holders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let held = acquire(dir.path()).unwrap();
        let err = acquire(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert_eq!(running(dir.path()), Some(std::process::id()));
        drop(held);
        assert_eq!(running(dir.path()), None);
        // Released: the next one gets it.
        acquire(dir.path()).unwrap();
    }
}
