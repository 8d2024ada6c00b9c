//! A named background thread of `watch` (delivery, metrics push) that says when it ended, so that a stop
//! waits for it within a bound instead of forever.

use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

/// A running thread and the signal of its end.
pub struct Worker {
    done: Receiver<()>,
    handle: Option<JoinHandle<()>>,
}

impl Worker {
    /// Runs `work` on a thread called `name`. Errors: the thread cannot be started (`what` names it).
    pub fn spawn(name: &str, what: &str, work: impl FnOnce() + Send + 'static) -> Result<Worker> {
        let (done_tx, done) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                work();
                let _ = done_tx.send(());
            })
            .with_context(|| format!("cannot start the {what} thread"))?;
        Ok(Worker {
            done,
            handle: Some(handle),
        })
    }

    /// Waits for the thread to end, at most `timeout` plus half a second (a request in flight may outlive a
    /// deadline by its own timeout). True when it ended (it is then joined); false leaves it behind.
    pub fn wait(mut self, timeout: Duration) -> bool {
        let ended = self
            .done
            .recv_timeout(timeout + Duration::from_millis(500))
            .is_ok();
        if ended {
            if let Some(h) = self.handle.take() {
                let _ = h.join();
            }
        }
        ended
    }
}
