//! The testkit conformance suite, for TCP and for UDP tasks.

use std::sync::Arc;

use load_density_testkit::conformance::{assert_protocol_conformance, ConformanceCase};
use load_density_testkit::{unused_local_port, TcpEchoServer, UdpEchoServer};
use serde_json::json;

// Name the crate so its registration is linked into this test binary.
use load_density_socket as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_user_over_tcp_conforms() {
    let server = Arc::new(TcpEchoServer::start().await.expect("start"));
    let counted = server.clone();
    let refused = format!("127.0.0.1:{}", unused_local_port());
    let case = ConformanceCase::new(
        "socket_user",
        json!([
            {"target": server.target(), "payload": "one\n", "read_until": "\n"},
            {"target": server.target(), "payload": "two\n", "expect_substring": "two"},
        ]),
        move || counted.messages(),
        json!([{"target": refused, "payload": "x\n", "read_until": "\n"}]),
    )
    .options(json!({"timeout": 2, "connect_timeout": 2}));
    let report = assert_protocol_conformance(case).await;
    assert!(report.requests() > 0);
    assert_eq!(report.served(), report.requests());
    // Keep-alive under the suite's stop/start: one connection per user.
    assert_eq!(server.connections(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_user_over_udp_conforms() {
    let server = Arc::new(UdpEchoServer::start().await.expect("start"));
    let counted = server.clone();
    let unused = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let refused = unused.local_addr().expect("addr").to_string();
    drop(unused);
    let case = ConformanceCase::new(
        "socket_user",
        json!([
            {"protocol": "udp", "target": server.target(), "payload": "ping",
             "expect_substring": "ping"},
        ]),
        move || counted.datagrams(),
        json!([{"protocol": "udp", "target": refused, "payload": "x", "expect_bytes": 1}]),
    );
    let report = assert_protocol_conformance(case).await;
    assert_eq!(report.served(), report.requests());
    assert!(report.refused_failures() >= 6);
}
