//! Every method against the real mosquitto and against the embedded broker, at every QoS, over
//! MQTT 3.1.1 and (mosquitto) MQTT 5.

mod common;

use common::{failure, ok, options, prepare, recorder, run_one, topic};
use load_density_core::{GroupPlan, Response, TaskList, UserTemplate};
use load_density_mqtt::MqttProtocol;
use load_density_testkit::{Mosquitto, MosquittoConfig, MqttBroker, MqttBrokerConfig};
use serde_json::{json, Map};

/// Runs connect, subscribe, publish at QoS 0/1/2, receive (three ways), unsubscribe and
/// disconnect against `broker`, checking every event.
async fn every_method(broker: &str, version: u8) -> anyhow::Result<()> {
    let t = topic(&format!("methods-v{version}"));
    let all = format!("{t}/#");
    let tasks = json!([
        {"method": "connect"},
        {"method": "subscribe", "topic": all, "qos": 2},
        {"method": "publish", "topic": format!("{t}/a"), "payload": "zero"},
        {"method": "publish", "topic": format!("{t}/b"), "qos": 1, "payload": "hex:00ff"},
        {"method": "publish", "topic": format!("{t}/c"), "qos": 2, "payload": {"n": 1}, "name": "p2"},
        {"method": "receive", "topic": all, "expect": "zero"},
        {"method": "receive", "topic": format!("{t}/b")},
        {"method": "receive", "topic": all, "expect": "\"n\":1"},
        {"method": "unsubscribe", "topic": all},
        {"method": "publish", "topic": format!("{t}/a"), "qos": 1, "payload": "after"},
        {"method": "receive", "timeout": 0.3},
        {"method": "disconnect"},
    ]);
    let factory = prepare(
        tasks,
        None,
        options(&[
            ("broker", json!(broker)),
            ("protocol_version", json!(version)),
        ]),
    )
    .await?;
    let recorder = recorder();
    let mut user = factory.new_user(7);
    let mut ctx = recorder.context(7);

    let connect = ok(run_one(user.as_mut(), 0, &mut ctx, &recorder).await);
    assert_eq!(&*connect.request_type, "MQTT");
    assert_eq!(&*connect.name, "connect:");
    assert_eq!(&*connect.url, broker);
    assert_eq!(connect.status, Some(0));
    assert_eq!(connect.response_length, 0);

    let subscribe = ok(run_one(user.as_mut(), 1, &mut ctx, &recorder).await);
    assert_eq!(&*subscribe.name, format!("subscribe:{all}"));
    assert_eq!(subscribe.status, Some(2), "granted QoS 2");

    let qos0 = ok(run_one(user.as_mut(), 2, &mut ctx, &recorder).await);
    assert_eq!(qos0.status, None, "QoS 0 has no acknowledgement");
    assert_eq!(qos0.response_length, 4);
    assert_eq!(&*qos0.name, format!("publish:{t}/a"));
    let qos1 = ok(run_one(user.as_mut(), 3, &mut ctx, &recorder).await);
    assert_eq!(qos1.status, Some(0), "PUBACK");
    assert_eq!(qos1.response_length, 2, "hex payload is two bytes");
    let qos2 = ok(run_one(user.as_mut(), 4, &mut ctx, &recorder).await);
    assert_eq!(qos2.status, Some(0), "PUBCOMP");
    assert_eq!(&*qos2.name, "p2");
    assert_eq!(qos2.response_length, br#"{"n":1}"#.len() as u64);

    let zero = ok(run_one(user.as_mut(), 5, &mut ctx, &recorder).await);
    assert_eq!(zero.response_length, 4);
    assert_eq!(&*zero.name, format!("receive:{all}"));
    let hex = ok(run_one(user.as_mut(), 6, &mut ctx, &recorder).await);
    assert_eq!(hex.response_length, 2);
    let json = ok(run_one(user.as_mut(), 7, &mut ctx, &recorder).await);
    assert_eq!(json.response_length, 7);

    ok(run_one(user.as_mut(), 8, &mut ctx, &recorder).await);
    ok(run_one(user.as_mut(), 9, &mut ctx, &recorder).await);
    let nothing = run_one(user.as_mut(), 10, &mut ctx, &recorder).await;
    assert_eq!(
        failure(&nothing),
        "timed out after 0.3s waiting for a message",
        "unsubscribed: the last publish does not come back"
    );
    assert!(nothing.response_time.as_secs_f64() >= 0.29);

    let disconnect = ok(run_one(user.as_mut(), 11, &mut ctx, &recorder).await);
    assert_eq!(&*disconnect.name, "disconnect:");
    user.on_stop(&mut ctx).await;
    assert!(recorder.take().is_empty(), "on_stop records nothing more");
    Ok(())
}

#[tokio::test]
async fn every_method_against_mosquitto_v311() -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start(MosquittoConfig::default()).await?;
    every_method(&mosquitto.broker(), 4).await
}

#[tokio::test]
async fn every_method_against_mosquitto_v5() -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start(MosquittoConfig::default()).await?;
    every_method(&format!("mqtt://{}", mosquitto.broker()), 5).await
}

#[tokio::test]
async fn every_method_against_the_embedded_broker() -> anyhow::Result<()> {
    let broker = MqttBroker::start().await?;
    every_method(&broker.broker(), 4).await?;
    let stats = broker.stats();
    assert_eq!(stats.connects, 1, "one connection for the whole task list");
    assert_eq!(stats.publishes, 4);
    assert_eq!(
        stats.deliveries, 3,
        "the last publish came after the unsubscribe"
    );
    assert_eq!(stats.subscribes, 1);
    // The DISCONNECT was written; the broker drops the client.
    for _ in 0..100 {
        if broker.connected_clients() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(broker.connected_clients(), 0);
    Ok(())
}

/// A publisher and a subscriber at every combination of publish and subscription QoS: the
/// subscriber gets the exact bytes, at the lower QoS.
async fn qos_matrix(broker: &str, version: u8) -> anyhow::Result<()> {
    for sub_qos in 0..=2u8 {
        for pub_qos in 0..=2u8 {
            let t = topic(&format!("qos-{sub_qos}-{pub_qos}"));
            let tasks = json!([
                {"method": "subscribe", "topic": t, "qos": sub_qos},
                {"method": "publish", "topic": t, "qos": pub_qos, "payload": "b64:AAECAw=="},
                {"method": "receive", "topic": t},
            ]);
            let plan =
                GroupPlan::new("mqtt_user", TaskList::from_json(&tasks)?).with_options(options(&[
                    ("broker", json!(broker)),
                    ("protocol_version", json!(version)),
                ]));
            let factory = MqttProtocol.prepare_group(&plan).await?;
            let recorder = recorder();
            let mut subscriber = factory.user(1);
            let mut publisher = factory.user(2);
            let mut sub_ctx = recorder.context(1);
            let mut pub_ctx = recorder.context(2);
            let granted = subscriber.send(0, &mut sub_ctx).await?.expect("a response");
            assert_eq!(granted.status(), Some(u16::from(sub_qos)));
            let published = publisher.send(1, &mut pub_ctx).await?.expect("a response");
            assert_eq!(published.length(), 4);
            assert_eq!(
                published.status(),
                (pub_qos > 0).then_some(0),
                "QoS {pub_qos} acknowledgement"
            );
            let received = subscriber.send(2, &mut sub_ctx).await?.expect("a message");
            assert_eq!(received.body(), &[0, 1, 2, 3]);
            assert_eq!(received.topic(), Some(t.as_str()));
            subscriber.on_stop(&mut sub_ctx).await;
            publisher.on_stop(&mut pub_ctx).await;
        }
    }
    Ok(())
}

#[tokio::test]
async fn qos_0_1_2_against_mosquitto() -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start(MosquittoConfig::default()).await?;
    qos_matrix(&mosquitto.broker(), 4).await?;
    qos_matrix(&mosquitto.broker(), 5).await
}

#[tokio::test]
async fn qos_0_1_2_against_the_embedded_broker() -> anyhow::Result<()> {
    let broker = MqttBroker::start().await?;
    qos_matrix(&broker.broker(), 4).await?;
    assert_eq!(broker.stats().deliveries, 9);
    Ok(())
}

#[tokio::test]
async fn placeholders_retain_and_the_group_host() -> anyhow::Result<()> {
    let broker = MqttBroker::start().await?;
    let t = topic("retain");
    let tasks = json!([
        {"method": "publish", "topic": "${var.base}/state", "payload": "v=${var.n}", "retain": true, "qos": 1},
        {"method": "receive", "topic": "${var.base}/+", "expect": "v=5"},
    ]);
    let factory = prepare(
        tasks,
        Some(format!("mqtt://{}", broker.broker())),
        Map::new(),
    )
    .await?;
    let recorder = recorder();
    let mut ctx = recorder.context(1);
    ctx.variables_mut().set("base", json!(t));
    ctx.variables_mut().set("n", json!(5));
    let mut publisher = factory.new_user(1);
    let event = ok(run_one(publisher.as_mut(), 0, &mut ctx, &recorder).await);
    assert_eq!(&*event.name, format!("publish:{t}/state"));
    assert_eq!(&*event.url, format!("mqtt://{}", broker.broker()));
    // A subscriber arriving later gets the retained message.
    let mut late = factory.new_user(2);
    let got = ok(run_one(late.as_mut(), 1, &mut ctx, &recorder).await);
    assert_eq!(got.response_length, 3);
    assert_eq!(&*got.name, format!("receive:{t}/+"));
    Ok(())
}

#[tokio::test]
async fn a_slow_broker_times_out_acks_without_stalling_the_event_loop() -> anyhow::Result<()> {
    let broker = MqttBroker::start_with(MqttBrokerConfig {
        ack_delay: std::time::Duration::from_millis(800),
        ..MqttBrokerConfig::default()
    })
    .await?;
    let t = topic("slow");
    let tasks = json!([
        {"method": "subscribe", "topic": t, "qos": 1},
        {"method": "publish", "topic": t, "qos": 1, "payload": "fast", "timeout": 0.2},
        {"method": "publish", "topic": t, "qos": 1, "payload": "patient", "timeout": 3},
        {"method": "receive", "topic": t},
    ]);
    let factory = prepare(tasks, Some(broker.broker()), Map::new()).await?;
    let recorder = recorder();
    let mut subscriber = factory.new_user(1);
    let mut publisher = factory.new_user(2);
    let mut sub_ctx = recorder.context(1);
    let mut pub_ctx = recorder.context(2);

    let subscribed = ok(run_one(subscriber.as_mut(), 0, &mut sub_ctx, &recorder).await);
    assert!(
        subscribed.response_time.as_millis() >= 750,
        "SUBACK is slow: {subscribed:?}"
    );

    for round in 0..3 {
        let event = run_one(publisher.as_mut(), 1, &mut pub_ctx, &recorder).await;
        assert_eq!(
            failure(&event),
            "timed out after 0.2s waiting for PUBACK",
            "round {round}"
        );
    }
    // The messages themselves went through at once, whatever the acks do.
    for _ in 0..3 {
        let got = ok(run_one(subscriber.as_mut(), 3, &mut sub_ctx, &recorder).await);
        assert!(got.response_time.as_millis() < 500, "{got:?}");
        assert_eq!(got.response_length, 4);
    }
    // The late acks of the timed-out publishes do not confuse the next one.
    let patient = ok(run_one(publisher.as_mut(), 2, &mut pub_ctx, &recorder).await);
    assert!(patient.response_time.as_millis() >= 750, "{patient:?}");
    assert_eq!(patient.response_length, 7);
    let got = ok(run_one(subscriber.as_mut(), 3, &mut sub_ctx, &recorder).await);
    assert_eq!(got.response_length, 7);
    assert_eq!(broker.stats().connects, 2, "no reconnect for slow acks");
    assert_eq!(broker.stats().publishes, 4);
    Ok(())
}

#[tokio::test]
async fn a_timeout_beyond_the_clock_does_not_panic() -> anyhow::Result<()> {
    // The largest timeout core accepts: every wait must still work (no deadline overflow).
    let broker = MqttBroker::start().await?;
    let t = topic("far-timeout");
    let tasks = json!([
        {"method": "connect", "timeout": 1e9},
        {"method": "subscribe", "topic": t, "qos": 1, "timeout": 1e9},
        {"method": "publish", "topic": t, "qos": 1, "payload": "x", "timeout": 1e9},
        {"method": "receive", "topic": t, "timeout": 1e9},
    ]);
    let factory = prepare(tasks, Some(broker.broker()), Map::new()).await?;
    let recorder = recorder();
    let mut user = factory.new_user(1);
    let mut ctx = recorder.context(1);
    for index in 0..3 {
        ok(run_one(user.as_mut(), index, &mut ctx, &recorder).await);
    }
    let got = ok(run_one(user.as_mut(), 3, &mut ctx, &recorder).await);
    assert_eq!(got.response_length, 1);
    user.on_stop(&mut ctx).await;
    Ok(())
}
