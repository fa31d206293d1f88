//! SQLite persistence of runs, and the comparison of two stored runs (cargo feature `sqlite`).
//!
//! The schema is the Python LoadDensity's (`load_density_runs`, `load_density_records` and
//! their two indexes), created with `IF NOT EXISTS` by every call, plus one table of our own,
//! `load_density_run_stats`: per `(request_type, name)` of a run (and the `Aggregated` total,
//! whose request type is `""`), its counts, rates, percentiles and the serialized HDR histogram
//! (V2 format, microseconds), so that two runs can be compared without their records.
//!
//! Differences from the Python version (spec §21.20):
//! - foreign keys are on for every connection, so deleting a run deletes its records and
//!   statistics (`ON DELETE CASCADE`);
//! - `started_at` is when the run's first stored request started (the time of persisting only
//!   when there are no records);
//! - [`fetch_run_records`] returns the rows in insertion order (`ORDER BY id`);
//! - inserts are batched into multi-row prepared statements inside one transaction.
//!
//! ```no_run
//! use load_density::store;
//! let run_id = store::persist_records("runs.db".as_ref(), Some("nightly"), None)?;
//! let runs = store::list_runs("runs.db".as_ref(), 20)?;
//! let comparison = store::compare_runs("runs.db".as_ref(), runs[1].id, run_id, 10.0)?;
//! assert_eq!(comparison.regression, !comparison.regressions().is_empty());
//! # Ok::<(), load_density::store::StoreError>(())
//! ```

mod compare;
mod persist;
mod query;

use std::path::{Path, PathBuf};

use rusqlite::Connection;

pub use compare::{compare_runs, Comparison, NameComparison};
pub use persist::{persist_records, persist_store};
pub use query::{fetch_run_records, list_runs, run_stats, RunRow, RunStatsRow, StoredRecord};

/// Why a persistence or comparison call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened or created (a missing directory, no permission).
    #[error("cannot open SQLite database {}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A statement failed (a read-only file, a full disk, a file that is not a database).
    #[error("SQLite database {}: {action}", path.display())]
    Sql {
        /// The database file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A run id the database does not hold (for a comparison, which needs its statistics).
    #[error("SQLite database {}: no run with id {run_id}", path.display())]
    UnknownRun {
        /// The database file.
        path: PathBuf,
        /// The id asked for.
        run_id: i64,
    },
    /// A stored HDR histogram could not be serialized.
    #[error("cannot serialize the HDR histogram of {name:?}: {message}")]
    Histogram {
        /// The statistics name.
        name: String,
        /// The serializer's message.
        message: String,
    },
}

/// The Python schema, plus the statistics table.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS load_density_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TEXT NOT NULL,
    label TEXT,
    metadata_json TEXT
);
CREATE TABLE IF NOT EXISTS load_density_records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    method TEXT,
    test_url TEXT,
    name TEXT,
    status_code TEXT,
    response_time_ms REAL,
    response_length INTEGER,
    error TEXT,
    FOREIGN KEY(run_id) REFERENCES load_density_runs(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS idx_records_run_id ON load_density_records(run_id);
CREATE INDEX IF NOT EXISTS idx_records_name ON load_density_records(name);
CREATE TABLE IF NOT EXISTS load_density_run_stats (
    run_id INTEGER NOT NULL,
    request_type TEXT NOT NULL,
    name TEXT NOT NULL,
    num_requests INTEGER NOT NULL,
    num_failures INTEGER NOT NULL,
    failure_rate REAL NOT NULL,
    requests_per_second REAL NOT NULL,
    min_ms REAL NOT NULL,
    mean_ms REAL NOT NULL,
    p50_ms REAL NOT NULL,
    p90_ms REAL NOT NULL,
    p95_ms REAL NOT NULL,
    p99_ms REAL NOT NULL,
    max_ms REAL NOT NULL,
    total_bytes INTEGER NOT NULL,
    histogram BLOB NOT NULL,
    PRIMARY KEY(run_id, request_type, name),
    FOREIGN KEY(run_id) REFERENCES load_density_runs(id) ON DELETE CASCADE
);
";

/// Opens (creating if needed) the database, with foreign keys on and the schema in place.
fn open(path: &Path) -> Result<Connection, StoreError> {
    let connection = Connection::open(path).map_err(|source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    connection
        .pragma_update(None, "foreign_keys", "ON")
        .map_err(sql_error(path, "switching foreign keys on"))?;
    connection
        .execute_batch(SCHEMA)
        .map_err(sql_error(path, "creating the schema"))?;
    Ok(connection)
}

/// A closure mapping a rusqlite error to [`StoreError::Sql`].
fn sql_error<'p>(
    path: &'p Path,
    action: &'static str,
) -> impl Fn(rusqlite::Error) -> StoreError + 'p {
    move |source| StoreError::Sql {
        path: path.to_path_buf(),
        action,
        source,
    }
}
