//! What an `MQTT_RECV` latency measures: from the publisher's stamp to the moment the message
//! reached the subscriber's connection. A broker that delivers late shows in it; a subscriber
//! that looks late does not.

mod common;

use std::time::{Duration, UNIX_EPOCH};

use common::{ok, options, recorder, run_one, topic, DelayProxy};
use load_density_core::{GroupPlan, TaskList, UserTemplate};
use load_density_mqtt::MqttProtocol;
use load_density_testkit::MqttBroker;
use serde_json::json;

/// How late the broker's bytes reach the subscriber.
const DELIVERY_DELAY: Duration = Duration::from_millis(400);
/// How long after the publish the subscriber first looks.
const LOOK_AFTER: Duration = Duration::from_millis(1500);

#[tokio::test]
async fn latency_is_the_delivery_not_the_look() -> anyhow::Result<()> {
    let broker = MqttBroker::start().await?;
    let proxy = DelayProxy::start(broker.broker(), DELIVERY_DELAY).await?;
    let t = topic("latency");
    // The subscriber goes through the slow proxy, the publisher straight to the broker.
    let tasks = json!([
        {"method": "subscribe", "topic": t, "qos": 1, "broker": proxy.broker()},
        {"method": "publish", "topic": t, "qos": 1, "stamp": true, "payload": "late",
         "broker": broker.broker()},
        {"method": "receive", "topic": t, "broker": proxy.broker()},
    ]);
    let plan = GroupPlan::new("mqtt_user", TaskList::from_json(&tasks)?)
        .with_options(options(&[("broker", json!(broker.broker()))]));
    let factory = MqttProtocol.prepare_group(&plan).await?;
    let recorder = recorder();
    let mut subscriber = factory.user(1);
    let mut sub_ctx = recorder.context(1);
    let mut publisher = factory.user(2);
    let mut pub_ctx = recorder.context(2);

    let subscribed = ok(run_one(&mut subscriber, 0, &mut sub_ctx, &recorder).await);
    assert!(
        subscribed.response_time >= DELIVERY_DELAY,
        "the SUBACK comes through the proxy too: {subscribed:?}"
    );
    let published = ok(run_one(&mut publisher, 1, &mut pub_ctx, &recorder).await);
    assert!(published.response_time < DELIVERY_DELAY, "{published:?}");

    // The message reaches the subscriber's connection DELIVERY_DELAY after the publish; the
    // subscriber only looks LOOK_AFTER after it.
    tokio::time::sleep(LOOK_AFTER).await;
    assert!(
        recorder.take().is_empty(),
        "nothing recorded before it looks"
    );
    let message = subscriber.send(2, &mut sub_ctx).await?.expect("a message");
    assert_eq!(message.text(), "late");

    let events = recorder.take();
    assert_eq!(events.len(), 1, "{events:?}");
    let recv = &events[0];
    assert_eq!(&*recv.request_type, "MQTT_RECV");
    assert!(recv.is_success(), "{recv:?}");
    assert_eq!(&*recv.url, proxy.broker());
    // Started at the stamp, taken while the publish task ran...
    let published_us = published.start_time.duration_since(UNIX_EPOCH)?.as_micros();
    let stamp_us = recv.start_time.duration_since(UNIX_EPOCH)?.as_micros();
    assert!(
        stamp_us >= published_us
            && recv.start_time <= published.start_time + published.response_time,
        "{recv:?} {published:?}"
    );
    // ...and lasted until the delivery: not less than the broker's delay, well short of the
    // moment the subscriber looked.
    assert!(
        recv.response_time >= DELIVERY_DELAY,
        "includes the delivery delay: {recv:?}"
    );
    assert!(
        recv.response_time < LOOK_AFTER - Duration::from_millis(300),
        "excludes the subscriber's delay: {recv:?}"
    );

    subscriber.on_stop(&mut sub_ctx).await;
    publisher.on_stop(&mut pub_ctx).await;
    Ok(())
}
