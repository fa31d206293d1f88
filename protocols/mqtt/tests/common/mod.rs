//! Shared helpers: prepare an `mqtt_user` group and drive its users without the runner.

#![allow(dead_code)] // each test file uses a different subset

use std::sync::Arc;
use std::time::Duration;

use load_density_core::context::StopHandle;
use load_density_core::variables::UserVariables;
use load_density_core::{
    registry, EventBus, GroupPlan, PlanError, RequestEvent, TaskList, UserContext, UserFactory,
    UserTemplate,
};
use parking_lot::Mutex;
use serde_json::{Map, Value};

// Name the crate so its registration is linked in.
use load_density_mqtt as _;

/// Upper bound for one task run in a test (every task also has its own timeout).
pub const TASK_LIMIT: Duration = Duration::from_secs(20);

/// Prepares `tasks` for `mqtt_user` through the registry, as the runner does.
pub async fn prepare(
    tasks: Value,
    host: Option<String>,
    options: Map<String, Value>,
) -> Result<Arc<dyn UserFactory>, PlanError> {
    let plan = GroupPlan::new("mqtt_user", TaskList::from_json(&tasks)?)
        .with_host(host)
        .with_options(options);
    registry::lookup("mqtt_user")
        .expect("mqtt_user is registered")
        .protocol()
        .prepare(&plan)
        .await
}

/// A bus with a listener that keeps every event.
pub struct Recorder {
    pub bus: Arc<EventBus>,
    events: Arc<Mutex<Vec<RequestEvent>>>,
    pub stop: StopHandle,
}

impl Recorder {
    pub fn new() -> Self {
        let bus = Arc::new(EventBus::new(2));
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        bus.add_listener(Arc::new(move |batch: &[RequestEvent]| {
            sink.lock().extend_from_slice(batch)
        }));
        Self {
            bus,
            events,
            stop: StopHandle::new(),
        }
    }

    /// A context for user `id` on this bus.
    pub fn context(&self, id: u64) -> UserContext {
        UserContext::new(
            id,
            self.bus.clone(),
            UserVariables::default(),
            self.stop.signal(),
        )
    }

    /// Flushes the bus and takes every event seen so far.
    pub fn take(&self) -> Vec<RequestEvent> {
        self.bus.flush();
        std::mem::take(&mut *self.events.lock())
    }
}

/// Runs task `index` once, bounded by [`TASK_LIMIT`].
pub async fn run(user: &mut dyn UserTemplate, index: usize, ctx: &mut UserContext) {
    tokio::time::timeout(TASK_LIMIT, user.run_task(index, ctx))
        .await
        .expect("a task run finishes within the test limit");
}

/// Runs task `index` once and returns the one `MQTT` event it recorded (ignoring `MQTT_RECV`
/// events).
pub async fn run_one(
    user: &mut dyn UserTemplate,
    index: usize,
    ctx: &mut UserContext,
    recorder: &Recorder,
) -> RequestEvent {
    run(user, index, ctx).await;
    let mut events: Vec<RequestEvent> = recorder
        .take()
        .into_iter()
        .filter(|e| &*e.request_type == "MQTT")
        .collect();
    assert_eq!(events.len(), 1, "one MQTT event per task run: {events:?}");
    events.remove(0)
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
