//! A task list written as for the Python LoadDensity (spec §2.4): `retain` and the other flags
//! as integers, a number as payload, seconds as numbers. It runs unchanged, with the Python
//! version's meaning (`retain: 0` is false; a payload of 42 is sent as the text "42").

mod common;

use common::{ok, options, prepare, recorder, run_one, topic};
use load_density_testkit::MqttBroker;
use serde_json::json;

#[tokio::test]
async fn a_python_task_list_runs_unchanged() {
    let broker = MqttBroker::start().await.expect("embedded broker");
    let t = topic("python-values");
    let tasks = json!([
        {"method": "connect", "broker": broker.broker(), "keepalive": 60, "timeout": 5},
        {"method": "subscribe", "broker": broker.broker(), "topic": t, "qos": 0},
        {"method": "publish", "broker": broker.broker(), "topic": t, "payload": "hello",
         "qos": 1, "retain": 0, "timeout": 5, "name": "publish:hello"},
        {"method": "publish", "broker": broker.broker(), "topic": t, "payload": 42,
         "qos": 0, "retain": 1},
        {"method": "disconnect", "broker": broker.broker()}
    ]);
    let factory = prepare(tasks, None, options(&[]))
        .await
        .expect("the Python task list is accepted");
    let recorder = recorder();
    let mut user = factory.new_user(1);
    let mut ctx = recorder.context(1);
    ok(run_one(user.as_mut(), 0, &mut ctx, &recorder).await);
    ok(run_one(user.as_mut(), 1, &mut ctx, &recorder).await);
    let hello = ok(run_one(user.as_mut(), 2, &mut ctx, &recorder).await);
    assert_eq!(&*hello.name, "publish:hello");
    assert_eq!(hello.response_length, 5);
    let number = ok(run_one(user.as_mut(), 3, &mut ctx, &recorder).await);
    assert_eq!(number.response_length, 2, "42 is sent as its text");
    ok(run_one(user.as_mut(), 4, &mut ctx, &recorder).await);

    // What Python would not read as a boolean stays an error, in words.
    let error = prepare(
        json!([{"method": "publish", "topic": t, "retain": "yes"}]),
        None,
        options(&[]),
    )
    .await
    .err()
    .expect("retain \"yes\" is refused")
    .to_string();
    assert!(error.contains("tasks[0].retain"), "{error}");
    assert!(error.contains("true or false (or 0 / 1)"), "{error}");
    let error = prepare(
        json!([{"method": "publish", "topic": t, "qos": "high"}]),
        None,
        options(&[]),
    )
    .await
    .err()
    .expect("qos \"high\" is refused")
    .to_string();
    assert!(error.contains("a whole number"), "{error}");
}
