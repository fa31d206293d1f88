//! `source_addresses`: users bind their connections to a group's local addresses round-robin.
//! Testkit servers on 127.0.0.1 record each connection's source address; users configured
//! with 127.0.0.2-127.0.0.4 must show up from all three, each address exactly as often as
//! round-robin gives it. Bad lists are errors naming their JSON path.

use std::net::IpAddr;

use load_density::{start_test_async, RunError, StartTest};
use load_density_testkit::{GrpcTarget, HttpTarget, MqttBroker, TcpEchoServer, WsEchoServer};
use serde_json::{json, Value};

fn config(value: Value) -> StartTest {
    serde_json::from_value(value).expect("a valid start_test configuration")
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

/// `users` users of `user_type`, 3 iterations each, from `sources`.
fn run_config(user_type: &str, users: u64, host: String, sources: Value, tasks: Value) -> Value {
    json!({
        "user_detail_dict": {"user": user_type},
        "test_time": 30,
        "host": host,
        "print_stats": false,
        "source_addresses": sources,
        "load_model": {"type": "per_user_iterations", "users": users, "iterations": 3},
        "tasks": tasks,
    })
}

async fn run(value: Value) -> load_density::Summary {
    let summary = start_test_async(config(value)).await.expect("the run");
    assert_eq!(summary.totals.failures, 0, "{:?}", summary.totals);
    summary
}

fn spread(counts: [u64; 3]) -> Vec<(IpAddr, u64)> {
    ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
        .iter()
        .zip(counts)
        .map(|(a, n)| (ip(a), n))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_http_and_http_users_bind_round_robin() {
    let target = HttpTarget::start().await.expect("target");
    let tasks = json!([{"method": "get", "request_url": "/get"}]);
    // 8 users over 3 addresses: users 0..8 take .2 .3 .4 .2 .3 .4 .2 .3 (one kept-alive
    // connection each).
    let summary = run(run_config(
        "fast_http_user",
        8,
        target.base_url(),
        json!("127.0.0.2-127.0.0.4"),
        tasks.clone(),
    ))
    .await;
    assert_eq!(summary.totals.requests, 24);
    assert_eq!(target.connection_sources(), spread([3, 3, 2]));

    let target = HttpTarget::start().await.expect("target");
    run(run_config(
        "http_user",
        6,
        target.base_url(),
        json!(["127.0.0.2", "127.0.0.3/32", "127.0.0.4-127.0.0.4"]),
        tasks,
    ))
    .await;
    assert_eq!(target.connection_sources(), spread([2, 2, 2]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_and_socket_users_bind_round_robin() {
    let server = WsEchoServer::start().await.expect("ws server");
    run(run_config(
        "websocket_user",
        7,
        server.base_url(),
        json!("127.0.0.2-127.0.0.4"),
        json!([{"method": "sendrecv", "url": "/echo", "payload": "hi", "expect": "hi"}]),
    ))
    .await;
    assert_eq!(server.connection_sources(), spread([3, 2, 2]));

    let echo = TcpEchoServer::start().await.expect("tcp server");
    run(run_config(
        "socket_user",
        5,
        echo.target(),
        json!("127.0.0.2-127.0.0.4"),
        json!([{"payload": "ping\n", "read_until": "\n", "expect_substring": "ping"}]),
    ))
    .await;
    assert_eq!(echo.connection_sources(), spread([2, 2, 1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_users_bind_round_robin() {
    let broker = MqttBroker::start().await.expect("broker");
    run(run_config(
        "mqtt_user",
        5,
        format!("mqtt://{}", broker.broker()),
        json!(["127.0.0.2", "127.0.0.3", "127.0.0.4"]),
        json!([{"method": "publish", "topic": "sources/t", "payload": "x", "qos": 1}]),
    ))
    .await;
    // One connection per user, kept for its three iterations.
    assert_eq!(broker.stats().publishes, 15);
    assert_eq!(broker.connection_sources(), spread([2, 2, 1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_users_bind_round_robin() {
    let server = GrpcTarget::start().await.expect("grpc server");
    let mut value = run_config(
        "grpc_user",
        4,
        server.target(),
        json!("127.0.0.2-127.0.0.4"),
        json!([{"call": "loadtest.Echo/Unary", "payload": {"message": "m", "id": 1}}]),
    );
    value["proto_files"] = json!([load_density_testkit::grpc::loadtest_proto()
        .display()
        .to_string()]);
    value["import_paths"] = json!([load_density_testkit::grpc::loadtest_proto_dir()
        .display()
        .to_string()]);
    run(value).await;
    assert_eq!(server.calls(), 12);
    assert_eq!(server.connection_sources(), spread([2, 1, 1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_have_their_own_addresses() {
    let target = HttpTarget::start().await.expect("target");
    let value = json!({
        "test_time": 30,
        "host": target.base_url(),
        "print_stats": false,
        "user_groups": [
            {"name": "a", "user": "fast_http_user", "source_addresses": ["127.0.0.2"],
             "load_model": {"type": "per_user_iterations", "users": 2, "iterations": 2},
             "tasks": [{"method": "get", "request_url": "/get"}]},
            {"name": "b", "user": "fast_http_user", "source_addresses": "127.0.0.3-127.0.0.4",
             "load_model": {"type": "per_user_iterations", "users": 4, "iterations": 2},
             "tasks": [{"method": "get", "request_url": "/get"}]},
        ],
    });
    run(value).await;
    // Each group counts its own users from its first address.
    assert_eq!(target.connection_sources(), spread([2, 2, 2]));
}

async fn error_of(value: Value) -> String {
    match start_test_async(config(value)).await {
        Ok(summary) => panic!("expected an error, the run gave {:?}", summary.totals),
        Err(error) => {
            assert!(matches!(error, RunError::Config(_)), "{error:?}");
            error.to_string()
        }
    }
}

#[tokio::test]
async fn bad_lists_are_errors_naming_the_json_path() {
    let tasks = json!([{"method": "get", "request_url": "/get"}]);
    let host = "http://127.0.0.1:9".to_owned();
    let with =
        |sources: Value| run_config("fast_http_user", 1, host.clone(), sources, tasks.clone());
    let cases = [
        (
            with(json!(["127.0.0.2", "localhost"])),
            "source_addresses[1]: \"localhost\" is not an IP address, a range (A-B) or a CIDR block (A/n)",
        ),
        (
            with(json!("203.0.113.7")),
            "source_addresses: 203.0.113.7 is not an address of this machine",
        ),
        (
            with(json!("127.0.0.9-127.0.0.2")),
            "source_addresses: \"127.0.0.9-127.0.0.2\": a range's ends must be of one IP family",
        ),
        (with(json!([])), "source_addresses: gives no address"),
        (
            with(json!(7)),
            "source_addresses: must be a string or a list of strings",
        ),
        (
            with(json!(["127.0.0.2", 3])),
            "source_addresses[1]: must be a string",
        ),
    ];
    for (value, expected) in cases {
        let text = error_of(value).await;
        assert!(
            text.contains(expected),
            "{text}\n  should contain: {expected}"
        );
    }
    let group = json!({
        "test_time": 1,
        "print_stats": false,
        "user_groups": [
            {"user": "fast_http_user", "tasks": tasks.clone()},
            {"user": "fast_http_user", "source_addresses": ["127.0.0.2", "127.0.0.300"],
             "tasks": tasks.clone()},
        ],
    });
    let text = error_of(group).await;
    assert!(
        text.contains("user_groups[1].source_addresses[1]: \"127.0.0.300\" is not an IP address"),
        "{text}"
    );
}
