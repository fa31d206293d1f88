//! HTTPS against the testkit's self-signed target: `verify: false`, verification failures
//! naming the certificate problem, and `ca_file`.

mod common;

use common::{prepare, Harness};
use load_density_testkit::HttpTarget;
use serde_json::json;

#[tokio::test]
async fn verify_false_succeeds_and_keeps_its_connection() {
    let target = HttpTarget::start_tls().await.expect("tls target");
    let factory = prepare(
        json!([{"method": "get", "url": "/get", "verify": false},
               {"method": "post", "url": "/post", "json": {"a": 1}, "verify": false}]),
        Some(target.base_url()),
        json!({}),
    )
    .await
    .expect("prepare");
    let mut h = Harness::new(&factory);
    for _ in 0..10 {
        h.run(0, 1).await;
        h.run(1, 1).await;
    }
    h.stop().await;
    let events = h.take();
    assert_eq!(events.len(), 20);
    assert!(
        events
            .iter()
            .all(|e| e.is_success() && e.status == Some(200)),
        "{events:?}"
    );
    assert!(events[0].url.starts_with("https://127.0.0.1:"));
    assert_eq!(target.served(), 20);
}

#[tokio::test]
async fn the_group_verify_option_turns_verification_off() {
    let target = HttpTarget::start_tls().await.expect("tls target");
    let factory = prepare(
        json!([{"method": "get", "url": "/get"}]),
        Some(target.base_url()),
        json!({"verify": false}),
    )
    .await
    .expect("prepare");
    let mut h = Harness::new(&factory);
    assert!(h.once(0).await.is_success());
}

#[tokio::test]
async fn verification_failures_name_the_certificate_problem() {
    let target = HttpTarget::start_tls().await.expect("tls target");
    let factory = prepare(
        json!([{"method": "get", "url": "/get"}, {"method": "get", "url": "/get", "verify": false}]),
        Some(target.base_url()),
        json!({}),
    )
    .await
    .expect("prepare");
    let mut h = Harness::new(&factory);
    let e = h.once(0).await;
    assert_eq!(
        e.error.as_deref(),
        Some("TLS handshake failed: invalid peer certificate: UnknownIssuer")
    );
    assert_eq!(e.status, None);
    assert_eq!(target.served(), 0);

    // The insecure task works; the verifying one does not reuse its connection.
    assert!(h.once(1).await.is_success());
    assert!(!h.once(0).await.is_success());
    assert_eq!(target.served(), 1);
}

#[tokio::test]
async fn ca_file_trusts_the_target() {
    let target = HttpTarget::start_tls().await.expect("tls target");
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, target.ca_cert_pem().expect("tls target has a CA")).expect("write CA");
    let factory = prepare(
        json!([{"method": "get", "url": "/get"}]),
        Some(target.base_url()),
        json!({"ca_file": ca.to_str().expect("utf-8 path")}),
    )
    .await
    .expect("prepare");
    let mut h = Harness::new(&factory);
    h.run(0, 5).await;
    let events = h.take();
    assert_eq!(events.len(), 5);
    assert!(events.iter().all(|e| e.is_success()), "{events:?}");

    // By name: `localhost` resolves locally and the certificate covers it.
    let factory = prepare(
        json!([{"method": "get", "url": format!("https://localhost:{}/get", target.addr().port())}]),
        None,
        json!({"ca_file": ca.to_str().expect("utf-8 path")}),
    )
    .await
    .expect("prepare");
    let mut h = Harness::new(&factory);
    let e = h.once(0).await;
    assert!(e.is_success(), "{e:?}");
    assert_eq!(target.served(), 6);
}
