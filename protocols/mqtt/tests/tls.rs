//! `mqtts://` against mosquitto's TLS listener: `ca_file`, `verify` and the shared rustls
//! configuration.

mod common;

use common::{failure, ok, options, prepare, recorder, run_one};
use load_density_testkit::{Mosquitto, MosquittoConfig};
use serde_json::json;

#[tokio::test]
async fn tls_with_ca_file_without_it_and_without_verification() -> anyhow::Result<()> {
    let mosquitto = Mosquitto::start(MosquittoConfig {
        tls: true,
        ..MosquittoConfig::default()
    })
    .await?;
    let broker = mosquitto.tls_broker().expect("a TLS listener");
    let ca = mosquitto
        .ca_file()
        .expect("a CA file")
        .display()
        .to_string();
    let tasks = json!([
        {"method": "publish", "topic": "tls/t", "qos": 1, "payload": "secure"},
        {"method": "publish", "topic": "tls/t", "qos": 1, "payload": "x", "verify": false},
        {"method": "publish", "topic": "tls/t", "qos": 1, "payload": "x", "ca_file": ca},
    ]);

    // Without our CA, the self-signed certificate is rejected.
    let factory = prepare(tasks.clone(), None, options(&[("broker", json!(broker))])).await?;
    let recorder = recorder();
    let mut user = factory.new_user(1);
    let mut ctx = recorder.context(1);
    let rejected = run_one(user.as_mut(), 0, &mut ctx, &recorder).await;
    let text = failure(&rejected);
    assert!(
        text.starts_with("connection failed: TLS: ") && text.contains("UnknownIssuer"),
        "{text}"
    );
    ok(run_one(user.as_mut(), 1, &mut ctx, &recorder).await);
    let mut second = factory.new_user(2);
    ok(run_one(second.as_mut(), 2, &mut ctx, &recorder).await);

    // The group's ca_file makes every task trust it.
    let factory = prepare(
        tasks,
        None,
        options(&[("broker", json!(broker)), ("ca_file", json!(ca))]),
    )
    .await?;
    let mut user = factory.new_user(3);
    let event = ok(run_one(user.as_mut(), 0, &mut ctx, &recorder).await);
    assert_eq!(event.response_length, 6);
    assert_eq!(&*event.url, broker);

    // The group's verify: false, too.
    let factory = prepare(
        json!([{"method": "connect", "protocol_version": 5}]),
        None,
        options(&[("broker", json!(broker)), ("verify", json!(false))]),
    )
    .await?;
    let mut user = factory.new_user(4);
    ok(run_one(user.as_mut(), 0, &mut ctx, &recorder).await);
    Ok(())
}
