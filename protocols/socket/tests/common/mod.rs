//! Shared test helpers: preparing a `socket_user` group, driving one user directly (through
//! the testkit harness), and a server that captures the exact bytes it receives.
#![allow(dead_code, unused_imports)] // each test file uses a different subset

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use load_density_core::{PlanError, UserFactory};
use load_density_testkit::harness::Group;
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

pub use load_density_testkit::harness::{wait_for as eventually, UserHarness as Harness, STEP};

// Name the crate so its registration is linked into this test binary.
use load_density_socket as _;

/// Prepares a `socket_user` group.
pub async fn prepare(
    tasks: Value,
    host: Option<String>,
    options: Value,
) -> Result<Arc<dyn UserFactory>, PlanError> {
    Group::new("socket_user", tasks)
        .maybe_host(host)
        .options(options)
        .factory()
        .await
}

/// Prepares a group that must be valid.
pub async fn factory(tasks: Value) -> Arc<dyn UserFactory> {
    prepare(tasks, None, Value::Null)
        .await
        .expect("valid socket_user tasks")
}

/// A TCP server on 127.0.0.1:0 that reads each connection to its end and keeps the bytes,
/// one entry per connection. It never writes.
pub struct CaptureServer {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl CaptureServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let mut bytes = Vec::new();
                    let _ = stream.read_to_end(&mut bytes).await;
                    sink.lock().expect("capture lock").push(bytes);
                });
            }
        });
        Self {
            addr,
            received,
            task,
        }
    }

    /// Waits until `n` connections have ended and returns their bytes.
    pub async fn connections(&self, n: usize) -> Vec<Vec<u8>> {
        eventually("captured connections", || {
            self.received.lock().expect("capture lock").len() >= n
        })
        .await;
        self.received.lock().expect("capture lock").clone()
    }
}

impl Drop for CaptureServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
