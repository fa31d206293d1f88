//! The group options both HTTP users read (`timeout`, `verify`, `ca_file`) given as top-level
//! `start_test` keywords: the runner accepts them and the users apply them, and a bad value is
//! a configuration error naming the option.

use load_density::{prepare_env, RunError, StartTest};
use load_density_testkit::HttpTarget;
use serde_json::{json, Value};

const HTTP_USERS: [&str; 2] = ["fast_http_user", "http_user"];

fn config(user: &str, host: &str, option: (&str, Value)) -> StartTest {
    let mut config = json!({
        "user_detail_dict": {"user": user},
        "user_count": 2,
        "spawn_rate": 100,
        "test_time": 0.8,
        "host": host,
        "print_stats": false,
        "tasks": [{"method": "get", "request_url": "/delay/1000", "name": "slow"}]
    });
    config[option.0] = option.1;
    serde_json::from_value(config).expect("a valid start_test configuration")
}

async fn timeout_applies_to_every_request(user: &str) {
    let target = HttpTarget::start().await.expect("start the HTTP target");
    let env = prepare_env(config(user, &target.base_url(), ("timeout", json!(0.2))))
        .await
        .unwrap_or_else(|e| panic!("{user}: a top-level \"timeout\" must be accepted: {e}"));
    let summary = env.wait().await;
    let stats = env.stats();
    let slow = stats.entry("GET", "slow").expect("the slow task ran");
    // 2 users for 0.8 s, each request cut at 0.2 s (not the server's 1 s).
    assert!(
        slow.num_requests() >= 4,
        "{user}: {} requests",
        slow.num_requests()
    );
    assert_eq!(
        slow.num_failures(),
        slow.num_requests(),
        "{user}: every request times out"
    );
    assert_eq!(summary.totals.failures, slow.num_failures(), "{user}");
    assert!(
        slow.max_response_time_us() < 800_000,
        "{user}: a request took {} us, the 0.2 s timeout was not applied",
        slow.max_response_time_us()
    );
    let errors = stats.errors();
    let error = errors
        .iter()
        .find(|e| &*e.name == "slow")
        .expect("an error group for the slow task");
    assert!(
        error.message.contains("timed out after 0.2"),
        "{user}: failure reason {:?}",
        error.message
    );
    assert!(
        target.served_path("/delay/1000") >= 4,
        "{user}: the server saw the requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_http_user_applies_a_top_level_timeout() {
    timeout_applies_to_every_request("fast_http_user").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_user_applies_a_top_level_timeout() {
    timeout_applies_to_every_request("http_user").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_verify_is_a_config_error_naming_verify() {
    let target = HttpTarget::start().await.expect("start the HTTP target");
    for user in HTTP_USERS {
        let error = prepare_env(config(user, &target.base_url(), ("verify", json!("yes"))))
            .await
            .err()
            .unwrap_or_else(|| panic!("{user}: \"verify\": \"yes\" must be rejected"));
        assert!(
            matches!(&error, RunError::Plan { .. }),
            "{user}: expected a plan error, got {error:?}"
        );
        let message = error.to_string();
        assert!(
            message.contains("option \"verify\" must be true or false (or 0 / 1), got \"yes\""),
            "{user}: {message}"
        );
    }
    assert_eq!(target.served(), 0, "no run started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn common_options_are_declared_and_others_still_rejected() {
    let target = HttpTarget::start().await.expect("start the HTTP target");
    for user in HTTP_USERS {
        // A typo is still an unknown key, and the message lists the declared options.
        let error = prepare_env(config(user, &target.base_url(), ("timout", json!(1))))
            .await
            .err()
            .unwrap_or_else(|| panic!("{user}: \"timout\" must be rejected"));
        let message = error.to_string();
        assert!(
            message.contains("unknown key \"timout\"")
                && message.contains("ca_file, ")
                && message.contains("timeout")
                && message.contains("verify"),
            "{user}: {message}"
        );
    }
}
