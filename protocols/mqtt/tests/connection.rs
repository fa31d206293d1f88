//! The connection itself: keep-alive pings hold an idle connection, an outgoing packet above
//! `max_packet_size` fails alone, and a hostile broker's bytes end the connection with a
//! reason (never a panic, never a buffer of the size it announces).

mod common;

use std::time::Duration;

use common::{failure, ok, options, recorder, run_one, topic};
use load_density_core::{GroupPlan, TaskList, UserTemplate};
use load_density_mqtt::{MqttProtocol, MqttUser};
use load_density_testkit::{Mosquitto, MosquittoConfig, MqttBroker};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

async fn user(tasks: Value, options: Map<String, Value>) -> anyhow::Result<MqttUser> {
    let plan = GroupPlan::new("mqtt_user", TaskList::from_json(&tasks)?).with_options(options);
    Ok(MqttProtocol.prepare_group(&plan).await?.user(1))
}

#[tokio::test]
async fn keep_alive_pings_hold_an_idle_connection_to_mosquitto() -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start(MosquittoConfig::default()).await?;
    let t = topic("keepalive");
    for version in [4, 5] {
        let tasks = json!([{"method": "publish", "topic": t, "qos": 1, "payload": "x",
                            "keepalive": 1, "protocol_version": version}]);
        let mut user = user(tasks, options(&[("broker", json!(mosquitto.broker()))])).await?;
        let recorder = recorder();
        let mut ctx = recorder.context(1);
        ok(run_one(&mut user, 0, &mut ctx, &recorder).await);
        // mosquitto closes a client silent for 1.5 keep-alive periods: only PINGREQs keep
        // this one.
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert!(user.is_connected(), "MQTT {version}: still connected");
        ok(run_one(&mut user, 0, &mut ctx, &recorder).await);
        assert!(
            recorder.take().is_empty(),
            "MQTT {version}: no loss recorded"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_publish_above_max_packet_size_fails_alone() -> anyhow::Result<()> {
    let broker = MqttBroker::start().await?;
    let t = topic("outgoing-limit");
    let tasks = json!([
        {"method": "publish", "topic": t, "qos": 1, "payload": "l".repeat(4000)},
        {"method": "publish", "topic": t, "qos": 1, "payload": "small"},
    ]);
    let opts = options(&[
        ("broker", json!(broker.broker())),
        ("max_packet_size", json!(2048)),
    ]);
    let mut user = user(tasks, opts).await?;
    let recorder = recorder();
    let mut ctx = recorder.context(1);
    ok(run_one(&mut user, 1, &mut ctx, &recorder).await);
    let refused = run_one(&mut user, 0, &mut ctx, &recorder).await;
    let reason = failure(&refused);
    assert!(
        reason.contains("exceeds max_packet_size 2048"),
        "{refused:?}"
    );
    ok(run_one(&mut user, 1, &mut ctx, &recorder).await);
    assert_eq!(broker.stats().connects, 1, "the connection stayed");
    assert_eq!(broker.stats().publishes, 2, "the large one was never sent");
    Ok(())
}

/// A "broker" that answers CONNECT with a CONNACK, then sends `hostile` and keeps the socket
/// open; later connections are accepted and closed.
async fn hostile_broker(hostile: &'static [u8]) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    tokio::spawn(async move {
        let mut first = true;
        let mut kept = Vec::new();
        for _ in 0..16 {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            if !first {
                continue;
            }
            first = false;
            let mut connect = [0u8; 256];
            let _ = socket.read(&mut connect).await;
            let _ = socket.write_all(&[0x20, 0x02, 0x00, 0x00]).await;
            let _ = socket.write_all(hostile).await;
            kept.push(socket);
        }
    });
    Ok(address)
}

#[tokio::test]
async fn hostile_bytes_end_the_connection_with_a_reason() -> anyhow::Result<()> {
    let cases: [(&'static [u8], &str); 3] = [
        // A PUBLISH announcing 268 MB: refused from its fixed header.
        (
            &[0x30, 0xff, 0xff, 0xff, 0x7f],
            "payload size limit exceeded: a packet of 268435455 bytes",
        ),
        // Packet type 15 does not exist in MQTT 3.1.1.
        (&[0xf0, 0x00], "Invalid packet type"),
        // A remaining length longer than four bytes.
        (&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01], "remaining length"),
    ];
    for (hostile, expected) in cases {
        let broker = hostile_broker(hostile).await?;
        let tasks = json!([{"method": "connect", "timeout": 1}]);
        let mut user = user(tasks, options(&[("broker", json!(broker))])).await?;
        let recorder = recorder();
        let mut ctx = recorder.context(1);
        ok(run_one(&mut user, 0, &mut ctx, &recorder).await);
        for _ in 0..200 {
            if !user.is_connected() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!user.is_connected(), "{expected}: the connection ended");
        user.run_task(0, &mut ctx).await;
        let events = recorder.take();
        let lost = events
            .iter()
            .find(|e| &*e.name == "connection")
            .unwrap_or_else(|| panic!("{expected}: a connection failure in {events:?}"));
        let reason = failure(lost);
        assert!(
            reason.starts_with("connection lost: ") && reason.contains(expected),
            "{reason}"
        );
    }
    Ok(())
}
