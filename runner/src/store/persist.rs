//! `persist_records`: one run, its records and its statistics, in one transaction.

use std::path::Path;
use std::time::SystemTime;

use hdrhistogram::serialization::{Serializer as _, V2Serializer};
use load_density_core::record::{test_record_instance, Record, TestRecord};
use load_density_core::stats::{RequestStats, StatsEntry};
use rusqlite::{Statement, Transaction};
use serde_json::Value;

use super::{open, sql_error, StoreError};

/// Rows per multi-row `INSERT` (9 parameters each; SQLite allows 32,766 per statement).
const ROWS_PER_INSERT: usize = 256;
const RECORD_COLUMNS: usize = 9;

/// Stores the process-wide record store ([`test_record_instance`]) as a new run and returns
/// its id (Python's `persist_records`). The store is not cleared.
///
/// `metadata` is stored as JSON (`{}` when `None`); `label` as given.
///
/// # Errors
/// [`StoreError`] when the database cannot be opened or written; nothing is stored then.
pub fn persist_records(
    database_path: &Path,
    label: Option<&str>,
    metadata: Option<&Value>,
) -> Result<i64, StoreError> {
    persist_store(database_path, label, metadata, test_record_instance())
}

/// Like [`persist_records`], for any record store.
///
/// # Errors
/// See [`persist_records`].
pub fn persist_store(
    database_path: &Path,
    label: Option<&str>,
    metadata: Option<&Value>,
    store: &TestRecord,
) -> Result<i64, StoreError> {
    let mut connection = open(database_path)?;
    let stats = store.stats();
    let metadata_json = match metadata {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(value) => value.to_string(),
    };
    let transaction = connection
        .transaction()
        .map_err(sql_error(database_path, "starting a transaction"))?;
    let run_id = store.with_records(|successes, failures| {
        let started_at = started_at(successes.iter().chain(failures));
        transaction
            .execute(
                "INSERT INTO load_density_runs (started_at, label, metadata_json) VALUES (?1, ?2, ?3)",
                (&started_at, label, &metadata_json),
            )
            .map_err(sql_error(database_path, "inserting the run"))?;
        let run_id = transaction.last_insert_rowid();
        insert_records(&transaction, database_path, run_id, successes, failures)?;
        Ok::<_, StoreError>(run_id)
    })?;
    insert_stats(&transaction, database_path, run_id, &stats)?;
    transaction
        .commit()
        .map_err(sql_error(database_path, "committing the run"))?;
    Ok(run_id)
}

/// ISO-8601 UTC at second precision with `+00:00`: the earliest record's start, else now.
fn started_at<'a>(records: impl Iterator<Item = &'a Record>) -> String {
    let first = records
        .map(Record::start_time)
        .min()
        .unwrap_or_else(SystemTime::now);
    chrono::DateTime::<chrono::Utc>::from(first)
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string()
}

fn insert_statement<'t>(
    transaction: &'t Transaction<'_>,
    path: &Path,
    rows: usize,
) -> Result<Statement<'t>, StoreError> {
    let row = format!("({})", ["?"; RECORD_COLUMNS].join(","));
    let sql = format!(
        "INSERT INTO load_density_records (run_id, outcome, method, test_url, name, status_code, \
         response_time_ms, response_length, error) VALUES {}",
        vec![row; rows].join(",")
    );
    transaction
        .prepare(&sql)
        .map_err(sql_error(path, "preparing the record insert"))
}

fn insert_records(
    transaction: &Transaction<'_>,
    path: &Path,
    run_id: i64,
    successes: &[Record],
    failures: &[Record],
) -> Result<(), StoreError> {
    let rows = successes
        .iter()
        .map(|r| ("success", r))
        .chain(failures.iter().map(|r| ("failure", r)));
    let total = successes.len() + failures.len();
    let mut full = insert_statement(transaction, path, ROWS_PER_INSERT.min(total.max(1)))?;
    let mut rows = rows;
    let mut remaining = total;
    while remaining > 0 {
        let count = ROWS_PER_INSERT.min(remaining);
        let mut partial;
        let statement = if count == ROWS_PER_INSERT || count == total {
            &mut full
        } else {
            partial = insert_statement(transaction, path, count)?;
            &mut partial
        };
        for row in 0..count {
            let Some((outcome, record)) = rows.next() else {
                break;
            };
            bind_record(statement, row * RECORD_COLUMNS, run_id, outcome, record)
                .map_err(sql_error(path, "binding a record"))?;
        }
        statement
            .raw_execute()
            .map_err(sql_error(path, "inserting records"))?;
        remaining -= count;
    }
    Ok(())
}

fn bind_record(
    statement: &mut Statement<'_>,
    offset: usize,
    run_id: i64,
    outcome: &str,
    record: &Record,
) -> rusqlite::Result<()> {
    statement.raw_bind_parameter(offset + 1, run_id)?;
    statement.raw_bind_parameter(offset + 2, outcome)?;
    statement.raw_bind_parameter(offset + 3, &*record.method)?;
    statement.raw_bind_parameter(offset + 4, &*record.test_url)?;
    statement.raw_bind_parameter(offset + 5, &*record.name)?;
    // The column is TEXT: SQLite stores the integer as its decimal text ("200").
    statement.raw_bind_parameter(offset + 6, record.status_code)?;
    statement.raw_bind_parameter(offset + 7, record.response_time_ms())?;
    statement.raw_bind_parameter(offset + 8, clamp_i64(record.response_length))?;
    statement.raw_bind_parameter(offset + 9, record.error.as_deref())?;
    Ok(())
}

fn clamp_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn insert_stats(
    transaction: &Transaction<'_>,
    path: &Path,
    run_id: i64,
    stats: &RequestStats,
) -> Result<(), StoreError> {
    let mut statement = transaction
        .prepare(
            "INSERT INTO load_density_run_stats (run_id, request_type, name, num_requests, \
             num_failures, failure_rate, requests_per_second, min_ms, mean_ms, p50_ms, p90_ms, \
             p95_ms, p99_ms, max_ms, total_bytes, histogram) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        )
        .map_err(sql_error(path, "preparing the statistics insert"))?;
    let entries = stats.entries().into_iter().chain([stats.total()]);
    for entry in entries {
        if entry.num_requests() == 0 {
            continue;
        }
        let histogram = serialize_histogram(entry)?;
        statement
            .execute(rusqlite::params![
                run_id,
                entry.request_type(),
                entry.name(),
                clamp_i64(entry.num_requests()),
                clamp_i64(entry.num_failures()),
                entry.failure_ratio(),
                entry.total_rps(),
                entry.min_response_time_us() as f64 / 1000.0,
                entry.mean_response_time_ms(),
                entry.percentile_ms(50.0),
                entry.percentile_ms(90.0),
                entry.percentile_ms(95.0),
                entry.percentile_ms(99.0),
                entry.max_response_time_us() as f64 / 1000.0,
                clamp_i64(entry.total_content_length()),
                histogram,
            ])
            .map_err(sql_error(path, "inserting statistics"))?;
    }
    Ok(())
}

fn serialize_histogram(entry: &StatsEntry) -> Result<Vec<u8>, StoreError> {
    let mut bytes = Vec::new();
    V2Serializer::new()
        .serialize(entry.histogram(), &mut bytes)
        .map_err(|e| StoreError::Histogram {
            name: entry.name().to_owned(),
            message: format!("{e:?}"),
        })?;
    Ok(bytes)
}
