//! Shared test helpers: driving one `fast_http_user` directly (through the testkit harness),
//! and a scripted raw HTTP server.
#![allow(dead_code, unused_imports)] // each test file uses a different subset

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use load_density_core::{PlanError, UserFactory};
use load_density_testkit::harness::Group;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub use load_density_testkit::harness::{UserHarness as Harness, STEP};

// Name the crate so its registration is linked into this test binary.
use load_density_fast_http as _;

/// Prepares a `fast_http_user` group.
pub async fn prepare(
    tasks: Value,
    host: Option<String>,
    options: Value,
) -> Result<Arc<dyn UserFactory>, PlanError> {
    Group::new("fast_http_user", tasks)
        .maybe_host(host)
        .options(options)
        .factory()
        .await
}

/// What a scripted server does with one request.
pub struct Reply {
    /// Bytes written back (may be empty).
    pub bytes: Vec<u8>,
    /// Close the connection after writing.
    pub close: bool,
}

impl Reply {
    /// Writes `bytes` and keeps the connection.
    pub fn keep(bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            bytes: bytes.into(),
            close: false,
        }
    }

    /// Writes `bytes` and closes the connection.
    pub fn close(bytes: impl Into<Vec<u8>>) -> Self {
        Self {
            bytes: bytes.into(),
            close: true,
        }
    }
}

/// Which request a scripted reply is for.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The request head, as text.
    pub head: String,
    /// The request body (by its Content-Length).
    pub body: Vec<u8>,
    /// Connection number, from 0.
    pub connection: usize,
    /// Request number on that connection, from 0.
    pub on_connection: usize,
    /// Request number on the server, from 0.
    pub total: usize,
}

/// A raw HTTP/1.1 server on 127.0.0.1:0 that answers each request with a scripted reply, and
/// counts connections and requests.
pub struct RawServer {
    pub addr: std::net::SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RawServer {
    /// Starts a server whose replies come from `script`.
    pub async fn start(script: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(script);
        let (c, r) = (connections.clone(), requests.clone());
        let task = tokio::spawn(async move {
            let total = Arc::new(AtomicUsize::new(0));
            while let Ok((mut stream, _)) = listener.accept().await {
                let connection = c.fetch_add(1, Ordering::SeqCst);
                let (script, requests, total) = (script.clone(), r.clone(), total.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut on_connection = 0;
                    loop {
                        let Some((head, body)) = read_request(&mut stream, &mut buf).await else {
                            return;
                        };
                        let seen = Seen {
                            head,
                            body,
                            connection,
                            on_connection,
                            total: total.fetch_add(1, Ordering::SeqCst),
                        };
                        on_connection += 1;
                        requests.lock().expect("requests lock").push(seen.clone());
                        let reply = script(&seen);
                        if stream.write_all(&reply.bytes).await.is_err() {
                            return;
                        }
                        if reply.close {
                            let _ = stream.shutdown().await;
                            return;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            connections,
            requests,
            task,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.requests.lock().expect("requests lock").clone()
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request (head and a Content-Length body); `None` at end of stream.
async fn read_request(
    stream: &mut tokio::net::TcpStream,
    buf: &mut Vec<u8>,
) -> Option<(String, Vec<u8>)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let mut chunk = [0u8; 4096];
                let n = stream.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let body = buf[end + 4..end + 4 + length].to_vec();
            buf.drain(..end + 4 + length);
            return Some((head, body));
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

impl Seen {
    /// The value of header `name` (case-insensitive), if the request had it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The request line (`GET /path HTTP/1.1`).
    pub fn request_line(&self) -> &str {
        self.head.lines().next().unwrap_or_default()
    }
}

/// A 200 response with a Content-Length body.
pub fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}
