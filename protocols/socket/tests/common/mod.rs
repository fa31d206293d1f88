//! Shared test helpers: preparing a `socket_user` group, driving one user directly, and a
//! server that captures the exact bytes it receives.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use load_density_core::context::StopHandle;
use load_density_core::variables::{UserVariables, Variables};
use load_density_core::{
    EventBus, GroupPlan, PlanError, RequestEvent, TaskList, UserContext, UserFactory, UserTemplate,
};
use serde_json::{Map, Value};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

// Name the crate so its registration is linked into this test binary.
use load_density_socket as _;

/// Upper bound for any single test step.
pub const STEP: Duration = Duration::from_secs(20);

/// Prepares a `socket_user` group.
pub async fn prepare(
    tasks: Value,
    host: Option<String>,
    options: Value,
) -> Result<Arc<dyn UserFactory>, PlanError> {
    let options: Map<String, Value> = match options {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let plan = GroupPlan::new("socket_user", TaskList::from_json(&tasks)?)
        .with_host(host)
        .with_options(options);
    let registration =
        load_density_core::registry::lookup("socket_user").expect("socket_user registered");
    registration.protocol().prepare(&plan).await
}

/// Prepares a group that must be valid.
pub async fn factory(tasks: Value) -> Arc<dyn UserFactory> {
    prepare(tasks, None, Value::Null)
        .await
        .expect("valid socket_user tasks")
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

    /// Runs task `index` once and returns its event, which must be a success.
    pub async fn ok(&mut self, index: usize) -> RequestEvent {
        let event = self.once(index).await;
        assert!(event.is_success(), "task {index} should succeed: {event:?}");
        event
    }

    /// Runs task `index` once and returns its failure reason.
    pub async fn failure(&mut self, index: usize) -> String {
        let event = self.once(index).await;
        match &event.error {
            Some(error) => error.to_string(),
            None => panic!("task {index} should fail: {event:?}"),
        }
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

/// Polls `f` until it holds, for at most [`STEP`].
pub async fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + STEP;
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
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
