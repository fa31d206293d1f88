//! Files a plan names besides CSV data (`ca_file`, `descriptor_set`): the master reads them
//! and ships their contents in the plan, so a worker never opens a path its master named; a
//! plan from a hostile master naming a worker-side path is refused; a file above the cap is
//! refused by the master at start.

mod distributed_support;

use distributed_support::{
    config, refused_as_unshipped, refused_by_the_worker, run_one_worker, worker_config,
};

use load_density::distributed::Master;
use load_density_testkit::{GrpcTarget, HttpTarget};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_masters_ca_file_travels_in_the_plan_and_the_worker_opens_no_path() {
    let target = HttpTarget::start_tls().await.expect("start the TLS target");
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, target.ca_cert_pem().expect("the target's CA")).expect("write the CA");
    let master = Master::start(config(json!({
        "runner_mode": "master",
        "master_bind_host": "127.0.0.1",
        "master_bind_port": 0,
        "expected_workers": 1,
        "expected_workers_timeout": 30,
        "user_detail_dict": {"user": "fast_http_user"},
        "user_count": 2,
        "spawn_rate": 10,
        "test_time": 2,
        "host": target.base_url(),
        "wait_time": {"constant": 0.05},
        "print_stats": false,
        "ca_file": ca.display().to_string(),
        "tasks": [{"method": "get", "request_url": "/get"}]
    })))
    .await
    .expect("start the master");
    // The master has read it; the worker (same machine here) must not need the path.
    drop(dir);
    assert!(!ca.exists());
    let summary = run_one_worker(&master, worker_config(master.local_addr().port())).await;
    let served = target.served();
    assert!(served > 5, "too little traffic: {served}");
    assert_eq!(summary.totals.failures, 0, "the shipped CA is trusted");
    assert_eq!(summary.totals.requests, served);
}

#[tokio::test]
async fn a_file_above_the_cap_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let big = dir.path().join("big.bin");
    let file = std::fs::File::create(&big).expect("create");
    file.set_len(load_density::distributed::MAX_SHIPPED_FILE + 1)
        .expect("a sparse file");
    let error = Master::start(config(json!({
        "runner_mode": "master",
        "master_bind_host": "127.0.0.1",
        "master_bind_port": 0,
        "user_groups": [{
            "name": "rpc", "user": "grpc_user", "descriptor_set": big.display().to_string(),
            "tasks": [{"method": "pkg.Svc/Call", "request": {}}]
        }],
        "user_count": 1,
        "spawn_rate": 1,
        "test_time": 1,
        "host": "http://127.0.0.1:1",
    })))
    .await
    .expect_err("a descriptor set above the cap");
    let text = error.to_string();
    assert!(
        text.contains("user_groups[0].descriptor_set") && text.contains("larger than"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plan_naming_a_worker_side_ca_file_or_descriptor_set_is_refused() {
    let target = HttpTarget::start().await.expect("start the HTTP target");
    let local = tempfile::NamedTempFile::new().expect("a local file");
    let path = local.path().display().to_string();
    refused_as_unshipped(
        json!({
            "runner_mode": "worker",
            "host": target.base_url(),
            "user_detail_dict": {"user": "http_user", "ca_file": path},
            "tasks": [{"method": "get", "request_url": "/get"}]
        }),
        "user_detail_dict.ca_file",
    )
    .await;
    refused_as_unshipped(
        json!({
            "runner_mode": "worker",
            "host": target.base_url(),
            "user_groups": [{
                "name": "mq", "user": "mqtt_user",
                "tasks": [{"method": "publish", "topic": "t", "ca_file": path}]
            }]
        }),
        "user_groups[0].tasks[0].ca_file",
    )
    .await;
    refused_as_unshipped(
        json!({
            "runner_mode": "worker",
            "host": target.base_url(),
            "user_groups": [{
                "name": "rpc", "user": "grpc_user", "descriptor_set": path,
                "tasks": [{"method": "pkg.Svc/Call"}]
            }]
        }),
        "user_groups[0].descriptor_set",
    )
    .await;
    assert_eq!(target.served(), 0, "nothing was sent to the target");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn proto_files_travel_with_their_imports_and_the_worker_compiles_its_own_copies() {
    let target = GrpcTarget::start().await.expect("start the gRPC target");
    // `api/main.proto` imports `loadtest.proto` (which imports a built-in well-known type),
    // found under the import path `root`.
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("api")).expect("create the proto tree");
    std::fs::copy(
        load_density_testkit::grpc::loadtest_proto(),
        root.join("loadtest.proto"),
    )
    .expect("copy loadtest.proto");
    let main = root.join("api").join("main.proto");
    std::fs::write(
        &main,
        "syntax = \"proto3\";\npackage api;\nimport public \"loadtest.proto\";\n",
    )
    .expect("write main.proto");
    let master = Master::start(config(json!({
        "runner_mode": "master",
        "master_bind_host": "127.0.0.1",
        "master_bind_port": 0,
        "expected_workers": 1,
        "expected_workers_timeout": 30,
        "user_groups": [{
            "name": "rpc", "user": "grpc_user",
            "proto_files": [main.display().to_string()],
            "import_paths": [root.display().to_string()],
            "tasks": [{"call": "loadtest.Echo/Unary", "payload": {"message": "hi"}}]
        }],
        "user_count": 2,
        "spawn_rate": 10,
        "test_time": 2,
        "host": target.url(),
        "wait_time": {"constant": 0.05},
        "print_stats": false
    })))
    .await
    .expect("start the master");
    // The master has read every file; the worker (same machine here) must not need them.
    drop(dir);
    assert!(!main.exists());
    let summary = run_one_worker(&master, worker_config(master.local_addr().port())).await;
    let calls = target.calls_to("Unary");
    assert!(calls > 5, "too little traffic: {calls}");
    assert_eq!(
        summary.totals.failures, 0,
        "the shipped protos compile on the worker"
    );
    assert_eq!(summary.totals.requests, calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plan_naming_worker_side_proto_files_or_import_paths_is_refused() {
    let target = HttpTarget::start().await.expect("start the HTTP target");
    let local = tempfile::NamedTempFile::new().expect("a local file");
    let path = local.path().display().to_string();
    for (options, expected) in [
        (
            json!({"proto_files": [path.clone()]}),
            "user_groups[0].proto_files",
        ),
        (
            json!({"proto_files": "ld-proto:0:../../etc/x.proto"}),
            "user_groups[0].proto_files",
        ),
        (
            json!({"import_paths": ["/"]}),
            "user_groups[0].import_paths",
        ),
    ] {
        let mut group = json!({"name": "rpc", "user": "grpc_user",
                               "tasks": [{"call": "pkg.Svc/Call"}]});
        for (key, value) in options.as_object().expect("options") {
            group[key] = value.clone();
        }
        let text = refused_by_the_worker(json!({
            "runner_mode": "worker",
            "host": target.base_url(),
            "user_groups": [group]
        }))
        .await;
        assert!(text.contains(expected), "{expected}: {text}");
    }
    assert_eq!(target.served(), 0, "nothing was sent to the target");
}
