//! Stamped messages on a small scale: the header is stripped, every receipt is one `MQTT_RECV`
//! event, and the process-wide counts add up. One test function: the counts are
//! process-wide, so nothing else in this binary may publish stamped messages.

mod common;

use std::time::Duration;

use common::{ok, options, run_one, topic, Recorder};
use load_density_core::{GroupPlan, RequestEvent, Response, TaskList, UserTemplate};
use load_density_mqtt::{reset_stamped_stats, stamped_stats, MqttProtocol, STAMP_LEN};
use load_density_testkit::MqttBroker;
use serde_json::json;

fn received(events: &[RequestEvent]) -> Vec<&RequestEvent> {
    events
        .iter()
        .filter(|e| &*e.request_type == "MQTT_RECV")
        .collect()
}

#[tokio::test]
async fn stamped_messages_are_timed_counted_and_stripped() -> anyhow::Result<()> {
    reset_stamped_stats();
    let broker = MqttBroker::start().await?;
    let t = topic("stamped");
    let nobody = topic("nobody");
    let tasks = json!([
        {"method": "subscribe", "topic": t, "qos": 1},
        {"method": "publish", "topic": t, "qos": 1, "stamp": true, "payload": "hello"},
        {"method": "publish", "topic": t, "qos": 0, "stamp": true, "payload": "zero"},
        {"method": "receive", "topic": t, "expect": "hello"},
        {"method": "publish", "topic": nobody, "qos": 2, "stamp": true, "payload": "lost"},
        {"method": "receive", "topic": t},
    ]);
    let plan = GroupPlan::new("mqtt_user", TaskList::from_json(&tasks)?)
        .with_options(options(&[("broker", json!(broker.broker()))]));
    let factory = MqttProtocol.prepare_group(&plan).await?;
    let recorder = Recorder::new();
    let mut subscriber = factory.user(1);
    let mut sub_ctx = recorder.context(1);
    let mut publisher = factory.user(2);
    let mut pub_ctx = recorder.context(2);

    ok(run_one(&mut subscriber, 0, &mut sub_ctx, &recorder).await);
    for _ in 0..3 {
        let sent = ok(run_one(&mut publisher, 1, &mut pub_ctx, &recorder).await);
        assert_eq!(
            sent.response_length,
            (STAMP_LEN + 5) as u64,
            "header counted"
        );
    }
    ok(run_one(&mut publisher, 2, &mut pub_ctx, &recorder).await);

    // receive: the stamped body without its header, and one MQTT_RECV per message so far.
    for _ in 0..3 {
        let response = subscriber.send(3, &mut sub_ctx).await?.expect("a message");
        assert_eq!(response.text(), "hello");
        assert_eq!(response.body(), b"hello");
        assert_eq!(response.length(), (STAMP_LEN + 5) as u64);
    }
    let zero = subscriber
        .send(5, &mut sub_ctx)
        .await?
        .expect("the QoS 0 one");
    assert_eq!(zero.text(), "zero");

    let events = recorder.take();
    let recv = received(&events);
    assert_eq!(recv.len(), 4, "{events:?}");
    for event in &recv {
        assert!(event.is_success());
        assert_eq!(&*event.name, t);
        assert_eq!(&*event.url, broker.broker());
        assert!(event.response_time > Duration::ZERO);
        assert!(event.response_time < Duration::from_secs(2), "{event:?}");
    }
    assert_eq!(recv.iter().filter(|e| e.response_length == 25).count(), 3);
    assert_eq!(recv.iter().filter(|e| e.response_length == 24).count(), 1);

    // A QoS 2 stamped message nobody subscribed to is lost; QoS 0 is not counted.
    ok(run_one(&mut publisher, 4, &mut pub_ctx, &recorder).await);
    let stats = stamped_stats();
    assert_eq!(stats.published, 4, "{stats:?}");
    assert_eq!(stats.received, 3, "{stats:?}");
    assert_eq!(stats.lost(), 1, "{stats:?}");
    assert_eq!(
        (stats.duplicates, stats.foreign, stats.unrecorded),
        (0, 0, 0)
    );

    // A second subscriber: each receipt is its own MQTT_RECV; the second is a duplicate. A
    // subscriber that never runs `receive` records its receipts at its next task, or at stop.
    let mut second = factory.user(3);
    let mut second_ctx = recorder.context(3);
    ok(run_one(&mut second, 0, &mut second_ctx, &recorder).await);
    ok(run_one(&mut publisher, 1, &mut pub_ctx, &recorder).await);
    let got = subscriber.send(3, &mut sub_ctx).await?;
    assert!(got.is_some());
    // Give the second subscriber's event loop the same message.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before_stop = received(&recorder.take()).len();
    assert_eq!(before_stop, 1, "the first subscriber's receipt");
    second.on_stop(&mut second_ctx).await;
    let at_stop = recorder.take();
    assert_eq!(received(&at_stop).len(), 1, "drained at stop: {at_stop:?}");
    let stats = stamped_stats();
    assert_eq!(
        (stats.published, stats.received, stats.duplicates),
        (5, 4, 1)
    );
    assert_eq!(stats.published, stats.received + stats.lost());

    subscriber.on_stop(&mut sub_ctx).await;
    publisher.on_stop(&mut pub_ctx).await;
    reset_stamped_stats();
    assert_eq!(stamped_stats().published, 0);
    Ok(())
}
