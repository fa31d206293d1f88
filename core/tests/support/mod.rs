//! An in-test fake protocol: a user that answers each task with a canned response and records
//! it through `UserContext::record_response`, as a real protocol crate does.

#![allow(dead_code)]

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use load_density_core::context::StopHandle;
use load_density_core::scenario::Scenario;
use load_density_core::task::TaskList;
use load_density_core::variables::{UserVariables, Variables};
use load_density_core::{
    async_trait, EventBus, RequestEvent, RequestMeta, RequestTimer, Response, UserContext,
    UserTemplate,
};
use serde_json::Value;

/// A canned response.
#[derive(Debug, Clone, Default)]
pub struct FakeResponse {
    pub status: Option<u16>,
    pub status_name: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub failure: Option<String>,
}

impl FakeResponse {
    /// A 200 with this body.
    pub fn ok(body: &str) -> Self {
        Self::status(200, body)
    }

    /// A response with this status and body; 4xx and 5xx fail by the protocol's rules, as in
    /// HTTP.
    pub fn status(status: u16, body: &str) -> Self {
        Self {
            status: Some(status),
            body: body.as_bytes().to_vec(),
            failure: (status >= 400).then(|| format!("HTTP {status}")),
            ..Self::default()
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

impl Response for FakeResponse {
    fn status(&self) -> Option<u16> {
        self.status
    }
    fn status_name(&self) -> Option<&str> {
        self.status_name.as_deref()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn body(&self) -> &[u8] {
        &self.body
    }
    fn length(&self) -> u64 {
        self.body.len() as u64
    }
    fn failure(&self) -> Option<Cow<'_, str>> {
        self.failure.as_deref().map(Cow::Borrowed)
    }
}

/// What the fake user saw when it ran a task.
#[derive(Debug, Clone, PartialEq)]
pub struct Ran {
    pub index: usize,
    pub needs_body: bool,
}

/// A user answering task `i` with `responses[i]` (the last one for higher indices), after
/// `delay`.
pub struct FakeUser {
    pub responses: Vec<FakeResponse>,
    pub delay: Duration,
    pub ran: Arc<Mutex<Vec<Ran>>>,
}

impl FakeUser {
    pub fn new(responses: Vec<FakeResponse>) -> Self {
        Self {
            responses,
            delay: Duration::ZERO,
            ran: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// The indexes of the tasks run so far.
    pub fn ran_indexes(&self) -> Vec<usize> {
        self.ran
            .lock()
            .expect("ran lock")
            .iter()
            .map(|r| r.index)
            .collect()
    }
}

#[async_trait]
impl UserTemplate for FakeUser {
    async fn run_task(&mut self, index: usize, ctx: &mut UserContext) {
        self.ran.lock().expect("ran lock").push(Ran {
            index,
            needs_body: ctx.needs_body(),
        });
        let meta = RequestMeta::new("FAKE", format!("task{index}"), "fake://target");
        let timer = RequestTimer::start();
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let response = self
            .responses
            .get(index)
            .or(self.responses.last())
            .cloned()
            .unwrap_or_default();
        ctx.record_response(&meta, timer, &response);
    }
}

/// A bus whose flushed events land in a shared list.
pub struct Harness {
    pub bus: Arc<EventBus>,
    pub events: Arc<Mutex<Vec<RequestEvent>>>,
    pub stop: StopHandle,
    pub run_vars: Arc<Variables>,
}

impl Harness {
    pub fn new(run_vars: &[(&str, Value)]) -> Self {
        let bus = Arc::new(EventBus::new(1));
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        bus.add_listener(Arc::new(move |batch: &[RequestEvent]| {
            sink.lock().expect("events lock").extend_from_slice(batch)
        }));
        let run_vars = Arc::new(
            run_vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
        );
        Self {
            bus,
            events,
            stop: StopHandle::new(),
            run_vars,
        }
    }

    /// A context for one more user.
    pub fn context(&self, user_id: u64) -> UserContext {
        UserContext::new(
            user_id,
            self.bus.clone(),
            UserVariables::new(self.run_vars.clone()),
            self.stop.signal(),
        )
    }

    /// Flushes and returns every event so far (and forgets them).
    pub fn take_events(&self) -> Vec<RequestEvent> {
        self.bus.flush();
        std::mem::take(&mut *self.events.lock().expect("events lock"))
    }
}

/// Builds the scenario of a task list, panicking on errors.
pub fn scenario(tasks: &Value) -> Scenario {
    Scenario::new(&TaskList::from_json(tasks).expect("task list")).expect("valid scenario")
}

/// The error text of `Scenario::new` for an invalid task list.
pub fn plan_error(tasks: &Value) -> String {
    let list = TaskList::from_json(tasks).expect("task list shape");
    Scenario::new(&list).expect_err("invalid plan").to_string()
}

/// Runs one task with checks against one response and returns the recorded error and the
/// user's variables afterwards.
pub async fn outcome_with(
    task: Value,
    response: FakeResponse,
    run_vars: &[(&str, Value)],
) -> (Option<String>, UserVariables) {
    let harness = Harness::new(run_vars);
    let scenario = scenario(&Value::Array(vec![task]));
    let mut ctx = harness.context(0);
    let mut user = FakeUser::new(vec![response]);
    assert_eq!(scenario.run_iteration(&mut user, &mut ctx).await, 1);
    let events = harness.take_events();
    assert_eq!(events.len(), 1, "one event per request");
    (
        events[0].error.as_deref().map(str::to_owned),
        ctx.variables().clone(),
    )
}

/// The recorded error of one task against one response.
pub async fn outcome(task: Value, response: FakeResponse) -> Option<String> {
    outcome_with(task, response, &[]).await.0
}
