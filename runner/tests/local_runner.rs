//! The local runner against an in-test protocol: spawning, run length, stop, validation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use load_density::core::{
    async_trait, register_user, test_record_instance, GroupPlan, PlanError, Protocol, RequestMeta,
    RequestTimer, Response, UserContext, UserFactory, UserTemplate,
};
use load_density::{create_env, prepare_env, RunError, RunState, StartTest};
use serde_json::json;

/// Counts every request it makes, so tests can compare with what was recorded.
static MADE: AtomicU64 = AtomicU64::new(0);

struct TickProtocol;
struct TickFactory {
    name: Arc<str>,
    request_type: Arc<str>,
}
struct TickUser {
    meta: RequestMeta,
}
struct Ok200;
impl Response for Ok200 {
    fn status(&self) -> Option<u16> {
        Some(200)
    }
    fn length(&self) -> u64 {
        1
    }
}

#[async_trait]
impl Protocol for TickProtocol {
    async fn prepare(&self, plan: &GroupPlan) -> Result<Arc<dyn UserFactory>, PlanError> {
        let name = plan
            .options()
            .get("label")
            .and_then(|v| v.as_str())
            .unwrap_or("tick");
        Ok(Arc::new(TickFactory {
            name: Arc::from(name),
            request_type: Arc::from(
                plan.user_type()
                    .trim_end_matches("_test_user")
                    .to_uppercase(),
            ),
        }))
    }
    fn option_names(&self) -> &'static [&'static str] {
        &["label"]
    }
}

impl UserFactory for TickFactory {
    fn new_user(&self, _user_id: u64) -> Box<dyn UserTemplate> {
        Box::new(TickUser {
            meta: RequestMeta::new(self.request_type.clone(), self.name.clone(), "tick://"),
        })
    }
}

#[async_trait]
impl UserTemplate for TickUser {
    async fn run_task(&mut self, _index: usize, ctx: &mut UserContext) {
        let timer = RequestTimer::start();
        tokio::time::sleep(Duration::from_millis(20)).await;
        MADE.fetch_add(1, Ordering::Relaxed);
        ctx.record_response(&self.meta, timer, &Ok200);
    }
}

register_user! {
    name: "tick_test_user",
    description: "sleeps 20 ms per task and records a success",
    protocol: TickProtocol,
}

register_user! {
    name: "tock_test_user",
    description: "the same as tick_test_user, recorded as TOCK",
    protocol: TickProtocol,
}

fn config(label: &str, users: u64, rate: f64, time: Option<f64>) -> StartTest {
    serde_json::from_value(json!({
        "user_detail_dict": {"user": "tick_test_user", "label": label},
        "user_count": users,
        "spawn_rate": rate,
        "test_time": time,
        "print_stats": false,
        "tasks": [{}],
    }))
    .expect("valid config")
}

fn recorded(name: &str) -> usize {
    test_record_instance()
        .with_records(|ok, failed| ok.iter().chain(failed).filter(|r| &*r.name == name).count())
}

#[test]
fn seed_defaults() {
    let d = StartTest::default();
    assert_eq!(d.user_detail_dict["user"], "fast_http_user");
    assert_eq!(d.user_count, 50);
    assert_eq!(d.spawn_rate, 10.0);
    assert_eq!(d.test_time, Some(60.0));
    assert_eq!(d.web_ui_dict, None);
    assert_eq!(d.runner_mode, "local");
    assert_eq!(d.master_bind_host, "*");
    assert_eq!(d.master_bind_port, 5557);
    assert_eq!(d.master_host, "127.0.0.1");
    assert_eq!(d.master_port, 5557);
    assert_eq!(d.expected_workers, 0);
    let from_json: StartTest =
        serde_json::from_value(json!({"user_detail_dict": {"user": "x"}})).expect("minimal config");
    assert_eq!(from_json.user_count, 50);
    assert_eq!(from_json.test_time, Some(60.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_spawn_at_the_rate_and_test_time_ends_the_run() {
    let started = Instant::now();
    let env = prepare_env(config("spawn-rate", 8, 4.0, Some(2.6)))
        .await
        .expect("env");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let early = env.users_spawned();
    // At 4 users/s, users 0..=4 are due by 1.0 s.
    assert!((4..=6).contains(&early), "spawned {early} after 1.1 s");
    let summary = env.wait().await;
    let elapsed = started.elapsed();
    assert_eq!(summary.users_spawned, 8);
    assert!(elapsed >= Duration::from_millis(2600), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(4000), "{elapsed:?}");
    assert_eq!(env.state(), RunState::Stopped);
    assert!(summary.totals.requests > 0);
    // Every request made was recorded once, in stats and in the record store.
    assert_eq!(summary.totals.requests as usize, recorded("spawn-rate"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_test_time_runs_until_stopped_and_nothing_is_lost() {
    let before = MADE.load(Ordering::Relaxed);
    let env = prepare_env(config("until-stopped", 5, 100.0, None))
        .await
        .expect("env");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(env.state(), RunState::Running);
    assert_eq!(env.user_count(), 5);
    let live = env.stats().total().num_requests();
    assert!(live > 0);
    env.stop();
    let summary = env.wait().await;
    assert_eq!(env.user_count(), 0);
    assert!(summary.totals.requests >= live);
    assert_eq!(summary.totals.requests as usize, recorded("until-stopped"));
    // Other tests run concurrently, so MADE only bounds from above.
    assert!(MADE.load(Ordering::Relaxed) - before >= summary.totals.requests);
}

#[tokio::test]
async fn zero_test_time_no_users_and_no_tasks_are_errors_naming_the_key() {
    // These used to run silently (a run of nothing); they are mistakes.
    let text = create_env(config("zero", 3, 10.0, Some(0.0)))
        .await
        .expect_err("test_time 0")
        .to_string();
    assert!(
        text.contains("test_time: must be a number of seconds > 0"),
        "{text}"
    );
    let text = create_env(config("zero", 0, 10.0, Some(1.0)))
        .await
        .expect_err("user_count 0")
        .to_string();
    assert!(text.contains("user_count: must be at least 1"), "{text}");
    let mut bad = config("zero", 1, 10.0, Some(1.0));
    bad.tasks = Some(json!([]));
    let text = create_env(bad).await.expect_err("no tasks").to_string();
    assert!(
        text.contains("tasks: group \"tick_test_user\" has no tasks"),
        "{text}"
    );
    let grouped: StartTest = serde_json::from_value(json!({
        "user_groups": [
            {"name": "ok", "user": "tick_test_user", "tasks": [{}]},
            {"name": "empty", "user": "tock_test_user", "tasks": {"mode": "weighted", "tasks": []}}
        ]
    }))
    .expect("config");
    let text = create_env(grouped)
        .await
        .expect_err("empty group")
        .to_string();
    assert!(
        text.contains("user_groups[1].tasks: group \"empty\" has no tasks"),
        "{text}"
    );
}

#[tokio::test]
async fn bad_configurations_are_clear_errors() {
    let mut bad = config("x", 1, 1.0, Some(1.0));
    bad.user_detail_dict
        .insert("user".into(), json!("carrier_pigeon_user"));
    let error = create_env(bad).await.expect_err("unknown user");
    let text = error.to_string();
    assert!(matches!(error, RunError::UnsupportedUser(_)));
    assert!(
        text.contains("carrier_pigeon_user") && text.contains("tick_test_user"),
        "{text}"
    );

    let mut bad = config("x", 1, 1.0, Some(1.0));
    bad.extra.insert("user_cont".into(), json!(5));
    let text = create_env(bad)
        .await
        .expect_err("unknown option")
        .to_string();
    assert!(text.contains("\"user_cont\""), "{text}");

    let mut bad = config("x", 1, 1.0, Some(1.0));
    bad.spawn_rate = 0.0;
    let text = create_env(bad).await.expect_err("spawn rate").to_string();
    assert!(text.contains("spawn_rate"), "{text}");

    let mut bad = config("x", 1, 1.0, Some(1.0));
    bad.tasks = Some(json!({"mode": "weighted", "tasks": [{"weight": "heavy"}]}));
    let text = create_env(bad).await.expect_err("weight").to_string();
    assert!(text.contains("tasks[0].weight"), "{text}");

    let mut bad = config("x", 1, 1.0, Some(1.0));
    bad.runner_mode = "master".into();
    let text = create_env(bad).await.expect_err("mode").to_string();
    assert!(text.contains("makes no local environment"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_groups_get_their_shares_and_record_under_their_own_type() {
    let config: StartTest = serde_json::from_value(json!({
        "user_count": 10,
        "spawn_rate": 100,
        "test_time": null,
        "print_stats": false,
        "user_groups": [
            {"name": "ticks", "user": "tick_test_user", "weight": 3, "label": "groups-tick", "tasks": [{}]},
            {"name": "tocks", "user": "tock_test_user", "fixed_count": 2, "label": "groups-tock",
             "tasks": [{}], "wait_time": {"constant": 0.05}}
        ]
    }))
    .expect("config");
    let env = prepare_env(config).await.expect("env");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        env.group_user_counts(),
        vec![("ticks".to_owned(), 8), ("tocks".to_owned(), 2)]
    );
    env.stop();
    let _ = env.wait().await;
    let stats = env.stats();
    let ticks = stats.entry("TICK", "groups-tick").expect("tick entry");
    let tocks = stats.entry("TOCK", "groups-tock").expect("tock entry");
    // 8 users without pacing vs 2 users pacing 50 ms after each 20 ms task.
    assert!(
        ticks.num_requests() > 4 * tocks.num_requests(),
        "{} vs {}",
        ticks.num_requests(),
        tocks.num_requests()
    );
    assert!(tocks.num_requests() > 0);
}

#[tokio::test]
async fn group_mistakes_name_the_group() {
    let config: StartTest = serde_json::from_value(json!({
        "user_groups": [
            {"name": "ok", "user": "tick_test_user", "tasks": [{}]},
            {"name": "bad", "user": "tock_test_user", "tasks": [{}], "wait_time": {"between": [3, 1]}}
        ]
    }))
    .expect("config");
    let text = create_env(config).await.expect_err("bad wait").to_string();
    assert!(
        text.contains("\"bad\"") && text.contains("between"),
        "{text}"
    );
}
