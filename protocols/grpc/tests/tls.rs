//! TLS targets (`https://`): a custom CA (`ca_file`), `verify: false`, and the failure when
//! the certificate is not trusted. TLS is rustls with the ring provider, from core.

mod common;

use common::{assert_success, error_of, harness, merge, proto_options};
use load_density_testkit::GrpcTarget;
use serde_json::json;

async fn tls_server() -> (GrpcTarget, tempfile::TempDir, String) {
    let server = GrpcTarget::builder()
        .tls(true)
        .start()
        .await
        .expect("start");
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(
        &ca,
        server
            .ca_cert_pem()
            .expect("a TLS server has a certificate"),
    )
    .expect("write the CA");
    let ca = ca.display().to_string();
    (server, dir, ca)
}

#[tokio::test]
async fn a_custom_ca_is_trusted() {
    let (server, _dir, ca) = tls_server().await;
    assert!(server.url().starts_with("https://127.0.0.1:"));
    let mut user = harness(
        json!([{"call": "loadtest.Echo/Unary", "target": server.url(), "payload": {"message": "secure"},
                "assertions": [{"type": "json_path", "path": "message", "value": "secure"}]}]),
        merge(proto_options(), json!({"ca_file": ca})),
    )
    .await;
    let event = user.once(0).await;
    assert_success(&event);
    assert_eq!(
        event.url.as_ref(),
        format!("{}/loadtest.Echo/Unary", server.url())
    );
    // Reflection goes over TLS too.
    let mut user = harness(
        json!([{"call": "loadtest.Echo/Unary", "target": server.url()}]),
        json!({"reflection": true, "ca_file": ca}),
    )
    .await;
    assert_success(&user.once(0).await);
    assert_eq!(server.calls(), 2);
}

#[tokio::test]
async fn an_untrusted_certificate_fails_unless_verify_is_off() {
    let (server, _dir, _ca) = tls_server().await;
    let mut user = harness(
        json!([
            {"call": "loadtest.Echo/Unary", "target": server.url()},
            {"call": "loadtest.Echo/Unary", "target": server.url(), "verify": false},
        ]),
        proto_options(),
    )
    .await;
    let untrusted = user.once(0).await;
    let error = error_of(&untrusted);
    assert!(
        error.starts_with("UNAVAILABLE: TLS handshake failed: invalid peer certificate"),
        "{error}"
    );
    assert_eq!(untrusted.status, None);
    assert_success(&user.once(1).await);
    assert_eq!(server.calls(), 1);

    // The group option turns it off for every task.
    let mut user = harness(
        json!([{"call": "loadtest.Echo/Unary", "target": server.url()}]),
        merge(proto_options(), json!({"verify": false})),
    )
    .await;
    assert_success(&user.once(0).await);
    assert_eq!(server.calls(), 2);
}
