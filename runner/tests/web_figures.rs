//! `/stats/requests` figures agree with each other: the current rate is over the seconds
//! actually elapsed (not a fixed ten), and min <= average <= max for every row (a
//! sub-millisecond maximum is not rounded down to 0).

mod web_support;

use std::time::Duration;

use web_support::{client, get_json, start, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_and_total_rates_agree_and_max_is_never_below_the_average() {
    let run = start(3, serde_json::json!({})).await;
    let http = client();
    // About three seconds in: a fixed ten-second window would show a third of the rate.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let report = wait_for("requests", Duration::from_secs(20), || async {
        let report = get_json(&http, &run.url("/stats/requests")).await;
        (report["stats"].as_array().map_or(0, Vec::len) > 1).then_some(report)
    })
    .await;
    for row in report["stats"].as_array().expect("rows") {
        let avg = row["avg_response_time"].as_f64().expect("avg");
        let max = row["max_response_time"].as_f64().expect("max");
        let min = row["min_response_time"].as_f64().expect("min");
        assert!(min <= avg + 0.01 && avg <= max + 0.01, "{row}");
    }
    let current = report["current_rps"].as_f64().expect("current_rps");
    let total = report["total_rps"].as_f64().expect("total_rps");
    assert!(total > 0.0, "{report}");
    assert!(
        current > total * 0.6 && current < total * 1.6,
        "current_rps {current} against total_rps {total}"
    );
    run.env.stop();
    run.env.wait().await;
}
