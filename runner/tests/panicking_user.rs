//! A user whose task panics: the panic is a recorded failure naming it, the user counts as
//! stopped, and the run goes on and ends normally.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use load_density::core::{
    async_trait, register_user, GroupPlan, PlanError, Protocol, RequestMeta, RequestTimer,
    Response, UserContext, UserFactory, UserTemplate,
};
use load_density::{prepare_env, StartTest};
use serde_json::json;

/// Tasks run by every `panicking_test_user`, over the whole test binary.
static RUNS: AtomicU64 = AtomicU64::new(0);

struct PanickingProtocol;

#[async_trait]
impl Protocol for PanickingProtocol {
    async fn prepare(&self, _plan: &GroupPlan) -> Result<Arc<dyn UserFactory>, PlanError> {
        Ok(Arc::new(PanickingFactory))
    }
}

struct PanickingFactory;

impl UserFactory for PanickingFactory {
    fn new_user(&self, _user_id: u64) -> Box<dyn UserTemplate> {
        Box::new(PanickingUser { calls: 0 })
    }
}

/// Records two successful requests, then panics in the middle of the third.
struct PanickingUser {
    calls: u32,
}

#[async_trait]
impl UserTemplate for PanickingUser {
    async fn run_task(&mut self, _index: usize, ctx: &mut UserContext) {
        RUNS.fetch_add(1, Ordering::SeqCst);
        self.calls += 1;
        let timer = RequestTimer::start();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(
            self.calls < 3,
            "the target answered something this user cannot handle"
        );
        let meta = RequestMeta::new("TEST", "ok", "test://");
        ctx.record_response(&meta, timer, &Answered);
    }
}

/// A response of two bytes, a success.
struct Answered;

impl Response for Answered {
    fn length(&self) -> u64 {
        2
    }
}

register_user! {
    name: "panicking_test_user",
    description: "a test user whose third task panics",
    protocol: PanickingProtocol,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_user_is_a_recorded_failure_and_counts_as_stopped() {
    let config: StartTest = serde_json::from_value(json!({
        "user_detail_dict": {"user": "panicking_test_user"},
        "user_count": 3, "spawn_rate": 100, "test_time": 3,
        "print_stats": false,
        "tasks": [{}]
    }))
    .expect("a StartTest");
    let env = prepare_env(config).await.expect("the run starts");
    // Every user panics on its third task within a second; then none is active.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while env.users_spawned() < 3 || env.user_count() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "users still active: {}",
            env.user_count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let summary = tokio::time::timeout(Duration::from_secs(20), env.wait())
        .await
        .expect("the run ends normally");
    assert_eq!(
        RUNS.load(Ordering::SeqCst),
        9,
        "three tasks per user, none after the panic"
    );
    assert_eq!(summary.totals.requests, 9);
    assert_eq!(summary.totals.failures, 3, "only the panics failed");
    let stats = env.stats();
    let panics = stats
        .entry("PANIC", "task 0")
        .expect("the panics are recorded");
    assert_eq!(panics.num_failures(), 3);
    let errors = stats.errors();
    let group = errors
        .iter()
        .find(|g| &*g.request_type == "PANIC")
        .expect("an error group for the panic");
    assert_eq!(
        &*group.message,
        "the user panicked in task 0: the target answered something this user cannot handle"
    );
    assert_eq!(group.occurrences, 3);
}
