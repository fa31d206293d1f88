//! Load models against the testkit HTTP target: arrival rates kept exactly, dropped
//! iterations counted, the corrected latency showing a stalling target's stalls, stage
//! boundaries honoured, iteration models exact, and every bad input named by its JSON path.

use std::time::{Duration, Instant};

use load_density::{create_env, prepare_env, start_test_async, StartTest, Summary};
use load_density_testkit::HttpTarget;
use serde_json::{json, Value};

fn config(value: Value) -> StartTest {
    serde_json::from_value(value).expect("a valid start_test configuration")
}

/// A run of `fast_http_user` against `target` with `load_model` and `tasks`.
fn plan(target: &HttpTarget, test_time: f64, load_model: Value, tasks: Value) -> StartTest {
    config(json!({
        "user_detail_dict": {"user": "fast_http_user"},
        "test_time": test_time,
        "host": target.base_url(),
        "print_stats": false,
        "load_model": load_model,
        "tasks": tasks,
    }))
}

async fn run(config: StartTest) -> Summary {
    start_test_async(config).await.expect("the run")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_constant_arrival_rate_is_kept_and_its_duration_ends_the_run() {
    let target = HttpTarget::start().await.expect("target");
    let started = Instant::now();
    let summary = run(plan(
        &target,
        20.0,
        json!({"type": "constant_arrival_rate", "rate": 150, "duration": 2,
               "pre_allocated_users": 5, "max_users": 50}),
        json!([{"method": "get", "request_url": "/get"}]),
    ))
    .await;
    let elapsed = started.elapsed();
    let totals = &summary.totals;
    // 150/s for 2 s: every due iteration ran (well within 1 % of the target rate).
    let achieved = totals.iterations as f64 / 2.0;
    assert!((achieved - 150.0).abs() <= 1.5, "{totals:?}");
    assert_eq!(totals.iterations, 300, "{totals:?}");
    assert_eq!(totals.dropped_iterations, 0, "{totals:?}");
    assert_eq!(totals.requests, 300);
    assert_eq!(target.served_path("/get"), 300);
    // The model's own end (2 s) came before test_time (20 s).
    assert!(elapsed < Duration::from_secs(8), "{elapsed:?}");
    assert!(summary.duration_s >= 1.9, "{}", summary.duration_s);
    // The run had a schedule, so the corrected latency is there, overall and per name.
    let corrected = &summary
        .latency_overall
        .as_ref()
        .expect("corrected")
        .corrected;
    assert!(corrected.p50_ms > 0.0 && corrected.p99_ms >= corrected.p50_ms);
    assert!(
        summary.per_name.contains_key("/get"),
        "{:?}",
        summary.per_name
    ); // The generator's own figures: its CPU use and how late its timers fired.
    let generator = summary.generator.as_ref().expect("generator figures");
    assert!(
        (0.0..=100.0).contains(&generator.cpu_percent),
        "{generator:?}"
    );
    assert!(
        generator.start_lag_p99_ms > 0.0 && generator.start_lag_p99_ms < 1000.0,
        "{generator:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_busy_drop_counts_dropped_iterations_and_delay_runs_them_late() {
    let target = HttpTarget::start().await.expect("target");
    let tasks = json!([{"method": "get", "request_url": "/delay/100", "name": "slow"}]);
    // 40 iterations due over 1 s; 2 users of 100 ms each manage about 20 per second.
    let model = |when_busy: &str| {
        json!({"type": "constant_arrival_rate", "rate": 40, "duration": 1,
               "pre_allocated_users": 2, "max_users": 2, "when_busy": when_busy})
    };
    let dropped = run(plan(&target, 20.0, model("drop"), tasks.clone())).await;
    let totals = &dropped.totals;
    assert!(totals.dropped_iterations >= 10, "{totals:?}");
    assert!(totals.iterations >= 10, "{totals:?}");
    // Each due iteration either ran or was dropped: none is lost.
    assert_eq!(
        totals.iterations + totals.dropped_iterations,
        40,
        "{totals:?}"
    );

    let delayed = run(plan(&target, 20.0, model("delay"), tasks)).await;
    let totals = &delayed.totals;
    // The backlog (about 1 s at most) stays under max_start_delay (5 s): nothing dropped.
    assert_eq!(totals.dropped_iterations, 0, "{totals:?}");
    assert_eq!(totals.iterations, 40, "{totals:?}");
    let corrected = &delayed
        .latency_overall
        .as_ref()
        .expect("corrected")
        .corrected;
    // Late starts show in the corrected latency, not in the service time (~100 ms).
    assert!(corrected.p90_ms > 400.0, "{corrected:?} vs {totals:?}");
    assert!(totals.p95_ms < 400.0, "{totals:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_corrected_p90_shows_the_stalls_the_service_time_hides() {
    let target = HttpTarget::start().await.expect("target");
    // The target freezes for the first 1 s of every 4 s (counted from its first stall
    // request, which is this run's first request). Two users: during a stall both wait
    // on the target, and the iterations due meanwhile wait for them.
    let summary = run(plan(
        &target,
        20.0,
        json!({"type": "constant_arrival_rate", "rate": 40, "duration": 2.5,
               "pre_allocated_users": 2, "max_users": 2}),
        json!([{"method": "get", "request_url": "/stall/1000/4000", "name": "stall"}]),
    ))
    .await;
    let totals = &summary.totals;
    assert_eq!(totals.iterations, 100, "{totals:?}");
    assert_eq!(totals.dropped_iterations, 0, "{totals:?}");
    let corrected = &summary.per_name["stall"].corrected;
    // About 40 of 100 iterations were due during the stall, waiting up to 1 s.
    assert!(corrected.p90_ms > 300.0, "{corrected:?}");
    assert!(corrected.max_ms > 800.0, "{corrected:?}");
    // Only the two requests in flight when it froze took long.
    assert!(totals.p95_ms < 150.0, "{totals:?}");
    assert!(totals.max_ms > 800.0, "{totals:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ramping_users_honour_their_stage_boundaries() {
    let target = HttpTarget::start().await.expect("target");
    // Locust's stage shape: `duration` is each stage's end time from the start of the run.
    let config = config(json!({
        "user_detail_dict": {"user": "fast_http_user"},
        "test_time": 30,
        "host": target.base_url(),
        "print_stats": false,
        "wait_time": {"constant": 0.05},
        "load_model": {"type": "ramping_users", "stages": [
            {"duration": 1.5, "users": 2, "spawn_rate": 100},
            {"duration": 3, "users": 6, "spawn_rate": 100},
            {"duration": 4.5, "users": 1, "spawn_rate": 100}
        ]},
        "tasks": [{"method": "get", "request_url": "/get"}]
    }));
    let started = Instant::now();
    let env = prepare_env(config).await.expect("env");
    let mut samples = Vec::new();
    for at in [0.75, 2.25, 3.75] {
        tokio::time::sleep_until((started + Duration::from_secs_f64(at)).into()).await;
        samples.push(env.user_count());
    }
    let summary = env.wait().await;
    assert_eq!(samples, [2, 6, 1], "users at 0.75 s, 2.25 s and 3.75 s");
    // The last stage ends the run at 4.5 s, long before test_time.
    assert!(
        (4.4..8.0).contains(&started.elapsed().as_secs_f64()),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(summary.users_spawned, 6 + 1 - 1 + 1 - 1);
    assert!(
        summary.latency_overall.is_none(),
        "no schedule, no corrected latency"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linear_ramp_reaches_each_target_at_the_end_of_its_stage() {
    let target = HttpTarget::start().await.expect("target");
    let config = config(json!({
        "user_detail_dict": {"user": "fast_http_user"},
        "test_time": 30,
        "host": target.base_url(),
        "print_stats": false,
        "wait_time": {"constant": 0.05},
        "load_model": {"type": "ramping_users", "stages": [
            {"duration": 2, "target": 8}, {"duration": 1, "target": 8}, {"duration": 1, "target": 0}
        ]},
        "tasks": [{"method": "get", "request_url": "/get"}]
    }));
    let started = Instant::now();
    let env = prepare_env(config).await.expect("env");
    let mut samples = Vec::new();
    for at in [1.0, 2.5] {
        tokio::time::sleep_until((started + Duration::from_secs_f64(at)).into()).await;
        samples.push(env.user_count());
    }
    env.wait().await;
    // Halfway up the first ramp (0 -> 8 over 2 s): about 4; then 8.
    assert!((3..=6).contains(&samples[0]), "{samples:?}");
    assert_eq!(samples[1], 8, "{samples:?}");
    assert!(started.elapsed() < Duration::from_secs(8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ramping_arrival_rate_follows_its_stages() {
    let target = HttpTarget::start().await.expect("target");
    let env = prepare_env(plan(
        &target,
        30.0,
        // 0 -> 100/s over 2 s (100 iterations), then 100/s for 1 s (100 more).
        json!({"type": "ramping_arrival_rate", "start_rate": 0, "pre_allocated_users": 5,
               "max_users": 50, "stages": [{"duration": 2, "target": 100}, {"duration": 1, "target": 100}]}),
        json!([{"method": "get", "request_url": "/get"}]),
    ))
    .await
    .expect("env");
    let summary = env.wait().await;
    assert_eq!(summary.totals.iterations, 200, "{:?}", summary.totals);
    assert_eq!(summary.totals.dropped_iterations, 0);
    // Read the rate from the run's per-second history: it rises, then holds.
    let stats = env.stats();
    let per_second: Vec<u64> = stats.total().per_second().map(|(_, n, _)| n).collect();
    assert!(per_second.len() >= 3, "{per_second:?}");
    let first = per_second[0];
    let peak = per_second.iter().copied().max().unwrap_or(0);
    assert!(first < peak / 2, "the ramp starts low: {per_second:?}");
    assert!(
        (80..=120).contains(&peak),
        "it reaches about 100/s: {per_second:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iteration_models_run_exactly_their_iterations() {
    let target = HttpTarget::start().await.expect("target");
    let tasks = json!([
        {"method": "get", "request_url": "/get"},
        {"method": "get", "request_url": "/anything/it"}
    ]);
    let per_user = run(plan(
        &target,
        30.0,
        json!({"type": "per_user_iterations", "users": 3, "iterations": 5}),
        tasks.clone(),
    ))
    .await;
    assert_eq!(per_user.totals.iterations, 15, "{:?}", per_user.totals);
    assert_eq!(per_user.totals.requests, 30);
    assert_eq!(per_user.users_spawned, 3);
    let shared = run(plan(
        &target,
        30.0,
        json!({"type": "shared_iterations", "users": 4, "iterations": 10}),
        tasks,
    ))
    .await;
    assert_eq!(shared.totals.iterations, 10, "{:?}", shared.totals);
    assert_eq!(shared.totals.requests, 20);
    assert!(
        shared.duration_s < 10.0,
        "the run ends when the iterations are done"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_users_count_the_slots_they_miss() {
    let target = HttpTarget::start().await.expect("target");
    // A slot every 100 ms, iterations of 250 ms: each overrun misses about two slots.
    let summary = run(config(json!({
        "user_detail_dict": {"user": "fast_http_user"},
        "user_count": 1,
        "spawn_rate": 10,
        "test_time": 1.3,
        "host": target.base_url(),
        "print_stats": false,
        "wait_time": {"constant_throughput": 10},
        "tasks": [{"method": "get", "request_url": "/delay/250", "name": "paced"}]
    })))
    .await;
    let totals = &summary.totals;
    assert!((3..=6).contains(&totals.iterations), "{totals:?}");
    assert!(totals.dropped_iterations >= 4, "{totals:?}");
    let corrected = &summary.per_name["paced"].corrected;
    assert!(corrected.p50_ms >= 250.0, "{corrected:?}");
}

#[tokio::test]
async fn every_bad_load_model_is_an_error_naming_its_json_path() {
    let tasks = json!([{"method": "get", "request_url": "http://127.0.0.1:9/"}]);
    let top = |model: Value| {
        config(
            json!({"user_detail_dict": {"user": "fast_http_user"}, "load_model": model,
                      "tasks": tasks.clone()}),
        )
    };
    let cases = [
        (
            top(json!({"type": "constant_arrival_rate", "rate": 0})),
            "load_model.rate: must be > 0",
        ),
        (
            top(json!({"type": "constant_arrival_rate", "rate": -5})),
            "load_model.rate: must be > 0",
        ),
        (
            top(json!({"type": "ramping_arrival_rate", "stages": []})),
            "load_model.stages: must not be empty",
        ),
        (
            top(json!({"type": "ramping_users", "stages": []})),
            "load_model.stages: must not be empty",
        ),
        (
            top(json!({"type": "constant_arrival_rate", "rate": 5,
                       "pre_allocated_users": 10, "max_users": 3})),
            "load_model.max_users: must be >= pre_allocated_users (10)",
        ),
        (
            top(json!({"type": "closed_loop"})),
            "load_model.type: unknown load model type \"closed_loop\"",
        ),
        (
            top(json!({"type": "constant_arrival_rate", "rate": 5, "stages": []})),
            "load_model.stages: \"stages\" does not belong to constant_arrival_rate",
        ),
        (
            top(json!({"type": "per_user_iterations", "iterations": 1.5})),
            "load_model.iterations: must be a positive whole number",
        ),
        (
            top(json!({"type": "shared_iterations", "iterations": -2})),
            "load_model.iterations: must be a positive whole number",
        ),
        (
            top(json!({"type": "constant_arrival_rate", "rate": 5, "time_unit": 0})),
            "load_model.time_unit: must be > 0",
        ),
        (
            config(json!({"user_groups": [
                {"name": "a", "user": "fast_http_user", "tasks": tasks.clone()},
                {"name": "b", "user": "fast_http_user", "tasks": tasks.clone(),
                 "load_model": {"type": "ramping_arrival_rate",
                                "stages": [{"duration": 1, "target": "lots"}]}}
            ]})),
            "user_groups[1].load_model.stages[0].target: must be a number",
        ),
        (
            config(
                json!({"load_model": {"type": "constant_arrival_rate", "rate": 5},
                              "user_groups": [
                    {"name": "a", "user": "fast_http_user", "tasks": tasks.clone()},
                    {"name": "b", "user": "fast_http_user", "tasks": tasks.clone()}
                ]}),
            ),
            "load_model: an arrival-rate or iteration model applies to one user group",
        ),
    ];
    for (config, expected) in cases {
        let text = create_env(config).await.expect_err(expected).to_string();
        assert!(text.contains(expected), "expected {expected:?} in {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_run_their_own_models_side_by_side_and_user_counts_are_refused() {
    let target = HttpTarget::start().await.expect("target");
    let config = config(json!({
        "test_time": 30,
        "host": target.base_url(),
        "print_stats": false,
        "user_groups": [
            {"name": "open", "user": "fast_http_user",
             "tasks": [{"method": "get", "request_url": "/get", "name": "open"}],
             "load_model": {"type": "constant_arrival_rate", "rate": 50, "duration": 1.5,
                            "pre_allocated_users": 2, "max_users": 10}},
            {"name": "iterations", "user": "fast_http_user",
             "tasks": [{"method": "get", "request_url": "/get", "name": "counted"}],
             "load_model": {"type": "per_user_iterations", "users": 2, "iterations": 7}}
        ]
    }));
    let env = prepare_env(config).await.expect("env");
    let refused = env
        .set_user_count(5, 1.0)
        .expect_err("no closed model")
        .to_string();
    assert!(refused.contains("not a closed one"), "{refused}");
    let summary = env.wait().await;
    let stats = env.stats();
    let count = |name: &str| stats.entry("GET", name).map_or(0, |e| e.num_requests());
    assert_eq!(count("open"), 75);
    assert_eq!(count("counted"), 14);
    assert_eq!(summary.totals.iterations, 89);
    // Both models have ended, so the run did, long before test_time.
    assert!(summary.duration_s < 10.0, "{}", summary.duration_s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_with_its_own_closed_model_keeps_its_users_beside_the_shared_ones() {
    let target = HttpTarget::start().await.expect("target");
    let config = config(json!({
        "user_count": 3,
        "spawn_rate": 100,
        "test_time": null,
        "host": target.base_url(),
        "print_stats": false,
        "wait_time": {"constant": 0.05},
        "user_groups": [
            {"name": "shared", "user": "fast_http_user",
             "tasks": [{"method": "get", "request_url": "/get"}]},
            {"name": "own", "user": "fast_http_user",
             "tasks": [{"method": "get", "request_url": "/get"}],
             "load_model": {"type": "constant_users", "users": 2, "spawn_rate": 100}}
        ]
    }));
    let env = prepare_env(config).await.expect("env");
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.user_count() < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        env.group_user_counts(),
        vec![("shared".to_owned(), 3), ("own".to_owned(), 2)]
    );
    // A new user count applies to the run's own (shared) model only.
    env.set_user_count(1, 100.0).expect("closed shared model");
    let deadline = Instant::now() + Duration::from_secs(10);
    while env.user_count() > 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        env.group_user_counts(),
        vec![("shared".to_owned(), 1), ("own".to_owned(), 2)]
    );
    env.stop();
    let summary = env.wait().await;
    assert!(summary.totals.iterations > 0);
}
