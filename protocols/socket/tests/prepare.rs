//! Registration and `prepare`: the name is registered once, and every bad key or value is
//! rejected before the run with an error naming the task index and key.

mod common;

use common::prepare;
use load_density_core::PlanError;
use serde_json::{json, Value};

#[test]
fn socket_user_is_registered() {
    let registration =
        load_density_core::registry::lookup("socket_user").expect("socket_user registered");
    assert_eq!(registration.name(), load_density_socket::USER_TYPE);
    assert!(registration.description().contains("UDP"));
    assert!(load_density_core::registry::known_user_types().contains(&"socket_user"));
    assert_eq!(
        registration.protocol().option_names(),
        &["connect_timeout", "timeout"]
    );
}

/// Prepares `[valid task, bad]` and returns the error text, which must name task 1 and
/// `tasks[1].<key>`.
async fn rejected_at(bad: Value, key: &str) -> String {
    let tasks = json!([{"target": "127.0.0.1:9"}, bad]);
    let error = match prepare(tasks, None, json!({})).await {
        Ok(_) => panic!("prepare should have rejected {bad}"),
        Err(error) => error,
    };
    let text = error.to_string();
    assert!(matches!(&error, PlanError::Task { index: 1, .. }), "{text}");
    assert!(
        text.starts_with("task 1 ") && text.contains(&format!("tasks[1].{key}")),
        "expected task 1 and tasks[1].{key} in: {text}"
    );
    text
}

#[tokio::test]
async fn unknown_keys_and_wrong_types_are_rejected() {
    let text = rejected_at(json!({"target": "127.0.0.1:9", "bogus": 1}), "bogus").await;
    assert!(text.contains("unknown field `bogus`"), "{text}");
    rejected_at(json!({"protocol": 5}), "protocol").await;
    rejected_at(json!({"target": 9000}), "target").await;
    rejected_at(json!({"expect_bytes": "10"}), "expect_bytes").await;
    rejected_at(json!({"expect_bytes": -1}), "expect_bytes").await;
    rejected_at(json!({"keep_alive": "yes"}), "keep_alive").await;
    // "5" and "5s" are durations, as the Python version's float("5") and Locust's "5s".
    rejected_at(json!({"timeout": "soon"}), "timeout").await;
    let text = rejected_at(json!({"expect_bytes": 1.5}), "expect_bytes").await;
    assert!(text.contains("a whole number"), "{text}");
}

#[tokio::test]
async fn protocols_other_than_tcp_and_udp_are_rejected() {
    let text = rejected_at(json!({"protocol": "sctp"}), "protocol").await;
    assert!(text.contains("unsupported protocol \"sctp\""), "{text}");
    // Case-insensitive names are fine.
    for protocol in ["TCP", "Udp", "tcp"] {
        prepare(
            json!([{"protocol": protocol, "target": "127.0.0.1:9"}]),
            None,
            json!({}),
        )
        .await
        .unwrap_or_else(|e| panic!("{protocol} should be accepted: {e}"));
    }
}

#[tokio::test]
async fn constant_targets_are_validated() {
    for (target, reason) in [
        ("127.0.0.1", "missing port"),
        ("127.0.0.1:", "missing port"),
        ("127.0.0.1:0", "invalid port \"0\""),
        ("127.0.0.1:99999", "invalid port \"99999\""),
        ("127.0.0.1:http", "invalid port \"http\""),
        (":9000", "missing host"),
        ("::1:9000", "brackets"),
        ("[::1:9000", "missing ']'"),
        ("[::1]9000", "missing port"),
        ("[nope]:9000", "invalid IPv6 address"),
        ("bad host:9000", "invalid host name"),
        ("127.0.0.1:9000/path", "without a path"),
        ("http://127.0.0.1:9000", "scheme \"http\""),
        ("udp://127.0.0.1:9000", "scheme \"udp\""),
    ] {
        let text = rejected_at(json!({"target": target}), "target").await;
        assert!(text.contains(reason), "{target}: {text}");
    }
    let text = rejected_at(json!({"host": "::1:9000"}), "host").await;
    assert!(text.contains("brackets"), "{text}");
    let text = rejected_at(
        json!({"target": "127.0.0.1:1", "host": "127.0.0.1:2"}),
        "host",
    )
    .await;
    assert!(text.contains("not both"), "{text}");
    // Accepted forms.
    for target in [
        "127.0.0.1:9000",
        "[::1]:9000",
        "localhost:9000",
        "tcp://127.0.0.1:9000",
        " example.com:65535 ",
    ] {
        prepare(json!([{"target": target}]), None, json!({}))
            .await
            .unwrap_or_else(|e| panic!("{target} should be accepted: {e}"));
    }
    prepare(
        json!([{"protocol": "udp", "target": "udp://[::1]:53"}]),
        None,
        json!({}),
    )
    .await
    .expect("udp:// with protocol udp");
}

#[tokio::test]
async fn the_group_host_is_the_default_target_and_is_validated() {
    prepare(
        json!([{"payload": "x"}]),
        Some("127.0.0.1:7000".to_owned()),
        json!({}),
    )
    .await
    .expect("group host as target");
    let error = match prepare(
        json!([{"target": "127.0.0.1:1"}, {"payload": "x"}]),
        Some("http://localhost".to_owned()),
        json!({}),
    )
    .await
    {
        Ok(_) => panic!("an HTTP group host is not a socket target"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains("tasks[1].target") && error.contains("group's host \"http://localhost\""),
        "{error}"
    );
}

#[tokio::test]
async fn constant_payloads_are_decoded_at_prepare() {
    let text = rejected_at(json!({"payload": "hex:abc"}), "payload").await;
    assert!(text.contains("odd number of hex digits"), "{text}");
    let text = rejected_at(json!({"payload": "hex:zz"}), "payload").await;
    assert!(text.contains("invalid hex digit 'z'"), "{text}");
    let text = rejected_at(json!({"payload": "b64:!!!"}), "payload").await;
    assert!(text.contains("invalid base64"), "{text}");
    prepare(
        json!([{"target": "127.0.0.1:9", "payload": "hex:00 ff 0A"},
               {"target": "127.0.0.1:9", "payload": "b64:AP8K"},
               {"target": "127.0.0.1:9", "payload": 42},
               {"target": "127.0.0.1:9", "payload": "hex:${var.bytes}"}]),
        None,
        json!({}),
    )
    .await
    .expect("valid payloads");
}

#[tokio::test]
async fn framing_keys_are_checked() {
    let text = rejected_at(json!({"expect_bytes": 4, "read_until": "\n"}), "read_until").await;
    assert!(text.contains("not both"), "{text}");
    let text = rejected_at(json!({"read_until": ""}), "read_until").await;
    assert!(text.contains("must not be empty"), "{text}");
    rejected_at(json!({"expect_substring": ""}), "expect_substring").await;
    rejected_at(json!({"name": ""}), "name").await;
    let text = rejected_at(json!({"expect_bytes": 1_000_000_000u64}), "expect_bytes").await;
    assert!(text.contains("at most"), "{text}");
}

#[tokio::test]
async fn timeouts_must_be_positive_and_tcp_only_keys_stay_tcp() {
    for bad in [json!(0), json!(-1), json!(1e300)] {
        rejected_at(json!({"timeout": bad}), "timeout").await;
        rejected_at(json!({"connect_timeout": bad}), "connect_timeout").await;
    }
    let text = rejected_at(
        json!({"protocol": "udp", "keep_alive": false}),
        "keep_alive",
    )
    .await;
    assert!(text.contains("tcp only"), "{text}");
    let text = rejected_at(
        json!({"protocol": "udp", "connect_timeout": 1}),
        "connect_timeout",
    )
    .await;
    assert!(text.contains("tcp only"), "{text}");
}

#[tokio::test]
async fn the_method_keyed_form_is_rejected_with_a_hint() {
    let error = match prepare(json!({"tcp": {"target": "127.0.0.1:9"}}), None, json!({})).await {
        Ok(_) => panic!("socket tasks have no method"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains("tasks[0].method") && error.contains("list of task objects"),
        "{error}"
    );
}

#[tokio::test]
async fn bad_options_are_config_errors_naming_the_option() {
    let task = json!([{"target": "127.0.0.1:9"}]);
    for (options, key) in [
        (json!({"timeout": "soon"}), "\"timeout\""),
        (json!({"timeout": 0}), "\"timeout\""),
        (json!({"connect_timeout": -2}), "\"connect_timeout\""),
    ] {
        let error = match prepare(task.clone(), None, options.clone()).await {
            Ok(_) => panic!("{options} should be rejected"),
            Err(error) => error,
        };
        assert!(
            matches!(&error, PlanError::Config(m) if m.contains(key)),
            "{error}"
        );
    }
    prepare(task, None, json!({"timeout": 0.5, "connect_timeout": 2}))
        .await
        .expect("valid options");
}
