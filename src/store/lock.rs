//! Waiting for a store another tokentrace holds (an import or a sync in another terminal, `watch`).
//!
//! SQLite answers "busy" while another connection writes. Instead of a silent wait and then a raw SQLite
//! error, the wait says so on stderr after 1 s, naming the store, and gives up after [`GIVE_UP`]; the error
//! that follows is explained by [`explain`].

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::Connection;

/// Pause between tries.
const STEP: Duration = Duration::from_millis(10);
/// Tries before the wait is announced (≈ 1 s).
const ANNOUNCE_AFTER: i32 = 100;
/// Tries before giving up (≈ 2 minutes).
const GIVE_UP: i32 = 12_000;

static PATH: Mutex<String> = Mutex::new(String::new());
static ANNOUNCED: AtomicBool = AtomicBool::new(false);

/// Sets the busy handler of `conn` (the store at `path`).
pub fn install(conn: &mut Connection, path: &Path) {
    if let Ok(mut p) = PATH.lock() {
        *p = path.display().to_string();
    }
    let _ = conn.busy_handler(Some(busy));
}

fn busy(tries: i32) -> bool {
    if tries == ANNOUNCE_AFTER && !ANNOUNCED.swap(true, Ordering::Relaxed) {
        let path = PATH.lock().map(|p| p.clone()).unwrap_or_default();
        eprintln!(
            "tokentrace: waiting for the store {path}: another tokentrace (an import, sync or watch) is writing it…"
        );
    }
    if tries >= GIVE_UP {
        return false;
    }
    std::thread::sleep(STEP);
    true
}

/// What to do about a store error, when SQLite says why: locked, read-only, full, corrupt. `None` for
/// other errors.
pub fn explain(err: &anyhow::Error) -> Option<String> {
    let code = err
        .chain()
        .find_map(|e| match e.downcast_ref::<rusqlite::Error>() {
            Some(rusqlite::Error::SqliteFailure(f, _)) => Some(f.code),
            _ => None,
        })?;
    let path = PATH.lock().map(|p| p.clone()).unwrap_or_default();
    use rusqlite::ErrorCode as C;
    Some(match code {
        C::DatabaseBusy | C::DatabaseLocked => format!(
            "the store {path} stayed locked by another tokentrace for 2 minutes; let it finish (or stop it) and run \
             this again"
        ),
        C::ReadOnly | C::CannotOpen | C::PermissionDenied => format!(
            "the store {path} cannot be written (read-only disk or permissions); read-only commands still \
             work: `report --no-import`, `show`, `doctor` — or pass --data-dir to use another place"
        ),
        C::DiskFull => format!(
            "the disk holding the store {path} is full; free some space (read-only commands still work: \
             `report --no-import`, `show`, `doctor`)"
        ),
        C::DatabaseCorrupt | C::NotADatabase => format!(
            "the store {path} is damaged; `tokentrace store rebuild` re-imports everything from the session files \
             (delivery state is kept)"
        ),
        _ => return None,
    })
}
