//! SQLite persistence (`LD_persist_records`, `LD_list_runs`, `LD_fetch_run_records`) and run
//! comparison (`LD_compare_runs`), on real databases in temporary directories.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use load_density::core::{test_record_instance, RequestEvent, TestRecord};
use load_density::executor::{self, error_chain, ActionResult};
use load_density::store::{self, StoreError};
use load_density_testkit::HttpTarget;
use serde_json::{json, Value};

/// The process-wide record store is shared by the tests that run commands.
fn global_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn event(name: &str, us: u64, error: Option<&str>) -> RequestEvent {
    RequestEvent {
        request_type: Arc::from("GET"),
        name: Arc::from(name),
        url: Arc::from(format!("http://127.0.0.1/{name}")),
        status: Some(if error.is_some() { 503 } else { 200 }),
        response_time: Duration::from_micros(us),
        response_length: 7,
        error: error.map(Arc::from),
        start_time: SystemTime::now(),
        start_delay: None,
    }
}

fn ok_value(result: &ActionResult) -> &Value {
    match &result.outcome {
        Ok(value) => value,
        Err(error) => panic!("action {} failed: {}", result.index, error_chain(error)),
    }
}

fn run(doc: Value) -> Vec<ActionResult> {
    executor::execute_document(&doc).expect("a valid document")
}

#[test]
fn persist_list_fetch_round_trip_with_the_python_schema() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("runs.db");
    let store = TestRecord::default();
    store.record_events(&[
        event("/a", 1_500, None),
        event("/b", 2_000, Some("HTTP 503")),
        event("/a", 2_500, None),
    ]);
    let first = store::persist_store(&db, Some("first"), Some(&json!({"build": "é1"})), &store)?;
    let second = store::persist_store(&db, None, None, &store)?;
    assert_eq!(second, first + 1);

    let runs = store::list_runs(&db, 20)?;
    assert_eq!(
        runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        [second, first]
    );
    assert_eq!(runs[1].label.as_deref(), Some("first"));
    assert_eq!(runs[1].metadata_json.as_deref(), Some(r#"{"build":"é1"}"#));
    assert_eq!(runs[0].metadata_json.as_deref(), Some("{}"));
    assert_eq!(runs[0].started_at.len(), "2026-04-28T10:00:00+00:00".len());
    assert!(
        runs[0].started_at.ends_with("+00:00"),
        "{}",
        runs[0].started_at
    );
    assert_eq!(store::list_runs(&db, 1)?.len(), 1);

    let records = store::fetch_run_records(&db, first)?;
    let outcomes: Vec<_> = records.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(outcomes, ["success", "success", "failure"]);
    assert_eq!(records[0].method.as_deref(), Some("GET"));
    assert_eq!(records[0].name.as_deref(), Some("/a"));
    assert_eq!(records[0].status_code.as_deref(), Some("200"));
    assert_eq!(records[0].response_time_ms, Some(1.5));
    assert_eq!(records[0].response_length, Some(7));
    assert_eq!(records[2].error.as_deref(), Some("HTTP 503"));
    assert_eq!(records[2].status_code.as_deref(), Some("503"));
    assert!(
        store::fetch_run_records(&db, 9_999)?.is_empty(),
        "unknown run: []"
    );

    let stats = store::run_stats(&db, first)?;
    let names: Vec<_> = stats.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["/a", "/b", "Aggregated"]);
    assert_eq!(stats[0].num_requests, 2);
    assert_eq!(stats[1].num_failures, 1);
    assert_eq!(stats[2].num_requests, 3);
    let histogram = stats[0].histogram.as_ref().expect("the histogram decodes");
    assert_eq!(histogram.len(), 2);
    assert!((stats[0].p50_ms - 1.5).abs() < 0.01, "{}", stats[0].p50_ms);

    // The schema is Python's, and foreign keys cascade.
    let connection = rusqlite::Connection::open(&db)?;
    let sql: String = connection.query_row(
        "SELECT sql FROM sqlite_master WHERE name = 'load_density_records'",
        [],
        |row| row.get(0),
    )?;
    for column in [
        "run_id INTEGER NOT NULL",
        "outcome TEXT NOT NULL",
        "status_code TEXT",
        "response_time_ms REAL",
        "response_length INTEGER",
        "ON DELETE CASCADE",
    ] {
        assert!(sql.contains(column), "{column} missing from {sql}");
    }
    let indexes: Vec<String> = connection
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'idx_%' ORDER BY name")?
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    assert_eq!(indexes, ["idx_records_name", "idx_records_run_id"]);
    connection.pragma_update(None, "foreign_keys", "ON")?;
    connection.execute("DELETE FROM load_density_runs WHERE id = ?1", [first])?;
    let left: i64 = connection.query_row(
        "SELECT count(*) FROM load_density_records WHERE run_id = ?1",
        [first],
        |row| row.get(0),
    )?;
    assert_eq!(left, 0, "the cascade removed the run's records");
    assert_eq!(store::fetch_run_records(&db, second)?.len(), 3);
    Ok(())
}

#[test]
fn an_unwritable_path_and_an_unknown_run_are_clear_errors() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let missing_dir = dir.path().join("no-such-dir").join("runs.db");
    let error = store::persist_store(&missing_dir, None, None, &TestRecord::default())
        .expect_err("a missing directory cannot hold a database");
    assert!(matches!(error, StoreError::Open { .. }), "{error:?}");
    assert!(error.to_string().contains("no-such-dir"), "{error}");

    let db = dir.path().join("runs.db");
    let run = store::persist_store(&db, None, None, &TestRecord::default())?;
    let error = store::compare_runs(&db, run, run + 41, 10.0).expect_err("unknown run");
    assert_eq!(
        error.to_string(),
        format!(
            "SQLite database {}: no run with id {}",
            db.display(),
            run + 41
        )
    );

    let not_db = dir.path().join("text.db");
    std::fs::write(
        &not_db,
        "this is not a database, just some text that is long enough",
    )?;
    let error = store::list_runs(&not_db, 5).expect_err("not a database");
    assert!(error.to_string().contains("text.db"), "{error}");
    Ok(())
}

#[test]
fn comparison_flags_a_percentile_that_grew_past_the_share() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("runs.db");
    let fast = TestRecord::default();
    let slow = TestRecord::default();
    for i in 0..100 {
        fast.record_events(&[event("/a", 10_000 + i, None), event("/b", 5_000, None)]);
        // /a is 50% slower; /b is the same; /c only exists in the second run.
        slow.record_events(&[
            event("/a", 15_000 + i, None),
            event("/b", 5_000, None),
            event("/c", 1_000, Some("boom")),
        ]);
    }
    let baseline = store::persist_store(&db, Some("base"), None, &fast)?;
    let run = store::persist_store(&db, Some("slow"), None, &slow)?;

    let same = store::compare_runs(&db, baseline, baseline, 10.0)?;
    assert!(!same.regression);
    let comparison = store::compare_runs(&db, baseline, run, 10.0)?;
    assert!(comparison.regression);
    let regressed: Vec<_> = comparison
        .regressions()
        .iter()
        .map(|n| n.name.clone())
        .collect();
    assert_eq!(regressed, ["/a", "Aggregated"]);
    let a = &comparison.names[0];
    let delta = a.delta.expect("both runs have /a");
    assert!((delta.p50_ms - 5.0).abs() < 0.1, "{delta:?}");
    let c = comparison
        .names
        .iter()
        .find(|n| n.name == "/c")
        .expect("/c");
    assert!(c.baseline.is_none() && c.delta.is_none());
    assert_eq!(c.run.map(|f| f.failure_rate), Some(1.0));
    // A generous allowance accepts the slower run.
    assert!(!store::compare_runs(&db, baseline, run, 60.0)?.regression);
    assert!(comparison.render().contains("REGRESSION"));
    Ok(())
}

#[test]
fn commands_persist_a_real_run_and_compare() -> anyhow::Result<()> {
    let _guard = global_lock();
    let runtime = tokio::runtime::Runtime::new()?;
    let target = runtime.block_on(HttpTarget::start())?;
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("runs.db").display().to_string();
    test_record_instance().clear_records();
    let results = run(json!([
        ["LD_start_test", {
            "user_detail_dict": {"user": "fast_http_user"},
            "user_count": 2, "spawn_rate": 10, "test_time": 1,
            "tasks": [
                {"method": "get", "request_url": target.url("/get")},
                {"method": "get", "request_url": target.url("/status/500")}
            ],
            "print_stats": false
        }],
        ["LD_persist_records", {"database_path": db, "label": "run 1", "metadata": {"k": 1}}],
        ["LD_persist_records", [db]],
        ["LD_list_runs", {"database_path": db, "limit": 5}],
        ["LD_fetch_run_records", {"database_path": db, "run_id": 1}],
        ["LD_compare_runs", {"database_path": db, "baseline_run_id": 1, "run_id": 2}],
        ["LD_fetch_run_records", {"database_path": db, "run_id": 77}],
        ["LD_compare_runs", {"database_path": db, "baseline_run_id": 1, "run_id": 77}],
        ["LD_persist_records", {"database_path": dir.path().join("nope/x.db").display().to_string()}]
    ]));
    let summary = ok_value(&results[0]);
    let requests = summary["totals"]["requests"].as_u64().expect("requests");
    assert!(requests > 0);
    assert_eq!(target.served(), requests);
    assert_eq!(ok_value(&results[1]), &json!(1));
    assert_eq!(ok_value(&results[2]), &json!(2));
    let runs = ok_value(&results[3]).as_array().expect("a list");
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1]["label"], "run 1");
    assert_eq!(runs[1]["metadata_json"], r#"{"k":1}"#);
    let records = ok_value(&results[4]).as_array().expect("a list");
    assert_eq!(records.len() as u64, requests);
    let failures = records.iter().filter(|r| r["outcome"] == "failure").count() as u64;
    assert_eq!(
        failures,
        summary["totals"]["failures"].as_u64().expect("failures")
    );
    assert!(records.iter().any(|r| r["status_code"] == "500"));
    let comparison = ok_value(&results[5]);
    assert_eq!(comparison["regression"], false, "a run against itself");
    assert_eq!(ok_value(&results[6]), &json!([]));
    let unknown = match &results[7].outcome {
        Err(error) => error_chain(error),
        Ok(value) => panic!("unknown run compared: {value}"),
    };
    assert!(
        unknown.contains("LD_compare_runs") && unknown.contains("no run with id 77"),
        "{unknown}"
    );
    let unwritable = match &results[8].outcome {
        Err(error) => error_chain(error),
        Ok(value) => panic!("persisted into a missing directory: {value}"),
    };
    assert!(
        unwritable.contains("LD_persist_records: cannot open SQLite database"),
        "{unwritable}"
    );
    runtime.block_on(target.shutdown());
    Ok(())
}
