//! Failures are events with their reason, and the user goes on working afterwards.

mod common;

use std::time::Duration;

use common::{prepare, Harness};
use load_density_testkit::{unused_local_port, HttpTarget};
use serde_json::json;

#[tokio::test]
async fn connection_refused_is_a_failure_and_the_user_recovers() {
    let target = HttpTarget::start().await.expect("target");
    let port = unused_local_port();
    let factory = prepare(
        json!([
            {"method": "get", "url": format!("http://127.0.0.1:{port}/nothing")},
            {"method": "get", "url": "/get"},
        ]),
        Some(target.base_url()),
        json!({}),
    )
    .await
    .expect("prepare");
    let mut h = Harness::new(&factory);
    let e = h.once(0).await;
    assert_eq!(
        e.error.as_deref(),
        Some(format!("connection refused (127.0.0.1:{port})").as_str())
    );
    assert_eq!(e.status, None);
    assert_eq!(e.response_length, 0);
    assert_eq!(&*e.url, format!("http://127.0.0.1:{port}/nothing"));
    assert_eq!(&*e.request_type, "GET");

    h.run(1, 3).await;
    h.run(0, 1).await;
    h.run(1, 1).await;
    let events = h.take();
    assert_eq!(events.len(), 5);
    assert_eq!(events.iter().filter(|e| e.is_success()).count(), 4);
    assert_eq!(target.served(), 4);
}

#[tokio::test]
async fn a_timeout_is_a_failure_and_the_user_recovers() {
    let target = HttpTarget::start().await.expect("target");
    let factory = prepare(
        json!([
            {"method": "get", "url": "/delay/2000", "timeout": 0.2},
            {"method": "get", "url": "/get"},
        ]),
        Some(target.base_url()),
        json!({}),
    )
    .await
    .expect("prepare");
    let mut h = Harness::new(&factory);
    let started = std::time::Instant::now();
    let e = h.once(0).await;
    let took = started.elapsed();
    assert_eq!(e.error.as_deref(), Some("timed out after 0.2s"));
    assert_eq!(e.status, None);
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    assert!(e.response_time >= Duration::from_millis(200));

    let e = h.once(1).await;
    assert!(e.is_success(), "{e:?}");
    assert_eq!(target.served_path("/get"), 1);
}

#[tokio::test]
async fn the_group_timeout_option_applies_to_tasks_without_one() {
    let target = HttpTarget::start().await.expect("target");
    let factory = prepare(
        json!([{"method": "get", "url": "/delay/2000"}]),
        Some(target.base_url()),
        json!({"timeout": 0.3}),
    )
    .await
    .expect("prepare");
    let mut h = Harness::new(&factory);
    let e = h.once(0).await;
    assert_eq!(e.error.as_deref(), Some("timed out after 0.3s"));
}

#[tokio::test]
async fn error_statuses_are_failures_that_keep_their_status() {
    let target = HttpTarget::start().await.expect("target");
    let factory = prepare(
        json!([
            {"method": "get", "url": "/status/503"},
            {"method": "get", "url": "/no-such-path"},
            {"method": "get", "url": "/status/204"},
            {"method": "get", "url": "/get"},
        ]),
        Some(target.base_url()),
        json!({}),
    )
    .await
    .expect("prepare");
    let mut h = Harness::new(&factory);
    let e = h.once(0).await;
    assert_eq!(e.status, Some(503));
    assert_eq!(e.error.as_deref(), Some("HTTP 503 Service Unavailable"));
    assert_eq!(&*e.name, "/status/503");

    let e = h.once(1).await;
    assert_eq!(e.status, Some(404));
    assert_eq!(e.error.as_deref(), Some("HTTP 404 Not Found"));

    let e = h.once(2).await;
    assert_eq!((e.status, e.response_length), (Some(204), 0));
    assert!(e.is_success());

    h.run(0, 2).await;
    h.run(3, 2).await;
    let events = h.take();
    assert_eq!(events.len(), 4);
    assert_eq!(events.iter().filter(|e| e.is_success()).count(), 2);
    assert_eq!(target.served(), 7);
}

#[tokio::test]
async fn a_render_error_is_a_failure_under_the_template() {
    let target = HttpTarget::start().await.expect("target");
    let factory = prepare(
        json!([{"method": "get", "url": "${var.base}/get"}]),
        Some(target.base_url()),
        json!({}),
    )
    .await
    .expect("prepare");
    // With no `base` variable the placeholder stays as written and the URL is relative to
    // host; with a `base` that is not a URL, rendering fails.
    let variables = [("base".to_owned(), json!("ftp://nowhere"))]
        .into_iter()
        .collect();
    let mut h = Harness::with_variables(&factory, variables);
    let e = h.once(0).await;
    assert!(
        e.error
            .as_deref()
            .is_some_and(|m| m.starts_with("invalid request:") && m.contains("scheme")),
        "{e:?}"
    );
    assert_eq!(&*e.url, "${var.base}/get");
    assert_eq!(target.served(), 0);
}
