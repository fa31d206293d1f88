//! A broker that goes away: tasks fail with the reason, a dropped connection is one failure
//! event, and the user reconnects (lazily, on its next task) once the broker is back.

mod common;

use std::time::Duration;

use common::{failure, ok, options, prepare, recorder, run_one, topic};
use load_density_core::{GroupPlan, TaskList, UserTemplate};
use load_density_mqtt::MqttProtocol;
use load_density_testkit::{unused_local_port, Mosquitto, MosquittoConfig, MqttBroker};
use serde_json::json;

#[tokio::test]
async fn publishing_to_a_dead_broker_fails_then_recovers_when_mosquitto_restarts(
) -> anyhow::Result<()> {
    let mut mosquitto = Mosquitto::start(MosquittoConfig::default()).await?;
    let broker = mosquitto.broker();
    let t = topic("restart");
    let tasks = json!([{"method": "publish", "topic": t, "qos": 1, "payload": "x", "timeout": 2}]);
    let plan = GroupPlan::new("mqtt_user", TaskList::from_json(&tasks)?)
        .with_options(options(&[("broker", json!(broker))]));
    let factory = MqttProtocol.prepare_group(&plan).await?;
    let recorder = recorder();
    let mut user = factory.user(1);
    let mut ctx = recorder.context(1);

    ok(run_one(&mut user, 0, &mut ctx, &recorder).await);
    assert!(user.is_connected());
    let pid = mosquitto.pid().expect("running");
    mosquitto.stop();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "mosquitto {pid} was stopped"
    );
    // The user's event loop notices at once, without any task running.
    for _ in 0..200 {
        if !user.is_connected() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!user.is_connected(), "the loss was noticed");

    // The first task notices the dropped connection (one "connection" failure), then tries to
    // reconnect and is refused; later tasks are refused too.
    user.run_task(0, &mut ctx).await;
    let events = recorder.take();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(&*events[0].name, "connection");
    assert!(
        failure(&events[0]).starts_with("connection lost: "),
        "{events:?}"
    );
    assert_eq!(&*events[0].url, broker);
    assert_eq!(
        failure(&events[1]),
        "connection failed: Connection refused (os error 111)"
    );
    assert_eq!(&*events[1].name, format!("publish:{t}"));
    for _ in 0..3 {
        let refused = run_one(&mut user, 0, &mut ctx, &recorder).await;
        assert!(failure(&refused).contains("refused"), "{refused:?}");
    }

    mosquitto.restart().await?;
    assert_eq!(mosquitto.broker(), broker, "same port after the restart");
    let back = ok(run_one(&mut user, 0, &mut ctx, &recorder).await);
    assert_eq!(back.status, Some(0));
    ok(run_one(&mut user, 0, &mut ctx, &recorder).await);
    Ok(())
}

#[tokio::test]
async fn a_connection_dropped_while_waiting_is_reported_once_by_the_waiting_task(
) -> anyhow::Result<()> {
    let mut broker = MqttBroker::start().await?;
    let t = topic("drop");
    let tasks = json!([
        {"method": "subscribe", "topic": t},
        {"method": "receive", "topic": t, "timeout": 5},
        {"method": "publish", "topic": t, "payload": "again"},
    ]);
    let factory = prepare(tasks, Some(broker.broker()), serde_json::Map::new()).await?;
    let recorder = recorder();
    let mut user = factory.new_user(1);
    let mut ctx = recorder.context(1);
    ok(run_one(user.as_mut(), 0, &mut ctx, &recorder).await);

    let waiting = tokio::spawn(async move {
        let event = run_one(user.as_mut(), 1, &mut ctx, &recorder).await;
        (user, ctx, recorder, event)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    broker.stop();
    let (mut user, mut ctx, recorder, event) = waiting.await?;
    assert!(
        failure(&event).starts_with("connection lost: "),
        "{event:?}"
    );
    assert!(
        event.response_time < Duration::from_secs(4),
        "failed at once: {event:?}"
    );

    broker.restart().await?;
    // No second "connection" event: the receive already reported the loss. The publish
    // reconnects; the receive after it subscribes again on the new connection.
    let published = ok(run_one(user.as_mut(), 2, &mut ctx, &recorder).await);
    assert_eq!(published.response_length, 5);
    ok(run_one(user.as_mut(), 0, &mut ctx, &recorder).await);
    ok(run_one(user.as_mut(), 2, &mut ctx, &recorder).await);
    let got = ok(run_one(user.as_mut(), 1, &mut ctx, &recorder).await);
    assert_eq!(got.response_length, 5);
    assert_eq!(broker.stats().connects, 2);
    Ok(())
}

#[tokio::test]
async fn a_refused_port_and_a_silent_one_are_failures() -> anyhow::Result<()> {
    let port = unused_local_port();
    // A listener that accepts TCP but never answers CONNECT.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let silent_port = silent.local_addr()?.port();
    let tasks = json!([
        {"method": "connect", "broker": format!("127.0.0.1:{port}")},
        {"method": "connect", "broker": format!("mqtt://127.0.0.1:{silent_port}"), "timeout": 0.3},
    ]);
    let factory = prepare(tasks, None, serde_json::Map::new()).await?;
    let recorder = recorder();
    let mut user = factory.new_user(1);
    let mut ctx = recorder.context(1);
    let refused = run_one(user.as_mut(), 0, &mut ctx, &recorder).await;
    assert_eq!(
        failure(&refused),
        "connection failed: Connection refused (os error 111)"
    );
    let silent_event = run_one(user.as_mut(), 1, &mut ctx, &recorder).await;
    assert_eq!(
        failure(&silent_event),
        "timed out after 0.3s waiting for CONNACK"
    );
    drop(silent);
    Ok(())
}
