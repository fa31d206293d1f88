//! Locust's HTTP API on a live run (fast_http_user against the testkit target): every route,
//! with the field names and JSON types of section 6 of the protocol document.

mod web_support;

use std::time::Duration;

use serde_json::Value;
use web_support::{client, get_json, start, total_requests, wait_for};

/// What a JSON value must be.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Int,
    Float,
    Str,
    /// An int or null.
    IntOrNull,
    /// A float, or the int 0 (`min_response_time` of a row without requests).
    FloatOrZero,
}

fn check(value: &Value, kind: Kind, what: &str) {
    let ok = match kind {
        Kind::Int => value.is_u64(),
        Kind::Float => value.is_f64(),
        Kind::Str => value.is_string(),
        Kind::IntOrNull => value.is_u64() || value.is_null(),
        Kind::FloatOrZero => value.is_f64() || value.as_u64() == Some(0),
    };
    assert!(ok, "{what}: expected {kind:?}, got {value}");
}

/// Checks that `object` has exactly `fields` (in this, sorted, order) of the given kinds.
fn check_object(object: &Value, fields: &[(&str, Option<Kind>)], what: &str) {
    let map = object
        .as_object()
        .unwrap_or_else(|| panic!("{what}: not an object: {object}"));
    let keys: Vec<&str> = map.keys().map(String::as_str).collect();
    let expected: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        keys, expected,
        "{what}: keys (sorted, as Flask's jsonify writes them)"
    );
    for (key, kind) in fields {
        if let Some(kind) = kind {
            check(&map[*key], *kind, &format!("{what}.{key}"));
        }
    }
}

const ROW_FIELDS: &[(&str, Option<Kind>)] = &[
    ("avg_content_length", Some(Kind::Float)),
    ("avg_response_time", Some(Kind::Float)),
    ("current_fail_per_sec", Some(Kind::Float)),
    ("current_rps", Some(Kind::Float)),
    ("max_response_time", Some(Kind::Float)),
    ("median_response_time", Some(Kind::Int)),
    ("method", Some(Kind::Str)),
    ("min_response_time", Some(Kind::FloatOrZero)),
    ("name", Some(Kind::Str)),
    ("num_failures", Some(Kind::Int)),
    ("num_requests", Some(Kind::Int)),
    ("response_time_percentile_0.95", Some(Kind::Int)),
    ("response_time_percentile_0.99", Some(Kind::Int)),
    ("total_fail_per_sec", Some(Kind::Float)),
    ("total_rps", Some(Kind::Float)),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_with_locusts_shapes() {
    let run = start(3, serde_json::json!({})).await;
    let http = client();
    // Let every task run a few times and a second or two pass (current rates, percentiles).
    wait_for(
        "requests of every task",
        Duration::from_secs(20),
        || async {
            let stats = run.env.stats();
            (stats.entries().len() == 3
                && stats.total().num_requests() > 60
                && stats.errors().len() == 1)
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2200)).await;

    // GET /stats/requests
    let report = get_json(&http, &run.url("/stats/requests")).await;
    check_object(
        &report,
        &[
            ("current_fail_per_sec", Some(Kind::Float)),
            ("current_response_time_percentiles", None),
            ("current_rps", Some(Kind::Float)),
            ("errors", None),
            ("fail_ratio", Some(Kind::Float)),
            ("state", Some(Kind::Str)),
            ("stats", None),
            ("total_fail_per_sec", Some(Kind::Float)),
            ("total_rps", Some(Kind::Float)),
            ("user_count", Some(Kind::Int)),
        ],
        "/stats/requests",
    );
    assert_eq!(report["state"], "running");
    assert_eq!(report["user_count"], 3);
    check_object(
        &report["current_response_time_percentiles"],
        &[
            ("response_time_percentile_0.5", Some(Kind::IntOrNull)),
            ("response_time_percentile_0.95", Some(Kind::IntOrNull)),
        ],
        "current_response_time_percentiles",
    );
    let p95 = report["current_response_time_percentiles"]["response_time_percentile_0.95"]
        .as_u64()
        .expect("a current p95 after two seconds");
    assert!((10..2000).contains(&p95), "current p95 {p95} ms");
    assert!(
        report["current_rps"].as_f64().expect("rps") > 1.0,
        "{report}"
    );
    assert!(report["total_rps"].as_f64().expect("rps") > 1.0);
    let ratio = report["fail_ratio"].as_f64().expect("fail_ratio");
    assert!(ratio > 0.05 && ratio < 0.9, "fail_ratio {ratio}");

    let rows = report["stats"].as_array().expect("stats");
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        ["broken", "fast", "slow", "Aggregated"],
        "sorted by name, total last"
    );
    for row in rows {
        check_object(row, ROW_FIELDS, &format!("row {}", row["name"]));
    }
    assert_eq!(rows[3]["method"], "");
    assert!(rows[..3].iter().all(|r| r["method"] == "GET"));
    let slow = &rows[2];
    let median = slow["median_response_time"].as_u64().expect("median");
    assert!((40..1000).contains(&median), "slow median {median}");
    assert!(slow["min_response_time"].as_f64().expect("min") >= 40.0);
    assert_eq!(
        rows[0]["num_failures"], rows[0]["num_requests"],
        "503s fail"
    );
    assert_eq!(slow["num_failures"], 0);
    let sum: u64 = rows[..3]
        .iter()
        .map(|r| r["num_requests"].as_u64().expect("count"))
        .sum();
    assert_eq!(
        sum,
        total_requests(&report),
        "the total is the sum of the rows"
    );

    let errors = report["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{errors:?}");
    check_object(
        &errors[0],
        &[
            ("error", Some(Kind::Str)),
            ("first_seen", Some(Kind::Float)),
            ("last_seen", Some(Kind::Float)),
            ("method", Some(Kind::Str)),
            ("name", Some(Kind::Str)),
            ("occurrences", Some(Kind::Int)),
        ],
        "errors[0]",
    );
    assert_eq!(errors[0]["name"], "broken");
    assert!(errors[0]["error"].as_str().expect("error").contains("503"));
    assert!(errors[0]["first_seen"].as_f64() <= errors[0]["last_seen"].as_f64());

    // GET /stats/requests/csv
    let response = http
        .get(run.url("/stats/requests/csv"))
        .send()
        .await
        .expect("GET csv");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/csv");
    let disposition = response.headers()["content-disposition"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        disposition.starts_with("attachment;filename=") && disposition.ends_with("_requests.csv"),
        "{disposition}"
    );
    let csv = response.text().await.expect("csv text");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,\
         Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,\
         50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
    );
    assert_eq!(lines.len(), 5, "{csv}");
    assert!(lines[1].starts_with("GET,broken,"));
    assert!(lines[4].starts_with(",Aggregated,"));
    for line in &lines[1..] {
        assert_eq!(line.split(',').count(), 22, "{line}");
    }
    assert!(csv.contains("\r\n"), "CRLF like Python's csv module");

    // GET /stats/failures/csv
    let csv = http
        .get(run.url("/stats/failures/csv"))
        .send()
        .await
        .expect("GET failures csv")
        .text()
        .await
        .expect("text");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "Method,Name,Error,Occurrences,First Seen,Last Seen"
    );
    assert_eq!(lines.len(), 2, "{csv}");
    let fields: Vec<&str> = lines[1].rsplitn(3, ',').collect();
    for stamp in &fields[..2] {
        assert_eq!(
            stamp.len(),
            20,
            "UTC time like 2026-11-26T08:49:07Z: {stamp}"
        );
        assert!(
            stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
            "{stamp}"
        );
    }
    assert!(lines[1].starts_with("GET,broken,"), "{}", lines[1]);

    // GET /exceptions, /exceptions/csv, /worker-count
    let exceptions = get_json(&http, &run.url("/exceptions")).await;
    assert_eq!(exceptions, serde_json::json!({"exceptions": []}));
    let csv = http
        .get(run.url("/exceptions/csv"))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("text");
    assert_eq!(csv, "Count,Message,Traceback,Nodes\r\n");
    let workers = get_json(&http, &run.url("/worker-count")).await;
    assert_eq!(workers, serde_json::json!({"worker_count": 0}));

    // The summary JSON the page offers.
    let summary = get_json(&http, &run.url("/stats/summary.json")).await;
    assert!(summary["totals"]["requests"].as_u64().expect("requests") > 60);
    assert!(summary["per_name"]["slow"]["p50_ms"].as_f64().expect("p50") >= 40.0);

    // GET /swarm is not a route (Locust answers 405 too).
    let response = http
        .get(run.url("/swarm"))
        .send()
        .await
        .expect("GET /swarm");
    assert_eq!(response.status(), 405);

    // POST /stats/reset
    let before = total_requests(&get_json(&http, &run.url("/stats/requests")).await);
    let response = http
        .post(run.url("/stats/reset"))
        .send()
        .await
        .expect("reset");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("text"), "ok");
    let after = total_requests(&get_json(&http, &run.url("/stats/requests")).await);
    assert!(after < before / 2, "reset: {before} before, {after} after");

    // POST /stop
    let response = http.post(run.url("/stop")).send().await.expect("stop");
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("json");
    assert_eq!(
        answer,
        serde_json::json!({"message": "Test stopped", "success": true})
    );
    let summary = tokio::time::timeout(Duration::from_secs(10), run.env.wait())
        .await
        .expect("the run ends after /stop");
    assert!(summary.duration_s > 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_assets_are_served_with_a_strict_policy() {
    let run = start(1, serde_json::json!({})).await;
    let http = client();
    let response = http.get(run.url("/")).send().await.expect("GET /");
    assert_eq!(response.status(), 200);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"));
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "no CORS"
    );
    let html = response.text().await.expect("html");
    assert!(html.contains("<title>LoadDensity</title>"));
    for asset in ["app.js", "chart.js", "style.css", "favicon.svg"] {
        let response = http
            .get(run.url(&format!("/assets/{asset}")))
            .send()
            .await
            .expect("asset");
        assert_eq!(response.status(), 200, "{asset}");
        assert!(
            html.contains(&format!("assets/{asset}")),
            "the page uses {asset}"
        );
        assert!(!response.text().await.expect("text").is_empty());
    }
    let response = http
        .get(run.url("/assets/../Cargo.toml"))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 404);
    // Nothing on the page comes from the network.
    for needle in ["http://", "https://", "//cdn"] {
        let page_and_assets = [
            html.as_str(),
            include_str!("../src/web/assets/app.js"),
            include_str!("../src/web/assets/chart.js"),
            include_str!("../src/web/assets/style.css"),
        ];
        for text in page_and_assets {
            for line in text.lines().filter(|l| l.contains(needle)) {
                assert!(
                    line.contains("www.w3.org/2000/svg"),
                    "external reference: {line}"
                );
            }
        }
    }
    run.env.stop();
    run.env.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_run_behind_basic_auth() {
    let run = start(
        1,
        serde_json::json!({"username": "ops", "password": "pa:ss"}),
    )
    .await;
    let http = client();
    for path in ["/", "/stats/requests", "/stats/requests/csv", "/exceptions"] {
        let response = http.get(run.url(path)).send().await.expect("GET");
        assert_eq!(response.status(), 401, "{path}");
    }
    let response = http.post(run.url("/stop")).send().await.expect("POST");
    assert_eq!(response.status(), 401);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        run.env.state(),
        load_density::RunState::Running,
        "not stopped"
    );
    let report: Value = http
        .get(run.url("/stats/requests"))
        .basic_auth("ops", Some("pa:ss"))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert_eq!(report["state"], "running");
    let answer: Value = http
        .post(run.url("/stop"))
        .basic_auth("ops", Some("pa:ss"))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("json");
    assert_eq!(answer["success"], true);
    tokio::time::timeout(Duration::from_secs(10), run.env.wait())
        .await
        .expect("stopped");
}
