//! Registration, the task proxy and everything rejected before a run starts.

mod common;

use common::{options, prepare};
use load_density_core::{registry, PlanError};
use serde_json::{json, Map};

#[test]
fn http_user_is_registered_by_name() {
    let registration = registry::lookup("http_user").expect("http_user is registered");
    assert_eq!(registration.name(), "http_user");
    assert!(!registration.description().is_empty());
    assert!(registry::known_user_types().contains(&"http_user"));
}

#[test]
fn set_wrapper_http_user_stores_tasks_in_the_proxy() {
    let tasks = json!({"get": {"request_url": "/a"}});
    let mut detail = Map::new();
    detail.insert("user".to_owned(), json!("http_user"));
    load_density_http::set_wrapper_http_user(detail.clone(), tasks.clone());
    let entry = load_density_core::locust_wrapper_proxy()
        .get("http_user")
        .expect("http_user configured");
    assert_eq!(entry.tasks, tasks);
    assert_eq!(entry.user_detail, detail);
}

#[tokio::test]
async fn a_bad_task_is_rejected_naming_its_index_and_key() {
    let error = prepare(
        json!([
            {"method": "get", "url": "/"},
            {"method": "get", "url": "/", "allow_redirects": "sometimes"},
        ]),
        None,
        Map::new(),
    )
    .await
    .err()
    .expect("allow_redirects must be a boolean");
    assert!(
        matches!(&error, PlanError::Task { index: 1, path, .. } if path == "allow_redirects"),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(text.contains("tasks[1].allow_redirects"), "{text}");

    let error = prepare(
        json!([{"method": "get", "url": "/", "bogus": 1}]),
        None,
        Map::new(),
    )
    .await
    .err()
    .expect("unknown key");
    assert!(error.to_string().contains("tasks[0].bogus"), "{error}");

    let error = prepare(json!([{"method": "fetch", "url": "/"}]), None, Map::new())
        .await
        .err()
        .expect("unknown method");
    assert!(error.to_string().contains("tasks[0].method"), "{error}");
}

#[tokio::test]
async fn bad_group_options_are_config_errors_naming_the_key() {
    let error = prepare(
        json!([{"method": "get", "url": "http://127.0.0.1:1/"}]),
        None,
        options(&[("timeout", json!("soon"))]),
    )
    .await
    .err()
    .expect("timeout must be a number");
    assert!(
        matches!(&error, PlanError::Config(m) if m.contains("\"timeout\"")),
        "{error:?}"
    );

    let error = prepare(
        json!([{"method": "get", "url": "http://127.0.0.1:1/"}]),
        None,
        options(&[("verify", json!("yes"))]),
    )
    .await
    .err()
    .expect("verify must be a boolean");
    assert!(
        matches!(&error, PlanError::Config(m) if m.contains("\"verify\"")),
        "{error:?}"
    );

    let missing = std::env::temp_dir().join("load-density-http-no-such-ca.pem");
    let missing = missing.to_str().expect("utf-8 temp path").to_owned();
    let error = prepare(
        json!([{"method": "get", "url": "http://127.0.0.1:1/"}]),
        None,
        options(&[("ca_file", json!(missing))]),
    )
    .await
    .err()
    .expect("a missing ca_file is an error");
    assert!(
        matches!(&error, PlanError::Config(m) if m.contains("ca_file") && m.contains(&missing)),
        "{error:?}"
    );

    let not_pem = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(not_pem.path(), "not a certificate").expect("write temp file");
    let path = not_pem.path().to_str().expect("utf-8 temp path").to_owned();
    let error = prepare(
        json!([{"method": "get", "url": "http://127.0.0.1:1/"}]),
        None,
        options(&[("ca_file", json!(path))]),
    )
    .await
    .err()
    .expect("a ca_file without a certificate is an error");
    assert!(
        matches!(&error, PlanError::Config(m) if m.contains(&path)),
        "{error:?}"
    );

    // Keys that belong to other parts of the run are left alone.
    prepare(
        json!([{"method": "get", "url": "http://127.0.0.1:1/"}]),
        None,
        options(&[("stats_interval", json!(2)), ("timeout", json!(1.5))]),
    )
    .await
    .expect("unrelated options are ignored");
}
