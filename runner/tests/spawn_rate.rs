//! Users are started at the rate asked, in batches, even above one user per timer tick: 2,000
//! users at 4,000 per second are all running after about half a second (one user per
//! millisecond, the timer's resolution, would need two seconds). The summary says the rate
//! achieved.

use std::time::{Duration, Instant};

use load_density::{prepare_env, StartTest};
use load_density_testkit::HttpTarget;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_users_at_four_thousand_per_second() {
    let target = HttpTarget::start().await.expect("testkit target");
    let config: StartTest = serde_json::from_value(json!({
        "user_count": 2000,
        "spawn_rate": 4000,
        "test_time": 20,
        "print_stats": false,
        "host": target.base_url(),
        "wait_time": {"constant": 30},
        "tasks": [{"method": "get", "request_url": "/get"}]
    }))
    .expect("a valid configuration");
    let started = Instant::now();
    let env = prepare_env(config).await.expect("run starts");
    while env.users_spawned() < 2000 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "only {} users after 10 s",
            env.users_spawned()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ramp = started.elapsed();
    env.stop();
    let summary = env.wait().await;
    assert_eq!(summary.users_spawned, 2000);
    assert!(
        ramp < Duration::from_millis(1600),
        "2,000 users at 4,000/s took {ramp:?}"
    );
    let achieved = summary.achieved_spawn_rate.expect("an achieved rate");
    assert!(achieved > 1250.0, "achieved {achieved}/s");
}
