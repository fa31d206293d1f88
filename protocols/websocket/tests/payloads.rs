//! Payloads: text, `hex:`, `b64:`, `text:`, JSON values and placeholders, counted in bytes and
//! echoed byte-exact.

mod common;

use common::{assert_success, error_of, factory, Harness};
use load_density_core::variables::Variables;
use load_density_testkit::{WsEchoServer, WsFrame};
use serde_json::json;

#[tokio::test]
async fn binary_payloads_are_sent_and_echoed_byte_exact() {
    let server = WsEchoServer::start().await.expect("start");
    let factory = factory(
        json!([
            // 0x00, 0xff (not UTF-8), 0x10, "é" (c3 a9)
            {"method": "sendrecv", "url": server.url("/"), "payload": "hex:00 FF 10 c3a9",
             "expect": {"regex": "^\u{0}\u{FFFD}\u{10}é$"}},
            {"method": "sendrecv", "payload": "b64:aGVsbG8=", "expect": {"regex": "^hello$"}},
            // Unpadded base64 is accepted too.
            {"method": "send", "payload": "b64:AAECAw"},
        ]),
        None,
    )
    .await;
    let mut h = Harness::new(&factory);
    let events = h.all(3).await;
    events.iter().for_each(assert_success);
    let lengths: Vec<u64> = events.iter().map(|e| e.response_length).collect();
    assert_eq!(lengths, [10, 10, 4]);
    assert_eq!(
        server_frames_eventually(&server, 3).await,
        [
            WsFrame::Binary(vec![0x00, 0xff, 0x10, 0xc3, 0xa9]),
            WsFrame::Binary(b"hello".to_vec()),
            WsFrame::Binary(vec![0, 1, 2, 3]),
        ]
    );
}

#[tokio::test]
async fn text_json_and_rendered_payloads() {
    let server = WsEchoServer::start().await.expect("start");
    let factory = factory(
        json!([
            {"method": "send", "url": server.url("/"), "payload": "text:hex:41"},
            {"method": "send", "payload": {"op": "join", "id": "${var.id}", "n": [1, true]}},
            {"method": "send", "payload": "hex:${var.byte}"},
            {"method": "send"},
        ]),
        None,
    )
    .await;
    let variables: Variables = [
        ("id".to_owned(), json!(42)),
        ("byte".to_owned(), json!("7f")),
    ]
    .into_iter()
    .collect();
    let mut h = Harness::with_variables(&factory, variables);
    let events = h.all(4).await;
    events.iter().for_each(assert_success);
    let json_text = r#"{"op":"join","id":42,"n":[1,true]}"#;
    assert_eq!(
        server_frames_eventually(&server, 4).await,
        [
            WsFrame::Text("hex:41".to_owned()),
            WsFrame::Text(json_text.to_owned()),
            WsFrame::Binary(vec![0x7f]),
            WsFrame::Text(String::new()),
        ]
    );
    let lengths: Vec<u64> = events.iter().map(|e| e.response_length).collect();
    assert_eq!(lengths, [6, json_text.len() as u64, 1, 0]);
}

#[tokio::test]
async fn an_invalid_rendered_payload_is_a_failure_event() {
    let server = WsEchoServer::start().await.expect("start");
    let factory = factory(
        json!([
            {"method": "send", "url": server.url("/"), "payload": "hex:${var.bad}"},
            {"method": "sendrecv", "payload": "fine"},
            {"method": "send", "payload": "b64:${var.bad}!"},
            {"method": "sendrecv", "payload": "still fine"},
        ]),
        None,
    )
    .await;
    let variables: Variables = [("bad".to_owned(), json!("zz"))].into_iter().collect();
    let mut h = Harness::with_variables(&factory, variables);
    let event = h.once(0).await;
    let error = error_of(&event);
    assert!(error.starts_with("invalid payload: invalid hex"), "{error}");
    // The task named its URL: the next task without one connects there.
    assert_eq!(&*event.url, server.url("/"));
    assert_success(&h.once(1).await);
    let event = h.once(2).await;
    assert!(error_of(&event).starts_with("invalid payload: invalid base64"));
    // Nothing was wrong with the connection: it is kept.
    assert_success(&h.once(3).await);
    assert_eq!(server.messages(), 2);
    assert_eq!(server.connections(), 1);
}

/// The server reads frames a moment after the client wrote them.
async fn server_frames_eventually(server: &WsEchoServer, count: usize) -> Vec<WsFrame> {
    common::wait_for("the server to read every frame", || {
        server.frames().len() >= count
    })
    .await;
    server.frames()
}
