//! Benchmark (not run by default): a master on its own single-threaded runtime (one OS
//! thread, so its CPU time is that thread's) fed by 50 simulated workers (tasks on loopback,
//! each a real DEALER speaking the protocol), measuring the master's CPU per worker report and
//! whether it absorbs every request reported.
//!
//! ```text
//! cargo test --release -p load-density --test distributed_bench -- --ignored --nocapture
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use load_density::core::{RequestEvent, RequestListener};
use load_density::distributed::locust_stats::{RecordShipping, ReportBuilder};
use load_density::distributed::wire::Message;
use load_density::distributed::Master;
use load_density::StartTest;
use load_density_testkit::unused_local_port;
use rmpv::Value;
use serde_json::json;
use zeromq::{DealerSocket, Socket, SocketOptions, SocketRecv, SocketSend, ZmqMessage};

const WORKERS: usize = 50;
const RUN_SECS: u64 = 12;

/// CPU seconds used by one thread of this process.
fn cpu_seconds(tid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// What a simulated worker's reports carry.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    /// A LoadDensity worker: Locust's stats, exact HDR stats and every record.
    Records,
    /// A LoadDensity worker with `distributed_records: "none"`: Locust's and exact stats.
    Exact,
    /// A Locust worker: Locust's stats only (the master rebuilds one event per request).
    Locust,
}

/// One report's data holding `requests` requests over 5 names.
fn report_data(requests: usize, shape: Shape) -> Value {
    let builder = ReportBuilder::new();
    if shape == Shape::Records {
        builder.ship_records(Some(RecordShipping::All));
    }
    let now = SystemTime::now();
    let names: Vec<Arc<str>> = (0..5).map(|i| Arc::from(format!("/path/{i}"))).collect();
    let events: Vec<RequestEvent> = (0..requests)
        .map(|i| RequestEvent {
            request_type: Arc::from("GET"),
            name: names[i % 5].clone(),
            url: Arc::from(format!("http://127.0.0.1:8080/path/{}", i % 5)),
            status: Some(200),
            response_time: Duration::from_micros(200 + (i as u64 * 7919) % 50_000),
            response_length: 512,
            error: None,
            start_time: now,
            start_delay: None,
        })
        .collect();
    builder.on_requests(&events);
    builder
        .take_report(&[("fast_http_user".to_owned(), 1)], shape != Shape::Locust)
        .0
}

struct Outcome {
    reports: u64,
    requests_sent: u64,
    requests_counted: u64,
    cpu_s: f64,
    window_s: f64,
}

async fn simulated_worker(
    port: u16,
    index: usize,
    data: Value,
    per_report: u64,
    sent: Arc<AtomicU64>,
    reports: Arc<AtomicU64>,
) {
    let node_id = format!("sim{index}_{:032x}", index);
    let mut options = SocketOptions::default();
    options.peer_identity(node_id.parse().expect("identity"));
    let mut socket = DealerSocket::with_options(options);
    socket
        .connect(&format!("tcp://127.0.0.1:{port}"))
        .await
        .expect("connect");
    let (mut tx, mut rx) = socket.split();
    let encode = |kind: &str, data: Value| {
        ZmqMessage::from(Message::new(kind, data, node_id.clone()).encode())
    };
    tx.send(encode(
        "client_ready",
        Value::from("2.47.0+loaddensity.bench"),
    ))
    .await
    .expect("send");
    let stats = encode("stats", data);
    let heartbeat = encode(
        "heartbeat",
        Value::Map(vec![
            ("state".into(), "running".into()),
            ("current_cpu_usage".into(), Value::from(1.0)),
        ]),
    );
    let (quit_tx, mut quit_rx) = tokio::sync::watch::channel(false);
    let reader = tokio::spawn(async move {
        while let Ok(message) = rx.recv().await {
            let Some(payload) = message.into_vec().pop() else {
                continue;
            };
            if Message::decode(&payload).is_ok_and(|m| m.kind == "quit") {
                let _ = quit_tx.send(true);
                return;
            }
        }
    });
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                n += 1;
                tx.send(heartbeat.clone()).await.expect("heartbeat");
                if n % 3 == (index as u64) % 3 {
                    tx.send(stats.clone()).await.expect("stats");
                    sent.fetch_add(per_report, Ordering::Relaxed);
                    reports.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ = quit_rx.changed() => break,
        }
    }
    tx.send(encode("quit", Value::Nil)).await.expect("quit");
    tokio::time::sleep(Duration::from_millis(500)).await;
    reader.abort();
}

async fn scenario(per_report: usize, shape: Shape) -> Outcome {
    let port = unused_local_port();
    let config: StartTest = serde_json::from_value(json!({
        "runner_mode": "master",
        "master_bind_host": "127.0.0.1",
        "master_bind_port": port,
        "expected_workers": WORKERS,
        "user_count": WORKERS,
        "spawn_rate": 1000,
        "test_time": RUN_SECS,
        "host": "http://127.0.0.1:9",
        "print_stats": false,
        "tasks": [{"method": "get", "request_url": "/"}]
    }))
    .expect("config");
    // The master alone on one thread: its CPU time is that thread's.
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let master_thread = std::thread::spawn(move || {
        let tid: u32 = std::fs::read_link("/proc/thread-self")
            .ok()
            .and_then(|p| p.file_name()?.to_str()?.parse().ok())
            .expect("this thread's id");
        tid_tx.send(tid).expect("send the thread id");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let master = Master::start(config).await.expect("start the master");
            master.wait().await
        })
    });
    let tid = tid_rx.recv().expect("the master thread's id");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let data = report_data(per_report, shape);
    let sent = Arc::new(AtomicU64::new(0));
    let reports = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..WORKERS)
        .map(|i| {
            tokio::spawn(simulated_worker(
                port,
                i,
                data.clone(),
                per_report as u64,
                sent.clone(),
                reports.clone(),
            ))
        })
        .collect();
    // Measure the master's CPU while reports flow (skip the first 2 s of joining).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (cpu0, reports0, t0) = (
        cpu_seconds(tid).unwrap_or(0.0),
        reports.load(Ordering::Relaxed),
        Instant::now(),
    );
    tokio::time::sleep(Duration::from_secs(RUN_SECS - 4)).await;
    let (cpu1, reports1, window) = (
        cpu_seconds(tid).unwrap_or(0.0),
        reports.load(Ordering::Relaxed),
        t0.elapsed(),
    );
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
    }
    let summary = tokio::task::spawn_blocking(move || master_thread.join())
        .await
        .expect("join")
        .expect("the master thread");
    Outcome {
        reports: reports1 - reports0,
        requests_sent: sent.load(Ordering::Relaxed),
        requests_counted: summary.totals.requests,
        cpu_s: cpu1 - cpu0,
        window_s: window.as_secs_f64(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: cargo test --release -p load-density --test distributed_bench -- --ignored --nocapture"]
async fn master_cpu_per_report_with_50_simulated_workers() {
    println!(
        "{:>10} {:>8} | {:>9} {:>10} {:>11} {:>13} | {:>9} {:>9}",
        "req/report",
        "shape",
        "reports/s",
        "master CPU",
        "CPU/report",
        "req/s offered",
        "sent",
        "counted"
    );
    // LD_BENCH_SCENARIOS="100000:Records,100000:Locust" picks other sizes.
    let scenarios: Vec<(usize, Shape)> = match std::env::var("LD_BENCH_SCENARIOS") {
        Ok(list) => list
            .split(',')
            .map(|item| {
                let (n, shape) = item.split_once(':').expect("N:Shape");
                let shape = match shape {
                    "Records" => Shape::Records,
                    "Exact" => Shape::Exact,
                    "Locust" => Shape::Locust,
                    other => panic!("unknown shape {other}"),
                };
                (n.parse().expect("a request count"), shape)
            })
            .collect(),
        Err(_) => vec![
            (30, Shape::Records),
            (300, Shape::Records),
            (3_000, Shape::Records),
            (3_000, Shape::Exact),
            (3_000, Shape::Locust),
            (10_000, Shape::Records),
            (30_000, Shape::Records),
            (30_000, Shape::Exact),
            (30_000, Shape::Locust),
        ],
    };
    for (per_report, shape) in scenarios {
        let o = scenario(per_report, shape).await;
        let reports_per_s = o.reports as f64 / o.window_s;
        println!(
            "{:>10} {:>8} | {:>9.1} {:>9.1}% {:>8.3} ms {:>13.0} | {:>9} {:>9}",
            per_report,
            format!("{shape:?}"),
            reports_per_s,
            o.cpu_s / o.window_s * 100.0,
            o.cpu_s / o.reports.max(1) as f64 * 1000.0,
            reports_per_s * per_report as f64,
            o.requests_sent,
            o.requests_counted,
        );
        assert_eq!(
            o.requests_counted, o.requests_sent,
            "the master lost reports"
        );
    }
}
