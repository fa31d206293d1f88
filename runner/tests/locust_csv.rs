//! Locust's CSV files: real `locust --headless --csv --csv-full-history` output (from the test
//! venv) against ours for the same target, compared header for header and, column by
//! column, by the format of the values (integers, Python floats, `%2f` rates, `N/A`, UTC
//! timestamps, empty fields).

mod distributed_support;

use std::path::Path;
use std::time::Duration;

use distributed_support::{locust_bin, Proc};
use load_density::{start_test_async, StartTest};
use load_density_testkit::HttpTarget;
use serde_json::json;

const LOCUSTFILE: &str = r#"
from locust import HttpUser, task, constant

class Mixed(HttpUser):
    wait_time = constant(0.05)

    @task(3)
    def ok(self):
        self.client.get("/get")

    @task
    def bad(self):
        self.client.get("/status/500")
"#;

const FILES: [&str; 4] = ["stats", "failures", "exceptions", "stats_history"];

/// A CSV file as rows of fields (quoted fields, doubled quotes, CRLF or LF).
fn read_rows(path: &Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

/// The format of one value.
fn class(value: &str) -> &'static str {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if value.is_empty() {
        "empty"
    } else if value == "N/A" {
        "N/A"
    } else if digits(value.trim_start_matches('-')) {
        "int"
    } else if let Some((int, frac)) = value.trim_start_matches('-').split_once('.') {
        if digits(int) && digits(frac.split(['e', 'E']).next().unwrap_or("")) {
            "float"
        } else {
            "text"
        }
    } else if value.len() == 20
        && value.as_bytes()[4] == b'-'
        && value.as_bytes()[10] == b'T'
        && value.ends_with('Z')
    {
        "utc"
    } else {
        "text"
    }
}

fn classes(row: &[String]) -> Vec<&'static str> {
    row.iter().map(|v| class(v)).collect()
}

fn six_decimals(value: &str) -> bool {
    value.split_once('.').is_some_and(|(i, f)| {
        !i.is_empty() && f.len() == 6 && f.bytes().all(|b| b.is_ascii_digit())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_csv_files_have_locusts_columns_and_value_formats() {
    let target = HttpTarget::start().await.expect("target");
    let dir = tempfile::tempdir().expect("tempdir");
    let locustfile = dir.path().join("locustfile.py");
    std::fs::write(&locustfile, LOCUSTFILE).expect("write the locustfile");
    let locust_prefix = dir.path().join("locust");
    let args: Vec<String> = [
        "-f",
        &locustfile.display().to_string(),
        "--headless",
        "-u",
        "2",
        "-r",
        "2",
        "-t",
        "4s",
        "--host",
        &target.base_url(),
        "--csv",
        &locust_prefix.display().to_string(),
        "--csv-full-history",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut locust = Proc::start("locust", dir.path(), &locust_bin(), &args);
    locust.wait(Duration::from_secs(60)).await;

    let ours_prefix = dir.path().join("ours");
    let config: StartTest = serde_json::from_value(json!({
        "user_count": 2,
        "spawn_rate": 2,
        "test_time": 4,
        "host": target.base_url(),
        "wait_time": {"constant": 0.05},
        "print_stats": false,
        "csv_prefix": ours_prefix.display().to_string(),
        "csv_full_history": true,
        "tasks": [
            {"method": "get", "request_url": "/get"},
            {"method": "get", "request_url": "/get"},
            {"method": "get", "request_url": "/get"},
            {"method": "get", "request_url": "/status/500"}
        ]
    }))
    .expect("config");
    let summary = start_test_async(config).await.expect("our run");
    assert!(summary.totals.failures > 0 && summary.totals.successes > 0);

    let read = |prefix: &Path, file: &str| {
        read_rows(&prefix.with_file_name(format!(
            "{}_{file}.csv",
            prefix.file_name().and_then(|n| n.to_str()).unwrap_or_default()
        )))
    };
    for file in FILES {
        let (theirs, ours) = (read(&locust_prefix, file), read(&ours_prefix, file));
        assert_eq!(theirs[0], ours[0], "{file}: the same header");
    }

    // Stats: two names and the total, each column in the same format.
    let (theirs, ours) = (read(&locust_prefix, "stats"), read(&ours_prefix, "stats"));
    assert_eq!(theirs.len(), 4, "{theirs:?}");
    assert_eq!(ours.len(), 4, "{ours:?}");
    for (t, o) in theirs[1..].iter().zip(&ours[1..]) {
        assert_eq!(
            classes(t),
            classes(o),
            "stats rows\nlocust: {t:?}\nours:   {o:?}"
        );
    }
    assert_eq!(ours[3][1], "Aggregated");
    assert_eq!(ours[3][0], "");
    let total: u64 = ours[3][2].parse().expect("a count");
    assert_eq!(
        total, summary.totals.requests,
        "the final file holds the final counts"
    );

    // Failures: the same formats (the messages differ: Locust's are Python reprs).
    let (theirs, ours) = (
        read(&locust_prefix, "failures"),
        read(&ours_prefix, "failures"),
    );
    assert!(theirs.len() >= 2 && ours.len() >= 2, "{theirs:?} {ours:?}");
    assert_eq!(
        classes(&theirs[1]),
        classes(&ours[1]),
        "{theirs:?}\n{ours:?}"
    );
    assert_eq!(classes(&ours[1])[4..], ["utc", "utc"]);

    // Exceptions: the header only, on both sides.
    assert_eq!(read(&locust_prefix, "exceptions").len(), 1);
    assert_eq!(read(&ours_prefix, "exceptions").len(), 1);

    // History: a row a second; with full history, every name and the total each second.
    let (theirs, ours) = (
        read(&locust_prefix, "stats_history"),
        read(&ours_prefix, "stats_history"),
    );
    let last_total = |rows: &[Vec<String>]| {
        rows.iter()
            .rev()
            .find(|r| r.get(3).map(String::as_str) == Some("Aggregated"))
            .cloned()
            .expect("an Aggregated history row")
    };
    let (t, o) = (last_total(&theirs), last_total(&ours));
    assert_eq!(
        classes(&t),
        classes(&o),
        "history\nlocust: {t:?}\nours:   {o:?}"
    );
    assert!(
        six_decimals(&t[4]) && six_decimals(&o[4]),
        "%2f rates: {t:?} {o:?}"
    );
    assert!(six_decimals(&t[5]) && six_decimals(&o[5]));
    let our_totals = ours.iter().filter(|r| r[3] == "Aggregated").count();
    assert!(our_totals >= 3, "a total row about every second: {ours:?}");
    let names: std::collections::BTreeSet<&str> = ours[1..].iter().map(|r| r[3].as_str()).collect();
    assert!(
        names.len() >= 3,
        "full history has per-name rows: {names:?}"
    );
}
