//! Stamped messages on a small scale: the header is stripped, every receipt is one `MQTT_RECV`
//! event timed from the stamp, and the process-wide counts add up. One test function: the
//! counts are process-wide, so nothing else in this binary may publish stamped messages.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{ok, options, recorder, run_one, topic};
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

/// `at`, cut to whole microseconds (what a stamp holds).
fn whole_us(at: SystemTime) -> SystemTime {
    let since = at.duration_since(UNIX_EPOCH).expect("after the epoch");
    UNIX_EPOCH + Duration::from_micros(since.as_micros() as u64)
}

/// A payload with a stamp header written by hand: as if published by another process whose
/// clock read `sent` (message id `id`, which this process never hands out).
fn crafted(sent: SystemTime, id: u64, body: &str) -> String {
    let sent_us = sent
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_micros();
    let body: String = body.bytes().map(|b| format!("{b:02x}")).collect();
    format!("hex:004c4401{sent_us:016x}{id:016x}{body}")
}

/// Whether the stamp time `at` lies within the publish task recorded by `event` (its start to
/// its end; the stamp holds whole microseconds).
fn within(at: SystemTime, event: &RequestEvent) -> bool {
    at >= whole_us(event.start_time) && at <= event.start_time + event.response_time
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
        {"method": "publish", "topic": t, "qos": 1, "payload": "${crafted}"},
        {"method": "receive", "topic": t, "expect": "crafted"},
    ]);
    let plan = GroupPlan::new("mqtt_user", TaskList::from_json(&tasks)?)
        .with_options(options(&[("broker", json!(broker.broker()))]));
    let factory = MqttProtocol.prepare_group(&plan).await?;
    let recorder = recorder();
    let mut subscriber = factory.user(1);
    let mut sub_ctx = recorder.context(1);
    let mut publisher = factory.user(2);
    let mut pub_ctx = recorder.context(2);

    ok(run_one(&mut subscriber, 0, &mut sub_ctx, &recorder).await);
    let mut publishes = Vec::new();
    for _ in 0..3 {
        let sent = ok(run_one(&mut publisher, 1, &mut pub_ctx, &recorder).await);
        assert_eq!(
            sent.response_length,
            (STAMP_LEN + 5) as u64,
            "header counted"
        );
        publishes.push(sent);
    }
    publishes.push(ok(run_one(&mut publisher, 2, &mut pub_ctx, &recorder).await));

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
    for (event, publish) in recv.iter().zip(&publishes) {
        assert!(event.is_success());
        assert_eq!(event.status, None);
        assert_eq!(&*event.name, t);
        assert_eq!(&*event.url, broker.broker());
        assert!(event.response_time > Duration::ZERO);
        assert!(event.response_time < Duration::from_secs(2), "{event:?}");
        // The event starts at the publisher's stamp, taken while its publish task ran.
        assert!(within(event.start_time, publish), "{event:?} {publish:?}");
    }
    assert_eq!(recv.iter().filter(|e| e.response_length == 25).count(), 3);
    assert_eq!(recv.iter().filter(|e| e.response_length == 24).count(), 1);

    // A QoS 2 stamped message nobody subscribed to is lost; QoS 0 is not counted.
    ok(run_one(&mut publisher, 4, &mut pub_ctx, &recorder).await);
    let stats = stamped_stats();
    assert_eq!(stats.published, 4, "{stats:?}");
    assert_eq!(stats.received, 3, "{stats:?}");
    assert_eq!(stats.lost(), 1, "{stats:?}");
    assert_eq!((stats.duplicates, stats.unrecorded), (0, 0));

    // Stamped elsewhere: a header written by hand, as by a publisher in another process whose
    // clock is 1.5 s behind (or whose message took 1.5 s), then one 10 s ahead. Each is timed
    // from its stamp alone (the one from the future as 0) and counted by nobody here.
    let behind = whole_us(SystemTime::now() - Duration::from_millis(1500));
    let ahead = whole_us(SystemTime::now() + Duration::from_secs(10));
    for (sent, id) in [(behind, u64::MAX), (ahead, u64::MAX - 1)] {
        pub_ctx
            .variables_mut()
            .set("crafted", json!(crafted(sent, id, "crafted")));
        let plain = ok(run_one(&mut publisher, 6, &mut pub_ctx, &recorder).await);
        assert_eq!(plain.response_length, (STAMP_LEN + 7) as u64);
    }
    for _ in 0..2 {
        let got = subscriber.send(7, &mut sub_ctx).await?.expect("a message");
        assert_eq!(got.text(), "crafted", "header stripped");
    }
    let events = recorder.take();
    let recv = received(&events);
    assert_eq!(recv.len(), 2, "{events:?}");
    assert_eq!(recv[0].start_time, behind, "starts at the stamp");
    assert!(
        recv[0].response_time >= Duration::from_millis(1500)
            && recv[0].response_time < Duration::from_millis(3500),
        "{:?}",
        recv[0]
    );
    assert_eq!(recv[1].start_time, ahead);
    assert_eq!(
        recv[1].response_time,
        Duration::ZERO,
        "clock skew saturates"
    );
    assert!(recv
        .iter()
        .all(|e| e.is_success() && e.response_length == 27));
    assert_eq!(stamped_stats(), stats, "not counted: published elsewhere");

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
    let before_stop = recorder.take();
    let first = received(&before_stop);
    assert_eq!(first.len(), 1, "the first subscriber's receipt");
    second.on_stop(&mut second_ctx).await;
    let at_stop = recorder.take();
    let second_recv = received(&at_stop);
    assert_eq!(second_recv.len(), 1, "drained at stop: {at_stop:?}");
    assert_eq!(second_recv[0].start_time, first[0].start_time, "one stamp");
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
