//! What `POST /stats/reset` means for every figure: the statistics, the record store and the
//! rates all count from the reset, so the summary `start_test` returns and `LD_summary` agree,
//! and `requests_per_second` is over the time since the reset. (Its own test binary: it reads
//! the process-wide record store.)

use std::time::{Duration, Instant};

use load_density::{prepare_env, report, StartTest};
use load_density_testkit::HttpTarget;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_reset_the_summary_the_records_and_the_rates_agree() {
    let target = HttpTarget::start().await.expect("testkit target");
    let config: StartTest = serde_json::from_value(json!({
        "user_detail_dict": {"user": "fast_http_user"},
        "user_count": 4,
        "spawn_rate": 100,
        "test_time": null,
        "host": target.base_url(),
        "print_stats": false,
        "wait_time": {"constant_pacing": 0.05},
        "web_ui_dict": {"host": "127.0.0.1", "port": 0},
        "tasks": [{"method": "get", "request_url": "/get"}]
    }))
    .expect("a valid configuration");
    let env = prepare_env(config).await.expect("run starts");
    let addr = load_density::web::local_addr(&env).expect("the web UI address");
    // Half the run before the reset, half after.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        env.stats().total().num_requests() > 0,
        "requests before the reset"
    );
    load_density::core::tls::crypto_provider();
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let reset_at = Instant::now();
    let answer = http
        .post(format!("http://{addr}/stats/reset"))
        .send()
        .await
        .expect("POST /stats/reset");
    assert_eq!(answer.status(), 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    env.stop();
    let summary = env.wait().await;
    let since_reset = reset_at.elapsed().as_secs_f64();

    let records = report::build_summary();
    assert_eq!(
        records["totals"]["requests"].as_u64(),
        Some(summary.totals.requests),
        "LD_summary {records} against the start_test summary {summary:?}"
    );
    assert!(summary.totals.requests > 0, "{summary:?}");
    // The rate is over the time since the reset (about 1.5 s), not the whole run (about 3 s).
    let over_whole_run = summary.totals.requests as f64 / summary.duration_s;
    let over_since_reset = summary.totals.requests as f64 / since_reset;
    assert!(
        summary.totals.requests_per_second >= over_since_reset * 0.9
            && summary.totals.requests_per_second > over_whole_run * 1.4,
        "rps {} (whole run {over_whole_run}, since the reset {over_since_reset})",
        summary.totals.requests_per_second
    );
}
