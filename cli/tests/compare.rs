//! `load-density compare DB BASELINE RUN`: the real binary over a real SQLite database.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use load_density::core::{RequestEvent, TestRecord};
use load_density::store;

fn event(name: &str, us: u64) -> RequestEvent {
    RequestEvent {
        request_type: Arc::from("GET"),
        name: Arc::from(name),
        url: Arc::from("http://127.0.0.1/"),
        status: Some(200),
        response_time: Duration::from_micros(us),
        response_length: 1,
        error: None,
        start_time: SystemTime::now(),
        start_delay: None,
    }
}

fn stored(db: &std::path::Path, latency_us: u64) -> anyhow::Result<i64> {
    let records = TestRecord::default();
    for i in 0..50 {
        records.record_events(&[event("/api", latency_us + i)]);
    }
    Ok(store::persist_store(db, None, None, &records)?)
}

#[test]
fn compare_exits_99_on_a_regression_and_0_without() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("runs.db");
    let baseline = stored(&db, 10_000)?;
    let slower = stored(&db, 20_000)?;
    let binary = env!("CARGO_BIN_EXE_load-density");

    let output = Command::new(binary)
        .arg("compare")
        .arg(&db)
        .args([baseline.to_string(), slower.to_string()])
        .output()?;
    let stdout = String::from_utf8(output.stdout)?;
    assert_eq!(output.status.code(), Some(99), "{stdout}");
    assert!(
        stdout.contains("/api") && stdout.contains("p50_ms +"),
        "{stdout}"
    );
    assert!(stdout.contains("REGRESSION"), "{stdout}");

    let output = Command::new(binary)
        .arg("compare")
        .arg(&db)
        .args([baseline.to_string(), slower.to_string()])
        .args(["--max-regression-pct", "150", "--json"])
        .output()?;
    assert_eq!(output.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    assert_eq!(json["regression"], false);
    assert_eq!(json["names"][0]["name"], "/api");

    let output = Command::new(binary)
        .arg("compare")
        .arg(&db)
        .args([baseline.to_string(), "999".to_owned()])
        .output()?;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr)?;
    assert!(stderr.contains("no run with id 999"), "{stderr}");
    Ok(())
}
