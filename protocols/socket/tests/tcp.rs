//! TCP against the testkit echo server: keep-alive, framing, payload encodings, IPv6,
//! placeholders, and what each event carries.

mod common;

use common::{eventually, factory, CaptureServer, Harness};
use load_density_core::variables::Variables;
use load_density_testkit::TcpEchoServer;
use serde_json::json;

#[tokio::test]
async fn keep_alive_uses_one_connection_for_many_tasks() {
    let server = TcpEchoServer::start().await.expect("start");
    let other = TcpEchoServer::start().await.expect("start other");
    let f = factory(json!([
        {"target": server.target(), "payload": "a\n", "read_until": "\n"},
        {"target": server.target(), "payload": "b\n", "read_until": "\n", "name": "b"},
        {"target": other.target(), "payload": "c\n", "read_until": "\n"},
    ]))
    .await;
    let mut h = Harness::new(&f);
    for _ in 0..20 {
        h.run(0, 1).await;
        h.run(1, 1).await;
        h.run(2, 1).await;
    }
    let events = h.take();
    assert_eq!(events.len(), 60);
    assert!(events.iter().all(|e| e.is_success()), "{events:?}");
    assert_eq!(server.messages(), 40);
    assert_eq!(other.messages(), 20);
    // One connection per user and target, whatever the task.
    assert_eq!(server.connections(), 1);
    assert_eq!(other.connections(), 1);
    assert_eq!(server.open_connections(), 1);
    // on_stop closes them.
    h.stop().await;
    eventually("connections closed by on_stop", || {
        server.open_connections() == 0 && other.open_connections() == 0
    })
    .await;
}

#[tokio::test]
async fn keep_alive_false_opens_one_connection_per_task() {
    let server = TcpEchoServer::start().await.expect("start");
    let f = factory(json!([
        {"target": server.target(), "payload": "x\n", "read_until": "\n", "keep_alive": false},
        {"target": server.target(), "payload": "y\n", "read_until": "\n"},
    ]))
    .await;
    let mut h = Harness::new(&f);
    h.run(0, 5).await;
    assert_eq!(server.connections(), 5);
    eventually("each per-task connection closed", || {
        server.open_connections() == 0
    })
    .await;
    // A kept-alive task beside them still keeps its own.
    h.run(1, 3).await;
    assert_eq!(server.connections(), 6);
    h.run(0, 1).await;
    assert_eq!(server.connections(), 7);
    h.run(1, 1).await;
    assert_eq!(
        server.connections(),
        7,
        "the kept connection was not replaced"
    );
    let events = h.take();
    assert_eq!(events.len(), 10);
    assert!(events.iter().all(|e| e.is_success()), "{events:?}");
    assert_eq!(server.messages(), 10);
}

#[tokio::test]
async fn events_carry_type_name_url_and_length() {
    let server = TcpEchoServer::start().await.expect("start");
    let target = server.target();
    let f = factory(json!([
        {"target": target, "payload": "ping\n", "read_until": "\n"},
        {"target": target, "payload": "ping\n", "read_until": "\n", "name": "named"},
        {"target": target, "payload": "fire\n"},
    ]))
    .await;
    let mut h = Harness::new(&f);
    let event = h.ok(0).await;
    assert_eq!(&*event.request_type, "TCP");
    assert_eq!(*event.name, format!("tcp:{target}"));
    assert_eq!(*event.url, format!("tcp://{target}"));
    assert_eq!(event.status, None);
    assert_eq!(event.response_length, 10, "5 sent + 5 received");
    assert!(event.response_time > std::time::Duration::ZERO);
    let event = h.ok(1).await;
    assert_eq!(&*event.name, "named");
    // Fire-and-forget: nothing read, length is what was sent.
    let event = h.ok(2).await;
    assert_eq!(event.response_length, 5);
    eventually("fire line received", || server.messages() == 3).await;
}

#[tokio::test]
async fn expect_bytes_reads_exactly_that_many() {
    let server = TcpEchoServer::start().await.expect("start");
    let f = factory(json!([
        {"target": server.target(), "payload": "abcdef\n", "expect_bytes": 4,
         "expect_substring": "abcd"},
        {"target": server.target(), "payload": "abcdef\n", "expect_bytes": 4,
         "expect_substring": "ef"},
        {"target": server.target(), "payload": "12\n", "expect_bytes": 3,
         "expect_substring": "12\n"},
    ]))
    .await;
    let mut h = Harness::new(&f);
    let event = h.ok(0).await;
    assert_eq!(event.response_length, 7 + 4);
    // "ef" is past the 4 bytes read.
    let reason = h.failure(1).await;
    assert_eq!(reason, "expected 'ef' in reply, got 'abcd'");
    // The surplus of the earlier replies ("ef\n") is not taken for this reply.
    let event = h.ok(2).await;
    assert_eq!(event.response_length, 6);
}

#[tokio::test]
async fn read_until_and_expect_substring_frame_the_reply() {
    let server = TcpEchoServer::start().await.expect("start");
    let f = factory(json!([
        // Delimiter of several bytes, split across two lines.
        {"target": server.target(), "payload": "one END\ntwo\n", "read_until": "END\ntwo"},
        // The substring alone frames the read.
        {"target": server.target(), "payload": "hello world\n", "expect_substring": "wor"},
        // Read a line, then check the substring: not there.
        {"target": server.target(), "payload": "ping\n", "read_until": "\n",
         "expect_substring": "pong"},
    ]))
    .await;
    let mut h = Harness::new(&f);
    let event = h.ok(0).await;
    assert_eq!(
        event.response_length,
        12 + 11,
        "reply is through the delimiter"
    );
    let event = h.ok(1).await;
    assert_eq!(
        event.response_length,
        12 + 9,
        "reply is through the substring"
    );
    let reason = h.failure(2).await;
    assert_eq!(reason, r"expected 'pong' in reply, got 'ping\n'");
    // An expectation failure keeps the connection: it is the reply that was wrong.
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn hex_and_base64_payloads_are_sent_byte_exact() {
    let capture = CaptureServer::start().await;
    let target = capture.addr.to_string();
    let f = factory(json!([
        {"target": target, "payload": "hex:00 ff 10 80 0a", "keep_alive": false},
        {"target": target, "payload": "b64:AP8QgAo=", "keep_alive": false},
        {"target": target, "payload": "hex:${var.bytes}", "keep_alive": false},
        {"target": target, "payload": "héllo ${var.who}", "keep_alive": false},
        {"target": target, "payload": 42, "keep_alive": false},
    ]))
    .await;
    let variables: Variables = [
        ("bytes".to_owned(), json!("DEADbeef")),
        ("who".to_owned(), json!("bob")),
    ]
    .into_iter()
    .collect();
    let mut h = Harness::with_variables(&f, variables);
    for index in 0..5 {
        h.ok(index).await;
        // One connection at a time, so the captures come in task order.
        capture.connections(index + 1).await;
    }
    let captured = capture.connections(5).await;
    assert_eq!(captured[0], [0x00, 0xff, 0x10, 0x80, 0x0a]);
    assert_eq!(captured[1], [0x00, 0xff, 0x10, 0x80, 0x0a]);
    assert_eq!(captured[2], [0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(captured[3], "héllo bob".as_bytes());
    assert_eq!(captured[4], b"42");
}

#[tokio::test]
async fn binary_replies_are_framed_by_bytes() {
    let server = TcpEchoServer::start().await.expect("start");
    let f = factory(json!([
        {"target": server.target(), "payload": "hex:00ff0a7f", "expect_bytes": 4},
    ]))
    .await;
    let mut h = Harness::new(&f);
    let event = h.ok(0).await;
    assert_eq!(event.response_length, 8);
}

#[tokio::test]
async fn ipv6_targets_work() {
    let server = TcpEchoServer::start_v6()
        .await
        .expect("IPv6 loopback [::1] must be available for this test");
    let target = server.target();
    assert!(target.starts_with("[::1]:"), "{target}");
    let f = factory(json!([
        {"target": target, "payload": "v6\n", "read_until": "\n", "expect_substring": "v6"},
    ]))
    .await;
    let mut h = Harness::new(&f);
    let event = h.ok(0).await;
    assert_eq!(*event.url, format!("tcp://{target}"));
    assert_eq!(*event.name, format!("tcp:{target}"));
    h.run(0, 2).await;
    assert_eq!(server.messages(), 3);
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn host_names_and_the_group_host_are_used() {
    let server = TcpEchoServer::start().await.expect("start");
    let port = server.addr().port();
    let tasks = json!([
        {"payload": "via group host\n", "read_until": "\n"},
        {"host": format!("localhost:{port}"), "payload": "via name\n", "read_until": "\n"},
    ]);
    let f = common::prepare(tasks, Some(format!("tcp://127.0.0.1:{port}")), json!({}))
        .await
        .expect("valid");
    let mut h = Harness::new(&f);
    let event = h.ok(0).await;
    assert_eq!(*event.url, format!("tcp://127.0.0.1:{port}"));
    let event = h.ok(1).await;
    assert_eq!(*event.url, format!("tcp://localhost:{port}"));
    assert_eq!(server.messages(), 2);
}

#[tokio::test]
async fn placeholders_render_per_user_and_bad_renders_are_failures() {
    let server = TcpEchoServer::start().await.expect("start");
    let port = server.addr().port();
    let f = factory(json!([
        {"target": "127.0.0.1:${var.port}", "payload": "id=${var.id}\n", "read_until": "\n",
         "expect_substring": "id=${var.id}", "name": "user ${var.id}"},
        {"target": "${var.missing}:1", "payload": "x"},
        {"target": "127.0.0.1:${var.port}", "payload": "hex:${var.id}zz"},
        {"target": "127.0.0.1:${var.port}", "payload": "x\n", "read_until": "${var.empty}"},
    ]))
    .await;
    let variables: Variables = [
        ("port".to_owned(), json!(port)),
        ("id".to_owned(), json!(7)),
        ("empty".to_owned(), json!("")),
    ]
    .into_iter()
    .collect();
    let mut h = Harness::with_variables(&f, variables);
    let event = h.ok(0).await;
    assert_eq!(&*event.name, "user 7");
    assert_eq!(*event.url, format!("tcp://127.0.0.1:{port}"));
    assert_eq!(event.response_length, 10);

    let event = h.once(1).await;
    let reason = event.error.as_deref().expect("bad target fails");
    assert!(
        reason.starts_with("invalid target \"${var.missing}:1\""),
        "{reason}"
    );
    assert_eq!(&*event.url, "tcp://${var.missing}:1", "recorded as written");

    let reason = h.failure(2).await;
    assert!(
        reason.starts_with("invalid payload: invalid hex digit 'z'"),
        "{reason}"
    );
    let reason = h.failure(3).await;
    assert_eq!(reason, "read_until rendered empty");
    // Nothing was sent for the failed renders.
    assert_eq!(server.messages(), 1);
}

#[tokio::test]
async fn bytes_that_arrived_unasked_are_not_taken_for_the_next_reply() {
    let server = TcpEchoServer::start().await.expect("start");
    let f = factory(json!([
        // Fire-and-forget: the echo comes back, and nobody reads it.
        {"target": server.target(), "payload": "late\n"},
        {"target": server.target(), "payload": "mine\n", "read_until": "\n",
         "expect_substring": "mine"},
    ]))
    .await;
    let mut h = Harness::new(&f);
    for _ in 0..3 {
        h.ok(0).await;
        eventually("the echo went out", || server.messages() % 2 == 1).await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        h.ok(1).await;
    }
    assert_eq!(server.connections(), 1);
}
