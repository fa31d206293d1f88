//! The conformance suite itself: it passes a protocol that keeps the contract and catches the
//! ones that break it (lost events at stop, silent refusals, a missing registration).
//!
//! The protocols here are toys: a "request" to the counted server bumps a counter after a short
//! wait (so users are in flight when the run stops), and a request to a port really connects
//! over TCP.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use load_density_core::{
    async_trait, register_user, GroupPlan, Pacing, PlanError, Protocol, RequestMeta, RequestTimer,
    Response, UserContext, UserFactory, UserTemplate,
};
use load_density_testkit::conformance::{assert_protocol_conformance, ConformanceCase};
use load_density_testkit::unused_local_port;
use serde_json::{json, Map, Value};

/// How a toy protocol misbehaves.
#[derive(Clone, Copy, PartialEq)]
enum Flaw {
    None,
    /// Drops the event of a request that finishes after stop was asked.
    LosesEventsAtStop,
    /// Reports a refused connection with an unhelpful text.
    VagueRefusal,
    /// Records every counted request twice.
    RecordsTwice,
    /// Records every counted request as a failure.
    FailsEverything,
}

struct Done;

impl Response for Done {
    fn length(&self) -> u64 {
        1
    }
}

struct ToyProtocol {
    flaw: Flaw,
    served: &'static AtomicU64,
}

static GOOD_SERVED: AtomicU64 = AtomicU64::new(0);
static LOSSY_SERVED: AtomicU64 = AtomicU64::new(0);
static VAGUE_SERVED: AtomicU64 = AtomicU64::new(0);
static TWICE_SERVED: AtomicU64 = AtomicU64::new(0);
static FAILING_SERVED: AtomicU64 = AtomicU64::new(0);

register_user! {
    name: "conformance_good_user",
    description: "toy protocol that keeps the contract",
    protocol: ToyProtocol { flaw: Flaw::None, served: &GOOD_SERVED },
}
register_user! {
    name: "conformance_lossy_user",
    description: "toy protocol that loses events at stop",
    protocol: ToyProtocol { flaw: Flaw::LosesEventsAtStop, served: &LOSSY_SERVED },
}
register_user! {
    name: "conformance_vague_user",
    description: "toy protocol whose refusals do not say so",
    protocol: ToyProtocol { flaw: Flaw::VagueRefusal, served: &VAGUE_SERVED },
}
register_user! {
    name: "conformance_twice_user",
    description: "toy protocol that records requests twice",
    protocol: ToyProtocol { flaw: Flaw::RecordsTwice, served: &TWICE_SERVED },
}
register_user! {
    name: "conformance_failing_user",
    description: "toy protocol whose requests all fail",
    protocol: ToyProtocol { flaw: Flaw::FailsEverything, served: &FAILING_SERVED },
}

#[async_trait]
impl Protocol for ToyProtocol {
    async fn prepare(&self, plan: &GroupPlan) -> Result<Arc<dyn UserFactory>, PlanError> {
        let tasks = plan.tasks().compile::<Map<String, Value>>()?;
        Ok(Arc::new(ToyFactory {
            flaw: self.flaw,
            served: self.served,
            ports: tasks
                .iter()
                .map(|t| t.get("port").and_then(Value::as_u64).map(|p| p as u16))
                .collect(),
        }))
    }
}

struct ToyFactory {
    flaw: Flaw,
    served: &'static AtomicU64,
    ports: Vec<Option<u16>>,
}

impl UserFactory for ToyFactory {
    fn new_user(&self, _user_id: u64) -> Box<dyn UserTemplate> {
        Box::new(ToyUser {
            flaw: self.flaw,
            served: self.served,
            ports: self.ports.clone(),
        })
    }
}

struct ToyUser {
    flaw: Flaw,
    served: &'static AtomicU64,
    ports: Vec<Option<u16>>,
}

#[async_trait]
impl UserTemplate for ToyUser {
    async fn run_task(&mut self, index: usize, ctx: &mut UserContext) {
        let timer = RequestTimer::start();
        match self.ports[index] {
            None => {
                let meta = RequestMeta::new("TOY", "count", "toy://counter");
                tokio::time::sleep(Duration::from_millis(20)).await;
                self.served.fetch_add(1, Ordering::SeqCst);
                match self.flaw {
                    Flaw::LosesEventsAtStop if ctx.is_stopping() => {}
                    Flaw::FailsEverything => ctx.record_failure(&meta, timer, None, 0, "broken"),
                    Flaw::RecordsTwice => {
                        ctx.record_response(&meta, timer, &Done);
                        ctx.record_response(&meta, timer, &Done);
                    }
                    _ => ctx.record_response(&meta, timer, &Done),
                }
            }
            Some(port) => {
                let meta = RequestMeta::new("TOY", "connect", format!("toy://127.0.0.1:{port}"));
                match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                    Ok(_) => ctx.record_failure(&meta, timer, None, 0, "unexpectedly connected"),
                    Err(_) if self.flaw == Flaw::VagueRefusal => {
                        ctx.record_failure(&meta, timer, None, 0, "something went wrong")
                    }
                    Err(e) => ctx.record_failure(&meta, timer, None, 0, format!("connection {e}")),
                }
            }
        }
    }
}

fn case(user_type: &str, served: &'static AtomicU64) -> ConformanceCase {
    ConformanceCase::new(
        user_type,
        json!([{}]),
        move || served.load(Ordering::SeqCst),
        json!([{"port": unused_local_port()}]),
    )
    .users(10)
    .duration(Duration::from_millis(500))
    .pacing(Pacing::None)
}

/// Runs the suite in its own task and returns its panic message, if it panicked.
async fn failure_of(case: ConformanceCase) -> Option<String> {
    match tokio::spawn(assert_protocol_conformance(case)).await {
        Ok(_) => None,
        Err(e) => {
            let panic = e.into_panic();
            Some(
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default(),
            )
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_that_keeps_the_contract_passes() {
    let report = assert_protocol_conformance(case("conformance_good_user", &GOOD_SERVED)).await;
    assert!(report.requests() >= 10, "{report:?}");
    assert_eq!(report.requests(), report.served());
    // 3 users for 0.6 s, at least 2 failures each.
    assert!(report.refused_failures() >= 6, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_events_in_flight_at_stop_fails() {
    let message = failure_of(case("conformance_lossy_user", &LOSSY_SERVED))
        .await
        .expect("lost events must fail the suite");
    assert!(message.contains("exactly once"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_twice_fails() {
    let message = failure_of(case("conformance_twice_user", &TWICE_SERVED))
        .await
        .expect("double events must fail the suite");
    assert!(message.contains("exactly once"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_must_say_refused() {
    let message = failure_of(case("conformance_vague_user", &VAGUE_SERVED))
        .await
        .expect("a vague refusal must fail the suite");
    assert!(message.contains("must say \"refused\""), "{message}");
    assert!(message.contains("something went wrong"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counted_run_must_succeed() {
    let message = failure_of(case("conformance_failing_user", &FAILING_SERVED))
        .await
        .expect("failed events in the counted run must fail the suite");
    assert!(message.contains("must succeed"), "{message}");
    assert!(message.contains("broken"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unregistered_user_type_fails() {
    let message = failure_of(case("conformance_missing_user", &GOOD_SERVED))
        .await
        .expect("an unknown name must fail the suite");
    assert!(message.contains("is not registered"), "{message}");
    assert!(
        message.contains("conformance_good_user"),
        "known names listed: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_options_fail_like_in_the_runner() {
    let message =
        failure_of(case("conformance_good_user", &GOOD_SERVED).options(json!({"timeout": 1})))
            .await
            .expect("an option the protocol does not declare must fail the suite");
    assert!(message.contains("option_names"), "{message}");
}
