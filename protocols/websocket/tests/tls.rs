//! `wss://` against the testkit TLS echo server: `verify`, the group options, `ca_file`.

mod common;

use std::io::Write as _;

use common::{assert_success, error_of, prepare, Harness};
use load_density_testkit::WsEchoServer;
use serde_json::{json, Value};

fn sendrecv(url: &str, verify: Option<bool>) -> Value {
    let mut task =
        json!({"method": "sendrecv", "url": url, "payload": "secure", "expect": "secure"});
    if let Some(verify) = verify {
        task["verify"] = json!(verify);
    }
    json!([task])
}

#[tokio::test]
async fn verify_false_accepts_a_self_signed_certificate() {
    let server = WsEchoServer::start_tls().await.expect("start");
    let factory = prepare(sendrecv(&server.url("/"), Some(false)), None, Value::Null)
        .await
        .expect("prepare");
    let mut h = Harness::new(&factory);
    let event = h.once(0).await;
    assert_success(&event);
    assert!(event.url.starts_with("wss://"));
    assert_eq!(server.messages(), 1);
}

#[tokio::test]
async fn verify_is_on_by_default_and_names_the_certificate_problem() {
    let server = WsEchoServer::start_tls().await.expect("start");
    let factory = prepare(sendrecv(&server.url("/"), None), None, Value::Null)
        .await
        .expect("prepare");
    let mut h = Harness::new(&factory);
    let event = h.once(0).await;
    let error = error_of(&event);
    assert!(
        error.starts_with("TLS handshake failed: invalid peer certificate"),
        "{error}"
    );
    assert!(error.contains("UnknownIssuer"), "{error}");
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn the_group_verify_option_is_the_default() {
    let server = WsEchoServer::start_tls().await.expect("start");
    let factory = prepare(
        sendrecv(&server.url("/"), None),
        None,
        json!({"verify": false, "timeout": 3}),
    )
    .await
    .expect("prepare");
    assert_success(&Harness::new(&factory).once(0).await);
}

#[tokio::test]
async fn ca_file_trusts_the_server() {
    let server = WsEchoServer::start_tls().await.expect("start");
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(server.ca_cert_pem().expect("pem").as_bytes())
        .expect("write pem");
    let path = file.path().to_str().expect("utf-8 path").to_owned();
    let factory = prepare(
        sendrecv(&server.url("/"), None),
        None,
        json!({"ca_file": path}),
    )
    .await
    .expect("prepare");
    let mut h = Harness::new(&factory);
    assert_success(&h.once(0).await);
    // localhost is in the certificate too.
    let localhost = server.url("/").replace("127.0.0.1", "localhost");
    let factory = prepare(sendrecv(&localhost, None), None, json!({"ca_file": path}))
        .await
        .expect("prepare");
    assert_success(&Harness::new(&factory).once(0).await);
}

#[tokio::test]
async fn bad_tls_options_are_plan_errors() {
    let missing = prepare(
        sendrecv("wss://127.0.0.1:1/", None),
        None,
        json!({"ca_file": "/nonexistent/ca.pem"}),
    )
    .await
    .err()
    .expect("a missing ca_file is an error")
    .to_string();
    assert!(missing.contains("ca_file"), "{missing}");
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(b"not a certificate").expect("write");
    let bad = prepare(
        sendrecv("wss://127.0.0.1:1/", None),
        None,
        json!({"ca_file": file.path().to_str().expect("utf-8 path")}),
    )
    .await
    .err()
    .expect("a ca_file without certificates is an error")
    .to_string();
    assert!(bad.contains("ca_file"), "{bad}");
}
