//! Times `LD_persist_records` for N records (default 1,000,000) and prints the SQLite file's
//! size. Run with `cargo run --release -p load-density --example persist_bench [-- N]`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use load_density::core::{RequestEvent, TestRecord};

fn event(i: u64) -> RequestEvent {
    let name = format!("/api/items/{}", i % 10);
    let failed = i.is_multiple_of(20);
    RequestEvent {
        request_type: Arc::from("GET"),
        url: Arc::from(format!("http://127.0.0.1:8080{name}")),
        name: Arc::from(name),
        status: Some(if failed { 503 } else { 200 }),
        response_time: Duration::from_micros(500 + (i * 7919) % 20_000),
        response_length: 1_000 + i % 100,
        error: failed.then(|| Arc::from("HTTP 503 Service Unavailable")),
        start_time: SystemTime::now(),
        start_delay: None,
    }
}

fn main() -> anyhow::Result<()> {
    let count: u64 = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 1_000_000,
    };
    let store = TestRecord::with_capacity(count as usize);
    let batch: Vec<RequestEvent> = (0..count).map(event).collect();
    store.record_events(&batch);
    drop(batch);
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("runs.db");
    let mut times = Vec::new();
    for round in 0..3 {
        let started = Instant::now();
        let run_id = load_density::store::persist_store(&db, Some("bench"), None, &store)?;
        let elapsed = started.elapsed().as_secs_f64();
        times.push(elapsed);
        println!("round {round}: run {run_id}, {count} records persisted in {elapsed:.3} s");
    }
    let size = std::fs::metadata(&db)?.len();
    let per_million = size as f64 / 3.0 / count as f64 * 1_000_000.0;
    times.sort_by(f64::total_cmp);
    println!(
        "SUMMARY {}",
        serde_json::json!({
            "records": count,
            "median_seconds": times[1],
            "file_bytes_per_million_records": per_million.round(),
        })
    );
    Ok(())
}
