//! Reports: the Python LoadDensity report commands, the run report in HTML, and the summary.
//!
//! | command | module | file(s) |
//! |---|---|---|
//! | `LD_generate_json_report(json_file_name)` / `LD_generate_json` | [`json`] | `<name>_success.json`, `<name>_failure.json` |
//! | `LD_generate_xml_report(xml_file_name)` / `LD_generate_xml` | [`xml`] | `<name>_success.xml`, `<name>_failure.xml` |
//! | `LD_generate_csv_report(csv_name)` | [`csv`] | `<name>.csv` |
//! | `LD_generate_junit_report(report_name)` | [`junit`] | `<name>.xml` |
//! | `LD_generate_html_report(html_name)` / `LD_generate_html` | [`html`] / [`html_fragments`] | `<name>.html` |
//! | `LD_generate_summary_report(report_name)` / `LD_summary` | [`crate::report`] | `<name>.json` |
//!
//! Every report reads the process-wide record store
//! ([`test_record_instance`](load_density_core::test_record_instance)). Files are written by
//! streaming over the stored records through a buffered writer; no report builds the whole
//! document in memory (the in-memory forms `LD_generate_json`, `LD_generate_xml` and
//! `LD_generate_html` do, by definition). While a file is written the store is read-locked:
//! requests recorded meanwhile (a report written during a run) wait for the write to end,
//! about half a second per million records for JSON, CSV and JUnit (bench/RESULTS.md).
//!
//! Differences from the Python version, on purpose:
//! - an empty store gives empty reports (`{}`, `<xml_data/>`, an HTML page saying no request
//!   was recorded) instead of raising for HTML, JSON and XML only;
//! - records past the store's capacity are counted, and every report says how many
//!   (`Dropped_Records` in JSON and XML, a `dropped` row in CSV, a `dropped_records` property
//!   in JUnit, a notice in HTML);
//! - the store keeps no response bodies or headers, so `text`, `content` and `headers` are
//!   `"None"`; 4xx/5xx failures keep their status code;
//! - an I/O error is an error naming the file, not a message on stderr and an empty path;
//! - `LD_generate_html_report` writes a run report (totals, thresholds, per-name percentiles,
//!   charts, errors, first failures) instead of one table per record.

pub mod csv;
pub mod fields;
pub mod html;
pub mod html_fragments;
pub mod json;
pub mod junit;
pub mod locust_csv;
pub(crate) mod locust_files;
pub(crate) mod svg;
pub mod text;
pub mod xml;

use parking_lot::Mutex;

pub use crate::report::{
    build_summary, generate_summary_report, summary_of, ReportError, DEFAULT_SUMMARY_REPORT_NAME,
    SUMMARY_SCHEMA,
};
use crate::Summary;

/// What the reports know about the last run that finished in this process.
#[derive(Debug, Clone)]
pub struct LastRun {
    /// Its summary (with the thresholds' results and verdict, when it had thresholds).
    pub summary: Summary,
    /// The most workers it ran on at once (0 for a local run).
    pub workers: usize,
    /// When it ended.
    pub ended: std::time::SystemTime,
    /// What the run monitor recorded (the per-second history).
    pub recording: crate::monitor::RunRecording,
}

static LAST_RUN: Mutex<Option<LastRun>> = Mutex::new(None);

/// Records the run that just finished, for the reports written after it.
pub fn set_last_run(summary: &Summary, recording: crate::monitor::RunRecording) {
    *LAST_RUN.lock() = Some(LastRun {
        summary: summary.clone(),
        workers: recording.workers,
        recording,
        ended: std::time::SystemTime::now(),
    });
}

/// The last run that finished in this process, if any.
pub fn last_run() -> Option<LastRun> {
    LAST_RUN.lock().clone()
}
