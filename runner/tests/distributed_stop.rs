//! Nothing lost at a distributed stop: against a slow target, tasks still in flight when the
//! test ends get `stop_timeout`, are then cut off and recorded as failures, and the master
//! waits for every worker's last report, so the target's count equals the master's.

mod distributed_support;

use distributed_support::config;

use std::time::{Duration, Instant};

use load_density::core::context::CANCELLED_BY_STOP;
use load_density::distributed::{Master, Worker};
use load_density::RunControl;
use load_density_testkit::HttpTarget;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_target_at_a_distributed_stop_loses_no_request() {
    let target = HttpTarget::start().await.expect("start the HTTP target");
    // Each iteration: a fast request, then one the target holds for 30 s (the request
    // timeout is 60 s), so every user has a request in flight when the test ends.
    let master = Master::start(config(json!({
        "runner_mode": "master",
        "master_bind_host": "127.0.0.1",
        "master_bind_port": 0,
        "expected_workers": 2,
        "expected_workers_timeout": 40,
        "user_count": 4,
        "spawn_rate": 20,
        "test_time": 3,
        "stop_timeout": 1,
        "host": target.base_url(),
        "print_stats": false,
        "tasks": [
            {"method": "get", "request_url": "/get"},
            {"method": "get", "request_url": "/delay/30000"}
        ]
    })))
    .await
    .expect("start the master");
    let port = master.local_addr().port();
    let worker_config = || {
        config(json!({
            "runner_mode": "worker",
            "master_host": "127.0.0.1",
            "master_port": port,
            "master_timeout": 20,
        }))
    };
    let workers = [
        Worker::start(worker_config())
            .await
            .expect("start a worker"),
        Worker::start(worker_config())
            .await
            .expect("start a worker"),
    ];
    let started = Instant::now();
    let summary = tokio::time::timeout(Duration::from_secs(40), master.wait())
        .await
        .expect("the master ends");
    // 3 s of test, 1 s of grace: far less than the 30 s the slow requests would take.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the stop waited for the slow requests: {:?}",
        started.elapsed()
    );
    for worker in workers {
        worker.wait().await.expect("the worker quits cleanly");
    }
    let served = target.served();
    let slow = target.served_path("/delay/30000");
    assert!(slow >= 1, "every user reached the slow request: {slow}");
    assert_eq!(
        summary.totals.requests, served,
        "the master counts every request the target received"
    );
    let stats = master.stats();
    let cut: u64 = stats
        .errors()
        .iter()
        .filter(|e| &*e.message == CANCELLED_BY_STOP)
        .map(|e| e.occurrences)
        .sum();
    assert_eq!(
        cut,
        slow,
        "each slow request in flight is a failure: {:?}",
        stats.errors()
    );
    assert_eq!(summary.totals.failures, slow);
}
