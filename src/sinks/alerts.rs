//! Alerts for stored anomalies ([`crate::status::anomaly`]): a JSON POST to the configured webhook and a
//! desktop notification (`notify-send`). Each anomaly is sent once; a webhook that fails is retried with
//! backoff (30 s, doubling, at most [`MAX_ATTEMPTS`] tries). `sync` sends them after delivering; `watch` from a
//! thread of its own ([`spawn_send`]), so a slow webhook never holds up the import.
//!
//! The webhook body is `{"text": LINE, "content": LINE, "anomaly": {"kind","session","trace_id","value","limit",
//! "message"}}`: `text` is what a Slack incoming webhook shows, `content` what a Discord one shows.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use serde_json::json;

use crate::status::anomaly::Alerts;
use crate::store::anomalies::Anomaly;
use crate::store::Store;

/// Tries per anomaly before giving up (the anomaly stays in the store, and in `status`).
pub const MAX_ATTEMPTS: i64 = 8;

/// Anomalies older than this are never alerted (a webhook configured today does not replay last month).
const FRESH_MS: i64 = 24 * 3_600_000;

/// What [`send_due`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sent {
    pub sent: u64,
    pub failed: u64,
}

/// Sends the alerts that are due at `now_ms` (wall clock). Errors: the store only (a failed webhook is
/// recorded for a retry).
pub fn send_due(store: &Store, alerts: &Alerts, now_ms: i64) -> Result<Sent> {
    let mut done = Sent::default();
    if !alerts.any() {
        return Ok(done);
    }
    let client = super::http::client();
    for a in store.alerts_due(now_ms, MAX_ATTEMPTS, now_ms - FRESH_MS)? {
        let line = line(&a);
        if alerts.notify {
            // Best effort: no desktop (a server, CI) is not an error worth retrying.
            desktop(&line);
        }
        let error = match &alerts.webhook {
            Some(url) => post(&client, url, &a, &line).err(),
            None => None,
        };
        let attempts = store.alert_attempts(&a.key)?;
        let retry_at = now_ms + 30_000 * (1i64 << attempts.clamp(0, 10));
        store.alert_attempted(&a.key, now_ms, error.as_deref(), retry_at)?;
        match error {
            None => done.sent += 1,
            Some(e) => {
                tracing::warn!("alert for {} not delivered: {e}", a.key);
                done.failed += 1;
            }
        }
    }
    Ok(done)
}

/// [`send_due`] on a thread with its own store connection, unless one is still running: `watch` calls it after
/// every import without waiting for a webhook.
pub fn spawn_send(store_path: PathBuf, alerts: Alerts, running: Arc<AtomicBool>) {
    if !alerts.any() || running.swap(true, Ordering::SeqCst) {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("tt-alerts".into())
        .spawn(move || {
            let result = Store::open(&store_path).and_then(|store| {
                send_due(&store, &alerts, jiff::Timestamp::now().as_millisecond())
            });
            if let Err(e) = result {
                tracing::warn!("alerts: {e:#}");
            }
            running.store(false, Ordering::SeqCst);
        });
    if spawned.is_err() {
        tracing::warn!("alerts: cannot start a thread");
    }
}

/// `tokentrace: repeated tool call in claude session 3f2a…: Bash called 6 times in a row …`.
fn line(a: &Anomaly) -> String {
    let (agent, id) = a
        .session_key
        .split_once(':')
        .unwrap_or(("", &a.session_key));
    format!(
        "tokentrace: {} in {agent} session {}: {}",
        a.kind.replace('_', " "),
        id.get(..8).unwrap_or(id),
        a.message
    )
}

fn post(
    client: &reqwest::blocking::Client,
    url: &str,
    a: &Anomaly,
    line: &str,
) -> Result<(), String> {
    let body = json!({
        "text": line,
        "content": line,
        "anomaly": {
            "kind": a.kind, "session": a.session_key, "trace_id": a.trace_id,
            "value": a.value, "limit": a.limit, "message": a.message,
        },
    });
    let resp = client
        .post(url)
        .timeout(Duration::from_secs(10))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .map_err(|e| format!("{url}: {e}"))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("{url} answered {}", resp.status()))
    }
}

/// `notify-send` with a 2 s bound; missing or failing, it is only logged.
fn desktop(line: &str) {
    let child = std::process::Command::new("notify-send")
        .args(["--app-name=tokentrace", "tokentrace: anomaly", line])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    match child {
        Ok(mut c) => {
            for _ in 0..20 {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
        }
        Err(e) => tracing::debug!("notify-send: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A webhook that answers 500 to the first request and 200 after: the alert is retried after its backoff,
    /// then never sent again.
    #[test]
    fn a_failing_webhook_is_retried_after_backoff_then_the_alert_is_done() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let served = std::thread::spawn(move || {
            let mut bodies = Vec::new();
            for (i, stream) in listener.incoming().take(2).enumerate() {
                let mut stream = stream.unwrap();
                let mut buf = vec![0u8; 65536];
                let n = stream.read(&mut buf).unwrap();
                bodies.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                let status = if i == 0 {
                    "500 Internal Server Error"
                } else {
                    "200 OK"
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
            bodies
        });
        let mut store = Store::open_in_memory().unwrap();
        let a = Anomaly {
            key: "model_calls|t1".into(),
            kind: "model_calls".into(),
            session_key: "pi:s1".into(),
            trace_id: Some("t1".into()),
            at_ms: Some(1),
            value: 120.0,
            limit: 100.0,
            message: "120 model calls for one prompt (limit 100)".into(),
        };
        let now = 1_800_000_000_000;
        assert!(store.record_anomaly(&a, now).unwrap());
        assert!(
            !store.record_anomaly(&a, now).unwrap(),
            "found again: not new"
        );
        let alerts = Alerts {
            notify: false,
            webhook: Some(url),
        };
        assert_eq!(
            send_due(&store, &alerts, now).unwrap(),
            Sent { sent: 0, failed: 1 }
        );
        assert_eq!(
            send_due(&store, &alerts, now + 1_000).unwrap(),
            Sent::default(),
            "backing off"
        );
        assert_eq!(
            send_due(&store, &alerts, now + 31_000).unwrap(),
            Sent { sent: 1, failed: 0 }
        );
        assert_eq!(
            send_due(&store, &alerts, now + 120_000).unwrap(),
            Sent::default(),
            "sent once"
        );
        let bodies = served.join().unwrap();
        assert_eq!(bodies.len(), 2);
        assert!(
            bodies[1].contains("\"kind\":\"model_calls\"") && bodies[1].contains("120 model calls")
        );
    }
}
