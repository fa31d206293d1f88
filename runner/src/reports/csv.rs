//! `LD_generate_csv_report`: one CSV row per record, and the CSV writer every CSV output
//! shares (the Locust CSV files and the web UI's CSV downloads too).
//!
//! The file is `<csv_name>.csv` with Python's header `outcome, Method, test_url, name,
//! status_code, response_time_ms, response_length, error`, success rows then failure rows,
//! CRLF line endings and minimal quoting (Python's `csv` module, Excel dialect); a missing
//! value is an empty field and floats print as Python prints them (`12.5`, `20.0`).
//!
//! Difference from Python: when the record cap dropped records, a last row with outcome
//! `dropped` says how many, in its `error` field.

use std::io::{self, Write};
use std::path::PathBuf;

use load_density_core::{Record, TestRecord};

use super::fields::dropped_split;
use super::text::{py_float, report_path, write_file};
use crate::report::ReportError;

/// The name used when none is given.
pub const DEFAULT_NAME: &str = "default_name";

/// The header of the records CSV.
pub const HEADER: [&str; 8] = [
    "outcome",
    "Method",
    "test_url",
    "name",
    "status_code",
    "response_time_ms",
    "response_length",
    "error",
];

/// Writes one CSV field, quoted only when it holds a comma, a quote, CR or LF (quotes are
/// doubled), as Python's `csv` module does.
pub fn write_field(out: &mut impl Write, field: &str) -> io::Result<()> {
    if field.contains([',', '"', '\n', '\r']) {
        out.write_all(b"\"")?;
        out.write_all(field.replace('"', "\"\"").as_bytes())?;
        out.write_all(b"\"")
    } else {
        out.write_all(field.as_bytes())
    }
}

/// Writes one CSV row and its CRLF.
pub fn write_row<S: AsRef<str>>(out: &mut impl Write, fields: &[S]) -> io::Result<()> {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        write_field(out, field.as_ref())?;
    }
    out.write_all(b"\r\n")
}

/// Writes `<csv_name>.csv` from `store`, streaming over its records, and returns the path.
///
/// # Errors
/// An empty name, or the file cannot be written.
pub fn generate_csv_report(store: &TestRecord, csv_name: &str) -> Result<PathBuf, ReportError> {
    let path = report_path(csv_name, ".csv")?;
    let (dropped_s, dropped_f) = dropped_split(store);
    let path = store.with_records(|successes, failures| {
        write_file(path, |out| {
            write_row(out, &HEADER)?;
            for record in successes {
                write_record(out, "success", record)?;
            }
            for record in failures {
                write_record(out, "failure", record)?;
            }
            let dropped = dropped_s + dropped_f;
            if dropped > 0 {
                let note = format!(
                    "{dropped} records ({dropped_s} successes and {dropped_f} failures) were \
                     counted but not kept: the record store was full"
                );
                write_row(out, &["dropped", "", "", "", "", "", "", &note])?;
            }
            Ok(())
        })
    })?;
    tracing::info!(path = %path.display(), "CSV report written");
    Ok(path)
}

fn write_record(out: &mut impl Write, outcome: &str, record: &Record) -> io::Result<()> {
    let status = record
        .status_code
        .map(|s| s.to_string())
        .unwrap_or_default();
    write_row(
        out,
        &[
            outcome,
            &record.method,
            &record.test_url,
            &record.name,
            &status,
            &py_float(record.response_time_ms()),
            &record.response_length.to_string(),
            record.error.as_deref().unwrap_or(""),
        ],
    )
}
