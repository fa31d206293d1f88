//! What reaches the server in the opening handshake: headers, subprotocols; and rejections.

mod common;

use common::{assert_success, error_of, factory, Harness};
use load_density_core::variables::Variables;
use load_density_testkit::WsEchoServer;
use serde_json::json;

#[tokio::test]
async fn headers_and_subprotocols_reach_the_server() {
    let server = WsEchoServer::start().await.expect("start");
    let factory = factory(
        json!([{
            "method": "connect",
            "url": server.url("/chat"),
            "headers": {"X-Trace": "abc", "Authorization": "Bearer ${var.token}"},
            "subprotocols": ["chat.v2", "chat.v1"],
        }]),
        None,
    )
    .await;
    let variables: Variables = [("token".to_owned(), json!("t0k"))].into_iter().collect();
    let mut h = Harness::with_variables(&factory, variables);
    let event = h.once(0).await;
    assert_success(&event);
    assert_eq!(event.status, Some(101));
    let handshakes = server.handshakes();
    assert_eq!(handshakes.len(), 1);
    let handshake = &handshakes[0];
    assert_eq!(handshake.header("x-trace"), Some("abc"));
    assert_eq!(handshake.header("authorization"), Some("Bearer t0k"));
    assert_eq!(handshake.offered_subprotocols(), ["chat.v2", "chat.v1"]);
    assert_eq!(handshake.selected_subprotocol(), Some("chat.v2"));
}

#[tokio::test]
async fn a_rejected_handshake_is_a_failure_with_its_status() {
    let server = WsEchoServer::start().await.expect("start");
    let factory = factory(
        json!([{"method": "sendrecv", "url": server.url("/status/403"), "payload": "x"}]),
        None,
    )
    .await;
    let mut h = Harness::new(&factory);
    let event = h.once(0).await;
    assert_eq!(error_of(&event), "handshake rejected: HTTP 403 Forbidden");
    assert_eq!(event.response_length, 0);
    assert_eq!(server.messages(), 0);
}
