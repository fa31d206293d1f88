//! Registration and plan validation: every bad value is a `PlanError` naming the task and key.

mod common;

use common::{options, prepare};
use load_density_core::{registry, PlanError, COMMON_OPTION_NAMES};
use load_density_mqtt::{MqttMethod, MqttProtocol, OPTION_NAMES};
use serde_json::{json, Map, Value};

async fn error(tasks: Value) -> String {
    prepare(tasks, None, Map::new())
        .await
        .err()
        .expect("an invalid plan")
        .to_string()
}

#[test]
fn mqtt_user_is_registered_with_its_options() {
    let registration = registry::lookup("mqtt_user").expect("registered");
    assert!(registration.description().contains("MQTT"));
    let mut names = registration.protocol().option_names().to_vec();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "broker",
            "ca_file",
            "max_packet_size",
            "protocol_version",
            "timeout",
            "verify"
        ]
    );
    assert_eq!(registration.protocol().option_names(), OPTION_NAMES);
    for common in COMMON_OPTION_NAMES {
        assert!(OPTION_NAMES.contains(common), "{common} is declared");
    }
}

#[tokio::test]
async fn bad_tasks_name_their_index_and_key() {
    let cases = [
        (
            json!([{"topic": "t"}, {"topic": "t", "bogus": 1}]),
            "task 1 (tasks[1].bogus): unknown field `bogus`",
        ),
        (
            json!([{"method": "shout", "topic": "t"}]),
            "tasks[0].method): unsupported mqtt method \"shout\"",
        ),
        (
            json!([{"topic": "t", "qos": 3}]),
            "tasks[0].qos): qos must be 0, 1 or 2, got 3",
        ),
        (json!([{"topic": "t", "qos": "high"}]), "tasks[0].qos"),
        (
            json!([{"topic": "t", "broker": "http://h"}]),
            "tasks[0].broker): unsupported broker scheme \"http\"",
        ),
        (
            json!([{"topic": "t", "host": "h:99999"}]),
            "tasks[0].host): invalid port",
        ),
        (
            json!([{"topic": "t", "host": "h", "broker": "h"}]),
            "tasks[0].host): give either",
        ),
        (
            json!([{"method": "publish"}]),
            "task 0 (tasks[0]): a publish task needs a \"topic\"",
        ),
        (
            json!([{"topic": "a/+"}]),
            "tasks[0].topic): invalid topic \"a/+\" for publish",
        ),
        (
            json!([{"method": "subscribe", "topic": "a/#/b"}]),
            "tasks[0].topic): invalid topic filter",
        ),
        (
            json!([{"method": "subscribe", "topic": "t", "payload": "x"}]),
            "tasks[0].payload): \"payload\" applies to publish tasks, not subscribe",
        ),
        (
            json!([{"method": "publish", "topic": "t", "expect": "x"}]),
            "tasks[0].expect): \"expect\" applies to receive tasks",
        ),
        (
            json!([{"topic": "t", "payload": "hex:zz"}]),
            "tasks[0].payload): invalid hex payload",
        ),
        (
            json!([{"topic": "t", "timeout": 0}]),
            "tasks[0].timeout): timeout must be a positive number",
        ),
        (
            json!([{"topic": "t", "keepalive": 70000}]),
            "tasks[0].keepalive): keepalive must be 0..=65535",
        ),
        (
            json!([{"topic": "t", "protocol_version": 3}]),
            "tasks[0].protocol_version): protocol_version must be 4",
        ),
        (
            json!([{"topic": "t", "clean_session": false, "client_id": ""}]),
            "tasks[0].client_id)",
        ),
        (
            json!([{"topic": "t", "ca_file": "/nonexistent/ca.pem"}]),
            "tasks[0].ca_file): cannot read",
        ),
        (json!([{"topic": "t", "stamp": "yes"}]), "tasks[0].stamp"),
    ];
    for (tasks, expected) in cases {
        let text = error(tasks.clone()).await;
        assert!(text.contains(expected), "{tasks}: {text}");
    }
}

#[tokio::test]
async fn bad_group_options_are_config_errors() {
    for (key, value, expected) in [
        ("timeout", json!(-1), "option \"timeout\""),
        ("verify", json!("no"), "option \"verify\""),
        (
            "protocol_version",
            json!(6),
            "option \"protocol_version\" must be 4 or 5",
        ),
        ("broker", json!("ftp://x"), "unsupported broker scheme"),
        (
            "ca_file",
            json!("/nonexistent.pem"),
            "option \"ca_file\": cannot read \"/nonexistent.pem\": ",
        ),
    ] {
        let result = prepare(json!([{"topic": "t"}]), None, options(&[(key, value)])).await;
        match result {
            Err(PlanError::Config(text)) => assert!(text.contains(expected), "{key}: {text}"),
            Err(other) => panic!("{key}: expected a config error, got {other}"),
            Ok(_) => panic!("{key}: expected an error"),
        }
    }
}

#[tokio::test]
async fn a_huge_timeout_is_a_plan_error_naming_the_key() {
    // 1e20 seconds is more than a `Duration` holds: an error, not a panic.
    match prepare(
        json!([{"topic": "t"}, {"topic": "t", "timeout": 1e20}]),
        None,
        Map::new(),
    )
    .await
    {
        Err(PlanError::Task {
            index,
            path,
            message,
        }) => {
            assert_eq!((index, path.as_str()), (1, "timeout"));
            assert!(
                message.starts_with("timeout is too large: 1e+20 seconds (at most "),
                "{message}"
            );
        }
        Err(other) => panic!("expected a task error, got {other}"),
        Ok(_) => panic!("a 1e20 s timeout must be refused"),
    }
    let group = options(&[("timeout", json!(1e20))]);
    match prepare(json!([{"topic": "t"}]), None, group).await {
        Err(PlanError::Config(message)) => assert!(
            message.starts_with("option \"timeout\" is too large: 1e+20 seconds (at most "),
            "{message}"
        ),
        Err(other) => panic!("expected a config error, got {other}"),
        Ok(_) => panic!("a 1e20 s timeout option must be refused"),
    }
}

#[tokio::test]
async fn defaults_and_the_legacy_shape() -> anyhow::Result<()> {
    // The legacy method-keyed object; no method means publish.
    let tasks = load_density_core::TaskList::from_json(&json!({
        "connect": {},
        "subscribe": {"topic": "a/#"},
        "receive": {"topic": "a/b", "expect": "x"},
        "disconnect": {},
    }))?;
    let plan = load_density_core::GroupPlan::new("mqtt_user", tasks);
    let factory = MqttProtocol.prepare_group(&plan).await?;
    assert_eq!(factory.task_count(), 4);
    assert_eq!(factory.method(0), Some(MqttMethod::Connect));
    assert_eq!(factory.method(2), Some(MqttMethod::Receive));
    let list = load_density_core::TaskList::from_json(&json!([{"topic": "t"}]))?;
    let factory = MqttProtocol
        .prepare_group(&load_density_core::GroupPlan::new("mqtt_user", list))
        .await?;
    assert_eq!(factory.method(0), Some(MqttMethod::Publish));
    let a = factory.user(1);
    let b = factory.user(1);
    assert!(a.default_client_id().starts_with("loaddensity-1-"));
    assert_ne!(
        a.default_client_id(),
        b.default_client_id(),
        "random per user"
    );
    assert!(!a.is_connected(), "connections are made by the first task");
    Ok(())
}
