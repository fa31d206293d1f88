//! Each method against the testkit echo server: events, lengths, names, URLs, and the one
//! connection per user kept across tasks.

mod common;

use common::{assert_success, error_of, factory, wait_for, Harness};
use load_density_core::variables::Variables;
use load_density_testkit::{WsEchoServer, WsFrame};
use serde_json::json;

#[tokio::test]
async fn connect_send_recv_sendrecv_close() {
    let server = WsEchoServer::start().await.expect("start");
    let url = server.url("/chat");
    let factory = factory(
        json!([
            {"method": "connect", "url": url},
            {"method": "send", "payload": "hello"},
            {"method": "recv", "expect": "hello"},
            {"method": "SendRecv", "payload": "héllo", "name": "echo"},
            {"method": "close"},
        ]),
        None,
    )
    .await;
    let mut h = Harness::new(&factory);
    let events = h.all(5).await;
    for event in &events {
        assert_success(event);
        assert_eq!(&*event.request_type, "WS");
        assert_eq!(&*event.url, url.as_str(), "{event:?}");
    }
    let names: Vec<&str> = events.iter().map(|e| &*e.name).collect();
    assert_eq!(names, ["/chat", "send", "recv", "echo", "close"]);
    let lengths: Vec<u64> = events.iter().map(|e| e.response_length).collect();
    // Bytes, not characters: "héllo" is 6 bytes, sent and received.
    assert_eq!(lengths, [0, 5, 5, 12, 0]);
    assert_eq!(events[0].status, Some(101));
    assert_eq!(events[1].status, None);
    assert_eq!(server.connections(), 1);
    assert_eq!(server.messages(), 2);
    wait_for("close to reach the server", || {
        server.open_connections() == 0
    })
    .await;
}

#[tokio::test]
async fn connect_to_the_same_url_is_a_recorded_no_op() {
    let server = WsEchoServer::start().await.expect("start");
    let factory = factory(json!([{"method": "connect", "url": server.url("/")}]), None).await;
    let mut h = Harness::new(&factory);
    for _ in 0..3 {
        let event = h.once(0).await;
        assert_success(&event);
        assert_eq!(event.response_length, 0);
    }
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn one_connection_per_user_kept_across_iterations_and_closed_on_stop() {
    let server = WsEchoServer::start().await.expect("start");
    // The default method is `send`; the legacy method-keyed shape works too.
    let factory = factory(
        json!({
            "send": {"url": server.url("/"), "payload": "ping-me"},
            "recv": {"expect": "ping-me"},
        }),
        None,
    )
    .await;
    let mut users: Vec<Harness> = (0..3).map(|_| Harness::new(&factory)).collect();
    for _ in 0..5 {
        for h in &mut users {
            h.run(0, 1).await;
            h.run(1, 1).await;
        }
    }
    for h in &users {
        let events = h.take();
        assert_eq!(events.len(), 10);
        events.iter().for_each(assert_success);
    }
    assert_eq!(server.connections(), 3);
    assert_eq!(server.messages(), 15);
    assert_eq!(server.open_connections(), 3);
    for h in &mut users {
        h.stop().await;
    }
    wait_for("on_stop to close every connection", || {
        server.open_connections() == 0
    })
    .await;
}

#[tokio::test]
async fn close_keeps_the_url_and_the_next_task_reconnects() {
    let server = WsEchoServer::start().await.expect("start");
    let factory = factory(
        json!([
            {"method": "connect", "url": server.url("/a")},
            {"method": "close"},
            {"method": "close"},
            {"method": "sendrecv", "payload": "again", "expect": "again"},
        ]),
        None,
    )
    .await;
    let mut h = Harness::new(&factory);
    let events = h.all(4).await;
    events.iter().for_each(assert_success);
    // Closing with no open connection is a no-op under the last URL.
    assert_eq!(&*events[2].url, server.url("/a"));
    assert_eq!(events[3].response_length, 10);
    assert_eq!(server.connections(), 2);
    let paths: Vec<String> = server
        .handshakes()
        .iter()
        .map(|h| h.path().to_owned())
        .collect();
    assert_eq!(paths, ["/a", "/a"]);
}

#[tokio::test]
async fn a_task_naming_another_url_replaces_the_connection() {
    let server = WsEchoServer::start().await.expect("start");
    let factory = factory(
        json!([
            {"method": "connect", "url": "/a"},
            {"method": "sendrecv", "url": "/b", "payload": "x"},
            {"method": "sendrecv", "payload": "y"},
        ]),
        Some(server.base_url()),
    )
    .await;
    let mut h = Harness::new(&factory);
    let events = h.all(3).await;
    events.iter().for_each(assert_success);
    assert_eq!(&*events[1].url, server.url("/b"));
    assert_eq!(&*events[2].url, server.url("/b"));
    assert_eq!(server.connections(), 2);
    wait_for("the replaced connection to close", || {
        server.open_connections() == 1
    })
    .await;
}

#[tokio::test]
async fn relative_urls_use_the_group_host_and_http_becomes_ws() {
    let server = WsEchoServer::start().await.expect("start");
    let http_host = format!("http://{}", server.addr());
    let factory = factory(
        json!([{"method": "sendrecv", "url": "/rel?q=1", "payload": "r"}]),
        Some(http_host),
    )
    .await;
    let mut h = Harness::new(&factory);
    let event = h.once(0).await;
    assert_success(&event);
    assert_eq!(&*event.name, "/rel?q=1");
    assert_eq!(&*event.url, server.url("/rel?q=1"));
    assert_eq!(server.handshakes()[0].path(), "/rel?q=1");
}

#[tokio::test]
async fn without_url_or_connection_the_task_fails_and_close_is_a_no_op() {
    let factory = factory(
        json!([{"method": "send", "payload": "x"}, {"method": "close"}, {"method": "connect"}]),
        None,
    )
    .await;
    let mut h = Harness::new(&factory);
    let event = h.once(0).await;
    assert!(error_of(&event).contains("not established"), "{event:?}");
    assert_eq!(event.response_length, 0);
    assert_success(&h.once(1).await);
    assert!(error_of(&h.once(2).await).contains("not established"));
}

#[tokio::test]
async fn placeholders_render_per_user() {
    let server = WsEchoServer::start().await.expect("start");
    let factory = factory(
        json!([{
            "method": "sendrecv",
            "url": format!("{}/room/${{var.room}}", server.base_url()),
            "name": "room-${room}",
            "payload": "hi ${var.room}",
            "expect": "hi ${var.room}",
        }]),
        None,
    )
    .await;
    let variables: Variables = [("room".to_owned(), json!(7))].into_iter().collect();
    let mut h = Harness::with_variables(&factory, variables);
    let event = h.once(0).await;
    assert_success(&event);
    assert_eq!(&*event.name, "room-7");
    assert_eq!(&*event.url, server.url("/room/7"));
    assert_eq!(server.frames(), [WsFrame::Text("hi 7".to_owned())]);
}

#[tokio::test]
async fn latency_counts_from_send_to_the_matching_frame() {
    let server = WsEchoServer::start().await.expect("start");
    let factory = factory(
        json!([
            {"method": "connect", "url": server.url("/")},
            {"method": "sendrecv", "payload": "delay:250:slow", "timeout": 2},
        ]),
        None,
    )
    .await;
    let mut h = Harness::new(&factory);
    let events = h.all(2).await;
    assert_success(&events[1]);
    assert!(
        events[1].response_time >= std::time::Duration::from_millis(250),
        "{events:?}"
    );
}

#[tokio::test]
async fn requests_are_named_by_path_and_query_unless_the_path_holds_placeholders() {
    let server = WsEchoServer::start().await.expect("start");
    let factory = factory(
        json!([
            {"method": "sendrecv", "url": "${var.base}/chat?x=1", "payload": "a"},
            {"method": "sendrecv", "url": server.url("/plain"), "payload": "b"},
            {"method": "sendrecv", "url": "${var.base}/room/${var.room}", "payload": "c"}
        ]),
        None,
    )
    .await;
    let variables: Variables = [
        ("base".to_owned(), json!(server.base_url())),
        ("room".to_owned(), json!(7)),
    ]
    .into_iter()
    .collect();
    let mut h = Harness::with_variables(&factory, variables);
    let chat = h.once(0).await;
    assert_success(&chat);
    assert_eq!(&*chat.name, "/chat?x=1");
    let plain = h.once(1).await;
    assert_eq!(&*plain.name, "/plain");
    let room = h.once(2).await;
    assert_eq!(&*room.name, "${var.base}/room/${var.room}");
    assert_eq!(&*room.url, server.url("/room/7"));
}
