//! Registration and `prepare`: the name is registered, bad tasks and options are rejected
//! before the run with errors that say what and where.

mod common;

use common::prepare;
use load_density_core::PlanError;
use serde_json::json;

#[test]
fn fast_http_user_is_registered() {
    let registration =
        load_density_core::registry::lookup("fast_http_user").expect("fast_http_user registered");
    assert_eq!(registration.name(), load_density_fast_http::USER_TYPE);
    assert!(registration.description().contains("HTTP/1.1"));
    assert!(load_density_core::registry::known_user_types().contains(&"fast_http_user"));
}

async fn rejected(tasks: serde_json::Value, options: serde_json::Value) -> PlanError {
    match prepare(tasks, Some("http://127.0.0.1:1".to_owned()), options).await {
        Ok(_) => panic!("prepare should have failed"),
        Err(error) => error,
    }
}

#[tokio::test]
async fn bad_tasks_name_the_task_index_and_key() {
    let text = rejected(
        json!([{"method": "get", "url": "/"}, {"method": "get", "url": "/", "bogus": 1}]),
        json!({}),
    )
    .await
    .to_string();
    assert!(text.contains("task 1") && text.contains("bogus"), "{text}");

    let text = rejected(
        json!([{"method": "get", "url": "/"}, {"method": "fetch", "url": "/"}]),
        json!({}),
    )
    .await
    .to_string();
    assert!(
        text.contains("tasks[1].method") && text.contains("fetch"),
        "{text}"
    );

    let text = rejected(
        json!([{"method": "get", "url": "/", "headers": {"bad name": "x"}}]),
        json!({}),
    )
    .await
    .to_string();
    assert!(
        text.contains("tasks[0].headers") && text.contains("bad name"),
        "{text}"
    );

    let text = rejected(
        json!([{"method": "get", "url": "/", "headers": {"X-Ok": "a\r\nInjected: 1"}}]),
        json!({}),
    )
    .await
    .to_string();
    assert!(text.contains("tasks[0].headers.X-Ok"), "{text}");

    let text = rejected(json!([{"method": "get", "url": "ftp://x/"}]), json!({}))
        .await
        .to_string();
    assert!(text.contains("task 0") && text.contains("scheme"), "{text}");
}

#[tokio::test]
async fn bad_options_are_config_errors_naming_the_key() {
    let task = json!([{"method": "get", "url": "/"}]);
    let error = rejected(task.clone(), json!({"timeout": "soon"})).await;
    assert!(
        matches!(&error, PlanError::Config(m) if m.contains("\"timeout\"")),
        "{error}"
    );
    let error = rejected(task.clone(), json!({"timeout": 0})).await;
    assert!(
        matches!(&error, PlanError::Config(m) if m.contains("\"timeout\"")),
        "{error}"
    );
    let error = rejected(task.clone(), json!({"verify": "yes"})).await;
    assert!(
        matches!(&error, PlanError::Config(m) if m.contains("\"verify\"")),
        "{error}"
    );
    let error = rejected(task.clone(), json!({"ca_file": 3})).await;
    assert!(
        matches!(&error, PlanError::Config(m) if m.contains("\"ca_file\"")),
        "{error}"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing-ca.pem");
    let missing = missing.to_str().expect("utf-8 path").to_owned();
    let error = rejected(task.clone(), json!({"ca_file": missing})).await;
    assert!(
        matches!(&error, PlanError::Config(m) if m.contains(&missing)),
        "{error}"
    );

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").expect("write");
    let garbage = garbage.to_str().expect("utf-8 path").to_owned();
    let error = rejected(task, json!({"ca_file": garbage})).await;
    assert!(
        matches!(&error, PlanError::Config(m) if m.contains("ca_file")),
        "{error}"
    );
}

#[tokio::test]
async fn good_options_are_accepted() {
    prepare(
        json!([{"method": "get", "url": "/"}, {"method": "get", "url": "/", "verify": false}]),
        Some("http://127.0.0.1:1".to_owned()),
        json!({"timeout": 1.5, "verify": true, "user": "fast_http_user", "other": [1]}),
    )
    .await
    .expect("valid options and tasks");
}

#[test]
fn set_wrapper_fasthttp_user_stores_the_tasks() {
    let tasks = json!({"mode": "sequence", "tasks": [{"method": "get", "url": "/"}]});
    let detail = json!({"user": "fast_http_user", "host": "http://127.0.0.1:9"});
    load_density_fast_http::set_wrapper_fasthttp_user(
        detail.as_object().cloned().expect("object"),
        tasks.clone(),
    );
    let entry = load_density_core::locust_wrapper_proxy()
        .get("fast_http_user")
        .expect("entry stored");
    assert_eq!(entry.tasks, tasks);
    assert_eq!(entry.host.as_deref(), Some("http://127.0.0.1:9"));
    assert_eq!(entry.user_detail["user"], "fast_http_user");
}
