//! Bad tasks and options are rejected by `prepare`, naming the task index and key.

mod common;

use common::{plan_error, prepare};
use load_density_core::registry;
use serde_json::{json, Value};

#[test]
fn websocket_user_is_registered_with_its_options() {
    let registration = registry::lookup("websocket_user").expect("registered");
    assert_eq!(registration.name(), load_density_websocket::USER_TYPE);
    assert!(registration.description().contains("WebSocket"));
    let mut options = registration.protocol().option_names().to_vec();
    options.sort_unstable();
    assert_eq!(
        options,
        ["ca_file", "max_message_size", "timeout", "verify"]
    );
}

#[tokio::test]
async fn bad_tasks_name_the_index_and_key() {
    let url = "ws://127.0.0.1:1/";
    let cases: Vec<(Value, &str)> = vec![
        (
            json!([{"url": url}, {"method": "publish", "url": url}]),
            "task 1 (tasks[1].method): unknown websocket method \"publish\" (expected connect, send, recv, sendrecv or close)",
        ),
        (json!([{"url": url, "bogus": 1}]), "task 0 (tasks[0].bogus): unknown field `bogus`"),
        (json!([{"url": url, "timeout": 0}]), "task 0 (tasks[0].timeout): timeout must be a positive number"),
        (json!([{"url": url, "timeout": -1.5}]), "tasks[0].timeout"),
        (json!([{"url": url, "timeout": "soon"}]), "tasks[0].timeout"),
        (json!([{"url": url, "payload": "hex:abc"}]), "task 0 (tasks[0].payload): invalid hex after \"hex:\": odd number of digits"),
        (json!([{"url": url, "payload": "hex:zz"}]), "tasks[0].payload): invalid hex"),
        (json!([{"url": url, "payload": "b64:***"}]), "task 0 (tasks[0].payload): invalid base64"),
        (json!([{"method": "recv", "url": url, "expect": {"regex": "("}}]), "task 0 (tasks[0].expect.regex): invalid regex"),
        (json!([{"method": "recv", "url": url, "expect": {"pattern": "x"}}]), "tasks[0].expect"),
        (json!([{"method": "recv", "url": url, "expect": 5}]), "tasks[0].expect"),
        (json!([{"method": "send", "url": url, "expect": "x"}]), "task 0 (tasks[0].expect): \"expect\" has no effect on a send task"),
        (json!([{"method": "recv", "url": url, "payload": "x"}]), "task 0 (tasks[0].payload): \"payload\" has no effect on a recv task"),
        (json!([{"method": "connect", "url": url, "skip_non_matching": true}]), "tasks[0].skip_non_matching"),
        (json!([{"method": "recv", "url": url, "skip_non_matching": true}]), "task 0 (tasks[0].skip_non_matching): \"skip_non_matching\" needs \"expect\""),
        (json!([{"url": "ftp://example.com/"}]), "task 0 (tasks[0].url): unsupported scheme \"ftp\""),
        (json!([{"request_url": "ws://"}]), "tasks[0].request_url"),
        (json!([{"url": url, "headers": {"Sec-WebSocket-Key": "x"}}]), "task 0 (tasks[0].headers.Sec-WebSocket-Key)"),
        (json!([{"url": url, "headers": {"Sec-WebSocket-Protocol": "x"}}]), "(tasks[0].headers.Sec-WebSocket-Protocol): set subprotocols with the \"subprotocols\" key"),
        (json!([{"url": url, "headers": {"bad name": "x"}}]), "invalid header name"),
        (json!([{"url": url, "headers": {"X-A": "a\nb"}}]), "tasks[0].headers.X-A"),
        (json!([{"url": url, "subprotocols": ["ok", "not ok"]}]), "task 0 (tasks[0].subprotocols[1]): invalid subprotocol"),
        (json!([{"url": url, "subprotocols": "chat"}]), "tasks[0].subprotocols"),
        (json!([{"url": url, "verify": "yes"}]), "tasks[0].verify"),
    ];
    for (tasks, expected) in cases {
        let error = plan_error(tasks.clone()).await;
        assert!(
            error.contains(expected),
            "{tasks}\n  got: {error}\n  expected: {expected}"
        );
    }
}

#[tokio::test]
async fn bad_options_and_hosts_are_config_errors() {
    let tasks = json!([{"url": "/"}]);
    for (options, expected) in [
        (
            json!({"timeout": "x"}),
            "option \"timeout\" must be a positive number of seconds",
        ),
        (json!({"timeout": 0}), "option \"timeout\""),
        (
            json!({"verify": "yes"}),
            "option \"verify\" must be true or false",
        ),
        (
            json!({"ca_file": 7}),
            "option \"ca_file\" must be a file path",
        ),
    ] {
        let error = prepare(tasks.clone(), None, options.clone())
            .await
            .err()
            .unwrap_or_else(|| panic!("{options} must be rejected"))
            .to_string();
        assert!(error.contains(expected), "{options}: {error}");
    }
    let error = prepare(tasks, Some("ftp://example.com".to_owned()), Value::Null)
        .await
        .err()
        .expect("an ftp host is rejected")
        .to_string();
    assert!(error.contains("host") && error.contains("ftp"), "{error}");
}

#[tokio::test]
async fn good_tasks_prepare() {
    prepare(
        json!({"mode": "weighted", "tasks": [
            {"method": "connect", "url": "/ws", "weight": 2, "subprotocols": [], "headers": [["X-A", "1"]]},
            {"method": "SEND", "payload": "b64:AAE=", "timeout": 0.5},
            {"method": "recv", "expect": {"regex": "^ok"}, "skip_non_matching": true},
            {"method": "sendrecv", "payload": {"a": 1}, "expect": "${var.x}", "verify": false},
            {"method": "close", "name": "bye"},
        ]}),
        Some("localhost:9".to_owned()),
        json!({"timeout": 2, "verify": true}),
    )
    .await
    .expect("valid tasks prepare");
}
