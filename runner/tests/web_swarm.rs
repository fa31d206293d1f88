//! `POST /swarm` on a running test: it ramps the user count up and down from where it is, a bad
//! form value changes nothing, and `run_time` stops the run.

mod web_support;

use std::time::Duration;

use serde_json::{json, Value};
use web_support::{client, get_json, start, wait_for};

async fn swarm(http: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> Value {
    let response = http.post(url).form(form).send().await.expect("POST /swarm");
    assert_eq!(
        response.status(),
        200,
        "Locust answers 200 even to bad values"
    );
    response.json().await.expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_changes_the_user_count_of_a_running_test() {
    let run = start(1, json!({})).await;
    let http = client();
    let url = run.url("/swarm");
    let host = run.target.base_url();
    wait_for("one user", Duration::from_secs(10), || async {
        (run.env.user_count() == 1).then_some(())
    })
    .await;

    // Up.
    let answer = swarm(
        &http,
        &url,
        &[("user_count", "5"), ("spawn_rate", "50"), ("host", &host)],
    )
    .await;
    assert_eq!(
        answer,
        json!({"host": host, "message": "Swarming started", "success": true})
    );
    wait_for("five users", Duration::from_secs(10), || async {
        let report = get_json(&http, &run.url("/stats/requests")).await;
        (report["user_count"] == 5 && report["state"] == "running").then_some(())
    })
    .await;

    // Bad values: Locust's answer, and nothing changes.
    let bad: &[(&[(&str, &str)], &str)] = &[
        (
            &[("user_count", "x"), ("spawn_rate", "5")],
            "Invalid user_count value: 'x' (must be an integer)",
        ),
        (
            &[("user_count", "-2"), ("spawn_rate", "5")],
            "Invalid user_count value: '-2' (must be an integer)",
        ),
        (
            &[("user_count", "2"), ("spawn_rate", "0")],
            "Invalid spawn_rate value: '0' (must be a positive number)",
        ),
        (
            &[("user_count", "2"), ("spawn_rate", "inf")],
            "Invalid spawn_rate value: 'inf' (must be a positive number)",
        ),
        (
            &[("spawn_rate", "5")],
            "Missing or invalid user_count or spawn_rate from /swarm request",
        ),
        (
            &[("user_count", "2")],
            "Missing or invalid user_count or spawn_rate from /swarm request",
        ),
        (
            &[
                ("user_count", "2"),
                ("spawn_rate", "5"),
                ("run_time", "soon"),
            ],
            "Valid run_time formats are : 20, 20s, 3m, 2h, 1h20m, 3h30m10s, etc.",
        ),
    ];
    for (form, message) in bad {
        let answer = swarm(&http, &url, form).await;
        assert_eq!(
            answer,
            json!({"host": host, "message": message, "success": false}),
            "{form:?}"
        );
    }
    let answer = swarm(
        &http,
        &url,
        &[
            ("user_count", "2"),
            ("spawn_rate", "5"),
            ("host", "http://elsewhere.invalid"),
        ],
    )
    .await;
    assert_eq!(answer["success"], false);
    assert!(
        answer["message"]
            .as_str()
            .expect("message")
            .contains("host"),
        "{answer}"
    );
    assert_eq!(run.env.target_user_count(), 5, "bad values changed nothing");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(run.env.user_count(), 5);

    // Down, from where it is.
    let answer = swarm(&http, &url, &[("user_count", "2"), ("spawn_rate", "100")]).await;
    assert_eq!(answer["success"], true, "{answer}");
    wait_for("two users", Duration::from_secs(10), || async {
        (run.env.user_count() == 2).then_some(())
    })
    .await;
    assert_eq!(run.env.target_user_count(), 2);

    // run_time schedules the stop.
    let answer = swarm(
        &http,
        &url,
        &[
            ("user_count", "2"),
            ("spawn_rate", "100"),
            ("run_time", "1s"),
        ],
    )
    .await;
    assert_eq!(
        answer,
        json!({"host": host, "message": "Swarming started", "run_time": 1, "success": true})
    );
    let summary = tokio::time::timeout(Duration::from_secs(15), run.env.wait())
        .await
        .expect("run_time stops the run");
    assert!(summary.users_spawned >= 5);
    assert!(summary.totals.requests > 0);

    // The run has ended: its UI closes.
    wait_for("the UI to close", Duration::from_secs(10), || async {
        load_density::web::local_addr(&run.env)
            .is_none()
            .then_some(())
    })
    .await;
    assert!(
        http.get(run.url("/stats/requests")).send().await.is_err(),
        "nothing listens any more"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_refuses_while_an_open_model_runs() {
    let target = load_density_testkit::HttpTarget::start()
        .await
        .expect("testkit target");
    let mut config = web_support::config(&target, 1, json!({"host": "127.0.0.1", "port": 0}));
    config.load_model = Some(json!({"type": "constant_arrival_rate", "rate": 20,
                                    "pre_allocated_users": 2, "max_users": 4}));
    let env = load_density::prepare_env(config).await.expect("run starts");
    let addr = load_density::web::local_addr(&env).expect("the run's web UI address");
    let http = client();
    let answer = swarm(
        &http,
        &format!("http://{addr}/swarm"),
        &[("user_count", "5"), ("spawn_rate", "5")],
    )
    .await;
    assert_eq!(answer["success"], false, "{answer}");
    // What the UI charts as the target rate.
    assert_eq!(load_density::RunControl::target_rate(&env), 20.0);
    let message = answer["message"].as_str().unwrap_or_default();
    assert!(message.contains("not a closed one"), "{message}");
    env.stop();
    env.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_no_run_can_follow_answer_400_and_the_run_ends_normally() {
    let run = start(1, json!({})).await;
    let http = client();
    let url = run.url("/swarm");
    let host = run.target.base_url();
    let bad: &[(&[(&str, &str)], &str)] = &[
        (
            &[("user_count", "2"), ("spawn_rate", "1e-300")],
            "Invalid spawn_rate value: '1e-300' (must be a number of at least 1e-9 users per second)",
        ),
        (
            &[("user_count", "18446744073709551615"), ("spawn_rate", "5")],
            "Invalid user_count value: '18446744073709551615' (must be at most 100000000)",
        ),
    ];
    for (form, message) in bad {
        let response = http
            .post(&url)
            .form(form)
            .send()
            .await
            .expect("POST /swarm");
        assert_eq!(response.status(), 400, "{form:?}");
        let answer: Value = response.json().await.expect("JSON");
        assert_eq!(
            answer,
            json!({"host": host, "message": message, "success": false}),
            "{form:?}"
        );
    }
    assert_eq!(run.env.target_user_count(), 1, "nothing changed");
    assert!(run.env.set_user_count(u64::MAX, 1.0).is_err());
    assert!(run.env.set_user_count(1, 1e-300).is_err());

    // The run goes on and ends as any run does.
    let answer: Value = http
        .post(run.url("/stop"))
        .send()
        .await
        .expect("POST /stop")
        .json()
        .await
        .expect("JSON");
    assert_eq!(answer["success"], true);
    let summary = tokio::time::timeout(Duration::from_secs(15), run.env.wait())
        .await
        .expect("the run ends");
    assert!(summary.totals.requests > 0);
}
