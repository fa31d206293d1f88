//! `LD_generate_junit_report`: the records as JUnit XML, for CI systems.
//!
//! Without thresholds the file has Python's shape: `<report_name>.xml`, one line, no trailing
//! newline, a `<testsuite name="loaddensity" tests=".." failures="..">` with one `<testcase>`
//! per success (`classname` the method, `name` the request name or else its URL, `time` in
//! seconds with three decimals) and then one per failure holding a
//! `<failure message="..">..</failure>`. Values are escaped as Python's `html.escape` does.
//!
//! With thresholds ([`generate_junit_report_with`]) the document is a `<testsuites>` holding
//! that suite and a `thresholds` suite with one testcase per condition, failed when the
//! condition failed, so CI systems list the verdicts.
//!
//! Differences from Python: characters XML cannot hold are written as U+FFFD; when the record
//! cap dropped records, the suite starts with
//! `<properties><property name="dropped_records" value="N"/></properties>`.

use std::io::{self, Write};
use std::path::PathBuf;

use load_density_core::{Record, TestRecord};

use super::text::{escape_xml_attr, report_path, write_file};
use crate::report::ReportError;
use crate::thresholds::ThresholdResult;

/// The name used when none is given.
pub const DEFAULT_NAME: &str = "loaddensity-junit";

/// Writes `<report_name>.xml` in Python's shape and returns the path.
///
/// # Errors
/// An empty name, or the file cannot be written.
pub fn generate_junit_report(
    store: &TestRecord,
    report_name: &str,
) -> Result<PathBuf, ReportError> {
    generate_junit_report_with(store, report_name, &[])
}

/// Like [`generate_junit_report`]; with `thresholds`, the document is a `<testsuites>` with a
/// second suite, `thresholds`, holding one testcase per condition.
///
/// # Errors
/// An empty name, or the file cannot be written.
pub fn generate_junit_report_with(
    store: &TestRecord,
    report_name: &str,
    thresholds: &[ThresholdResult],
) -> Result<PathBuf, ReportError> {
    let path = report_path(report_name, ".xml")?;
    let dropped = store.dropped();
    let path = store.with_records(|successes, failures| {
        write_file(path, |out| {
            out.write_all(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>")?;
            if thresholds.is_empty() {
                return write_records_suite(out, successes, failures, dropped);
            }
            let failed = thresholds.iter().filter(|t| !t.ok).count();
            write!(
                out,
                "<testsuites name=\"loaddensity\" tests=\"{}\" failures=\"{}\">",
                successes.len() + failures.len() + thresholds.len(),
                failures.len() + failed
            )?;
            write_records_suite(out, successes, failures, dropped)?;
            write_thresholds_suite(out, thresholds, failed)?;
            out.write_all(b"</testsuites>")
        })
    })?;
    tracing::info!(path = %path.display(), "JUnit report written");
    Ok(path)
}

fn write_records_suite(
    out: &mut impl Write,
    successes: &[Record],
    failures: &[Record],
    dropped: u64,
) -> io::Result<()> {
    write!(
        out,
        "<testsuite name=\"loaddensity\" tests=\"{}\" failures=\"{}\">",
        successes.len() + failures.len(),
        failures.len()
    )?;
    if dropped > 0 {
        write!(
            out,
            "<properties><property name=\"dropped_records\" value=\"{dropped}\"/></properties>"
        )?;
    }
    for record in successes {
        write_case_open(out, record)?;
        out.write_all(b"/>")?;
    }
    for record in failures {
        write_case_open(out, record)?;
        let message = escape_xml_attr(record.error.as_deref().unwrap_or("request failed"));
        write!(
            out,
            "><failure message=\"{message}\">{message}</failure></testcase>"
        )?;
    }
    out.write_all(b"</testsuite>")
}

fn write_case_open(out: &mut impl Write, record: &Record) -> io::Result<()> {
    let name = if record.name.is_empty() {
        &record.test_url
    } else {
        &record.name
    };
    write!(
        out,
        "<testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
        escape_xml_attr(&record.method),
        escape_xml_attr(name),
        record.response_time_ms() / 1000.0
    )
}

fn write_thresholds_suite(
    out: &mut impl Write,
    thresholds: &[ThresholdResult],
    failed: usize,
) -> io::Result<()> {
    write!(
        out,
        "<testsuite name=\"thresholds\" tests=\"{}\" failures=\"{failed}\">",
        thresholds.len()
    )?;
    for result in thresholds {
        let metric = escape_xml_attr(&result.metric);
        let condition = escape_xml_attr(&result.condition);
        write!(
            out,
            "<testcase classname=\"{metric}\" name=\"{condition}\" time=\"0.000\""
        )?;
        if result.ok {
            out.write_all(b"/>")?;
        } else {
            let message = escape_xml_attr(&format!(
                "{} {}: value {}",
                result.metric,
                result.condition,
                result.value_text()
            ));
            write!(
                out,
                "><failure message=\"{message}\">{message}</failure></testcase>"
            )?;
        }
    }
    out.write_all(b"</testsuite>")
}
