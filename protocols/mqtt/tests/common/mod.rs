//! Shared helpers: prepare an `mqtt_user` group and drive its users without the runner
//! (through the testkit harness).

#![allow(dead_code, unused_imports)] // each test file uses a different subset

use std::sync::Arc;
use std::time::Duration;

use load_density_core::{PlanError, RequestEvent, UserContext, UserFactory, UserTemplate};
use load_density_testkit::harness::{single, Group};
use serde_json::{Map, Value};

pub use load_density_testkit::harness::{run_task as run, EventRecorder};

// Name the crate so its registration is linked in.
use load_density_mqtt as _;

/// Prepares `tasks` for `mqtt_user` through the registry, as the runner does.
pub async fn prepare(
    tasks: Value,
    host: Option<String>,
    options: Map<String, Value>,
) -> Result<Arc<dyn UserFactory>, PlanError> {
    Group::new("mqtt_user", tasks)
        .maybe_host(host)
        .options(Value::Object(options))
        .factory()
        .await
}

/// An event recorder on a bus with two shards.
pub fn recorder() -> EventRecorder {
    EventRecorder::with_shards(2)
}

/// Runs task `index` once and returns the one `MQTT` event it recorded (ignoring `MQTT_RECV`
/// events).
pub async fn run_one(
    user: &mut dyn UserTemplate,
    index: usize,
    ctx: &mut UserContext,
    recorder: &EventRecorder,
) -> RequestEvent {
    run(user, index, ctx).await;
    single(
        recorder
            .take()
            .into_iter()
            .filter(|e| &*e.request_type == "MQTT")
            .collect(),
    )
}

/// Asserts that `event` is a success and returns it.
pub fn ok(event: RequestEvent) -> RequestEvent {
    assert!(event.is_success(), "expected a success: {event:?}");
    event
}

/// The failure text of `event`.
pub fn failure(event: &RequestEvent) -> String {
    event
        .error
        .as_deref()
        .unwrap_or_else(|| panic!("expected a failure: {event:?}"))
        .to_owned()
}

/// A group options map.
pub fn options(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// A unique topic prefix for one test (brokers are shared by nothing, but retained messages
/// and wildcards stay readable).
pub fn topic(test: &str) -> String {
    format!("ld-test/{test}/{:08x}", rand_suffix())
}

fn rand_suffix() -> u32 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

/// A TCP proxy on `127.0.0.1:0` in front of a broker that holds every chunk the broker sends
/// for a fixed delay before passing it on (what the client sends goes through at once): a
/// broker that delivers late. Connections end with either side; dropping the proxy closes
/// every connection.
pub struct DelayProxy {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl DelayProxy {
    /// Starts a proxy to `upstream` (`host:port`) that delays the broker's bytes by `delay`.
    pub async fn start(upstream: String, delay: Duration) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                connections.spawn(delay_pipe(client, upstream.clone(), delay));
            }
        });
        Ok(Self { addr, task })
    }

    /// The broker address for tasks: `127.0.0.1:<port>`.
    pub fn broker(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn delay_pipe(client: tokio::net::TcpStream, upstream: String, delay: Duration) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = async move {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    };
    // Each chunk is due `delay` after it was read, so chunks are delayed, not serialised.
    let (chunks, mut due) = tokio::sync::mpsc::unbounded_channel();
    let read_down = async move {
        let mut buffer = vec![0u8; 16 * 1024];
        while let Ok(n @ 1..) = server_read.read(&mut buffer).await {
            let at = tokio::time::Instant::now() + delay;
            if chunks.send((at, buffer[..n].to_vec())).is_err() {
                break;
            }
        }
    };
    let write_down = async move {
        while let Some((at, chunk)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            if client_write.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(up, read_down, write_down);
}
