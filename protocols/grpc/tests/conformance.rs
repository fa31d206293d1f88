//! The shared protocol conformance suite, for `grpc_user`, and the counted load runs: every
//! call the server counted is recorded exactly once.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{merge, proto_options};
use load_density_core::Pacing;
use load_density_testkit::conformance::{assert_protocol_conformance, ConformanceCase};
use load_density_testkit::{unused_local_port, GrpcTarget};
use serde_json::json;

fn case(server: &Arc<GrpcTarget>) -> ConformanceCase {
    let counted = server.clone();
    ConformanceCase::new(
        "grpc_user",
        json!([{"call": "loadtest.Echo/Unary", "payload": {"message": "conformance", "id": 1},
                "assertions": [{"type": "json_path", "path": "message", "value": "conformance"}]}]),
        move || counted.calls(),
        json!([{"call": "loadtest.Echo/Unary",
                "target": format!("127.0.0.1:{}", unused_local_port())}]),
    )
    .host(server.target())
    .options(merge(proto_options(), json!({"timeout": 5})))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_user_conforms() {
    let server = Arc::new(GrpcTarget::start().await.expect("start"));
    let report = assert_protocol_conformance(case(&server)).await;
    assert_eq!(report.requests(), server.calls());
    assert!(report.refused_failures() >= 6);
    // One HTTP/2 connection per user, kept across iterations.
    assert_eq!(server.connections(), 10);
}

/// 100 users for 10 s, one unary call per user every 50 ms: every call the server counted is
/// recorded exactly once, over one connection per user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hundred_users_for_ten_seconds() {
    let server = Arc::new(GrpcTarget::start().await.expect("start"));
    let report = assert_protocol_conformance(
        case(&server)
            .users(100)
            .duration(Duration::from_secs(10))
            .pacing(Pacing::Constant(Duration::from_millis(50))),
    )
    .await;
    assert_eq!(report.requests(), server.calls());
    assert!(
        report.requests() >= 100 * 10,
        "100 users for 10 s recorded only {} calls",
        report.requests()
    );
    assert_eq!(server.connections(), 100);
}

/// The same with streaming calls and `share_channel`: one connection for the whole group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hundred_users_share_one_channel() {
    let server = Arc::new(GrpcTarget::start().await.expect("start"));
    let counted = server.clone();
    let report = assert_protocol_conformance(
        ConformanceCase::new(
            "grpc_user",
            json!({"mode": "weighted", "tasks": [
                {"call": "loadtest.Echo/Bidi", "payload": {"message": "b"}, "count": 3,
                 "assertions": [{"type": "json_path", "path": "2.index", "value": 2}]},
                {"call": "loadtest.Echo/ServerStream", "payload": {"message": "s", "count": 4}},
                {"call": "loadtest.Echo/ClientStream", "messages": [{"value": 1}, {"value": 2}]},
            ]}),
            move || counted.calls(),
            json!([{"call": "loadtest.Echo/Bidi",
                    "target": format!("127.0.0.1:{}", unused_local_port())}]),
        )
        .host(server.target())
        .options(merge(proto_options(), json!({"share_channel": true})))
        .users(100)
        .duration(Duration::from_secs(10))
        .pacing(Pacing::Constant(Duration::from_millis(50))),
    )
    .await;
    assert_eq!(report.requests(), server.calls());
    assert!(report.requests() >= 100 * 10, "{}", report.requests());
    assert_eq!(server.connections(), 1);
    for method in ["Bidi", "ServerStream", "ClientStream"] {
        assert!(server.calls_to(method) > 0, "{method} was called");
    }
}
