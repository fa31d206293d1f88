//! The dashboard's server-sent events: `init` with the chart history, an `update` about once a
//! second, a last update when the run ends, then the end of the stream.

mod web_support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use web_support::{client, start};

/// Reads server-sent events from a streaming response.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    /// The next `(event name, JSON data)`, or `None` when the stream ends.
    async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.strip_prefix(' ').unwrap_or(value));
                    }
                }
                if data.is_empty() {
                    continue; // keep-alive comment or retry hint
                }
                let value = serde_json::from_str(&data).expect("event data is JSON");
                return Some((name, value));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(5), self.response.chunk())
                .await
                .expect("an event at least every few seconds")
                .expect("the stream reads")?;
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_history_then_one_update_a_second_then_the_end() {
    let run = start(2, json!({})).await;
    let http = client();
    // Let a few chart points accumulate.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let response = http
        .get(run.url("/events"))
        .send()
        .await
        .expect("GET /events");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut events = Events {
        response,
        buffer: String::new(),
    };

    let (name, init) = events.next().await.expect("init");
    assert_eq!(name, "init");
    assert_eq!(init["settings"]["host"], run.target.base_url());
    assert_eq!(init["settings"]["distributed"], false);
    let recent = init["history"]["recent"].as_array().expect("history");
    assert!(recent.len() >= 2, "a point per second so far: {recent:?}");
    for point in recent {
        let point = point.as_array().expect(
            "[t, w, users, rps, fps, p50, p95, corrected p95, target rate, iteration rate]",
        );
        assert_eq!(point.len(), 10);
        assert_eq!(point[1], 1, "recent points are one second wide");
    }
    let times: Vec<u64> = recent.iter().map(|p| p[0].as_u64().expect("t")).collect();
    assert!(
        times.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive seconds: {times:?}"
    );
    let update = &init["update"];
    assert_eq!(update["state"], "running");
    assert_eq!(update["users"], 2);
    let rows = update["rows"].as_array().expect("rows");
    let names: Vec<&str> = rows.iter().map(|r| r[1].as_str().expect("name")).collect();
    assert_eq!(names, ["broken", "fast", "slow"]);
    assert_eq!(rows[0].as_array().expect("row").len(), 13);
    assert_eq!(update["errors"][0][1], "broken");

    // Updates arrive about once a second, with growing counts and a new chart point each.
    let started = Instant::now();
    let mut last_seq = update["seq"].as_u64().expect("seq");
    let mut last_requests = update["requests"].as_u64().expect("requests");
    let mut last_point = *times.last().expect("a point");
    for _ in 0..3 {
        let (name, update) = events.next().await.expect("update");
        assert_eq!(name, "update");
        let seq = update["seq"].as_u64().expect("seq");
        assert!(seq > last_seq);
        let requests = update["requests"].as_u64().expect("requests");
        assert!(requests > last_requests, "{requests} after {last_requests}");
        for point in update["points"].as_array().expect("points") {
            let t = point[0].as_u64().expect("t");
            assert!(t > last_point, "new points only");
            last_point = t;
        }
        (last_seq, last_requests) = (seq, requests);
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed > Duration::from_millis(1500) && elapsed < Duration::from_secs(6),
        "three updates took {elapsed:?}: about one a second, no storm"
    );

    // The end: a last update in state stopped, then the stream ends.
    run.env.stop();
    let mut last = None;
    while let Some((name, update)) = events.next().await {
        assert_eq!(name, "update");
        last = Some(update);
    }
    let last = last.expect("a last update");
    assert_eq!(last["last"], true);
    assert_eq!(last["state"], "stopped");
    assert_eq!(last["users"], 0);
}
