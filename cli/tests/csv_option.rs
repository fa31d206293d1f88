//! `--csv PREFIX` on the real binary: Locust's four CSV files for a run that sets no
//! `csv_prefix`.

use std::process::Command;

#[test]
fn csv_writes_locusts_four_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = dir.path().join("run").display().to_string();
    // A loopback port nothing listens on: every request fails fast and is counted.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let document = serde_json::json!([["LD_start_test", {
        "user_count": 1, "spawn_rate": 1, "test_time": 2,
        "host": format!("http://127.0.0.1:{port}"),
        "wait_time": {"constant": 0.1}, "print_stats": false,
        "tasks": [{"method": "get", "request_url": "/"}]
    }]]);
    let output = Command::new(env!("CARGO_BIN_EXE_load-density"))
        .args([
            "--csv",
            &prefix,
            "--csv-full-history",
            "run-str",
            &document.to_string(),
        ])
        .env("RUST_LOG", "warn")
        .output()
        .expect("the binary runs");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let read = |suffix: &str| {
        std::fs::read_to_string(format!("{prefix}_{suffix}.csv"))
            .unwrap_or_else(|e| panic!("{prefix}_{suffix}.csv: {e}"))
    };
    let stats = read("stats");
    assert!(
        stats.starts_with("Type,Name,Request Count,Failure Count,"),
        "{stats}"
    );
    let total = stats.lines().last().expect("a total row");
    assert!(total.starts_with(",Aggregated,"), "{total}");
    let failures = read("failures");
    assert!(failures.starts_with("Method,Name,Error,Occurrences,First Seen,Last Seen\r\n"));
    assert!(
        failures.lines().count() >= 2,
        "the connection failures are listed: {failures}"
    );
    assert_eq!(read("exceptions"), "Count,Message,Traceback,Nodes\r\n");
    let history = read("stats_history");
    assert!(history.starts_with("Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,"));
    assert!(
        history
            .lines()
            .filter(|l| l.contains(",Aggregated,"))
            .count()
            >= 2,
        "{history}"
    );
    assert!(
        history.lines().any(|l| l.contains(",GET,")),
        "full history has per-name rows: {history}"
    );
}
