//! `max_message_size`: a server cannot make a user buffer a message larger than the group
//! allows.

mod common;

use common::{assert_success, error_of, prepare, Harness};
use load_density_testkit::WsEchoServer;
use serde_json::json;

#[tokio::test]
async fn a_message_above_max_message_size_fails_the_task() {
    let server = WsEchoServer::start().await.expect("start");
    let small = "x".repeat(1000);
    let large = "y".repeat(5000);
    let factory = prepare(
        json!([
            {"method": "sendrecv", "url": server.url("/"), "payload": small},
            {"method": "sendrecv", "url": server.url("/"), "payload": large},
        ]),
        None,
        json!({"max_message_size": 4096}),
    )
    .await
    .expect("valid tasks");
    let mut h = Harness::new(&factory);
    let events = h.all(2).await;
    assert_success(&events[0]);
    let error = error_of(&events[1]);
    assert!(error.contains("Message too long"), "{error}");
}

#[tokio::test]
async fn max_message_size_must_be_a_positive_whole_number() {
    let error = prepare(
        json!([{"method": "connect", "url": "ws://127.0.0.1:1/"}]),
        None,
        json!({"max_message_size": 0}),
    )
    .await
    .err()
    .expect("rejected");
    assert!(
        error
            .to_string()
            .contains("option \"max_message_size\" must be a positive whole number of bytes"),
        "{error}"
    );
}
