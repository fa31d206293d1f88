//! `ld-bench-reports`: writes one report over a large record store and prints how long it
//! took and how much the process's peak RSS grew while writing it; or times the run monitor's
//! per-second threshold evaluation.
//!
//! ```sh
//! cargo build --release -p ld-bench-targets
//! ld-bench-reports report KIND [RECORDS] [DIR]   # KIND: none json xml csv junit html summary
//! ld-bench-reports thresholds [NAMES] [ROUNDS]
//! ```
//!
//! `report` fills the process-wide record store with RECORDS (default 1,000,000) records
//! (90 % successes over 20 names, 10 % failures with 5 messages), then writes report KIND
//! under DIR (default: a temporary directory, removed) and prints one JSON line:
//! `{"report", "records", "fill_s", "write_s", "bytes", "hwm_store_kib", "hwm_end_kib",
//! "growth_kib"}`; `hwm_*` are the process's VmHWM after filling and at the end, so
//! `growth_kib` is what writing the report added to the peak. `none` writes nothing (the
//! baseline). Run one process per report: the peak only grows.
//!
//! `thresholds` builds statistics with NAMES names (default 100) and 1,000,000 requests,
//! then times ROUNDS (default 200) of what the run monitor does each second with 8 threshold
//! conditions: copy the statistics and evaluate; prints `{"names", "rounds",
//! "us_per_evaluation", "cpu_share_at_1_per_s"}`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context as _};
use load_density::core::{test_record_instance, RequestEvent, RequestStats};
use load_density::reports;
use load_density::thresholds::{Observation, Thresholds};

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

struct Shapes {
    get: Arc<str>,
    names: Vec<(Arc<str>, Arc<str>)>,
    errors: Vec<Arc<str>>,
}

fn shapes(names: usize) -> Shapes {
    Shapes {
        get: Arc::from("GET"),
        names: (0..names)
            .map(|i| {
                (
                    Arc::from(format!("/api/item/{i}")),
                    Arc::from(format!("http://127.0.0.1:8080/api/item/{i}?q=a,b")),
                )
            })
            .collect(),
        errors: (0..5)
            .map(|i| Arc::from(format!("HTTP 50{i} \"Service\" <Unavailable> & co")))
            .collect(),
    }
}

fn event(shapes: &Shapes, i: usize, now: SystemTime) -> RequestEvent {
    let (name, url) = &shapes.names[i % shapes.names.len()];
    let failed = i % 10 == 9;
    RequestEvent {
        request_type: shapes.get.clone(),
        name: name.clone(),
        url: url.clone(),
        status: Some(if failed { 503 } else { 200 }),
        response_time: Duration::from_micros(500 + (i as u64 * 7919) % 200_000),
        response_length: 1000 + (i as u64 % 500),
        error: failed.then(|| shapes.errors[i % shapes.errors.len()].clone()),
        start_time: now,
        start_delay: None,
    }
}

fn report(kind: &str, records: usize, dir: Option<&str>) -> anyhow::Result<()> {
    let store = test_record_instance();
    store.set_capacity(records);
    let shapes = shapes(20);
    let now = SystemTime::now();
    let started = Instant::now();
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..records {
        batch.push(event(&shapes, i, now));
        if batch.len() == 10_000 {
            store.record_events(&batch);
            batch.clear();
        }
    }
    store.record_events(&batch);
    drop(batch);
    let fill_s = started.elapsed().as_secs_f64();
    let hwm_store = vm_hwm_kib();
    let temp = tempfile_dir()?;
    let dir = dir
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| temp.clone());
    let base = dir.join("bench").display().to_string();
    let started = Instant::now();
    let paths: Vec<std::path::PathBuf> = match kind {
        "none" => Vec::new(),
        "json" => {
            let (s, f) = reports::json::generate_json_report(store, &base)?;
            vec![s, f]
        }
        "xml" => {
            let (s, f) = reports::xml::generate_xml_report(store, &base)?;
            vec![s, f]
        }
        "csv" => vec![reports::csv::generate_csv_report(store, &base)?],
        "junit" => vec![reports::junit::generate_junit_report(store, &base)?],
        "html" => vec![reports::html::generate_html_report(store, &base)?],
        "summary" => vec![reports::generate_summary_report(&base)?],
        other => bail!("unknown report {other:?} (none json xml csv junit html summary)"),
    };
    let write_s = started.elapsed().as_secs_f64();
    let bytes: u64 = paths
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    let hwm_end = vm_hwm_kib();
    let _ = std::fs::remove_dir_all(&temp);
    println!(
        "{}",
        serde_json::json!({
            "report": kind, "records": records, "fill_s": fill_s, "write_s": write_s,
            "bytes": bytes, "hwm_store_kib": hwm_store, "hwm_end_kib": hwm_end,
            "growth_kib": hwm_end.saturating_sub(hwm_store),
        })
    );
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("ld-bench-reports-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    Ok(dir)
}

fn thresholds(names: usize, rounds: u32) -> anyhow::Result<()> {
    let shapes = shapes(names);
    let now = SystemTime::now();
    let mut stats = RequestStats::new();
    for i in 0..1_000_000 {
        stats.add(&event(&shapes, i, now));
    }
    let thresholds = Thresholds::parse(&serde_json::json!({
        "response_time": ["p(95)<200", "p(99)<500", "avg<100"],
        "response_time{name:/api/item/7}": ["p(99)<500"],
        "response_time{type:GET}": ["med<100"],
        "failure_rate": [{"threshold": "rate<0.2", "abort_on_fail": true}],
        "requests": ["rate>100", "count>0"],
    }))?;
    let started = Instant::now();
    let mut failed = 0;
    for _ in 0..rounds {
        let copy = stats.clone();
        let results = thresholds.evaluate(&Observation {
            stats: Some(&copy),
            elapsed_s: 10.0,
            checks: None,
            dropped_iterations: None,
            groups: &[],
        });
        failed += results.iter().filter(|r| !r.ok).count();
    }
    let us = started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
    println!(
        "{}",
        serde_json::json!({
            "names": names, "rounds": rounds, "us_per_evaluation": us,
            "cpu_share_at_1_per_s": us / 1e6, "failed_conditions": failed / rounds as usize,
        })
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize, default: usize| -> anyhow::Result<usize> {
        args.get(i)
            .map(|s| s.parse().with_context(|| format!("not a number: {s}")))
            .unwrap_or(Ok(default))
    };
    match args.first().map(String::as_str) {
        Some("report") => {
            let kind = args.get(1).context("report KIND [RECORDS] [DIR]")?;
            report(kind, number(2, 1_000_000)?, args.get(3).map(String::as_str))
        }
        Some("thresholds") => thresholds(number(1, 100)?, number(2, 200)? as u32),
        _ => bail!(
            "usage: ld-bench-reports report KIND [RECORDS] [DIR] | thresholds [NAMES] [ROUNDS]"
        ),
    }
}
