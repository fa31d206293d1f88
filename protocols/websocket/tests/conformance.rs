//! The shared protocol conformance suite, for `websocket_user`.

use std::sync::Arc;
use std::time::Duration;

use load_density_core::Pacing;
use load_density_testkit::conformance::{assert_protocol_conformance, ConformanceCase};
use load_density_testkit::{unused_local_port, WsEchoServer};
use serde_json::json;

// Name the crate so its registration is linked into this test binary.
use load_density_websocket as _;

fn case(server: &Arc<WsEchoServer>) -> ConformanceCase {
    let counted = server.clone();
    ConformanceCase::new(
        "websocket_user",
        json!([{"method": "sendrecv", "url": "/conformance", "payload": "hello", "expect": "hello"}]),
        move || counted.messages(),
        json!([{"method": "sendrecv", "url": format!("ws://127.0.0.1:{}/", unused_local_port()), "payload": "x"}]),
    )
    .host(server.base_url())
    .options(json!({"timeout": 5}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_user_conforms() {
    let server = Arc::new(WsEchoServer::start().await.expect("start"));
    let report = assert_protocol_conformance(case(&server)).await;
    assert_eq!(report.requests(), server.messages());
    // One connection per user, kept across iterations, closed when the user stopped.
    assert_eq!(server.connections(), 10);
    common_wait(|| server.open_connections() == 0).await;
}

/// 200 users for 10 s at a modest rate (one sendrecv per user every 100 ms): every message
/// the server counted is recorded exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_users_for_ten_seconds() {
    let server = Arc::new(WsEchoServer::start().await.expect("start"));
    let report = assert_protocol_conformance(
        case(&server)
            .users(200)
            .duration(Duration::from_secs(10))
            .pacing(Pacing::Constant(Duration::from_millis(100))),
    )
    .await;
    assert_eq!(report.requests(), server.messages());
    assert!(
        report.requests() >= 200 * 10,
        "200 users for 10 s recorded only {} requests",
        report.requests()
    );
    assert_eq!(server.connections(), 200);
    common_wait(|| server.open_connections() == 0).await;
}

async fn common_wait(mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "connections still open after the users stopped"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
