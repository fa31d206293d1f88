//! `max_packet_size`: a broker cannot make a user buffer a packet larger than the group allows.

mod common;

use common::{options, prepare, recorder, run, topic};
use load_density_testkit::MqttBroker;
use serde_json::json;

#[tokio::test]
async fn a_packet_above_max_packet_size_is_refused() -> anyhow::Result<()> {
    let broker = MqttBroker::start().await?;
    let t = topic("limits");
    let publisher = prepare(
        json!([
            {"method": "publish", "topic": t, "qos": 1, "payload": "s".repeat(500)},
            {"method": "publish", "topic": t, "qos": 1, "payload": "l".repeat(4000)},
        ]),
        None,
        options(&[("broker", json!(broker.broker()))]),
    )
    .await?;
    let subscriber = prepare(
        json!([
            {"method": "subscribe", "topic": t, "qos": 1},
            {"method": "receive", "topic": t, "timeout": 2},
        ]),
        None,
        options(&[
            ("broker", json!(broker.broker())),
            ("max_packet_size", json!(2048)),
        ]),
    )
    .await?;
    let recorder = recorder();
    let (mut sub, mut sub_ctx) = (subscriber.new_user(1), recorder.context(1));
    let (mut publ, mut pub_ctx) = (publisher.new_user(2), recorder.context(2));
    run(sub.as_mut(), 0, &mut sub_ctx).await;

    // A packet under the limit arrives.
    run(publ.as_mut(), 0, &mut pub_ctx).await;
    run(sub.as_mut(), 1, &mut sub_ctx).await;
    let events = recorder.take();
    assert!(events.iter().all(|e| e.is_success()), "{events:?}");
    let received = events
        .iter()
        .find(|e| e.name.starts_with("receive:"))
        .expect("a receive event");
    assert_eq!(received.response_length, 500);

    // One above it does not: the receive fails instead of the user holding the packet.
    run(publ.as_mut(), 1, &mut pub_ctx).await;
    run(sub.as_mut(), 1, &mut sub_ctx).await;
    let events = recorder.take();
    let receive = events
        .iter()
        .find(|e| e.name.starts_with("receive:"))
        .expect("a receive event");
    assert!(!receive.is_success(), "{events:?}");
    let lost = events
        .iter()
        .find(|e| &*e.name == "connection")
        .expect("the connection loss is recorded");
    let reason = lost.error.as_deref().unwrap_or_default();
    assert!(reason.contains("payload size limit exceeded"), "{reason}");
    assert_eq!(receive.response_length, 0, "{receive:?}");
    Ok(())
}

#[tokio::test]
async fn max_packet_size_must_be_a_positive_whole_number() {
    let error = prepare(
        json!([{"method": "connect"}]),
        None,
        options(&[("max_packet_size", json!("big"))]),
    )
    .await
    .err()
    .expect("rejected");
    assert!(
        error
            .to_string()
            .contains("option \"max_packet_size\" must be a positive whole number of bytes"),
        "{error}"
    );
}
