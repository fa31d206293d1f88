//! The protocol conformance suite every protocol crate runs from its own tests.
//!
//! [`assert_protocol_conformance`] drives a user type through the same machinery the runner
//! uses (look the name up in the registry, build the [`GroupPlan`], `prepare`, make users, run
//! them with [`run_user`] under one [`StopHandle`], flush the [`EventBus`] periodically and at
//! the end) and checks the contract every protocol owes the runner:
//!
//! 1. the user type is registered under its name;
//! 2. every request the server counted is recorded exactly once: no request is lost when the
//!    run stops, and none is recorded twice;
//! 3. every event is well formed (request type, name and URL set; start time inside the run);
//! 4. a refused connection is a failure event whose error says `refused`, and the users keep
//!    running (each records several such failures) until they are stopped.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::sync::Arc;
//! use load_density_testkit::conformance::{assert_protocol_conformance, ConformanceCase};
//! use load_density_testkit::{unused_local_port, HttpTarget};
//! use serde_json::json;
//!
//! let target = Arc::new(HttpTarget::start().await?);
//! let counted = target.clone();
//! let refused = format!("http://127.0.0.1:{}/", unused_local_port());
//! let case = ConformanceCase::new(
//!     "fast_http_user",
//!     json!([{"method": "get", "request_url": target.url("/get")}]),
//!     move || counted.served(),
//!     json!([{"method": "get", "request_url": refused}]),
//! );
//! let report = assert_protocol_conformance(case).await;
//! assert!(report.requests() > 0);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use load_density_core::context::StopHandle;
use load_density_core::registry;
use load_density_core::scenario::{run_user, Scenario};
use load_density_core::variables::UserVariables;
use load_density_core::{
    EventBus, GroupPlan, Pacing, RequestEvent, TaskList, UserContext, UserFactory,
};
use parking_lot::Mutex;
use serde_json::{Map, Value};
use tokio::task::JoinSet;

/// How long the users of a phase may take to finish once stopped.
const STOP_BOUND: Duration = Duration::from_secs(30);
/// How long the server count may take to catch up with the recorded events (a frame written
/// by a client is counted when the server reads it).
const SETTLE_BOUND: Duration = Duration::from_secs(10);
/// How often the collector flushes the bus, as the runner does.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// One protocol's conformance case. Build it with [`ConformanceCase::new`] and adjust it with
/// the builder methods.
pub struct ConformanceCase {
    user_type: String,
    tasks: Value,
    served: Box<dyn Fn() -> u64 + Send + Sync>,
    refused_tasks: Value,
    host: Option<String>,
    options: Map<String, Value>,
    users: u64,
    duration: Duration,
    pacing: Pacing,
    refused_users: u64,
    refused_duration: Duration,
}

impl fmt::Debug for ConformanceCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConformanceCase")
            .field("user_type", &self.user_type)
            .field("tasks", &self.tasks)
            .field("refused_tasks", &self.refused_tasks)
            .field("host", &self.host)
            .field("options", &self.options)
            .field("users", &self.users)
            .field("duration", &self.duration)
            .field("pacing", &self.pacing)
            .finish_non_exhaustive()
    }
}

impl ConformanceCase {
    /// A case for `user_type`.
    ///
    /// - `tasks`: a task list (any shape core accepts) in which every task makes exactly one
    ///   request that the live server counts and that succeeds;
    /// - `served`: the server's request count (it may count from any base: the suite works on
    ///   the difference);
    /// - `refused_tasks`: a task list whose requests go to a port nothing listens on (see
    ///   [`unused_local_port`](crate::unused_local_port)).
    ///
    /// Defaults: 10 users for 2 seconds, a pause of 10 ms between iterations, no host, no
    /// options.
    pub fn new(
        user_type: impl Into<String>,
        tasks: Value,
        served: impl Fn() -> u64 + Send + Sync + 'static,
        refused_tasks: Value,
    ) -> Self {
        Self {
            user_type: user_type.into(),
            tasks,
            served: Box::new(served),
            refused_tasks,
            host: None,
            options: Map::new(),
            users: 10,
            duration: Duration::from_secs(2),
            pacing: Pacing::Constant(Duration::from_millis(10)),
            refused_users: 3,
            refused_duration: Duration::from_millis(600),
        }
    }

    /// The group's `host`, for relative URLs in either task list.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Group options (a JSON object), as `user_detail_dict` keys would give them. Every key
    /// must be one of the protocol's [`option_names`](load_density_core::Protocol::option_names).
    ///
    /// # Panics
    /// When `options` is not a JSON object.
    pub fn options(mut self, options: Value) -> Self {
        match options {
            Value::Object(map) => self.options = map,
            other => panic!("conformance options must be a JSON object, got {other}"),
        }
        self
    }

    /// Users of the counted run (default 10).
    pub fn users(mut self, users: u64) -> Self {
        self.users = users.max(1);
        self
    }

    /// How long the counted run lasts before it is stopped (default 2 s).
    pub fn duration(mut self, duration: Duration) -> Self {
        self.duration = duration;
        self
    }

    /// The wait between iterations of the counted run (default a constant 10 ms).
    pub fn pacing(mut self, pacing: Pacing) -> Self {
        self.pacing = pacing;
        self
    }
}

/// What a conformance run measured, for further checks by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConformanceReport {
    requests: u64,
    served: u64,
    refused_failures: u64,
}

impl ConformanceReport {
    /// Events recorded by the counted run (all successes).
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Requests the server counted during the counted run (equal to [`requests`](Self::requests)).
    pub fn served(&self) -> u64 {
        self.served
    }

    /// Failure events recorded by the refused run.
    pub fn refused_failures(&self) -> u64 {
        self.refused_failures
    }
}

/// Collects every flushed event.
#[derive(Default)]
struct Collector(Mutex<Vec<RequestEvent>>);

impl Collector {
    fn attach(bus: &EventBus) -> Arc<Self> {
        let collector = Arc::new(Self::default());
        let sink = collector.clone();
        bus.add_listener(Arc::new(move |events: &[RequestEvent]| {
            sink.0.lock().extend_from_slice(events)
        }));
        collector
    }

    fn take(&self) -> Vec<RequestEvent> {
        std::mem::take(&mut *self.0.lock())
    }
}

fn shards() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()) + 1
}

/// Looks the user type up and prepares a group with `tasks`, as the runner does.
async fn prepare(
    case: &ConformanceCase,
    tasks: &Value,
    what: &str,
) -> (Arc<dyn UserFactory>, Arc<Scenario>) {
    let user_type = case.user_type.as_str();
    let registration = registry::lookup(user_type)
        .unwrap_or_else(|e| panic!("conformance: {user_type:?} is not registered: {e}"));
    assert_eq!(
        registration.name(),
        user_type,
        "conformance: the registry returned another user type"
    );
    let protocol = registration.protocol();
    for key in case.options.keys() {
        assert!(
            protocol.option_names().contains(&key.as_str()),
            "conformance: option {key:?} is not one of {user_type}'s option_names {:?}; the runner would reject it",
            protocol.option_names()
        );
    }
    let list = TaskList::from_json(tasks)
        .unwrap_or_else(|e| panic!("conformance: the {what} tasks do not parse: {e}"));
    assert!(
        !list.is_empty(),
        "conformance: the {what} task list is empty"
    );
    let scenario = Scenario::new(&list)
        .unwrap_or_else(|e| panic!("conformance: the {what} scenario is invalid: {e}"));
    let plan = GroupPlan::new(user_type, list)
        .with_name(format!("conformance-{what}"))
        .with_host(case.host.clone())
        .with_options(case.options.clone());
    let factory = protocol
        .prepare(&plan)
        .await
        .unwrap_or_else(|e| panic!("conformance: {user_type} rejected the {what} tasks: {e}"));
    (factory, Arc::new(scenario))
}

/// Spawns users, lets them run for `duration`, stops them and waits (bounded) for them to end.
/// Panics when a user task panics or does not end in time.
async fn run_users(
    factory: &Arc<dyn UserFactory>,
    scenario: &Arc<Scenario>,
    pacing: Pacing,
    buses: &[Arc<EventBus>],
    duration: Duration,
    user_type: &str,
) {
    let stop = StopHandle::new();
    let flushing = Arc::new(AtomicBool::new(true));
    let flusher = {
        let buses = buses.to_vec();
        let flushing = flushing.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            while flushing.load(Ordering::Relaxed) {
                tick.tick().await;
                for bus in &buses {
                    bus.flush();
                }
            }
        })
    };
    let mut users = JoinSet::new();
    for (user_id, bus) in (0u64..).zip(buses) {
        let ctx = UserContext::new(
            user_id,
            bus.clone(),
            UserVariables::new(Arc::default()),
            stop.signal(),
        );
        let user = factory.new_user(user_id);
        users.spawn(run_user(user, ctx, scenario.clone(), pacing));
    }
    tokio::time::sleep(duration).await;
    stop.stop();
    let joined = tokio::time::timeout(STOP_BOUND, async {
        while let Some(result) = users.join_next().await {
            if let Err(e) = result {
                panic!("conformance: a {user_type} user task ended abnormally: {e}");
            }
        }
    })
    .await;
    flushing.store(false, Ordering::Relaxed);
    flusher.abort();
    assert!(
        joined.is_ok(),
        "conformance: {user_type} users did not stop within {STOP_BOUND:?} of the stop signal"
    );
    for bus in buses {
        bus.flush();
        assert_eq!(
            bus.pending(),
            0,
            "conformance: events left in the bus after the final flush"
        );
    }
}

fn check_event_shape(
    event: &RequestEvent,
    started: SystemTime,
    ended: SystemTime,
    user_type: &str,
) {
    assert!(
        !event.request_type.is_empty() && !event.name.is_empty() && !event.url.is_empty(),
        "conformance: a {user_type} event lacks its request type, name or URL: {event:?}"
    );
    let slack = Duration::from_secs(1);
    assert!(
        event.start_time + slack >= started && event.start_time <= ended + slack,
        "conformance: a {user_type} event's start_time is not wall-clock time inside the run: {event:?}"
    );
}

/// Runs the conformance suite for one case and panics, with a message naming the broken rule,
/// when the protocol breaks it. See the [module docs](self) for what is checked.
///
/// Must run inside a Tokio runtime (a multi-thread one exercises the sharded event bus the
/// way the runner does).
pub async fn assert_protocol_conformance(case: ConformanceCase) -> ConformanceReport {
    let user_type = case.user_type.clone();

    // 1 + 2 + 3: the counted run, with one shared bus as in the runner.
    let (factory, scenario) = prepare(&case, &case.tasks, "counted").await;
    let bus = Arc::new(EventBus::new(shards()));
    let collector = Collector::attach(&bus);
    let served_before = (case.served)();
    let started = SystemTime::now();
    let buses: Vec<Arc<EventBus>> = (0..case.users).map(|_| bus.clone()).collect();
    run_users(
        &factory,
        &scenario,
        case.pacing,
        &buses,
        case.duration,
        &user_type,
    )
    .await;
    let ended = SystemTime::now();
    let events = collector.take();
    let failures: Vec<&RequestEvent> = events.iter().filter(|e| !e.is_success()).collect();
    assert!(
        failures.is_empty(),
        "conformance: the counted {user_type} run must succeed, but {} of {} events failed; first: {:?}",
        failures.len(),
        events.len(),
        failures.first()
    );
    let requests = events.len() as u64;
    assert!(
        requests >= case.users,
        "conformance: {} users recorded only {requests} requests in {:?}",
        case.users,
        case.duration
    );
    for event in &events {
        check_event_shape(event, started, ended, &user_type);
    }
    // The server may still be reading the last requests written before the stop.
    let deadline = Instant::now() + SETTLE_BOUND;
    let mut served = (case.served)().saturating_sub(served_before);
    while served < requests && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        served = (case.served)().saturating_sub(served_before);
    }
    // Nothing more may arrive after the users have stopped.
    tokio::time::sleep(Duration::from_millis(100)).await;
    served = (case.served)().saturating_sub(served_before);
    assert_eq!(
        served, requests,
        "conformance: the server counted {served} {user_type} requests but {requests} events were recorded (each request must be recorded exactly once, including those in flight at stop)"
    );

    // 4: refused connections are failures that say so, and the users go on.
    let (factory, scenario) = prepare(&case, &case.refused_tasks, "refused").await;
    let buses: Vec<Arc<EventBus>> = (0..case.refused_users)
        .map(|_| Arc::new(EventBus::new(shards())))
        .collect();
    let collectors: Vec<Arc<Collector>> = buses.iter().map(|b| Collector::attach(b)).collect();
    let started = SystemTime::now();
    run_users(
        &factory,
        &scenario,
        Pacing::Constant(Duration::from_millis(20)),
        &buses,
        case.refused_duration,
        &user_type,
    )
    .await;
    let ended = SystemTime::now();
    let mut refused_failures = 0;
    for (user, collector) in collectors.iter().enumerate() {
        let events = collector.take();
        assert!(
            events.len() >= 2,
            "conformance: {user_type} user {user} recorded {} events against a refused port in {:?}; it must record a failure and keep running",
            events.len(),
            case.refused_duration
        );
        for event in &events {
            check_event_shape(event, started, ended, &user_type);
            let error = event.error.as_deref().unwrap_or_else(|| {
                panic!("conformance: a {user_type} request to a refused port was recorded as a success: {event:?}")
            });
            assert!(
                error.to_ascii_lowercase().contains("refused"),
                "conformance: a {user_type} refused connection must say \"refused\", got {error:?}"
            );
            assert_eq!(
                event.status, None,
                "conformance: a {user_type} refused connection has no status: {event:?}"
            );
        }
        refused_failures += events.len() as u64;
    }

    ConformanceReport {
        requests,
        served,
        refused_failures,
    }
}

/// Checks that an HTTP user type (`fast_http_user`, `http_user`) runs a task list written as
/// for the Python LoadDensity (spec §2.1) unchanged, with the Python version's meaning:
/// integers for the booleans `allow_redirects` and `verify`, query parameters as a list of
/// pairs, an empty `name` (used only when not empty), the method in any case, `auth` with its
/// type in upper case, a timeout as a number or a duration. Panics on the first difference.
pub async fn assert_python_http_task_list_runs_unchanged(user_type: &str) {
    let target = crate::HttpTarget::start().await.expect("testkit target");
    let tasks = serde_json::json!([
        {"method": "GET", "request_url": target.url("/get"), "params": [["a", "1"], ["b", "2"]],
         "allow_redirects": 1, "verify": 0, "timeout": 10, "name": ""},
        {"method": "post", "url": target.url("/post"), "json": {"hello": "world"},
         "headers": {"X-Test": "1"}, "auth": {"type": "BASIC", "username": "u", "password": "p"},
         "timeout": "10s"},
        {"method": "get", "request_url": target.url("/redirect/1"), "allow_redirects": 0,
         "assertions": [{"type": "status_code", "value": 302}]}
    ]);
    let mut h = crate::harness::Group::new(user_type, tasks)
        .harness(load_density_core::variables::Variables::default())
        .await;
    let get = h.ok(0).await;
    assert_eq!(&*get.name, "/get?a=1&b=2", "an empty name is not used");
    let post = h.ok(1).await;
    assert_eq!(&*post.request_type, "POST");
    let redirect = h.ok(2).await;
    assert_eq!(redirect.status, Some(302), "allow_redirects 0 is false");
    h.stop().await;
}
