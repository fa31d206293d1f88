//! Shared test helpers: driving one `fast_http_user` directly, and a scripted raw HTTP server.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use load_density_core::context::StopHandle;
use load_density_core::variables::{UserVariables, Variables};
use load_density_core::{
    EventBus, GroupPlan, PlanError, RequestEvent, TaskList, UserContext, UserFactory, UserTemplate,
};
use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

// Name the crate so its registration is linked into this test binary.
use load_density_fast_http as _;

/// Upper bound for any single test step.
pub const STEP: Duration = Duration::from_secs(20);

/// Prepares a `fast_http_user` group.
pub async fn prepare(
    tasks: Value,
    host: Option<String>,
    options: Value,
) -> Result<Arc<dyn UserFactory>, PlanError> {
    let options: Map<String, Value> = match options {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let plan = GroupPlan::new("fast_http_user", TaskList::from_json(&tasks)?)
        .with_host(host)
        .with_options(options);
    let registration =
        load_density_core::registry::lookup("fast_http_user").expect("fast_http_user registered");
    registration.protocol().prepare(&plan).await
}

/// One user with its context and an event collector.
pub struct Harness {
    pub bus: Arc<EventBus>,
    pub events: Arc<Mutex<Vec<RequestEvent>>>,
    pub ctx: UserContext,
    pub user: Box<dyn UserTemplate>,
}

impl Harness {
    /// A user of `factory` with no variables.
    pub fn new(factory: &Arc<dyn UserFactory>) -> Self {
        Self::with_variables(factory, Variables::new())
    }

    /// A user of `factory` whose run variables are `variables`.
    pub fn with_variables(factory: &Arc<dyn UserFactory>, variables: Variables) -> Self {
        let bus = Arc::new(EventBus::new(1));
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        bus.add_listener(Arc::new(move |batch: &[RequestEvent]| {
            sink.lock().expect("events lock").extend_from_slice(batch)
        }));
        let ctx = UserContext::new(
            1,
            bus.clone(),
            UserVariables::new(Arc::new(variables)),
            StopHandle::new().signal(),
        );
        Self {
            bus,
            events,
            ctx,
            user: factory.new_user(1),
        }
    }

    /// Runs task `index` `times` times, bounded in time.
    pub async fn run(&mut self, index: usize, times: usize) {
        for _ in 0..times {
            tokio::time::timeout(STEP, self.user.run_task(index, &mut self.ctx))
                .await
                .expect("run_task finished in time");
        }
    }

    /// Runs task `index` once and returns its one event.
    pub async fn once(&mut self, index: usize) -> RequestEvent {
        self.run(index, 1).await;
        let mut events = self.take();
        assert_eq!(events.len(), 1, "one task run, one event: {events:?}");
        events.remove(0)
    }

    /// Flushes the bus and takes every event collected so far.
    pub fn take(&self) -> Vec<RequestEvent> {
        self.bus.flush();
        std::mem::take(&mut *self.events.lock().expect("events lock"))
    }

    /// Stops the user.
    pub async fn stop(&mut self) {
        tokio::time::timeout(STEP, self.user.on_stop(&mut self.ctx))
            .await
            .expect("on_stop finished in time");
    }
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
