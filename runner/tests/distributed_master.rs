//! Our master with our workers, in one process: dispatch, exact merged statistics, the plan
//! travelling (tasks, variables, CSV rows), workers joining late or before their master, and
//! peers sending garbage.

mod distributed_support;

use distributed_support::{config, worker_config};

use std::io::Write as _;
use std::time::{Duration, Instant};

use load_density::core::test_record_instance;
use load_density::distributed::wire::Message;
use load_density::distributed::{Master, Worker};
use load_density::{RunControl, RunState, Summary};
use load_density_testkit::{unused_local_port, HttpTarget};
use rmpv::Value;
use serde_json::json;
use zeromq::{DealerSocket, Socket, SocketOptions, SocketRecv, SocketSend, ZmqMessage};

/// Tests here share the process-wide record store: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_workers_get_even_shares_and_the_master_merges_exactly() {
    let _serial = SERIAL.lock().await;
    test_record_instance().clear_records();
    let target = HttpTarget::start().await.expect("start the HTTP target");
    let dir = tempfile::tempdir().expect("temp dir");
    let csv = dir.path().join("paths.csv");
    std::fs::File::create(&csv)
        .and_then(|mut f| f.write_all(b"path\n/get\n/anything/from-csv\n"))
        .expect("write the CSV");
    let master = Master::start(config(json!({
        "runner_mode": "master",
        "master_bind_host": "127.0.0.1",
        "master_bind_port": 0,
        "expected_workers": 3,
        "expected_workers_timeout": 20,
        "user_count": 7,
        "spawn_rate": 7,
        "test_time": 6,
        "host": target.base_url(),
        "variables": {"delay": "3"},
        "csv_sources": [{"name": "paths", "file_path": csv.display().to_string()}],
        "wait_time": {"constant": 0.02},
        "print_stats": false,
        "tasks": [
            {"method": "get", "request_url": "${csv.paths.path}"},
            {"method": "get", "request_url": "/delay/${var.delay}"}
        ]
    })))
    .await
    .expect("start the master");
    let port = master.local_addr().port();
    // The workers know nothing but the master's address: the plan and the CSV rows travel.
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(
            Worker::start(worker_config(port))
                .await
                .expect("start a worker"),
        );
    }
    eventually("7 users running", Duration::from_secs(20), || {
        master.state() == RunState::Running && master.user_count() == 7
    })
    .await;
    let mut shares: Vec<u64> = master
        .assignments()
        .iter()
        .map(|(_, counts)| counts.iter().map(|(_, c)| c).sum())
        .collect();
    shares.sort_unstable();
    assert_eq!(shares, vec![2, 2, 3], "users split evenly within one");
    let infos = master.workers();
    assert_eq!(infos.len(), 3);
    assert!(infos.iter().all(|w| w.state == "running"), "{infos:?}");
    assert_eq!(infos.iter().map(|w| w.user_count).sum::<u64>(), 7);
    let mut ids: Vec<&str> = infos.iter().map(|w| w.id.as_str()).collect();
    ids.sort_unstable();
    let mut expected: Vec<&str> = workers.iter().map(Worker::node_id).collect();
    expected.sort_unstable();
    assert_eq!(ids, expected, "workers are known by their node ids");

    let summary = master_ends(&master, Duration::from_secs(40)).await;
    let mut worker_total = 0;
    for worker in workers {
        let s = worker_ends(worker).await;
        assert!(s.totals.requests > 0, "every worker worked");
        worker_total += s.totals.requests;
    }
    let served = target.served();
    assert!(served > 100, "too little traffic: {served}");
    assert_eq!(summary.totals.requests, served, "master == server");
    assert_eq!(worker_total, served, "sum of workers == server");
    assert_eq!(summary.runner_mode, "master");
    assert!(
        target.served_path("/anything/from-csv") > 0,
        "CSV rows travelled"
    );
    assert!(target.served_path("/delay/3") > 0, "variables travelled");

    // Percentiles: the master's merged HDR histograms equal one histogram of every request.
    let stats = master.stats();
    let (successes, failures) = test_record_instance().counts();
    assert_eq!(
        (successes + failures) as u64,
        served,
        "every record reached the master's store"
    );
    let mut reference = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
    reference.auto(true);
    test_record_instance().with_records(|ok, failed| {
        for record in ok.iter().chain(failed) {
            reference
                .record(record.response_time_us.max(1))
                .expect("record a latency");
        }
    });
    for p in [50.0, 95.0, 99.0] {
        let exact = reference.value_at_quantile(p / 100.0) as f64 / 1000.0;
        assert_eq!(stats.total().percentile_ms(p), exact, "p{p}");
    }
    assert_eq!(summary.totals.p99_ms, stats.total().percentile_ms(99.0));
    // The summary report made on the master covers the whole run.
    let report = load_density::report::build_summary();
    assert_eq!(report["totals"]["requests"], json!(served));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_started_before_its_master_joins_when_it_appears() {
    let _serial = SERIAL.lock().await;
    test_record_instance().clear_records();
    let target = HttpTarget::start().await.expect("start the HTTP target");
    let port = unused_local_port();
    let worker = Worker::start(worker_config(port))
        .await
        .expect("start the worker");
    // Longer than one connection attempt (2 s), so the worker has retried after a timeout.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let master = Master::start(config(json!({
        "runner_mode": "master",
        "master_bind_host": "127.0.0.1",
        "master_bind_port": port,
        "expected_workers": 1,
        "expected_workers_timeout": 20,
        "user_count": 2,
        "spawn_rate": 10,
        "test_time": 3,
        "host": target.base_url(),
        "wait_time": {"constant": 0.05},
        "print_stats": false,
        "distributed_records": "errors",
        "tasks": [
            {"method": "get", "request_url": "/get"},
            {"method": "get", "request_url": "/status/503"}
        ]
    })))
    .await
    .expect("start the master");
    let summary = master_ends(&master, Duration::from_secs(30)).await;
    let worker_summary = worker_ends(worker).await;
    let served = target.served();
    assert!(served > 10, "the worker ran users: {served}");
    assert_eq!(summary.totals.requests, served);
    assert_eq!(worker_summary.totals.requests, served);
    // The worker's summary shows the plan its master gave, not start_test's defaults.
    assert_eq!(
        (worker_summary.user_count, worker_summary.test_time),
        (2, Some(3.0))
    );
    assert_eq!(worker_summary.runner_mode, "worker");
    // distributed_records = "errors": statistics cover everything, records only failures.
    let failed = target.served_path("/status/503");
    assert_eq!(summary.totals.failures, failed);
    assert_eq!(test_record_instance().counts(), (0, failed as usize));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_on_every_interface_takes_ipv4_and_ipv6_workers() {
    let _serial = SERIAL.lock().await;
    test_record_instance().clear_records();
    let target = HttpTarget::start().await.expect("start the HTTP target");
    let master = Master::start(config(json!({
        "runner_mode": "master",
        "master_bind_host": "*",
        "master_bind_port": 0,
        "expected_workers": 2,
        "expected_workers_timeout": 20,
        "user_count": 2,
        "spawn_rate": 10,
        "test_time": 2,
        "host": target.base_url(),
        "wait_time": {"constant": 0.05},
        "print_stats": false,
        "tasks": [{"method": "get", "request_url": "/get"}]
    })))
    .await
    .expect("start the master");
    let port = master.local_addr().port();
    let mut workers = Vec::new();
    for host in ["127.0.0.1", "::1"] {
        let mut worker = worker_config(port);
        worker.master_host = host.to_owned();
        workers.push(Worker::start(worker).await.expect("start a worker"));
    }
    let summary = master_ends(&master, Duration::from_secs(30)).await;
    for worker in workers {
        let s = worker_ends(worker).await;
        assert!(s.totals.requests > 0, "each worker ran a user");
    }
    assert_eq!(summary.totals.requests, target.served());
}

/// The master's summary once its run has ended, bounded in time.
async fn master_ends(master: &Master, within: Duration) -> Summary {
    tokio::time::timeout(within, master.wait())
        .await
        .expect("the master ends")
}

/// A worker's summary once it has quit cleanly, bounded in time.
async fn worker_ends(worker: Worker) -> Summary {
    tokio::time::timeout(Duration::from_secs(10), worker.wait())
        .await
        .expect("the worker ends")
        .expect("the worker quits cleanly")
}

fn envelope(kind: Value, data: Value, node: Value) -> Vec<u8> {
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &Value::Array(vec![kind, data, node])).expect("encode");
    bytes
}

async fn dealer(identity: &[u8], port: u16) -> DealerSocket {
    let mut options = SocketOptions::default();
    options.peer_identity(identity.to_vec().try_into().expect("identity"));
    let mut socket = DealerSocket::with_options(options);
    socket
        .connect(&format!("tcp://127.0.0.1:{port}"))
        .await
        .expect("connect to the master");
    socket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_and_unknown_messages_never_stop_the_master() {
    let _serial = SERIAL.lock().await;
    test_record_instance().clear_records();
    let target = HttpTarget::start().await.expect("start the HTTP target");
    let master = Master::start(config(json!({
        "runner_mode": "master",
        "master_bind_host": "127.0.0.1",
        "master_bind_port": 0,
        "expected_workers": 0,
        "user_count": 2,
        "spawn_rate": 10,
        "test_time": 7,
        "host": target.base_url(),
        "wait_time": {"constant": 0.05},
        "print_stats": false,
        "tasks": [{"method": "get", "request_url": "/get"}]
    })))
    .await
    .expect("start the master");
    let port = master.local_addr().port();

    // Not ZeroMQ at all.
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", port)).expect("raw connect");
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\xff\xfe\x00garbage")
        .expect("write garbage");
    drop(raw);

    // A peer that joins properly, then sends every kind of broken message.
    let id = "evil_0123456789abcdef0123456789abcdef";
    let mut evil = dealer(id.as_bytes(), port).await;
    let node = || Value::from(id);
    let send = |payload: Vec<u8>| ZmqMessage::from(payload);
    evil.send(send(envelope(
        "client_ready".into(),
        "2.47.0".into(),
        node(),
    )))
    .await
    .expect("send");
    let ack = tokio::time::timeout(Duration::from_secs(5), evil.recv())
        .await
        .expect("an ack in time")
        .expect("receive");
    let ack = Message::decode(&ack.into_vec()[0]).expect("decode the ack");
    assert_eq!(ack.kind, "ack");
    assert_eq!(ack.node_id, id);
    let broken: Vec<Vec<u8>> = vec![
        vec![0xc1],       // reserved msgpack byte
        vec![0x93, 0xa9], // truncated
        envelope("heartbeat".into(), Value::Nil, node())[..5].to_vec(),
        {
            let mut two = Vec::new();
            rmpv::encode::write_value(
                &mut two,
                &Value::Array(vec!["heartbeat".into(), Value::Nil]),
            )
            .expect("encode");
            two
        },
        envelope(Value::Binary(b"heartbeat".to_vec()), Value::Nil, node()),
        envelope("heartbeat".into(), Value::Map(vec![]), node()), // no state / cpu
        envelope(
            "heartbeat".into(),
            Value::Map(vec![
                ("state".into(), "ready".into()),
                ("current_cpu_usage".into(), "lots".into()),
            ]),
            node(),
        ),
        envelope("client_ready".into(), Value::from(5), node()), // kills a Python master
        envelope("stats".into(), "not a map".into(), node()),
        envelope(
            "stats".into(),
            Value::Map(vec![(
                "stats".into(),
                Value::Array(vec![Value::Map(vec![
                    ("name".into(), "/x".into()),
                    ("method".into(), "GET".into()),
                    ("num_requests".into(), Value::from(1u64 << 62)),
                ])]),
            )]),
            node(),
        ),
        envelope("spawning_complete".into(), Value::Map(vec![]), node()),
        envelope(
            "stats".into(),
            Value::Map(vec![("ld_stats".into(), Value::Binary(vec![1, 2, 3]))]),
            node(),
        ),
        {
            let mut trailing = envelope("heartbeat".into(), Value::Nil, node());
            trailing.extend_from_slice(b"trailing");
            trailing
        },
        envelope("no_such_type".into(), Value::Map(vec![]), node()),
    ];
    let malformed = broken.len() as u64 - 1; // the unknown type is only logged
    for payload in broken {
        evil.send(send(payload)).await.expect("send");
    }
    // A peer whose identity is not UTF-8.
    let mut odd = dealer(&[0xff, 0xfe, 0x01], port).await;
    odd.send(send(envelope(
        "client_ready".into(),
        "2.47.0".into(),
        "x".into(),
    )))
    .await
    .expect("send");

    eventually(
        "every broken message counted",
        Duration::from_secs(5),
        || master.malformed_messages() > malformed,
    )
    .await;

    // The master still works: a real worker joins mid-run and gets the users; the silent
    // peer goes missing.
    let worker = Worker::start(worker_config(port))
        .await
        .expect("start a worker");
    eventually(
        "the silent peer marked missing",
        Duration::from_secs(10),
        || {
            master
                .workers()
                .iter()
                .any(|w| w.id == id && w.state == "missing")
        },
    )
    .await;
    eventually(
        "both users on the real worker",
        Duration::from_secs(10),
        || worker.user_count() == 2,
    )
    .await;
    let summary = master_ends(&master, Duration::from_secs(30)).await;
    worker.wait().await.expect("the worker quits cleanly");
    let served = target.served();
    assert!(served > 10, "{served}");
    assert_eq!(summary.totals.requests, served);
    drop((evil, odd));
}

/// GET `path` from a web UI; the response body.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the web UI");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8_lossy(&response).into_owned();
    text.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_master_started_with_web_ui_dict_serves_its_workers() {
    let _serial = SERIAL.lock().await;
    test_record_instance().clear_records();
    let target = HttpTarget::start().await.expect("start the HTTP target");
    let port = unused_local_port();
    let run = tokio::spawn(load_density::start_test_async(config(json!({
        "runner_mode": "master",
        "master_bind_host": "127.0.0.1",
        "master_bind_port": port,
        "expected_workers": 1,
        "expected_workers_timeout": 20,
        "user_count": 2,
        "spawn_rate": 10,
        "test_time": 4,
        "host": target.base_url(),
        "wait_time": {"constant": 0.05},
        "print_stats": false,
        "web_ui_dict": {"host": "127.0.0.1", "port": 0},
        "tasks": [{"method": "get", "request_url": "/get"}]
    }))));
    let worker = Worker::start(worker_config(port))
        .await
        .expect("start a worker");
    let mut addr = None;
    eventually("the web UI listening", Duration::from_secs(10), || {
        addr = load_density::web::running_addresses().last().copied();
        addr.is_some()
    })
    .await;
    let addr = addr.expect("an address");
    let deadline = Instant::now() + Duration::from_secs(15);
    let stats = loop {
        let body = http_get(addr, "/stats/requests").await;
        let json: serde_json::Value = serde_json::from_str(&body).expect("stats JSON");
        if json["user_count"] == json!(2) {
            break json;
        }
        assert!(Instant::now() < deadline, "never 2 users: {json}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(stats["worker_count"], json!(1), "{stats}");
    assert_eq!(
        stats["workers"][0]["id"],
        json!(worker.node_id()),
        "{stats}"
    );
    let summary = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the run ends")
        .expect("join")
        .expect("the master's summary");
    worker.wait().await.expect("the worker quits cleanly");
    assert_eq!(summary.totals.requests, target.served());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_split_an_odd_arrival_rate_exactly() {
    let _serial = SERIAL.lock().await;
    test_record_instance().clear_records();
    let target = HttpTarget::start().await.expect("start the HTTP target");
    // 7 iterations per second for 3 s: 21 due in all, over two workers.
    let master = Master::start(config(json!({
        "runner_mode": "master",
        "master_bind_host": "127.0.0.1",
        "master_bind_port": 0,
        "expected_workers": 2,
        "expected_workers_timeout": 20,
        "test_time": 30,
        "host": target.base_url(),
        "print_stats": false,
        "load_model": {"type": "constant_arrival_rate", "rate": 7, "duration": 3,
                       "pre_allocated_users": 2, "max_users": 5},
        "tasks": [{"method": "get", "request_url": "/get"}]
    })))
    .await
    .expect("start the master");
    let port = master.local_addr().port();
    let first = Worker::start(worker_config(port)).await.expect("worker");
    let second = Worker::start(worker_config(port)).await.expect("worker");
    let summary = master_ends(&master, Duration::from_secs(30)).await;
    let shares = [first.stats().iterations(), second.stats().iterations()];
    worker_ends(first).await;
    worker_ends(second).await;
    // Every 2nd iteration from 0 and from 1: 11 and 10, adding up to the whole schedule.
    let mut sorted = shares;
    sorted.sort_unstable();
    assert_eq!(sorted, [10, 11], "each worker's share");
    assert_eq!(summary.totals.iterations, 21, "{:?}", summary.totals);
    assert_eq!(summary.totals.dropped_iterations, 0);
    assert_eq!(summary.totals.requests, 21);
    assert_eq!(target.served_path("/get"), 21);
    // Both histograms merged: the corrected latency travelled from the workers.
    let corrected = &summary
        .latency_overall
        .as_ref()
        .expect("corrected")
        .corrected;
    assert!(corrected.max_ms >= corrected.p50_ms && corrected.p50_ms > 0.0);
    assert!(
        summary.duration_s < 10.0,
        "the model ended the run: {}",
        summary.duration_s
    );
    // The workers' start lags merged, and their CPU use reached the master.
    let generator = summary.generator.as_ref().expect("generator figures");
    assert!(generator.start_lag_p99_ms > 0.0, "{generator:?}");
    // The master's record store has the iterations too (LD_generate_summary_report).
    assert_eq!(test_record_instance().stats().iterations(), 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_master_drives_ramping_stages_on_every_worker() {
    let _serial = SERIAL.lock().await;
    let target = HttpTarget::start().await.expect("start the HTTP target");
    // Locust's stage shape: 2 users until 2 s, then 6 until 4 s (then the model ends).
    let master = Master::start(config(json!({
        "runner_mode": "master",
        "master_bind_host": "127.0.0.1",
        "master_bind_port": 0,
        "expected_workers": 2,
        "expected_workers_timeout": 20,
        "test_time": 30,
        "host": target.base_url(),
        "print_stats": false,
        "wait_time": {"constant": 0.05},
        "load_model": {"type": "ramping_users", "stages": [
            {"duration": 2, "users": 2, "spawn_rate": 100},
            {"duration": 4, "users": 6, "spawn_rate": 100}
        ]},
        "tasks": [{"method": "get", "request_url": "/get"}]
    })))
    .await
    .expect("start the master");
    let port = master.local_addr().port();
    let first = Worker::start(worker_config(port)).await.expect("worker");
    let second = Worker::start(worker_config(port)).await.expect("worker");
    eventually("the first stage", Duration::from_secs(10), || {
        first.user_count() + second.user_count() == 2
    })
    .await;
    eventually("the second stage", Duration::from_secs(10), || {
        first.user_count() == 3 && second.user_count() == 3
    })
    .await;
    let summary = master_ends(&master, Duration::from_secs(20)).await;
    worker_ends(first).await;
    worker_ends(second).await;
    assert!(
        summary.duration_s < 10.0,
        "the last stage ended the run: {}",
        summary.duration_s
    );
    assert!(summary.totals.iterations > 0 && summary.totals.requests == summary.totals.iterations);
}
