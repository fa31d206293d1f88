//! `expect` (substring and regex) and `skip_non_matching`.

mod common;

use common::{assert_success, error_of, factory, Harness};
use load_density_testkit::WsEchoServer;
use serde_json::json;

#[tokio::test]
async fn substring_and_regex_pass_and_fail() {
    let server = WsEchoServer::start().await.expect("start");
    let factory = factory(
        json!([
            {"method": "sendrecv", "url": server.url("/"), "payload": "abc123", "expect": "c12"},
            {"method": "sendrecv", "payload": "abc123", "expect": "zzz"},
            {"method": "sendrecv", "payload": "abc123", "expect": {"regex": "^abc\\d+$"}},
            {"method": "sendrecv", "payload": "abc123", "expect": {"regex": "^x"}},
        ]),
        None,
    )
    .await;
    let mut h = Harness::new(&factory);
    let events = h.all(4).await;
    assert_success(&events[0]);
    assert_eq!(
        error_of(&events[1]),
        "expected 'zzz' in frame, got 'abc123'"
    );
    // A mismatch still received a frame: its bytes are counted.
    assert_eq!(events[1].response_length, 12);
    assert_success(&events[2]);
    assert_eq!(
        error_of(&events[3]),
        "expected a frame matching /^x/, got 'abc123'"
    );
    // The first mismatch dropped the connection; the next task reopened it.
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn long_frames_are_cut_in_the_reason() {
    let server = WsEchoServer::start().await.expect("start");
    let long = "é".repeat(300);
    let factory = factory(
        json!([{"method": "sendrecv", "url": server.url("/"), "payload": long, "expect": "nope"}]),
        None,
    )
    .await;
    let mut h = Harness::new(&factory);
    let event = h.once(0).await;
    let error = error_of(&event);
    let expected = format!("expected 'nope' in frame, got '{}...'", "é".repeat(100));
    assert_eq!(error, expected);
    assert_eq!(event.response_length, 1200);
}

#[tokio::test]
async fn skip_non_matching_waits_for_the_matching_frame() {
    let server = WsEchoServer::start().await.expect("start");
    let factory = factory(
        json!([
            {"method": "connect", "url": server.url("/")},
            {"method": "send", "payload": "one"},
            {"method": "send", "payload": "two"},
            {"method": "recv", "expect": "two", "skip_non_matching": true},
            {"method": "send", "payload": "three"},
            {"method": "recv", "expect": "never", "skip_non_matching": true, "timeout": 0.3},
        ]),
        None,
    )
    .await;
    let mut h = Harness::new(&factory);
    let events = h.all(6).await;
    events[..5].iter().for_each(assert_success);
    assert_eq!(events[3].response_length, 3);
    assert_eq!(
        error_of(&events[5]),
        "timed out after 0.3s waiting for a frame"
    );
}

#[tokio::test]
async fn without_skip_the_first_frame_must_match() {
    let server = WsEchoServer::start().await.expect("start");
    let factory = factory(
        json!([
            {"method": "connect", "url": server.url("/")},
            {"method": "send", "payload": "one"},
            {"method": "send", "payload": "two"},
            {"method": "recv", "expect": "two"},
        ]),
        None,
    )
    .await;
    let mut h = Harness::new(&factory);
    let events = h.all(4).await;
    assert_eq!(error_of(&events[3]), "expected 'two' in frame, got 'one'");
}
