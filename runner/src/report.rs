//! The summary report: totals, overall latency percentiles and one row per request name.
//!
//! [`build_summary`] reads the process-wide record store's exact statistics
//! ([`TestRecord::stats`](crate::core::TestRecord::stats)), so it covers every request since the
//! last `LD_clear_records`, including those past the record store's capacity, and its
//! percentiles come from the HDR histograms rather than from sorting every record.
//!
//! ```json
//! {"totals": {"requests": 10, "successes": 9, "failures": 1, "failure_rate": 0.1},
//!  "latency_overall": {"count": 10, "p50_ms": 1.2, "p90_ms": 2.0, "p95_ms": 2.1, "p99_ms": 3.0, "max_ms": 3.0},
//!  "per_name": {"/get": {"count": 9, "failures": 0, "min_ms": 0.8, "max_ms": 2.1, "mean_ms": 1.3,
//!                        "p50_ms": 1.2, "p90_ms": 2.0, "p95_ms": 2.1, "p99_ms": 2.1},
//!               "/status/503": {"count": 1, "failures": 1, ...}}}
//! ```
//!
//! The shape is the Python version's (`build_summary`), with these differences:
//! - `per_name` rows count failures too and say how many (`failures`); the Python rows left
//!   failures out;
//! - percentiles come from HDR histograms (three significant digits), clamped to the row's
//!   minimum and maximum, instead of interpolating between sorted samples;
//! - rows are keyed by name, in name order. When several request types share a name (`GET /x`
//!   and `POST /x`), the first type in alphabetical order keeps the plain name and the others
//!   are keyed `"<TYPE> <name>"` (`"POST /x"`); an empty name is keyed `"unknown"`.
//!
//! `totals` also counts `iterations` (passes over a group's scenario) and
//! `dropped_iterations` (iterations a schedule wanted that never started). When the run had
//! a schedule (an arrival-rate load model, or `constant_pacing` / `constant_throughput`
//! pacing), `latency_overall` and each `per_name` row also carry `corrected`:
//! `{"p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms"}` of the latency measured from each
//! iteration's due time (response time + the iteration's start delay).
//!
//! The file written by [`generate_summary_report`] follows the JSON schema checked in at
//! `runner/schema/summary.schema.json` ([`SUMMARY_SCHEMA`]).

use std::path::PathBuf;

use serde_json::{json, Map, Value};

use crate::core::{test_record_instance, RequestStats, StatsEntry};

/// The report name `LD_generate_summary_report` uses when none is given.
pub const DEFAULT_SUMMARY_REPORT_NAME: &str = "loaddensity-summary";

/// The JSON schema (draft 2020-12) of the summary.
pub const SUMMARY_SCHEMA: &str = include_str!("../schema/summary.schema.json");

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// The report name is empty.
    #[error("the report name is empty")]
    EmptyName,
    /// The file could not be written.
    #[error("cannot write report {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The report could not be turned into JSON text.
    #[error("cannot serialize the report")]
    Serialize(#[source] serde_json::Error),
}

/// The summary of every request recorded since the last clear (see the [module docs](self)).
pub fn build_summary() -> Value {
    summary_of(&test_record_instance().stats())
}

/// The summary of `stats`.
pub fn summary_of(stats: &RequestStats) -> Value {
    let total = stats.total();
    let requests = total.num_requests();
    let failures = total.num_failures();
    let mut per_name = Map::new();
    for (key, entry) in keyed_entries(stats) {
        per_name.insert(key, name_row(entry));
    }
    let mut latency_overall = json!({
        "count": requests,
        "p50_ms": total.percentile_ms(50.0),
        "p90_ms": total.percentile_ms(90.0),
        "p95_ms": total.percentile_ms(95.0),
        "p99_ms": total.percentile_ms(99.0),
        "max_ms": us_to_ms(total.max_response_time_us()),
    });
    if let Some(corrected) = corrected_row(total) {
        latency_overall["corrected"] = corrected;
    }
    json!({
        "totals": {
            "requests": requests,
            "successes": total.num_successes(),
            "failures": failures,
            "failure_rate": failures as f64 / requests.max(1) as f64,
            "iterations": stats.iterations(),
            "dropped_iterations": stats.dropped_iterations(),
        },
        "latency_overall": latency_overall,
        "per_name": per_name,
    })
}

/// The entries of `stats` with their `per_name` keys (see the [module docs](self)), in name
/// order.
pub(crate) fn keyed_entries(stats: &RequestStats) -> Vec<(String, &StatsEntry)> {
    let mut keyed: Vec<(String, &StatsEntry)> = Vec::new();
    let mut taken = Map::new();
    for entry in stats.entries() {
        let name = if entry.name().is_empty() {
            "unknown"
        } else {
            entry.name()
        };
        let key = row_key(&taken, entry.request_type(), name);
        taken.insert(key.clone(), Value::Null);
        keyed.push((key, entry));
    }
    keyed
}

/// `{"p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms"}` of the corrected latency, when the
/// entry has one.
fn corrected_row(entry: &StatsEntry) -> Option<Value> {
    crate::config::Percentiles::corrected(entry).and_then(|p| serde_json::to_value(p).ok())
}

/// Writes [`build_summary`] to `<report_name>.json` (indent 2, no trailing newline, like the
/// Python version) and returns the path. Where it goes follows
/// [`output_dir::report_path`](crate::output_dir::report_path): a name with an extension
/// keeps it, a relative name goes under the output directory.
///
/// # Errors
/// An empty name, or the file cannot be written.
pub fn generate_summary_report(report_name: &str) -> Result<PathBuf, ReportError> {
    generate_summary_report_in(report_name, None)
}

/// [`generate_summary_report`] under `output_dir` (the action's `output_dir` keyword) rather
/// than the process-wide output directory.
///
/// # Errors
/// An empty name, or the directory or the file cannot be written.
pub fn generate_summary_report_in(
    report_name: &str,
    output_dir: Option<&std::path::Path>,
) -> Result<PathBuf, ReportError> {
    if report_name.is_empty() {
        return Err(ReportError::EmptyName);
    }
    let path =
        crate::output_dir::report_path(report_name, "json", output_dir).map_err(|source| {
            ReportError::Write {
                path: output_dir
                    .map(std::path::Path::to_path_buf)
                    .or_else(crate::output_dir::output_dir)
                    .unwrap_or_default(),
                source,
            }
        })?;
    let text = serde_json::to_string_pretty(&build_summary()).map_err(ReportError::Serialize)?;
    std::fs::write(&path, text).map_err(|source| ReportError::Write {
        path: path.clone(),
        source,
    })?;
    tracing::info!(path = %path.display(), "summary report written");
    Ok(path)
}

/// The plain name, or `"<TYPE> <name>"` when the name is already taken by another type
/// (with a `#n` suffix in the unlikely case that is taken too).
fn row_key(rows: &Map<String, Value>, request_type: &str, name: &str) -> String {
    if !rows.contains_key(name) {
        return name.to_owned();
    }
    let typed = format!("{request_type} {name}");
    if !rows.contains_key(&typed) {
        return typed;
    }
    (2..)
        .map(|n| format!("{typed} #{n}"))
        .find(|key| !rows.contains_key(key))
        .unwrap_or(typed)
}

fn name_row(entry: &StatsEntry) -> Value {
    let mut row = json!({
        "count": entry.num_requests(),
        "failures": entry.num_failures(),
        "min_ms": us_to_ms(entry.min_response_time_us()),
        "max_ms": us_to_ms(entry.max_response_time_us()),
        "mean_ms": entry.mean_response_time_ms(),
        "p50_ms": entry.percentile_ms(50.0),
        "p90_ms": entry.percentile_ms(90.0),
        "p95_ms": entry.percentile_ms(95.0),
        "p99_ms": entry.percentile_ms(99.0),
    });
    if let Some(corrected) = corrected_row(entry) {
        row["corrected"] = corrected;
    }
    row
}

fn us_to_ms(us: u64) -> f64 {
    us as f64 / 1000.0
}
