//! The testkit conformance suite for `mqtt_user`: registered, every PUBLISH the broker counted
//! recorded exactly once (also at stop), refused connections reported as failures.

use std::sync::Arc;
use std::time::Duration;

use load_density_testkit::conformance::{assert_protocol_conformance, ConformanceCase};
use load_density_testkit::{unused_local_port, Mosquitto, MosquittoConfig, MqttBroker};
use serde_json::json;

// Name the crate so its registration is linked in.
use load_density_mqtt as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_user_conforms_against_the_embedded_broker() -> anyhow::Result<()> {
    let broker = Arc::new(MqttBroker::start().await?);
    let counted = broker.clone();
    let refused = format!("127.0.0.1:{}", unused_local_port());
    let case = ConformanceCase::new(
        "mqtt_user",
        json!([
            {"method": "publish", "topic": "conformance/1", "qos": 1, "payload": "a"},
            {"method": "publish", "topic": "conformance/2", "qos": 2, "payload": "b"},
        ]),
        move || counted.stats().publishes,
        json!([{"method": "publish", "topic": "conformance/r", "qos": 1, "broker": refused}]),
    )
    .options(json!({"broker": broker.broker()}));
    let report = assert_protocol_conformance(case).await;
    assert!(report.requests() > 0);
    assert_eq!(report.requests(), report.served());
    assert!(report.refused_failures() > 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_user_conforms_against_mosquitto() -> anyhow::Result<()> {
    // mosquitto keeps no count we can read, so a plain rumqttc subscriber counts the
    // messages; QoS 2 publishes reach it exactly once.
    let mosquitto = Mosquitto::start(MosquittoConfig::default()).await?;
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = counter.clone();
    let (client, mut eventloop) = rumqttc_counter(&mosquitto.broker());
    client
        .subscribe("conformance-m/#", rumqttc::QoS::AtLeastOnce)
        .await?;
    // Count only once the broker has acknowledged the subscription: a message published before
    // that would reach no one and be missing from the count.
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) = eventloop.poll().await? {
                return Ok::<_, rumqttc::ConnectionError>(());
            }
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("mosquitto did not acknowledge the counter's subscription"))??;
    let counting = tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            if let rumqttc::Event::Incoming(rumqttc::Packet::Publish(_)) = event {
                seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    });
    let refused = format!("127.0.0.1:{}", unused_local_port());
    let case = ConformanceCase::new(
        "mqtt_user",
        json!([{"method": "publish", "topic": "conformance-m/1", "qos": 2, "payload": "a"}]),
        move || counter.load(std::sync::atomic::Ordering::Relaxed),
        json!([{"method": "publish", "topic": "conformance-m/r", "broker": refused}]),
    )
    .options(json!({"broker": mosquitto.broker()}));
    let report = assert_protocol_conformance(case).await;
    assert!(report.requests() > 0);
    counting.abort();
    Ok(())
}

fn rumqttc_counter(broker: &str) -> (rumqttc::AsyncClient, rumqttc::EventLoop) {
    let (host, port) = broker.split_once(':').expect("host:port");
    let mut options =
        rumqttc::MqttOptions::new("conformance-counter", host, port.parse().expect("a port"));
    options.set_inflight(1000);
    rumqttc::AsyncClient::new(options, 100)
}
