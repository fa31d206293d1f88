//! A worker trusts its master only so far: it reads CSV data only from the files its master's
//! plan ships (never a path of its own file system), and `${env.NAME}` in the master's plan
//! reads only the names in the worker's allow-list (`allow_env`, `--allow-env`).

mod distributed_support;

use distributed_support::{config, refused_as_unshipped};

use std::time::Duration;

use load_density::distributed::{Master, Worker};
use load_density_testkit::HttpTarget;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plan_naming_a_local_csv_file_is_refused_by_the_worker() {
    let dir = tempfile::tempdir().expect("temp dir");
    let local = dir.path().join("secrets.csv");
    std::fs::write(&local, "name\nSECRET-ROW\n").expect("write the local file");
    let target = HttpTarget::start().await.expect("start the HTTP target");

    // A hostile master's plan whose CSV source is a path on the worker's machine.
    refused_as_unshipped(
        json!({
            "runner_mode": "worker",
            "host": target.base_url(),
            "csv_sources": [{"name": "users", "file_path": local.display().to_string()}],
            "tasks": [{"method": "get", "request_url": "/anything/${csv.users.name}"}]
        }),
        "csv_sources[0].file_path",
    )
    .await;
    assert_eq!(target.served(), 0, "nothing was sent to the target");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn env_placeholders_in_the_masters_plan_read_only_allowed_names() {
    std::env::set_var("LD_TRUST_ALLOWED", "visible");
    std::env::set_var("LD_TRUST_SECRET", "hunter2");
    let target = HttpTarget::start().await.expect("start the HTTP target");
    let master = Master::start(config(json!({
        "runner_mode": "master",
        "master_bind_host": "127.0.0.1",
        "master_bind_port": 0,
        "expected_workers": 1,
        "expected_workers_timeout": 30,
        "user_count": 1,
        "spawn_rate": 10,
        "test_time": 2,
        "host": target.base_url(),
        "wait_time": {"constant": 0.1},
        "print_stats": false,
        "tasks": [
            {"method": "get", "request_url": "/anything/a-${env.LD_TRUST_ALLOWED}"},
            {"method": "get", "request_url": "/anything/s-${env.LD_TRUST_SECRET}"}
        ]
    })))
    .await
    .expect("start the master");
    let worker = Worker::start(config(json!({
        "runner_mode": "worker",
        "master_host": "127.0.0.1",
        "master_port": master.local_addr().port(),
        "master_timeout": 20,
        "allow_env": ["LD_TRUST_ALLOWED"],
    })))
    .await
    .expect("start the worker");
    tokio::time::timeout(Duration::from_secs(40), master.wait())
        .await
        .expect("the master ends");
    worker.wait().await.expect("the worker quits cleanly");
    let paths = target.path_counts();
    assert!(
        paths
            .iter()
            .any(|(p, n)| p == "/anything/a-visible" && *n > 0),
        "the allowed name is read: {paths:?}"
    );
    assert!(
        paths.iter().all(|(p, _)| !p.contains("hunter2")),
        "a name outside the allow-list reached the target: {paths:?}"
    );
}
