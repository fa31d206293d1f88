//! Driving a protocol's users directly, without the runner, for protocol crates' tests.
//!
//! Every protocol crate tests its users the same way: build a [`GroupPlan`] from task JSON
//! (plus host and group options), prepare it through the registry as the runner does, make
//! users from the factory, give them a [`UserContext`] on an [`EventBus`] whose listener keeps
//! every [`RequestEvent`], run tasks (bounded in time) and flush the bus to read the events.
//! This module is that once.
//!
//! ```no_run
//! # async fn demo() {
//! use load_density_testkit::harness::{Group, UserHarness};
//! use serde_json::json;
//!
//! // (the protocol crate must be linked in, e.g. `use load_density_http as _;`)
//! let factory = Group::new("http_user", json!([{"method": "get", "request_url": "/"}]))
//!     .host("http://127.0.0.1:8080")
//!     .factory()
//!     .await
//!     .expect("valid tasks");
//! let mut user = UserHarness::new(&factory);
//! let event = user.once(0).await;
//! assert!(event.is_success());
//! # }
//! ```
//!
//! * [`Group`]: a plan under construction; [`Group::factory`] prepares it,
//!   [`Group::prepare_error`] expects it to be rejected, [`Group::harness`] makes one user.
//! * [`UserHarness`]: one user with its own context and event collector.
//! * [`EventRecorder`], [`run_task`], [`run_one`]: the pieces, for tests that drive several
//!   users on one bus.
//!
//! Everything here panics on failure (a timed-out task, a missing registration, an
//! unexpected event count): it is meant for tests only.

use std::sync::Arc;
use std::time::{Duration, Instant};

use load_density_core::context::StopHandle;
use load_density_core::scenario::Scenario;
use load_density_core::variables::{UserVariables, Variables};
use load_density_core::{
    registry, EventBus, GroupPlan, PlanError, RequestEvent, TaskList, UserContext, UserFactory,
    UserTemplate,
};
use parking_lot::Mutex;
use serde_json::{Map, Value};

/// Default upper bound for one test step (preparing a group, one task run, stopping a user).
pub const STEP: Duration = Duration::from_secs(20);

/// A group plan under construction: user type, task JSON, host and options.
#[derive(Debug, Clone)]
pub struct Group {
    user_type: String,
    tasks: Value,
    host: Option<String>,
    options: Map<String, Value>,
    step: Duration,
}

impl Group {
    /// A group of `user_type` users running `tasks` (the task list JSON), with no host and no
    /// options.
    pub fn new(user_type: impl Into<String>, tasks: Value) -> Self {
        Self {
            user_type: user_type.into(),
            tasks,
            host: None,
            options: Map::new(),
            step: STEP,
        }
    }

    /// Sets the group's host.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Sets (or clears) the group's host.
    pub fn maybe_host(mut self, host: Option<String>) -> Self {
        self.host = host;
        self
    }

    /// Sets the group's options; anything but a JSON object means no options.
    pub fn options(mut self, options: Value) -> Self {
        self.options = match options {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        self
    }

    /// Sets the bound for preparing the group and, in [`Group::harness`], for each step of
    /// the user (default [`STEP`]).
    pub fn step(mut self, step: Duration) -> Self {
        self.step = step;
        self
    }

    /// Prepares the group through the registry, as the runner does.
    ///
    /// # Panics
    ///
    /// If the user type is not registered (the protocol crate is not linked into the test
    /// binary) or preparing takes longer than the step bound.
    pub async fn factory(&self) -> Result<Arc<dyn UserFactory>, PlanError> {
        let plan = GroupPlan::new(self.user_type.as_str(), TaskList::from_json(&self.tasks)?)
            .with_host(self.host.clone())
            .with_options(self.options.clone());
        let registration = registry::lookup(&self.user_type).unwrap_or_else(|e| {
            panic!(
                "{} is not registered (name the protocol crate in the test): {e}",
                self.user_type
            )
        });
        match tokio::time::timeout(self.step, registration.protocol().prepare(&plan)).await {
            Ok(prepared) => prepared,
            Err(_) => panic!(
                "preparing {} took longer than {:?}",
                self.user_type, self.step
            ),
        }
    }

    /// The error preparing the group gives, as text.
    ///
    /// # Panics
    ///
    /// If the group is accepted.
    pub async fn prepare_error(&self) -> String {
        match self.factory().await {
            Ok(_) => panic!("the tasks should have been rejected: {}", self.tasks),
            Err(e) => e.to_string(),
        }
    }

    /// Prepares the group (which must be valid) and makes user 1 with `variables`, running
    /// each task with its checks applied, as the scenario would.
    ///
    /// # Panics
    ///
    /// If the group is rejected.
    pub async fn harness(&self, variables: Variables) -> UserHarness {
        let factory = self
            .factory()
            .await
            .unwrap_or_else(|e| panic!("valid {} tasks: {e}", self.user_type));
        let tasks = TaskList::from_json(&self.tasks)
            .unwrap_or_else(|e| panic!("tasks parsed for prepare parse again: {e}"));
        let scenario =
            Scenario::new(&tasks).unwrap_or_else(|e| panic!("a scenario of valid tasks: {e}"));
        UserHarness::with_variables(&factory, variables)
            .with_checks(scenario)
            .with_step(self.step)
    }
}

/// An [`EventBus`] with a listener that keeps every event, and a stop handle for the
/// contexts made on it.
#[derive(Debug)]
pub struct EventRecorder {
    bus: Arc<EventBus>,
    events: Arc<Mutex<Vec<RequestEvent>>>,
    stop: StopHandle,
}

impl EventRecorder {
    /// A recorder on a bus with one shard.
    pub fn new() -> Self {
        Self::with_shards(1)
    }

    /// A recorder on a bus with `shards` shards.
    pub fn with_shards(shards: usize) -> Self {
        let bus = Arc::new(EventBus::new(shards));
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

    /// The bus.
    pub fn bus(&self) -> &Arc<EventBus> {
        &self.bus
    }

    /// The stop handle every context made here listens to.
    pub fn stop_handle(&self) -> &StopHandle {
        &self.stop
    }

    /// A context for user `id` on this bus, with no variables.
    pub fn context(&self, id: u64) -> UserContext {
        self.context_with(id, Variables::new())
    }

    /// A context for user `id` on this bus whose run variables are `variables`.
    pub fn context_with(&self, id: u64, variables: Variables) -> UserContext {
        UserContext::new(
            id,
            self.bus.clone(),
            UserVariables::new(Arc::new(variables)),
            self.stop.signal(),
        )
    }

    /// Flushes the bus and takes every event collected so far.
    pub fn take(&self) -> Vec<RequestEvent> {
        self.bus.flush();
        std::mem::take(&mut *self.events.lock())
    }
}

impl Default for EventRecorder {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs task `index` of `user` once, bounded by [`STEP`].
///
/// # Panics
///
/// If the task run takes longer than [`STEP`].
pub async fn run_task(user: &mut dyn UserTemplate, index: usize, ctx: &mut UserContext) {
    if tokio::time::timeout(STEP, user.run_task(index, ctx))
        .await
        .is_err()
    {
        panic!("task {index} did not finish within {STEP:?}");
    }
}

/// Runs task `index` once and returns the one event it recorded on `recorder`.
///
/// # Panics
///
/// If the run times out or records other than exactly one event.
pub async fn run_one(
    user: &mut dyn UserTemplate,
    index: usize,
    ctx: &mut UserContext,
    recorder: &EventRecorder,
) -> RequestEvent {
    run_task(user, index, ctx).await;
    single(recorder.take())
}

/// The one event of a task run.
///
/// # Panics
///
/// If there is not exactly one event.
pub fn single(mut events: Vec<RequestEvent>) -> RequestEvent {
    assert_eq!(events.len(), 1, "one task run, one event: {events:?}");
    events.remove(0)
}

/// One user (id 1) of a factory, with its own context and event collector.
pub struct UserHarness {
    /// The user.
    pub user: Box<dyn UserTemplate>,
    /// The user's context.
    pub ctx: UserContext,
    recorder: EventRecorder,
    scenario: Option<Scenario>,
    step: Duration,
}

impl UserHarness {
    /// User 1 of `factory`, with no variables.
    pub fn new(factory: &Arc<dyn UserFactory>) -> Self {
        Self::with_variables(factory, Variables::new())
    }

    /// User 1 of `factory`, whose run variables are `variables`.
    pub fn with_variables(factory: &Arc<dyn UserFactory>, variables: Variables) -> Self {
        let recorder = EventRecorder::new();
        Self {
            user: factory.new_user(1),
            ctx: recorder.context_with(1, variables),
            recorder,
            scenario: None,
            step: STEP,
        }
    }

    /// Applies each task's checks (from `scenario`) around its runs, as the scenario does.
    pub fn with_checks(mut self, scenario: Scenario) -> Self {
        self.scenario = Some(scenario);
        self
    }

    /// Sets the bound for each task run and for stopping (default [`STEP`]).
    pub fn with_step(mut self, step: Duration) -> Self {
        self.step = step;
        self
    }

    /// The event recorder (bus and stop handle).
    pub fn recorder(&self) -> &EventRecorder {
        &self.recorder
    }

    /// Runs task `index` `times` times, each bounded in time.
    ///
    /// # Panics
    ///
    /// If a run times out, or checks are applied and `index` is not a task.
    pub async fn run(&mut self, index: usize, times: usize) {
        for _ in 0..times {
            let checks = self.scenario.as_ref().map(|scenario| {
                scenario
                    .checks(index)
                    .unwrap_or_else(|| panic!("no task {index}"))
                    .clone()
            });
            if let Some(checks) = &checks {
                self.ctx.begin_task(checks);
            }
            let run = tokio::time::timeout(self.step, self.user.run_task(index, &mut self.ctx));
            if run.await.is_err() {
                panic!("task {index} did not finish within {:?}", self.step);
            }
            if checks.is_some() {
                self.ctx.end_task();
            }
        }
    }

    /// Runs task `index` once and returns its one event.
    pub async fn once(&mut self, index: usize) -> RequestEvent {
        self.run(index, 1).await;
        single(self.take())
    }

    /// Runs tasks `0..count` once each, in order, and returns their events (one per task).
    pub async fn all(&mut self, count: usize) -> Vec<RequestEvent> {
        for index in 0..count {
            self.run(index, 1).await;
        }
        let events = self.take();
        assert_eq!(events.len(), count, "one event per task: {events:?}");
        events
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
        self.recorder.take()
    }

    /// Stops the user, bounded in time.
    pub async fn stop(&mut self) {
        let stop = tokio::time::timeout(self.step, self.user.on_stop(&mut self.ctx));
        if stop.await.is_err() {
            panic!("on_stop did not finish within {:?}", self.step);
        }
    }
}

/// The event's error text.
///
/// # Panics
///
/// If the event is a success.
#[track_caller]
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

/// Waits until `check` holds, polling every 10 ms for at most [`STEP`].
///
/// # Panics
///
/// If `check` does not hold within [`STEP`].
pub async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
