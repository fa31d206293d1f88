//! The web UI over any [`RunControl`] (as a distributed master provides one): workers in the
//! API, refusals once a run is stopping, and closing.

mod web_support;

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use load_density::web::{BasicAuth, WebUi, WebUiSettings};
use load_density::{RunState, WorkerInfo};
use serde_json::{json, Value};
use web_support::{client, get_json, Fake};

fn worker(id: &str, state: &str, users: u64) -> WorkerInfo {
    WorkerInfo {
        id: id.to_owned(),
        state: state.to_owned(),
        user_count: users,
        cpu_percent: 12.5,
        memory_bytes: 42_000_000,
        last_heartbeat: SystemTime::now(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_reports_its_workers_like_locust() {
    let fake = Fake::new(vec![
        worker("host_aa", "running", 4),
        worker("host_bb", "spawning", 3),
        worker("host_cc", "missing", 0),
    ]);
    let ui = WebUi::start(
        fake.clone(),
        WebUiSettings::new("127.0.0.1", 0).with_distributed(true),
    )
    .await
    .expect("UI starts");
    let http = client();
    let base = format!("http://{}", ui.local_addr());
    let report = get_json(&http, &format!("{base}/stats/requests")).await;
    assert_eq!(report["worker_count"], 2, "missing workers do not count");
    let workers = report["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 3, "every known worker is listed");
    let keys: Vec<&String> = workers[0].as_object().expect("object").keys().collect();
    assert_eq!(
        keys,
        ["cpu_usage", "id", "memory_usage", "state", "user_count"]
    );
    assert_eq!(workers[0]["id"], "host_aa");
    assert!(workers[0]["cpu_usage"].is_f64());
    assert_eq!(workers[0]["memory_usage"], 42_000_000);
    assert_eq!(workers[1]["user_count"], 3);
    assert_eq!(report["user_count"], 7);
    let keys: Vec<&String> = report.as_object().expect("object").keys().collect();
    assert_eq!(keys.last().map(|k| k.as_str()), Some("workers"));
    assert_eq!(
        get_json(&http, &format!("{base}/worker-count")).await,
        json!({"worker_count": 2})
    );
    // Rows come from the control's statistics.
    let rows = report["stats"].as_array().expect("rows");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1]["name"], "/b");
    assert_eq!(rows[1]["num_failures"], 10);
    ui.shutdown().await;
    assert!(
        http.get(format!("{base}/worker-count"))
            .send()
            .await
            .is_err(),
        "closed"
    );
    assert_eq!(
        fake.stops.load(Ordering::Relaxed),
        0,
        "closing the UI does not stop the run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_run_has_no_workers_fields_and_a_stopping_run_refuses_swarm() {
    let fake = Fake::new(Vec::new());
    let ui = WebUi::start(fake.clone(), WebUiSettings::new("127.0.0.1", 0))
        .await
        .expect("UI starts");
    let http = client();
    let base = format!("http://{}", ui.local_addr());
    let report = get_json(&http, &format!("{base}/stats/requests")).await;
    assert!(report.get("workers").is_none() && report.get("worker_count").is_none());

    *fake.state.lock() = RunState::Stopping;
    let answer: Value = http
        .post(format!("{base}/swarm"))
        .form(&[("user_count", "3"), ("spawn_rate", "1")])
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("json");
    assert_eq!(answer["success"], false, "{answer}");
    assert_eq!(fake.set_calls.load(Ordering::Relaxed), 0);

    // Stopped: the UI sends its last update and closes by itself.
    *fake.state.lock() = RunState::Stopped;
    tokio::time::timeout(Duration::from_secs(5), ui.closed())
        .await
        .expect("the UI closes once the run has stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_and_same_origin_are_enforced() {
    let fake = Fake::new(Vec::new());
    let ui = WebUi::start(
        fake.clone(),
        WebUiSettings::new("127.0.0.1", 0).with_basic_auth(BasicAuth::new("admin", "s3cret")),
    )
    .await
    .expect("UI starts");
    let http = client();
    let base = format!("http://{}", ui.local_addr());
    for path in [
        "/",
        "/stats/requests",
        "/events",
        "/assets/app.js",
        "/worker-count",
    ] {
        let response = http.get(format!("{base}{path}")).send().await.expect("GET");
        assert_eq!(response.status(), 401, "{path} without credentials");
        let challenge = response.headers()["www-authenticate"]
            .to_str()
            .expect("ascii");
        assert!(challenge.starts_with("Basic realm="), "{challenge}");
    }
    let wrong = http
        .get(format!("{base}/stats/requests"))
        .basic_auth("admin", Some("guess"))
        .send()
        .await
        .expect("GET");
    assert_eq!(wrong.status(), 401);
    let stop = http
        .post(format!("{base}/stop"))
        .send()
        .await
        .expect("POST");
    assert_eq!(stop.status(), 401);
    assert_eq!(
        fake.stops.load(Ordering::Relaxed),
        0,
        "unauthenticated stop refused"
    );
    let right = http
        .get(format!("{base}/stats/requests"))
        .basic_auth("admin", Some("s3cret"))
        .send()
        .await
        .expect("GET");
    assert_eq!(right.status(), 200);

    // A page of another site cannot make the browser stop the run.
    let forged = http
        .post(format!("{base}/stop"))
        .basic_auth("admin", Some("s3cret"))
        .header("Origin", "http://evil.example")
        .send()
        .await
        .expect("POST");
    assert_eq!(forged.status(), 403);
    let forged = http
        .post(format!("{base}/stop"))
        .basic_auth("admin", Some("s3cret"))
        .header("Sec-Fetch-Site", "cross-site")
        .send()
        .await
        .expect("POST");
    assert_eq!(forged.status(), 403);
    assert_eq!(fake.stops.load(Ordering::Relaxed), 0);

    // The UI's own page may.
    let own = http
        .post(format!("{base}/stop"))
        .basic_auth("admin", Some("s3cret"))
        .header("Origin", base.clone())
        .header("Sec-Fetch-Site", "same-origin")
        .send()
        .await
        .expect("POST");
    assert_eq!(own.status(), 200);
    assert_eq!(fake.stops.load(Ordering::Relaxed), 1);
    tokio::time::timeout(Duration::from_secs(5), ui.closed())
        .await
        .expect("closes after the stop");
}

#[test]
fn web_ui_dict_is_checked() {
    let ok = WebUiSettings::from_value(&json!({})).expect("defaults");
    assert_eq!((ok.host(), ok.port()), ("127.0.0.1", 8089));
    let ok = WebUiSettings::from_value(
        &json!({"host": "*", "port": 0, "username": "u", "password": "p"}),
    )
    .expect("all keys");
    assert_eq!((ok.host(), ok.port()), ("*", 0));
    assert_eq!(ok.auth().map(BasicAuth::username), Some("u"));
    assert!(
        !format!("{:?}", ok.auth()).contains("\"p\""),
        "Debug hides the password"
    );
    for (bad, says) in [
        (json!("127.0.0.1:8089"), "must be an object"),
        (json!({"port": "8089"}), "port"),
        (json!({"port": 70000}), "port"),
        (json!({"port": -1}), "port"),
        (json!({"host": 1}), "host"),
        (json!({"username": "u"}), "give both or neither"),
        (
            json!({"username": "", "password": "p"}),
            "username must not be empty",
        ),
        (json!({"bind": "x"}), "unknown key \"bind\""),
    ] {
        let error = WebUiSettings::from_value(&bad)
            .expect_err("invalid")
            .to_string();
        assert!(
            error.starts_with("web_ui_dict: ") && error.contains(says),
            "{bad}: {error}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_web_ui_dict_or_a_busy_port_stops_the_run_before_it_starts() {
    let target = load_density_testkit::HttpTarget::start()
        .await
        .expect("target");
    let bad = web_support::config(&target, 1, json!({"port": "x"}));
    let error = load_density::create_env(bad.clone())
        .await
        .expect_err("create_env checks web_ui_dict")
        .to_string();
    assert!(error.contains("web_ui_dict: port"), "{error}");
    let error = load_density::start_test_async(bad)
        .await
        .expect_err("invalid")
        .to_string();
    assert!(error.contains("web_ui_dict: port"), "{error}");

    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").port();
    let config = web_support::config(&target, 1, json!({"port": port}));
    let error = load_density::start_test_async(config)
        .await
        .expect_err("the port is taken")
        .to_string();
    assert!(
        error.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{error}"
    );
    assert_eq!(target.served(), 0, "no user started");
}
