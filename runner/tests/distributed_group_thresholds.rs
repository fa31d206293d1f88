//! Group thresholds in a distributed run: LoadDensity workers ship the statistics of the groups a
//! threshold names, the master merges them per group and judges `{group:G}` and
//! `user_groups[i].thresholds` on them; a peer's broken per-group payload is dropped and
//! counted while the run goes on.

mod distributed_support;

use distributed_support::{config, run_one_worker, worker_config};

use std::time::{Duration, Instant};

use load_density::core::{test_record_instance, RequestStats};
use load_density::distributed::wire::Message;
use load_density::distributed::{Master, Worker};
use load_density::thresholds::{ThresholdResult, Verdict};
use load_density::{start_test_async, RunControl, StartTest};
use load_density_testkit::{unused_local_port, HttpTarget};
use rmpv::Value;
use serde_json::json;
use zeromq::{DealerSocket, Socket, SocketOptions, SocketRecv, SocketSend, ZmqMessage};

/// Tests here share the process-wide record store: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A master's plan: group `fast` on a target answering 200, group `failing` on one answering
/// 503, each with its own thresholds, and `{group:G}` keys at the top level.
fn master_plan(port: u16, workers: u64, fast: &HttpTarget, failing: &HttpTarget) -> StartTest {
    config(json!({
        "runner_mode": "master",
        "master_bind_host": "127.0.0.1",
        "master_bind_port": port,
        "expected_workers": workers,
        "expected_workers_timeout": 20,
        "user_count": 4,
        "spawn_rate": 10,
        "test_time": 4,
        "wait_time": {"constant": 0.05},
        "print_stats": false,
        "user_groups": [
            {"name": "fast", "user": "fast_http_user", "host": fast.base_url(),
             "tasks": [{"method": "get", "request_url": "/get"}],
             "thresholds": {"failure_rate": ["rate<0.01"]}},
            {"name": "failing", "user": "fast_http_user", "host": failing.base_url(),
             "tasks": [{"method": "get", "request_url": "/status/503"}],
             "thresholds": {"failure_rate": ["rate<0.01"]}}
        ],
        "thresholds": {
            "requests{group:fast}": ["count>0"],
            "requests{group:failing}": ["count>0"],
            "response_time{group:fast}": ["p(99)<10000"]
        },
    }))
}

fn result<'a>(
    results: &'a [ThresholdResult],
    metric: &str,
    condition: &str,
) -> &'a ThresholdResult {
    results
        .iter()
        .find(|r| r.metric == metric && r.condition == condition)
        .unwrap_or_else(|| panic!("no {metric} {condition} in {results:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_judges_each_group_on_its_workers_merged_statistics() {
    let _serial = SERIAL.lock().await;
    test_record_instance().clear_records();
    let fast = HttpTarget::start().await.expect("target");
    let failing = HttpTarget::start().await.expect("target");
    let port = unused_local_port();
    let master = tokio::spawn(start_test_async(master_plan(port, 2, &fast, &failing)));
    let mut workers = Vec::new();
    for _ in 0..2 {
        workers.push(Worker::start(worker_config(port)).await.expect("worker"));
    }
    let summary = tokio::time::timeout(Duration::from_secs(60), master)
        .await
        .expect("the master ends")
        .expect("join")
        .expect("master run");
    let mut worker_requests = 0;
    for worker in workers {
        let s = tokio::time::timeout(Duration::from_secs(20), worker.wait())
            .await
            .expect("the worker ends")
            .expect("the worker quits cleanly");
        assert!(s.totals.requests > 0, "every worker worked");
        worker_requests += s.totals.requests;
    }
    let (fast_served, failing_served) = (fast.served(), failing.served());
    assert!(
        fast_served > 10 && failing_served > 10,
        "{fast_served} {failing_served}"
    );
    assert_eq!(summary.totals.requests, fast_served + failing_served);
    assert_eq!(summary.totals.requests, worker_requests);

    let results = summary.thresholds.clone().expect("threshold results");
    // Each group's count on the master is the sum of its workers': what its target served.
    assert_eq!(
        result(&results, "requests{group:fast}", "count>0").value,
        Some(fast_served as f64),
        "{results:?}"
    );
    assert_eq!(
        result(&results, "requests{group:failing}", "count>0").value,
        Some(failing_served as f64),
        "{results:?}"
    );
    let fast_failures = result(&results, "failure_rate{group:fast}", "rate<0.01");
    assert_eq!(fast_failures.value, Some(0.0), "{results:?}");
    assert!(fast_failures.ok);
    let failing_failures = result(&results, "failure_rate{group:failing}", "rate<0.01");
    assert_eq!(failing_failures.value, Some(1.0), "{results:?}");
    assert!(
        !failing_failures.ok,
        "the failing group fails its threshold"
    );
    let p99 = result(&results, "response_time{group:fast}", "p(99)<10000");
    assert!(p99.value.is_some_and(|v| v > 0.0) && p99.ok, "{p99:?}");
    assert_eq!(summary.verdict, Some(Verdict::Failed));
    // The summary's JSON says which condition failed.
    let text = serde_json::to_value(&summary).expect("summary JSON");
    assert_eq!(text["verdict"], json!("failed"), "{text}");
    let failed: Vec<&serde_json::Value> = text["thresholds"]
        .as_array()
        .expect("thresholds array")
        .iter()
        .filter(|r| r["ok"] == json!(false))
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["metric"], json!("failure_rate{group:failing}"));
}

fn envelope(kind: &str, data: Value, node: &str) -> ZmqMessage {
    ZmqMessage::from(Message::new(kind, data, node).encode())
}

fn stats_bin(requests: u64) -> Value {
    let mut stats = RequestStats::new();
    for _ in 0..requests {
        stats.add(&load_density::core::RequestEvent {
            request_type: "GET".into(),
            name: "/x".into(),
            url: "http://h/x".into(),
            status: Some(200),
            response_time: Duration::from_millis(2),
            response_length: 0,
            error: None,
            start_time: std::time::SystemTime::now(),
            start_delay: None,
        });
    }
    Value::Binary(rmp_serde::to_vec_named(&stats).expect("serialize"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broken_group_statistics_from_a_peer_are_dropped_and_counted() {
    let _serial = SERIAL.lock().await;
    test_record_instance().clear_records();
    let fast = HttpTarget::start().await.expect("target");
    let failing = HttpTarget::start().await.expect("target");
    let master = Master::start(master_plan(0, 2, &fast, &failing))
        .await
        .expect("master");
    let port = master.local_addr().port();

    // A peer that joins (as a Locust worker), then sends reports whose per-group part is
    // broken, and one entry for a group no threshold names.
    let id = "evil_0123456789abcdef0123456789abcdef";
    let mut options = SocketOptions::default();
    options.peer_identity(id.as_bytes().to_vec().try_into().expect("identity"));
    let mut evil = DealerSocket::with_options(options);
    evil.connect(&format!("tcp://127.0.0.1:{port}"))
        .await
        .expect("connect");
    evil.send(envelope("client_ready", "2.47.0".into(), id))
        .await
        .expect("send");
    let ack = tokio::time::timeout(Duration::from_secs(5), evil.recv())
        .await
        .expect("an ack in time")
        .expect("receive");
    assert_eq!(
        Message::decode(&ack.into_vec()[0]).expect("ack").kind,
        "ack"
    );
    let report = |groups: Value| {
        Value::Map(vec![
            ("stats".into(), Value::Array(vec![])),
            ("ld_group_stats".into(), groups),
        ])
    };
    let broken = [
        Value::from("not a map"),
        // Not statistics.
        Value::Map(vec![("fast".into(), Value::Binary(vec![0xc1, 0, 1, 2]))]),
        Value::Map(vec![("fast".into(), Value::from(7))]),
        // More entries than groups the thresholds name (a claimed huge count of groups).
        Value::Map(vec![
            ("fast".into(), stats_bin(1_000)),
            ("failing".into(), stats_bin(1_000)),
            ("third".into(), stats_bin(1_000)),
        ]),
        // Twice the same group.
        Value::Map(vec![
            ("fast".into(), stats_bin(1_000)),
            ("fast".into(), stats_bin(1_000)),
        ]),
    ];
    let dropped = broken.len() as u64;
    for groups in broken {
        evil.send(envelope("stats", report(groups), id))
            .await
            .expect("send");
    }
    evil.send(envelope(
        "stats",
        report(Value::Map(vec![("nope".into(), stats_bin(5))])),
        id,
    ))
    .await
    .expect("send");
    let deadline = Instant::now() + Duration::from_secs(10);
    while master.dropped_group_stats() < dropped || master.unknown_group_stats() < 1 {
        assert!(
            Instant::now() < deadline,
            "the broken payloads were not counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(master.dropped_group_stats(), dropped);
    assert_eq!(master.unknown_group_stats(), 1);
    assert_eq!(
        master.malformed_messages(),
        0,
        "the reports themselves count"
    );

    // The run goes on: a real worker joins and its groups' statistics arrive exactly.
    let summary = run_one_worker(&master, worker_config(port)).await;
    let groups = master.group_stats();
    let count = |name: &str| {
        groups
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.total().num_requests())
            .unwrap_or_else(|| panic!("no group {name} in the master's statistics"))
    };
    assert!(fast.served() > 0 && failing.served() > 0);
    assert_eq!(count("fast"), fast.served());
    assert_eq!(count("failing"), failing.served());
    assert_eq!(
        groups
            .iter()
            .find(|(n, _)| n == "failing")
            .map(|(_, s)| s.total().num_failures()),
        Some(failing.served())
    );
    assert_eq!(summary.totals.requests, fast.served() + failing.served());
    drop(evil);
}
