//! HTTPS against the testkit's self-signed target: verification on and off, `ca_file`, and
//! HTTP/2 through ALPN.

mod common;

use common::{options, prepare, run_one, Recorder};
use load_density_core::variables::UserVariables;
use load_density_core::{GroupPlan, TaskList};
use load_density_http::HttpProtocol;
use load_density_testkit::HttpTarget;
use serde_json::{json, Map};

#[tokio::test]
async fn verification_on_fails_off_works() -> anyhow::Result<()> {
    let target = HttpTarget::start_tls().await?;
    let factory = prepare(
        json!([
            {"method": "get", "url": "/get"},
            {"method": "get", "url": "/get", "verify": false},
        ]),
        Some(target.base_url()),
        Map::new(),
    )
    .await?;
    let recorder = Recorder::new();
    let mut user = factory.new_user(1);
    let mut ctx = recorder.context(1);

    let rejected = run_one(user.as_mut(), 0, &mut ctx, &recorder).await;
    let reason = rejected
        .error
        .as_deref()
        .expect("an unknown CA is a failure");
    assert!(reason.starts_with("connection failed"), "{reason}");
    assert!(
        reason.contains("invalid peer certificate") && reason.contains("UnknownIssuer"),
        "the reason names the certificate problem: {reason}"
    );
    assert_eq!(rejected.status, None);
    assert_eq!(target.served(), 0, "nothing reached the server");

    let accepted = run_one(user.as_mut(), 1, &mut ctx, &recorder).await;
    assert!(accepted.is_success(), "{accepted:?}");
    assert_eq!(accepted.status, Some(200));
    assert_eq!(&*accepted.url, target.url("/get"));

    // And the verifying task still fails afterwards: the clients are separate.
    let rejected_again = run_one(user.as_mut(), 0, &mut ctx, &recorder).await;
    assert!(!rejected_again.is_success());
    assert_eq!(target.served(), 1);
    Ok(())
}

#[tokio::test]
async fn group_verify_false_is_the_default_for_tasks() -> anyhow::Result<()> {
    let target = HttpTarget::start_tls().await?;
    let factory = prepare(
        json!([
            {"method": "get", "url": "/get"},
            {"method": "get", "url": "/get", "verify": true},
        ]),
        Some(target.base_url()),
        options(&[("verify", json!(false))]),
    )
    .await?;
    let recorder = Recorder::new();
    let mut user = factory.new_user(1);
    let mut ctx = recorder.context(1);
    let inherited = run_one(user.as_mut(), 0, &mut ctx, &recorder).await;
    assert!(inherited.is_success(), "{inherited:?}");
    let overridden = run_one(user.as_mut(), 1, &mut ctx, &recorder).await;
    let reason = overridden.error.as_deref().expect("the task verifies");
    assert!(reason.contains("UnknownIssuer"), "{reason}");
    Ok(())
}

#[tokio::test]
async fn ca_file_trusts_the_target_and_http2_is_negotiated() -> anyhow::Result<()> {
    let target = HttpTarget::start_tls().await?;
    let ca = tempfile::NamedTempFile::new()?;
    std::fs::write(
        ca.path(),
        target.ca_cert_pem().expect("a TLS target has a CA"),
    )?;
    let ca_path = ca.path().to_str().expect("utf-8 temp path").to_owned();
    let tasks = json!([
        {"method": "get", "url": "/get"},
        {"method": "post", "url": "/post", "json": {"over": "h2"}},
    ]);
    let plan = GroupPlan::new("http_user", TaskList::from_json(&tasks)?)
        .with_host(Some(target.base_url()))
        .with_options(options(&[("ca_file", json!(ca_path))]));

    // Through the runner's path: events.
    let factory = prepare(
        tasks.clone(),
        Some(target.base_url()),
        plan.options().clone(),
    )
    .await?;
    let recorder = Recorder::new();
    let mut user = factory.new_user(1);
    let mut ctx = recorder.context(1);
    for index in [0, 1, 0] {
        let event = run_one(user.as_mut(), index, &mut ctx, &recorder).await;
        assert!(event.is_success(), "{event:?}");
        assert_eq!(event.status, Some(200));
    }
    assert_eq!(target.served(), 3);

    // Directly: the response shows the protocol version ALPN chose.
    let factory = HttpProtocol.prepare_group(&plan).await?;
    let mut user = factory.user(2);
    let vars = UserVariables::default();
    let response = user.send(0, &vars).await?;
    assert_eq!(response.version(), http::Version::HTTP_2);
    let echoed = user.send(1, &vars).await?;
    assert_eq!(echoed.version(), http::Version::HTTP_2);
    let body: serde_json::Value = serde_json::from_slice(echoed.bytes())?;
    assert_eq!(body["json"], json!({"over": "h2"}));
    Ok(())
}

#[tokio::test]
async fn plain_http_stays_http1() -> anyhow::Result<()> {
    let target = HttpTarget::start().await?;
    let plan = GroupPlan::new(
        "http_user",
        TaskList::from_json(&json!([{"method": "get", "url": "/get"}]))?,
    )
    .with_host(Some(target.base_url()));
    let factory = HttpProtocol.prepare_group(&plan).await?;
    let mut user = factory.user(1);
    let response = user.send(0, &UserVariables::default()).await?;
    assert_eq!(response.version(), http::Version::HTTP_11);
    Ok(())
}
