//! Non-OK statuses are failures recorded with their code and name; `status_code` assertions
//! compare names; the client deadline gives DEADLINE_EXCEEDED.

mod common;

use std::time::Duration;

use common::{assert_success, error_of, harness, proto_options};
use load_density_grpc::code_name;
use load_density_testkit::GrpcTarget;
use serde_json::json;

#[tokio::test]
async fn every_non_ok_code_is_a_failure_with_its_name() {
    let server = GrpcTarget::start().await.expect("start");
    let tasks: Vec<_> = (0..=16)
        .map(|code| {
            json!({"call": "loadtest.Echo/Fail", "target": server.target(),
                   "payload": {"code": code, "message": format!("asked for {code}")}})
        })
        .collect();
    let mut user = harness(json!(tasks), proto_options()).await;
    let ok = user.once(0).await;
    assert_success(&ok);
    assert_eq!(ok.status, Some(0));
    let names = [
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    for (code, name) in (1..=16).zip(names) {
        assert_eq!(code_name(code), name);
        let event = user.once(code as usize).await;
        assert_eq!(event.status, Some(code as u16), "{event:?}");
        assert_eq!(error_of(&event), format!("{name}: asked for {code}"));
    }
    assert_eq!(server.calls(), 17);
}

#[tokio::test]
async fn status_code_assertions_compare_names_and_numbers() {
    let server = GrpcTarget::start().await.expect("start");
    let fail = |code: i32, assertion: serde_json::Value| {
        json!({"call": "loadtest.Echo/Fail", "target": server.target(),
               "payload": {"code": code, "message": "gone"}, "assertions": [assertion]})
    };
    let mut user = harness(
        json!([
            fail(5, json!({"type": "status_code", "value": "NOT_FOUND"})),
            fail(5, json!({"type": "status_code", "value": "not_found"})),
            fail(5, json!({"type": "status_code", "value": 5})),
            fail(5, json!({"type": "status_code", "value": "OK"})),
            fail(0, json!({"type": "status_code", "value": "NOT_FOUND"})),
            {"call": "loadtest.Echo/Unary", "target": server.target(),
             "assertions": [{"type": "header", "name": "content-type", "value": "application/grpc"}]},
        ]),
        proto_options(),
    )
    .await;
    for index in 0..3 {
        let event = user.once(index).await;
        assert_success(&event);
        assert_eq!(event.status, Some(5));
    }
    let wrong = user.once(3).await;
    assert!(error_of(&wrong).contains("status_code"), "{wrong:?}");
    let wrong = user.once(4).await;
    assert!(error_of(&wrong).contains("NOT_FOUND"), "{wrong:?}");
    assert_success(&user.once(5).await);
}

#[tokio::test]
async fn the_client_deadline_is_deadline_exceeded() {
    let server = GrpcTarget::start().await.expect("start");
    let mut user = harness(
        json!([
            {"call": "loadtest.Echo/Unary", "target": server.target(),
             "payload": {"delay_ms": 3000}, "timeout": 0.3},
            {"call": "loadtest.Echo/ServerStream", "target": server.target(),
             "payload": {"message": "m", "count": 10, "delay_ms": 1000}, "timeout": 0.5},
            {"call": "loadtest.Echo/Unary", "target": server.target(), "payload": {"message": "after"}},
        ]),
        proto_options(),
    )
    .await;
    let slow = user.once(0).await;
    assert_eq!(slow.status, Some(4), "{slow:?}");
    assert!(error_of(&slow).starts_with("DEADLINE_EXCEEDED"), "{slow:?}");
    assert!(slow.response_time < Duration::from_millis(2000), "{slow:?}");
    let partial = user.once(1).await;
    assert_eq!(partial.status, Some(4), "{partial:?}");
    assert!(
        partial.response_length > 0,
        "the first message arrived: {partial:?}"
    );
    // The connection survives a deadline.
    assert_success(&user.once(2).await);
    assert_eq!(server.connections(), 1);
}
