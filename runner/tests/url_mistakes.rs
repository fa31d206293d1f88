//! URL mistakes are errors before the run, naming the task and the key: a relative URL
//! without a `host` (which ran against localhost:80) and an address without a scheme (which
//! became a path on localhost).

use load_density::{create_env, StartTest};
use serde_json::{json, Value};

async fn error_of(config: Value) -> String {
    let config: StartTest = serde_json::from_value(config).expect("a StartTest");
    match create_env(config).await {
        Ok(_) => panic!("the configuration should have been refused"),
        Err(error) => error.to_string(),
    }
}

#[tokio::test]
async fn a_relative_url_without_a_host_is_an_error() {
    for user in ["fast_http_user", "http_user"] {
        let error = error_of(json!({
            "user_detail_dict": {"user": user},
            "user_count": 1, "spawn_rate": 1, "test_time": 1,
            "tasks": [
                {"method": "get", "request_url": "http://127.0.0.1:1/ok"},
                {"method": "get", "request_url": "/get"}
            ]
        }))
        .await;
        assert!(error.contains("task 1"), "{user}: {error}");
        assert!(error.contains("request_url"), "{user}: {error}");
        assert!(error.contains("needs a `host`"), "{user}: {error}");
    }
    // With placeholders too, when the URL is a path.
    let error = error_of(json!({
        "user_detail_dict": {"user": "fast_http_user"},
        "user_count": 1, "spawn_rate": 1, "test_time": 1,
        "tasks": [{"method": "get", "request_url": "/users/${randint(1,9)}"}]
    }))
    .await;
    assert!(
        error.contains("task 0") && error.contains("needs a `host`"),
        "{error}"
    );
}

#[tokio::test]
async fn an_address_without_a_scheme_is_an_error() {
    let error = error_of(json!({
        "user_detail_dict": {"user": "fast_http_user"},
        "user_count": 1, "spawn_rate": 1, "test_time": 1,
        "host": "http://127.0.0.1:1",
        "tasks": [{"method": "get", "request_url": "127.0.0.1:8080/get"}]
    }))
    .await;
    assert!(error.contains("task 0"), "{error}");
    assert!(error.contains("request_url"), "{error}");
    assert!(
        error.contains("\"127.0.0.1:8080/get\" has no scheme: write \"http://127.0.0.1:8080/get\""),
        "{error}"
    );
}

#[tokio::test]
async fn a_host_without_a_scheme_still_works() {
    let config: StartTest = serde_json::from_value(json!({
        "user_detail_dict": {"user": "fast_http_user"},
        "user_count": 1, "spawn_rate": 1, "test_time": 1,
        "host": "127.0.0.1:1",
        "tasks": [{"method": "get", "request_url": "/get"}]
    }))
    .expect("a StartTest");
    assert!(create_env(config).await.is_ok());
}
