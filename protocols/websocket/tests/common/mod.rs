//! Shared test helpers: preparing a `websocket_user` group and driving one user directly.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use load_density_core::context::StopHandle;
use load_density_core::variables::{UserVariables, Variables};
use load_density_core::{
    EventBus, GroupPlan, PlanError, RequestEvent, TaskList, UserContext, UserFactory, UserTemplate,
};
use serde_json::{Map, Value};

// Name the crate so its registration is linked into this test binary.
use load_density_websocket as _;

/// Upper bound for any single test step.
pub const STEP: Duration = Duration::from_secs(20);

/// Prepares a `websocket_user` group.
pub async fn prepare(
    tasks: Value,
    host: Option<String>,
    options: Value,
) -> Result<Arc<dyn UserFactory>, PlanError> {
    let options: Map<String, Value> = match options {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let plan = GroupPlan::new("websocket_user", TaskList::from_json(&tasks)?)
        .with_host(host)
        .with_options(options);
    let registration =
        load_density_core::registry::lookup("websocket_user").expect("websocket_user registered");
    registration.protocol().prepare(&plan).await
}

/// Prepares a group that must be valid.
pub async fn factory(tasks: Value, host: Option<String>) -> Arc<dyn UserFactory> {
    prepare(tasks, host, Value::Null)
        .await
        .expect("valid websocket tasks")
}

/// The error `prepare` gives for invalid tasks, as text.
pub async fn plan_error(tasks: Value) -> String {
    match prepare(tasks, None, Value::Null).await {
        Ok(_) => panic!("the tasks should have been rejected"),
        Err(e) => e.to_string(),
    }
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

    /// Runs task `index` once, bounded in time.
    pub async fn run(&mut self, index: usize) {
        tokio::time::timeout(STEP, self.user.run_task(index, &mut self.ctx))
            .await
            .expect("run_task finished in time");
    }

    /// Runs task `index` once and returns its one event.
    pub async fn once(&mut self, index: usize) -> RequestEvent {
        self.run(index).await;
        let mut events = self.take();
        assert_eq!(events.len(), 1, "one task run, one event: {events:?}");
        events.remove(0)
    }

    /// Runs every task in order once and returns their events.
    pub async fn all(&mut self, count: usize) -> Vec<RequestEvent> {
        for index in 0..count {
            self.run(index).await;
        }
        let events = self.take();
        assert_eq!(events.len(), count, "one event per task: {events:?}");
        events
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

/// The event's error text (panics on a success).
pub fn error_of(event: &RequestEvent) -> &str {
    event
        .error
        .as_deref()
        .unwrap_or_else(|| panic!("expected a failure, got a success: {event:?}"))
}

/// Asserts the event is a success.
pub fn assert_success(event: &RequestEvent) {
    assert!(event.error.is_none(), "expected a success: {event:?}");
}

/// Waits until `check` holds (bounded).
pub async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
