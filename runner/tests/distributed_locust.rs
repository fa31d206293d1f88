//! Interop with real Python Locust (2.47, from the test venv): our worker under a Locust
//! master, Locust workers under our master, and a mix.

mod distributed_support;

use std::path::Path;
use std::time::Duration;

use distributed_support::{config, csv_count, fixture, locust_bin, read_csv, Proc};
use load_density::distributed::{Master, Worker};
use load_density::{start_test_async, RunControl, RunError, StartTest, Summary};
use load_density_testkit::{unused_local_port, HttpTarget};
use serde_json::json;

/// The tests share the process-wide record store: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Starts the venv's `locust` with `args`, its output in `dir/<name>.log`.
fn locust(name: &str, dir: &Path, args: &[&str]) -> Proc {
    let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    Proc::start(name, dir, &locust_bin(), &args)
}

/// A Locust master running `fixture`'s classes on `127.0.0.1:port`, plus `extra` options.
fn locust_master(dir: &Path, fixture_name: &str, port: u16, extra: &[&str]) -> Proc {
    let fixture = fixture(fixture_name).display().to_string();
    let port = port.to_string();
    let mut args = vec![
        "-f",
        &fixture,
        "--master",
        "--master-bind-host",
        "127.0.0.1",
        "--master-bind-port",
        &port,
    ];
    args.extend_from_slice(extra);
    locust("locust-master", dir, &args)
}

/// A headless Locust master that waits up to 30 s for one worker, runs `users` users started
/// at `rate` per second for `run_time`, and writes its CSV files to `dir/run_*.csv`.
fn headless_locust_master(
    dir: &Path,
    fixture_name: &str,
    port: u16,
    (users, rate, run_time): (&str, &str, &str),
) -> Proc {
    let prefix = dir.join("run").display().to_string();
    locust_master(
        dir,
        fixture_name,
        port,
        &[
            "--headless",
            "--expect-workers",
            "1",
            "--expect-workers-max-wait",
            "30",
            "-u",
            users,
            "-r",
            rate,
            "-t",
            run_time,
            "--csv",
            &prefix,
            "--loglevel",
            "INFO",
            // Locust's default (0) cuts the requests in flight at the stop: one cut before it
            // reached the server is recorded (as a failure) but never served, so no count
            // could equal the server's. With a grace, in-flight requests finish first.
            "--stop-timeout",
            "5",
        ],
    )
}

/// Waits (at most 60 s) for our worker under a Locust master to end; panics with the master's
/// output if it does not end or fails.
async fn our_worker_ends(
    worker: impl std::future::Future<Output = Result<Summary, RunError>>,
    master: &Proc,
) -> Summary {
    tokio::time::timeout(Duration::from_secs(60), worker)
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the worker did not end; master output:\n{}",
                master.output()
            )
        })
        .unwrap_or_else(|e| panic!("worker failed: {e}; master output:\n{}", master.output()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_worker_under_a_real_locust_master_counts_every_request() {
    let _serial = SERIAL.lock().await;
    let target = HttpTarget::start().await.expect("start the HTTP target");
    let dir = tempfile::tempdir().expect("temp dir");
    let port = unused_local_port();
    let mut master =
        headless_locust_master(dir.path(), "master_classes.py", port, ("4", "2", "6s"));

    let worker = start_test_async(config(json!({
        "runner_mode": "worker",
        "master_host": "127.0.0.1",
        "master_port": port,
        "host": target.base_url(),
        "wait_time": {"constant": 0.02},
        "tasks": [{"method": "get", "request_url": "/get"}],
        "master_timeout": 30,
    })));
    let summary = our_worker_ends(worker, &master).await;
    let status = master.wait(Duration::from_secs(30)).await;
    let output = master.output();
    assert!(status.success(), "locust master failed: {status}\n{output}");

    let served = target.served();
    let rows = read_csv(&dir.path().join("run_stats.csv"));
    let aggregated = csv_count(&rows, "Aggregated");
    assert!(
        served > 20,
        "too little traffic to compare: {served}\n{output}"
    );
    assert_eq!(
        aggregated, served,
        "the Locust master's CSV must count every request the server saw\n{output}"
    );
    assert_eq!(csv_count(&rows, "/get"), served);
    assert_eq!(summary.totals.requests, served, "the worker's own count");
    assert_eq!(summary.runner_mode, "worker");
    // The master dispatched 4 users to its only worker, 2 per second.
    assert!(output.contains("All users spawned"), "{output}");
    assert!(output.contains("\"fast_http_user\": 4"), "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locust_masters_classes_map_one_to_one_to_our_user_groups() {
    let _serial = SERIAL.lock().await;
    let target = HttpTarget::start().await.expect("start the HTTP target");
    let dir = tempfile::tempdir().expect("temp dir");
    let port = unused_local_port();
    let mut master = headless_locust_master(dir.path(), "two_classes.py", port, ("4", "4", "4s"));
    let group = |name: &str, path: &str| {
        json!({
            "name": name,
            "user": "fast_http_user",
            "wait_time": {"constant": 0.05},
            "tasks": [{"method": "get", "request_url": path}]
        })
    };
    let worker = start_test_async(config(json!({
        "runner_mode": "worker",
        "master_host": "127.0.0.1",
        "master_port": port,
        "host": target.base_url(),
        // Our own weights do not matter: the Locust master's (3:1) decide.
        "user_groups": [group("api", "/anything/api"), group("browse", "/get")],
        // Group thresholds make the worker add its per-group statistics to every report
        // (`ld_group_stats`), which the Locust master ignores.
        "thresholds": {"requests{group:api}": ["count>0"]},
    })));
    our_worker_ends(worker, &master).await;
    let status = master.wait(Duration::from_secs(30)).await;
    let output = master.output();
    assert!(status.success(), "{status}\n{output}");
    assert!(
        output.contains("\"browse\": 3") && output.contains("\"api\": 1"),
        "the master dispatched 3 browse and 1 api user\n{output}"
    );
    let rows = read_csv(&dir.path().join("run_stats.csv"));
    let api = target.served_path("/anything/api");
    let browse = target.served_path("/get");
    assert!(
        api > 0 && browse > 2 * api,
        "3 browse users for 1 api user: {browse} vs {api}"
    );
    assert_eq!(csv_count(&rows, "/anything/api"), api);
    assert_eq!(csv_count(&rows, "/get"), browse);
    assert_eq!(csv_count(&rows, "Aggregated"), target.served());
}

/// A bare HTTP/1.1 request to the Locust web UI; returns the response body.
async fn http(port: u16, method: &str, path: &str, form: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    // The web UI takes a moment to start listening.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut stream = loop {
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Ok(stream) => break stream,
            Err(error) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "cannot reach the Locust web UI: {error}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(90), stream.read_to_end(&mut response))
        .await
        .expect("the web UI answers")
        .expect("read");
    let text = String::from_utf8_lossy(&response).into_owned();
    text.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or(text)
}

/// The Locust master's aggregated request count and runner state.
async fn locust_totals(web_port: u16) -> (u64, String) {
    let body = http(web_port, "GET", "/stats/requests", "").await;
    let json: serde_json::Value = serde_json::from_str(&body).expect("stats JSON");
    let rows = json["stats"].as_array().expect("stats rows");
    let total = rows
        .iter()
        .find(|r| r["name"] == "Aggregated")
        .and_then(|r| r["num_requests"].as_u64())
        .expect("an Aggregated row");
    (total, json["state"].as_str().unwrap_or("").to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_worker_follows_swarm_stop_swarm_from_a_locust_web_ui() {
    let _serial = SERIAL.lock().await;
    let target = HttpTarget::start().await.expect("start the HTTP target");
    let dir = tempfile::tempdir().expect("temp dir");
    let port = unused_local_port();
    let web_port = unused_local_port();
    let web_port_arg = web_port.to_string();
    let mut master = locust_master(
        dir.path(),
        "master_classes.py",
        port,
        &["--web-host", "127.0.0.1", "--web-port", &web_port_arg],
    );
    let worker = tokio::spawn(start_test_async(config(json!({
        "runner_mode": "worker",
        "master_host": "127.0.0.1",
        "master_port": port,
        "host": target.base_url(),
        "wait_time": {"constant": 0.05},
        "tasks": [{"method": "get", "request_url": "/get"}],
    }))));
    // Wait for the worker to be known to the master.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let body = http(web_port, "GET", "/worker-count", "").await;
        if body.contains("\"worker_count\": 1") || body.contains("\"worker_count\":1") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no worker: {body}\n{}",
            master.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for phase in 0..2 {
        target.reset_counts();
        let answer = http(web_port, "POST", "/swarm", "user_count=3&spawn_rate=10").await;
        assert!(answer.contains("Swarming started"), "{answer}");
        tokio::time::sleep(Duration::from_secs(4)).await;
        // /stop returns once every worker has stopped its users and said client_stopped.
        let answer = http(web_port, "POST", "/stop", "").await;
        assert!(answer.contains("Test stopped"), "{answer}");
        // Let the last report arrive (sent before client_stopped).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (total, state) = locust_totals(web_port).await;
        let served = target.served();
        assert!(served > 20, "phase {phase}: too little traffic {served}");
        assert_eq!(
            total,
            served,
            "phase {phase}: Locust counts every request\n{}",
            master.output()
        );
        assert_eq!(state, "stopped", "phase {phase}");
        // After client_stopped the worker says client_ready again and is usable.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // SIGTERM: the master quits, our worker sends its last report and ends cleanly.
    let pid = master.child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(status.success());
    let summary = tokio::time::timeout(Duration::from_secs(30), worker)
        .await
        .expect("the worker ends")
        .expect("join")
        .expect("the worker quits cleanly");
    assert!(summary.totals.requests > 40);
    let output = master.output();
    master.wait(Duration::from_secs(20)).await;
    assert!(output.contains("reported that it has stopped"), "{output}");
}

fn locust_worker(name: &str, dir: &Path, port: u16) -> Proc {
    let fixture = fixture("fast_http_worker.py").display().to_string();
    let port = port.to_string();
    locust(
        name,
        dir,
        &[
            "-f",
            &fixture,
            "--worker",
            "--master-host",
            "127.0.0.1",
            "--master-port",
            &port,
            "--loglevel",
            "INFO",
        ],
    )
}

/// The master's plan: one user group named like the Locust worker's class ("web").
fn master_plan(target: &HttpTarget, expected_workers: u32, users: u64) -> StartTest {
    config(json!({
        "runner_mode": "master",
        "master_bind_host": "127.0.0.1",
        "master_bind_port": 0,
        "expected_workers": expected_workers,
        "expected_workers_timeout": 40,
        "user_count": users,
        "spawn_rate": 10,
        "test_time": 6,
        "host": target.base_url(),
        "print_stats": false,
        "user_groups": [{
            "name": "web",
            "user": "fast_http_user",
            "wait_time": {"constant": 0.05},
            "tasks": [{"method": "get", "request_url": "/get"}]
        }]
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_locust_worker_under_our_master_is_counted_exactly() {
    let _serial = SERIAL.lock().await;
    load_density::core::test_record_instance().clear_records();
    let target = HttpTarget::start().await.expect("start the HTTP target");
    let dir = tempfile::tempdir().expect("temp dir");
    let master = Master::start(master_plan(&target, 1, 3))
        .await
        .expect("start the master");
    let port = master.local_addr().port();
    let mut worker = locust_worker("locust-worker", dir.path(), port);
    let summary = tokio::time::timeout(Duration::from_secs(90), master.wait())
        .await
        .unwrap_or_else(|_| panic!("the master did not end; worker:\n{}", worker.output()));
    worker.wait(Duration::from_secs(20)).await;
    let output = worker.output();
    let served = target.served();
    assert!(served > 20, "too little traffic: {served}\n{output}");
    assert_eq!(
        summary.totals.requests, served,
        "our master counts every request of the Locust worker\n{output}"
    );
    assert_eq!(
        master
            .stats()
            .entry("GET", "/get")
            .map(|e| e.num_requests()),
        Some(served)
    );
    let workers = master.workers();
    assert_eq!(workers.len(), 1, "{workers:?}");
    assert!(
        workers[0].id.contains('_'),
        "a Locust node id: {}",
        workers[0].id
    );
    // The master's record store holds the Locust worker's requests too (rebuilt from its
    // report), so reports made on the master cover the run.
    let (ok, failed) = load_density::core::test_record_instance().counts();
    assert_eq!((ok + failed) as u64, served);
    assert_eq!(master.malformed_messages(), 0, "{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_locust_worker_and_two_of_ours_under_our_master() {
    let _serial = SERIAL.lock().await;
    load_density::core::test_record_instance().clear_records();
    let target = HttpTarget::start().await.expect("start the HTTP target");
    let dir = tempfile::tempdir().expect("temp dir");
    let master = Master::start(master_plan(&target, 3, 6))
        .await
        .expect("start the master");
    let port = master.local_addr().port();
    let mut locust = locust_worker("locust-worker", dir.path(), port);
    let mut ours = Vec::new();
    for _ in 0..2 {
        ours.push(
            Worker::start(config(json!({
                "runner_mode": "worker",
                "master_host": "127.0.0.1",
                "master_port": port,
            })))
            .await
            .expect("start our worker"),
        );
    }
    let our_ids: Vec<String> = ours.iter().map(|w| w.node_id().to_owned()).collect();
    let summary = tokio::time::timeout(Duration::from_secs(90), master.wait())
        .await
        .unwrap_or_else(|_| panic!("the master did not end; worker:\n{}", locust.output()));
    let mut ours_total = 0;
    for worker in ours {
        ours_total += worker
            .wait()
            .await
            .expect("our worker quits")
            .totals
            .requests;
    }
    locust.wait(Duration::from_secs(20)).await;
    let output = locust.output();
    let served = target.served();
    assert_eq!(
        summary.totals.requests, served,
        "master == server\n{output}"
    );
    let per_worker = master.worker_requests();
    assert_eq!(per_worker.len(), 3, "{per_worker:?}");
    assert!(
        per_worker.iter().all(|(_, n)| *n > 0),
        "everyone worked: {per_worker:?}"
    );
    let locust_total: u64 = per_worker
        .iter()
        .filter(|(id, _)| !our_ids.contains(id))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(ours_total + locust_total, served, "{per_worker:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_model_under_a_locust_master_is_a_clear_error() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let port = unused_local_port();
    let master = headless_locust_master(dir.path(), "master_classes.py", port, ("1", "1", "5s"));
    let worker = start_test_async(config(json!({
        "runner_mode": "worker",
        "master_host": "127.0.0.1",
        "master_port": port,
        "host": "http://127.0.0.1:9",
        "load_model": {"type": "constant_arrival_rate", "rate": 10},
        "tasks": [{"method": "get", "request_url": "/get"}],
        "master_timeout": 30,
    })));
    let error = tokio::time::timeout(Duration::from_secs(60), worker)
        .await
        .expect("the worker ends")
        .expect_err("a Locust master cannot run an arrival-rate model");
    let text = error.to_string();
    assert!(
        text.contains("Locust master, which sends only user counts")
            && text.contains("arrival-rate load model")
            && text.contains("fast_http_user"),
        "{text}"
    );
    // Dropping the Locust master (still waiting for a worker) kills it.
    drop(master);
}
