//! Shared test helpers: preparing a `grpc_user` group and driving one user directly, with the
//! task's checks applied as the scenario would.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use load_density_core::context::StopHandle;
use load_density_core::scenario::Scenario;
use load_density_core::variables::{UserVariables, Variables};
use load_density_core::{
    EventBus, GroupPlan, PlanError, RequestEvent, TaskList, UserContext, UserFactory, UserTemplate,
};
use serde_json::{json, Map, Value};

// Name the crate so its registration is linked into this test binary.
use load_density_grpc as _;

/// Upper bound for any single test step.
pub const STEP: Duration = Duration::from_secs(30);

/// Group options that compile the testkit's `loadtest.proto`.
pub fn proto_options() -> Value {
    json!({
        "proto_files": [load_density_testkit::grpc::loadtest_proto().display().to_string()],
        "import_paths": [load_density_testkit::grpc::loadtest_proto_dir().display().to_string()],
    })
}

/// Merges two JSON objects (`extra` wins).
pub fn merge(base: Value, extra: Value) -> Value {
    let mut map = match base {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    if let Value::Object(extra) = extra {
        map.extend(extra);
    }
    Value::Object(map)
}

/// Prepares a `grpc_user` group.
pub async fn prepare(
    tasks: &Value,
    host: Option<String>,
    options: Value,
) -> Result<Arc<dyn UserFactory>, PlanError> {
    let options: Map<String, Value> = match options {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    let plan = GroupPlan::new("grpc_user", TaskList::from_json(tasks)?)
        .with_host(host)
        .with_options(options);
    let registration =
        load_density_core::registry::lookup("grpc_user").expect("grpc_user registered");
    tokio::time::timeout(STEP, registration.protocol().prepare(&plan))
        .await
        .expect("prepare finished in time")
}

/// The error `prepare` gives, as text.
pub async fn plan_error(tasks: Value, options: Value) -> String {
    match prepare(&tasks, None, options).await {
        Ok(_) => panic!("the tasks should have been rejected: {tasks}"),
        Err(e) => e.to_string(),
    }
}

/// One user with its context, the group's scenario (for the tasks' checks) and an event
/// collector.
pub struct Harness {
    pub bus: Arc<EventBus>,
    pub events: Arc<Mutex<Vec<RequestEvent>>>,
    pub ctx: UserContext,
    pub user: Box<dyn UserTemplate>,
    pub scenario: Scenario,
}

impl Harness {
    /// Prepares `tasks` with `options` and makes one user.
    pub async fn new(tasks: Value, options: Value) -> Self {
        Self::with_variables(tasks, options, Variables::new()).await
    }

    /// Same, with run variables.
    pub async fn with_variables(tasks: Value, options: Value, variables: Variables) -> Self {
        let factory = prepare(&tasks, None, options)
            .await
            .unwrap_or_else(|e| panic!("valid grpc tasks: {e}"));
        let scenario =
            Scenario::new(&TaskList::from_json(&tasks).expect("tasks")).expect("scenario");
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
            scenario,
        }
    }

    /// Runs task `index` once (with its checks), bounded in time.
    pub async fn run(&mut self, index: usize) {
        let checks = self.scenario.checks(index).expect("task index").clone();
        self.ctx.begin_task(&checks);
        tokio::time::timeout(STEP, self.user.run_task(index, &mut self.ctx))
            .await
            .expect("run_task finished in time");
        self.ctx.end_task();
    }

    /// Runs task `index` once and returns its one event.
    pub async fn once(&mut self, index: usize) -> RequestEvent {
        self.run(index).await;
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

/// The event's error text (panics on a success).
pub fn error_of(event: &RequestEvent) -> &str {
    event
        .error
        .as_deref()
        .unwrap_or_else(|| panic!("expected a failure, got a success: {event:?}"))
}

/// Asserts the event is a success.
#[track_caller]
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
