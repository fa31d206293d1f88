//! Credentials: a refused CONNACK is a failure that names the reason code, against mosquitto
//! (MQTT 3.1.1 and 5) and the embedded broker.

mod common;

use common::{failure, ok, options, prepare, recorder, run_one};
use load_density_testkit::{Mosquitto, MosquittoConfig, MqttBroker, MqttBrokerConfig};
use serde_json::json;

async fn connect_with(
    broker: &str,
    version: u8,
    username: &str,
    password: &str,
) -> anyhow::Result<load_density_core::RequestEvent> {
    let tasks = json!([
        {"method": "connect", "username": username, "password": password, "protocol_version": version},
    ]);
    let factory = prepare(tasks, None, options(&[("broker", json!(broker))])).await?;
    let recorder = recorder();
    let mut user = factory.new_user(1);
    let mut ctx = recorder.context(1);
    let event = run_one(user.as_mut(), 0, &mut ctx, &recorder).await;
    user.on_stop(&mut ctx).await;
    Ok(event)
}

#[tokio::test]
async fn mosquitto_refuses_bad_credentials_with_the_reason() -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start(MosquittoConfig::default()).await?;
    let broker = mosquitto.auth_broker();

    let good = ok(connect_with(&broker, 4, "loaddensity", "secret").await?);
    assert_eq!(good.status, Some(0));

    let bad = connect_with(&broker, 4, "loaddensity", "wrong").await?;
    // mosquitto answers a wrong password with "not authorized" in MQTT 3.1.1.
    let text = failure(&bad);
    assert!(
        text == "connection refused: not authorized (code 5)"
            || text == "connection refused: bad user name or password (code 4)",
        "{text}"
    );
    assert!(matches!(bad.status, Some(4) | Some(5)), "{bad:?}");
    assert_eq!(&*bad.url, broker);

    // No credentials at all on the password listener.
    let anonymous = connect_with(&broker, 4, "", "").await?;
    assert!(
        failure(&anonymous).starts_with("connection refused: "),
        "{anonymous:?}"
    );

    let bad_v5 = connect_with(&broker, 5, "loaddensity", "wrong").await?;
    let text = failure(&bad_v5);
    assert!(
        text == "connection refused: not authorized (code 135)"
            || text == "connection refused: bad user name or password (code 134)",
        "{text}"
    );
    let good_v5 = ok(connect_with(&broker, 5, "loaddensity", "secret").await?);
    assert_eq!(good_v5.status, Some(0));
    Ok(())
}

#[tokio::test]
async fn the_embedded_broker_refuses_bad_credentials_with_code_4() -> anyhow::Result<()> {
    let broker = MqttBroker::start_with(MqttBrokerConfig {
        credentials: Some(("ld".to_owned(), "pw".to_owned())),
        ..MqttBrokerConfig::default()
    })
    .await?;
    let bad = connect_with(&broker.broker(), 4, "ld", "nope").await?;
    assert_eq!(
        failure(&bad),
        "connection refused: bad user name or password (code 4)"
    );
    assert_eq!(bad.status, Some(4));
    ok(connect_with(&broker.broker(), 4, "ld", "pw").await?);
    let stats = broker.stats();
    assert_eq!((stats.refused, stats.connects), (1, 1));
    Ok(())
}

#[tokio::test]
async fn mqtt5_against_the_embedded_broker_is_refused_cleanly() -> anyhow::Result<()> {
    let broker = MqttBroker::start().await?;
    let event = connect_with(&broker.broker(), 5, "", "").await?;
    assert!(failure(&event).starts_with("connection "), "{event:?}");
    Ok(())
}
