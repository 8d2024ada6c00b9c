//! A scripted HTTP/1.1 test server for the security, delivery and export tests (`#[path]`-included, so it is
//! not part of `common`): one thread per connection (a request that hangs blocks nobody else), every request
//! recorded with its headers and its body (gzip decoded), the answer chosen by a handler.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the server got.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    /// Header lines as sent (`name: value`).
    pub headers: Vec<String>,
    /// The body, gzip-decoded.
    pub body: Vec<u8>,
    /// When it had been read.
    pub at: Instant,
}

/// How to answer.
pub enum Reply {
    /// Status, extra header lines (each ending in `\r\n`), JSON body (`{}` when empty).
    Status(u16, String, String),
    /// Never answer (the connection stays open until the test process ends).
    Hang,
    /// Close the connection without an answer (a backend that drops requests).
    Drop,
}

pub fn ok() -> Reply {
    Reply::Status(200, String::new(), String::new())
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// A running server on 127.0.0.1.
pub struct Server {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    /// Starts a server answering with `handler` after `delay` per request.
    pub fn start(
        delay: Duration,
        handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
    ) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests: Arc<Mutex<Vec<Request>>> = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (seen, handler) = (seen.clone(), handler.clone());
                std::thread::spawn(move || {
                    let Some(req) = read_request(&stream) else {
                        return;
                    };
                    seen.lock().unwrap().push(req.clone());
                    std::thread::sleep(delay);
                    match handler(&req) {
                        Reply::Hang => std::thread::sleep(Duration::from_secs(3600)),
                        Reply::Drop => drop(stream),
                        Reply::Status(status, extra, body) => {
                            let body = if body.is_empty() { "{}".into() } else { body };
                            let mut s = stream;
                            let _ = write!(
                                s,
                                "HTTP/1.1 {status} X\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                                body.len()
                            );
                        }
                    }
                });
            }
        });
        Server { port, requests }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Requests so far whose path is `path`.
    pub fn to(&self, path: &str) -> Vec<Request> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}

/// Reads one request (request line, headers, a `Content-Length` body, gzip decoded); `None` when the
/// connection closes first.
pub fn read_request(stream: &std::net::TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let (mut len, mut gzip, mut headers) = (0usize, false, Vec::new());
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 || line == "\r\n" {
            break;
        }
        headers.push(line.trim_end().to_string());
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("content-encoding:") && lower.contains("gzip") {
            gzip = true;
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .ok()?;
        body = out;
    }
    Some(Request {
        path,
        headers,
        body,
        at: Instant::now(),
    })
}
