//! TCP failures: each is one failure event with a clear reason, and the user recovers on the
//! next task.

mod common;

use std::time::{Duration, Instant};

use common::{eventually, factory, Harness};
use load_density_testkit::{unused_local_port, TcpEchoServer};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

#[tokio::test]
async fn the_server_closing_mid_request_is_a_failure_and_the_user_reconnects() {
    let server = TcpEchoServer::start().await.expect("start");
    let f = factory(json!([
        {"target": server.target(), "payload": "ping\n", "read_until": "\n"},
        {"target": server.target(), "payload": "close\n", "read_until": "\n"},
        {"target": server.target(), "payload": "ab\nclose\n", "expect_bytes": 10},
    ]))
    .await;
    let mut h = Harness::new(&f);
    h.ok(0).await;
    let reason = h.failure(1).await;
    assert_eq!(
        reason,
        r"connection closed before '\n' was seen (0 bytes received)"
    );
    // The next task opens a new connection and works.
    h.ok(0).await;
    assert_eq!(server.connections(), 2);
    let event = h.once(2).await;
    assert_eq!(
        event.error.as_deref(),
        Some("connection closed after 3 of 10 bytes")
    );
    assert_eq!(event.response_length, 9 + 3, "bytes moved before the close");
    h.ok(0).await;
    assert_eq!(server.connections(), 3);
    assert_eq!(server.messages(), 6);
}

#[tokio::test]
async fn a_connection_closed_while_idle_is_replaced_without_a_failure() {
    let server = TcpEchoServer::start().await.expect("start");
    let f = factory(json!([
        {"target": server.target(), "payload": "ping\n", "read_until": "\n"},
    ]))
    .await;
    let mut h = Harness::new(&f);
    h.ok(0).await;
    server.close_connections();
    eventually("server closed the connection", || {
        server.open_connections() == 0
    })
    .await;
    // Let the client side see the FIN.
    tokio::time::sleep(Duration::from_millis(20)).await;
    h.ok(0).await;
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_read_timeout() {
    let server = TcpEchoServer::start().await.expect("start");
    let f = factory(json!([
        {"target": server.target(), "payload": "silent\n", "read_until": "\n", "timeout": 0.3},
        {"target": server.target(), "payload": "hex:00", "expect_bytes": 4, "timeout": 0.3},
        {"target": server.target(), "payload": "ok\n", "read_until": "\n"},
    ]))
    .await;
    let mut h = Harness::new(&f);
    let started = Instant::now();
    let event = h.once(0).await;
    let elapsed = started.elapsed();
    assert_eq!(
        event.error.as_deref(),
        Some(r"read timed out after 0.3s waiting for '\n' (0 bytes received)")
    );
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    assert!(event.response_time >= Duration::from_millis(300));
    // The user recovers on a new connection.
    h.ok(2).await;
    assert_eq!(server.connections(), 2);
    // Partial reply: 1 of 4 bytes echoed, then nothing.
    let reason = h.failure(1).await;
    assert_eq!(reason, "read timed out after 0.3s (1 of 4 bytes received)");
    h.ok(2).await;
    assert_eq!(server.connections(), 3);
}

#[tokio::test]
async fn a_group_timeout_applies_to_tasks_without_one() {
    let server = TcpEchoServer::start().await.expect("start");
    let tasks = json!([{"target": server.target(), "payload": "silent\n", "read_until": "\n"}]);
    let f = common::prepare(tasks, None, json!({"timeout": 0.2}))
        .await
        .expect("valid");
    let mut h = Harness::new(&f);
    let reason = h.failure(0).await;
    assert!(reason.starts_with("read timed out after 0.2s"), "{reason}");
}

#[tokio::test]
async fn a_refused_port_is_a_failure_and_the_user_recovers() {
    let port = unused_local_port();
    let target = format!("127.0.0.1:{port}");
    let server = TcpEchoServer::start().await.expect("start");
    let f = factory(json!([
        {"target": target, "payload": "x\n", "read_until": "\n"},
        {"target": server.target(), "payload": "y\n", "read_until": "\n"},
    ]))
    .await;
    let mut h = Harness::new(&f);
    let event = h.once(0).await;
    assert_eq!(
        event.error.as_deref(),
        Some(format!("connection refused ({target})").as_str())
    );
    assert_eq!(event.response_length, 0);
    // Other targets keep working.
    h.ok(1).await;
    // Once something listens there, the same task succeeds.
    let listener = TcpListener::bind(&target)
        .await
        .expect("bind the freed port");
    let echo = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut buf = [0u8; 64];
        let n = stream.read(&mut buf).await.expect("read");
        stream.write_all(&buf[..n]).await.expect("write");
        // Hold the connection until the client is done.
        let _ = stream.read(&mut buf).await;
    });
    h.ok(0).await;
    h.stop().await;
    tokio::time::timeout(common::STEP, echo)
        .await
        .expect("echo task ends")
        .expect("echo task ok");
}

#[tokio::test]
async fn a_reset_connection_is_a_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        for _ in 0..2 {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut buf = [0u8; 64];
            let _ = stream.read(&mut buf).await;
            // Linger 0: closing sends RST instead of FIN.
            stream.set_zero_linger().expect("linger");
            drop(stream);
        }
    });
    let f = factory(json!([
        {"target": addr.to_string(), "payload": "x\n", "read_until": "\n"},
    ]))
    .await;
    let mut h = Harness::new(&f);
    let reason = h.failure(0).await;
    assert_eq!(
        reason,
        "connection reset by peer (0 bytes of the reply received)"
    );
    // A new connection for the next task (the server would hang on a reused one).
    let reason = h.failure(0).await;
    assert!(reason.starts_with("connection reset by peer"), "{reason}");
    tokio::time::timeout(common::STEP, server)
        .await
        .expect("server ends")
        .expect("server ok");
}

#[tokio::test]
async fn a_connect_that_hangs_is_a_connect_timeout() {
    // A listener whose accept queue is full drops further SYNs, so the handshake hangs.
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let listener = socket.listen(1).expect("listen");
    let addr = listener.local_addr().expect("addr");
    let mut fillers = Vec::new();
    for _ in 0..8 {
        if let Ok(Ok(stream)) =
            tokio::time::timeout(Duration::from_millis(100), TcpStream::connect(addr)).await
        {
            fillers.push(stream);
        }
    }
    let f = factory(json!([
        {"target": addr.to_string(), "payload": "x\n", "read_until": "\n",
         "connect_timeout": 0.3, "timeout": 5},
    ]))
    .await;
    let mut h = Harness::new(&f);
    let started = Instant::now();
    let reason = h.failure(0).await;
    assert_eq!(reason, format!("connect timed out after 0.3s ({addr})"));
    assert!(started.elapsed() < Duration::from_secs(3));
    drop(listener);
    drop(fillers);
}
