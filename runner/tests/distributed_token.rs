//! The cluster token and admission: a rogue peer (real pyzmq, from the test venv) that claims
//! to be a LoadDensity worker gets nothing of the plan without the token; a worker with the
//! right token runs, one with a wrong token (or none) is refused; reports from peers never
//! admitted are dropped.

mod distributed_support;

use distributed_support::{config, run_one_worker};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use load_density::distributed::{Master, Worker};
use load_density::{RunControl, StartTest};
use load_density_testkit::HttpTarget;
use serde_json::json;

/// Tests here share the process-wide record store: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// In the plan only; must never reach a peer without the token.
const MARKER: &str = "PLAN-SECRET-4711";

fn python() -> PathBuf {
    let python = std::env::var_os("LOAD_DENSITY_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/ld-venv/bin/python3"));
    assert!(
        python.exists(),
        "{} is missing: run .ci/install-deps (it installs pyzmq into the test venv)",
        python.display()
    );
    python
}

#[derive(Debug, serde::Deserialize)]
struct RogueSaw {
    identity: String,
    kinds: Vec<String>,
    payloads: Vec<String>,
}

impl RogueSaw {
    /// Whether any byte it received spells the plan's marker.
    fn saw_marker(&self) -> bool {
        let marker: String = MARKER.bytes().map(|b| format!("{b:02x}")).collect();
        self.payloads.iter().any(|p| p.contains(&marker))
    }
}

/// Runs the rogue peer (tests/fixtures/cluster/rogue_peer.py) for `seconds`.
async fn rogue(port: u16, mode: &'static str, seconds: f64) -> RogueSaw {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cluster/rogue_peer.py");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(script)
            .arg(port.to_string())
            .arg(mode)
            .arg(seconds.to_string())
            .output()
            .expect("run the rogue peer")
    })
    .await
    .expect("join");
    assert!(
        output.status.success(),
        "the rogue peer failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "unreadable rogue output ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn master_config(target: &HttpTarget, token: Option<&str>) -> StartTest {
    let mut value = json!({
        "runner_mode": "master",
        "master_bind_host": "127.0.0.1",
        "master_bind_port": 0,
        "expected_workers": 1,
        "expected_workers_timeout": 40,
        "user_count": 2,
        "spawn_rate": 10,
        "test_time": 3,
        "host": target.base_url(),
        "wait_time": {"constant": 0.05},
        "print_stats": false,
        "tasks": [{"method": "get", "request_url": format!("/get?k={MARKER}")}]
    });
    if let Some(token) = token {
        value["cluster_token"] = json!(token);
    }
    config(value)
}

fn worker_config(port: u16, token: Option<&str>) -> StartTest {
    let mut value = json!({
        "runner_mode": "worker",
        "master_host": "127.0.0.1",
        "master_port": port,
        "master_timeout": 20,
    });
    if let Some(token) = token {
        value["cluster_token"] = json!(token);
    }
    config(value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_token_no_peer_gets_the_plan_and_with_it_a_worker_runs() {
    let _serial = SERIAL.lock().await;
    load_density::core::test_record_instance().clear_records();
    let target = HttpTarget::start().await.expect("start the HTTP target");
    let master = Master::start(master_config(&target, Some("right-token")))
        .await
        .expect("start the master");
    let port = master.local_addr().port();

    // Rogue peers: one claims to be a LoadDensity worker and stays silent, one forges a
    // proof, one is a plain Locust worker.
    let (claim, forge, locust) = tokio::join!(
        rogue(port, "claim", 3.0),
        rogue(port, "forge", 3.0),
        rogue(port, "locust", 3.0),
    );
    assert_eq!(claim.kinds, ["ld_challenge"], "{claim:?}");
    assert_eq!(forge.kinds, ["ld_challenge", "ld_refused"], "{forge:?}");
    assert_eq!(locust.kinds, ["ld_refused"], "{locust:?}");
    for saw in [&claim, &forge, &locust] {
        assert!(!saw.saw_marker(), "a rogue peer read the plan: {saw:?}");
    }
    assert!(
        master.workers().is_empty(),
        "nobody admitted: {:?}",
        master.workers()
    );
    assert_eq!(master.refused_peers(), 2);

    // Workers with a wrong token, or none, are refused with a clear error.
    let wrong = Worker::start(worker_config(port, Some("wrong-token")))
        .await
        .expect("start a worker");
    let error = tokio::time::timeout(Duration::from_secs(15), wrong.wait())
        .await
        .expect("the refused worker ends")
        .expect_err("a wrong token is refused");
    assert!(error.to_string().contains("wrong cluster token"), "{error}");
    let none = Worker::start(worker_config(port, None))
        .await
        .expect("start a worker");
    let error = tokio::time::timeout(Duration::from_secs(15), none.wait())
        .await
        .expect("the tokenless worker ends")
        .expect_err("no token is refused");
    assert!(
        error.to_string().contains("requires a cluster token"),
        "{error}"
    );
    assert!(master.workers().is_empty(), "{:?}", master.workers());

    // The right token: admitted, gets the plan, runs it.
    let summary = run_one_worker(&master, worker_config(port, Some("right-token"))).await;
    let served = target.served();
    assert!(served > 5, "too little traffic: {served}");
    assert_eq!(summary.totals.requests, served);
    assert_eq!(master.workers().len(), 1, "{:?}", master.workers());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reports_from_peers_never_admitted_are_dropped() {
    let _serial = SERIAL.lock().await;
    load_density::core::test_record_instance().clear_records();
    let target = HttpTarget::start().await.expect("start the HTTP target");
    let master = Master::start(master_config(&target, None))
        .await
        .expect("start the master");
    let port = master.local_addr().port();
    let saw = rogue(port, "stats", 1.0).await;
    assert_eq!(master.dropped_reports(), 1);
    assert!(master.stats().entry("GET", "/rogue").is_none());

    let summary = run_one_worker(&master, worker_config(port, None)).await;
    let served = target.served();
    assert!(served > 5, "too little traffic: {served}");
    assert_eq!(
        summary.totals.requests, served,
        "the rogue's 5 are not counted"
    );
    assert!(master
        .worker_requests()
        .iter()
        .all(|(id, _)| *id != saw.identity));
}
