//! Reading stored runs: `list_runs`, `fetch_run_records` and the per-name statistics.

use std::path::Path;

use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use serde::Serialize;

use super::{open, sql_error, StoreError};

/// One row of `load_density_runs` (Python's `list_runs` dicts).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    /// The run id.
    pub id: i64,
    /// When the run's first stored request started, ISO-8601 UTC (`...+00:00`).
    pub started_at: String,
    /// The label given when persisting.
    pub label: Option<String>,
    /// The metadata as stored: a JSON string, returned raw as in Python.
    pub metadata_json: Option<String>,
}

/// One row of `load_density_records` (Python's `fetch_run_records` dicts).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredRecord {
    /// `success` or `failure`.
    pub outcome: String,
    /// The request type (`GET`, `WS`, ...).
    pub method: Option<String>,
    /// The target URL or address.
    pub test_url: Option<String>,
    /// The statistics name.
    pub name: Option<String>,
    /// The status code as text (`"200"`), when there was one.
    pub status_code: Option<String>,
    /// Latency in milliseconds.
    pub response_time_ms: Option<f64>,
    /// Bytes counted.
    pub response_length: Option<i64>,
    /// Failure reason.
    pub error: Option<String>,
}

/// One row of `load_density_run_stats`: one `(request_type, name)` of a run, or its total
/// (request type `""`, name `Aggregated`).
#[derive(Debug, Clone, Serialize)]
pub struct RunStatsRow {
    /// Request type.
    pub request_type: String,
    /// Name.
    pub name: String,
    /// Requests.
    pub num_requests: i64,
    /// Failed requests.
    pub num_failures: i64,
    /// Failures / requests.
    pub failure_rate: f64,
    /// Requests per second over the name's active time.
    pub requests_per_second: f64,
    /// Smallest latency, ms.
    pub min_ms: f64,
    /// Mean latency, ms.
    pub mean_ms: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Largest latency, ms.
    pub max_ms: f64,
    /// Bytes counted.
    pub total_bytes: i64,
    /// The latency histogram (microseconds), when its stored bytes decode.
    #[serde(skip)]
    pub histogram: Option<Histogram<u64>>,
}

/// The newest `limit` runs, newest first (Python's `list_runs`; `limit` 20 there).
///
/// # Errors
/// [`StoreError`] when the database cannot be opened or read.
pub fn list_runs(database_path: &Path, limit: i64) -> Result<Vec<RunRow>, StoreError> {
    let connection = open(database_path)?;
    let mut statement = connection
        .prepare(
            "SELECT id, started_at, label, metadata_json FROM load_density_runs \
             ORDER BY id DESC LIMIT ?1",
        )
        .map_err(sql_error(database_path, "listing runs"))?;
    let rows = statement
        .query_map([limit], |row| {
            Ok(RunRow {
                id: row.get(0)?,
                started_at: row.get(1)?,
                label: row.get(2)?,
                metadata_json: row.get(3)?,
            })
        })
        .map_err(sql_error(database_path, "listing runs"))?;
    rows.collect::<Result<_, _>>()
        .map_err(sql_error(database_path, "listing runs"))
}

/// The records of run `run_id`, in insertion order (successes, then failures). An unknown
/// run gives an empty list, as in Python.
///
/// # Errors
/// [`StoreError`] when the database cannot be opened or read.
pub fn fetch_run_records(
    database_path: &Path,
    run_id: i64,
) -> Result<Vec<StoredRecord>, StoreError> {
    let connection = open(database_path)?;
    let mut statement = connection
        .prepare(
            "SELECT outcome, method, test_url, name, status_code, response_time_ms, \
             response_length, error FROM load_density_records WHERE run_id = ?1 ORDER BY id",
        )
        .map_err(sql_error(database_path, "reading records"))?;
    let rows = statement
        .query_map([run_id], |row| {
            Ok(StoredRecord {
                outcome: row.get(0)?,
                method: row.get(1)?,
                test_url: row.get(2)?,
                name: row.get(3)?,
                status_code: row.get(4)?,
                response_time_ms: row.get(5)?,
                response_length: row.get(6)?,
                error: row.get(7)?,
            })
        })
        .map_err(sql_error(database_path, "reading records"))?;
    rows.collect::<Result<_, _>>()
        .map_err(sql_error(database_path, "reading records"))
}

/// The per-name statistics of run `run_id`, sorted by (name, request type), the total last.
///
/// # Errors
/// [`StoreError::UnknownRun`] for a run the database does not hold; otherwise as
/// [`list_runs`].
pub fn run_stats(database_path: &Path, run_id: i64) -> Result<Vec<RunStatsRow>, StoreError> {
    let connection = open(database_path)?;
    let exists: bool = connection
        .query_row(
            "SELECT EXISTS(SELECT 1 FROM load_density_runs WHERE id = ?1)",
            [run_id],
            |row| row.get(0),
        )
        .map_err(sql_error(database_path, "looking the run up"))?;
    if !exists {
        return Err(StoreError::UnknownRun {
            path: database_path.to_path_buf(),
            run_id,
        });
    }
    let mut statement = connection
        .prepare(
            "SELECT request_type, name, num_requests, num_failures, failure_rate, \
             requests_per_second, min_ms, mean_ms, p50_ms, p90_ms, p95_ms, p99_ms, max_ms, \
             total_bytes, histogram FROM load_density_run_stats WHERE run_id = ?1 \
             ORDER BY request_type = '', name, request_type",
        )
        .map_err(sql_error(database_path, "reading run statistics"))?;
    let rows = statement
        .query_map([run_id], |row| {
            let bytes: Vec<u8> = row.get(14)?;
            Ok(RunStatsRow {
                request_type: row.get(0)?,
                name: row.get(1)?,
                num_requests: row.get(2)?,
                num_failures: row.get(3)?,
                failure_rate: row.get(4)?,
                requests_per_second: row.get(5)?,
                min_ms: row.get(6)?,
                mean_ms: row.get(7)?,
                p50_ms: row.get(8)?,
                p90_ms: row.get(9)?,
                p95_ms: row.get(10)?,
                p99_ms: row.get(11)?,
                max_ms: row.get(12)?,
                total_bytes: row.get(13)?,
                histogram: Deserializer::new().deserialize(&mut bytes.as_slice()).ok(),
            })
        })
        .map_err(sql_error(database_path, "reading run statistics"))?;
    rows.collect::<Result<_, _>>()
        .map_err(sql_error(database_path, "reading run statistics"))
}
