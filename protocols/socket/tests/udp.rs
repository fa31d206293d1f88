//! UDP against the testkit echo server: request/reply, fire-and-forget, whole datagrams,
//! IPv6, timeouts and ICMP port unreachable.

mod common;

use common::{eventually, factory, Harness};
use load_density_core::variables::Variables;
use load_density_testkit::UdpEchoServer;
use serde_json::json;
use tokio::net::UdpSocket;

/// A UDP port on 127.0.0.1 with nothing bound to it.
async fn unused_udp_port() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    socket.local_addr().expect("addr").port()
}

#[tokio::test]
async fn request_reply_over_one_socket() {
    let server = UdpEchoServer::start().await.expect("start");
    let target = server.target();
    let f = factory(json!([
        {"protocol": "udp", "target": target, "payload": "ping", "expect_substring": "ping"},
        {"protocol": "UDP", "target": target, "payload": "ping", "expect_substring": "pong"},
    ]))
    .await;
    let mut h = Harness::new(&f);
    let event = h.ok(0).await;
    assert_eq!(&*event.request_type, "UDP");
    assert_eq!(*event.name, format!("udp:{target}"));
    assert_eq!(*event.url, format!("udp://{target}"));
    assert_eq!(event.response_length, 8, "4 sent + 4 received");
    h.run(0, 9).await;
    assert!(h.take().iter().all(|e| e.is_success()));
    let reason = h.failure(1).await;
    assert_eq!(reason, "expected 'pong' in reply, got 'ping'");
    assert_eq!(server.datagrams(), 11);
}

#[tokio::test]
async fn fire_and_forget_sends_one_datagram_and_reads_nothing() {
    let server = UdpEchoServer::start().await.expect("start");
    let f = factory(json!([
        {"protocol": "udp", "target": server.target(), "payload": "hits:1|c"},
    ]))
    .await;
    let mut h = Harness::new(&f);
    for _ in 0..5 {
        let event = h.ok(0).await;
        assert_eq!(event.response_length, 8, "only the bytes sent");
    }
    eventually("5 datagrams received", || server.datagrams() == 5).await;
    assert_eq!(server.bytes_received(), 40);
}

#[tokio::test]
async fn whole_datagrams_are_read_and_checked() {
    let server = UdpEchoServer::start().await.expect("start");
    let target = server.target();
    let big = "x".repeat(60_000);
    let f = factory(json!([
        {"protocol": "udp", "target": target, "payload": "${var.big}", "expect_bytes": 10},
        {"protocol": "udp", "target": target, "payload": "abc", "expect_bytes": 10},
        {"protocol": "udp", "target": target, "payload": "abc", "read_until": "\n"},
        {"protocol": "udp", "target": target, "payload": "hex:00ff0a", "read_until": "\n"},
    ]))
    .await;
    let variables: Variables = [("big".to_owned(), json!(big))].into_iter().collect();
    let mut h = Harness::with_variables(&f, variables);
    // The whole 60000-byte reply is read, not just expect_bytes of it.
    let event = h.ok(0).await;
    assert_eq!(event.response_length, 120_000);
    let reason = h.failure(1).await;
    assert_eq!(reason, "expected 10 bytes, got a datagram of 3 bytes");
    let reason = h.failure(2).await;
    assert_eq!(reason, r"expected '\n' in the reply datagram, got 'abc'");
    let event = h.ok(3).await;
    assert_eq!(event.response_length, 6);
}

#[tokio::test]
async fn ipv6_targets_work() {
    let server = UdpEchoServer::start_v6()
        .await
        .expect("IPv6 loopback [::1] must be available for this test");
    let target = server.target();
    let f = factory(json!([
        {"protocol": "udp", "target": target, "payload": "v6", "expect_substring": "v6"},
    ]))
    .await;
    let mut h = Harness::new(&f);
    let event = h.ok(0).await;
    assert_eq!(*event.url, format!("udp://{target}"));
    assert_eq!(server.datagrams(), 1);
}

#[tokio::test]
async fn no_reply_is_a_read_timeout_and_the_user_recovers() {
    let server = UdpEchoServer::start().await.expect("start");
    let f = factory(json!([
        {"protocol": "udp", "target": server.target(), "payload": "silent",
         "expect_bytes": 1, "timeout": 0.3},
        {"protocol": "udp", "target": server.target(), "payload": "back",
         "expect_substring": "back"},
    ]))
    .await;
    let mut h = Harness::new(&f);
    let event = h.once(0).await;
    assert_eq!(
        event.error.as_deref(),
        Some("read timed out after 0.3s waiting for a reply datagram")
    );
    assert_eq!(event.response_length, 6, "the datagram was sent");
    h.ok(1).await;
    assert_eq!(server.datagrams(), 2);
}

#[tokio::test]
async fn port_unreachable_is_a_refusal_and_the_user_recovers() {
    let port = unused_udp_port().await;
    let target = format!("127.0.0.1:{port}");
    let server = UdpEchoServer::start().await.expect("start");
    let f = factory(json!([
        {"protocol": "udp", "target": target, "payload": "x", "expect_bytes": 1},
        {"protocol": "udp", "target": server.target(), "payload": "y", "expect_bytes": 1},
    ]))
    .await;
    let mut h = Harness::new(&f);
    let reason = h.failure(0).await;
    assert_eq!(
        reason,
        format!("connection refused ({target}): ICMP port unreachable")
    );
    h.ok(1).await;
    // Once something answers on that port, the same task succeeds.
    let peer = UdpSocket::bind(&target).await.expect("bind the freed port");
    let echo = tokio::spawn(async move {
        let mut buf = [0u8; 16];
        let (n, from) = peer.recv_from(&mut buf).await.expect("recv");
        peer.send_to(&buf[..n], from).await.expect("send");
    });
    h.ok(0).await;
    tokio::time::timeout(common::STEP, echo)
        .await
        .expect("echo ends")
        .expect("echo ok");
}

#[tokio::test]
async fn fire_and_forget_to_a_closed_port_never_reports_an_earlier_datagrams_icmp_error() {
    let port = unused_udp_port().await;
    let f = factory(json!([
        {"protocol": "udp", "target": format!("127.0.0.1:{port}"), "payload": "hits:1|c"},
    ]))
    .await;
    let mut h = Harness::new(&f);
    h.run(0, 200).await;
    let events = h.take();
    assert_eq!(events.len(), 200);
    let failures: Vec<_> = events.iter().filter(|e| !e.is_success()).collect();
    assert!(
        failures.is_empty(),
        "{} failures: {:?}",
        failures.len(),
        failures.first()
    );
    assert!(events.iter().all(|e| e.response_length == 8));
}
