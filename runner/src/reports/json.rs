//! `LD_generate_json_report` and `LD_generate_json`: the records as two JSON objects.
//!
//! `<name>_success.json` maps `Success_Test1..N` and `<name>_failure.json` maps
//! `Failure_Test1..M` to the record's fields ([`fields`](super::fields)), every value a
//! string, with Python's `json.dump(indent=4, ensure_ascii=False)` layout and no trailing
//! newline. Differences from Python: an empty store writes `{}` instead of raising, and when
//! the record cap dropped records the object ends with `"Dropped_Records": "<count>"`.

use std::io::{self, Write};
use std::path::PathBuf;

use load_density_core::{Record, TestRecord};
use serde_json::{Map, Value};

use super::fields::{dropped_split, failure_fields, success_fields};
use super::text::{report_path, write_file};
use crate::report::ReportError;

/// The name used when none is given.
pub const DEFAULT_NAME: &str = "default_name";

/// The key that carries the count of records the cap did not keep.
pub const DROPPED_KEY: &str = "Dropped_Records";

/// Writes `<json_file_name>_success.json` and `<json_file_name>_failure.json` from `store`,
/// streaming over its records, and returns both paths.
///
/// # Errors
/// An empty name, or a file that cannot be written.
pub fn generate_json_report(
    store: &TestRecord,
    json_file_name: &str,
) -> Result<(PathBuf, PathBuf), ReportError> {
    let success_path = report_path(json_file_name, "_success.json")?;
    let failure_path = report_path(json_file_name, "_failure.json")?;
    let (dropped_s, dropped_f) = dropped_split(store);
    store.with_records(|successes, failures| {
        let success = write_file(success_path, |out| {
            write_object(out, "Success_Test", successes, dropped_s, |r| {
                success_fields(r).into_iter().collect()
            })
        })?;
        let failure = write_file(failure_path, |out| {
            write_object(out, "Failure_Test", failures, dropped_f, |r| {
                failure_fields(r).into_iter().collect()
            })
        })?;
        tracing::info!(success = %success.display(), failure = %failure.display(), "JSON report written");
        Ok((success, failure))
    })
}

/// The two objects in memory (Python's `generate_json`); an empty store gives two empty
/// objects.
pub fn generate_json(store: &TestRecord) -> (Value, Value) {
    let (dropped_s, dropped_f) = dropped_split(store);
    store.with_records(|successes, failures| {
        let object = |prefix: &str, fields: Vec<Vec<(&str, String)>>, dropped: u64| {
            let mut map = Map::new();
            for (index, row) in fields.into_iter().enumerate() {
                let row: Map<String, Value> = row
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), Value::String(v)))
                    .collect();
                map.insert(format!("{prefix}{}", index + 1), Value::Object(row));
            }
            if dropped > 0 {
                map.insert(DROPPED_KEY.to_owned(), Value::String(dropped.to_string()));
            }
            Value::Object(map)
        };
        let s = successes
            .iter()
            .map(|r| {
                success_fields(r)
                    .into_iter()
                    .map(|(k, v)| (k, v.into_owned()))
                    .collect()
            })
            .collect();
        let f = failures
            .iter()
            .map(|r| {
                failure_fields(r)
                    .into_iter()
                    .map(|(k, v)| (k, v.into_owned()))
                    .collect()
            })
            .collect();
        (
            object("Success_Test", s, dropped_s),
            object("Failure_Test", f, dropped_f),
        )
    })
}

fn write_object<'r>(
    out: &mut impl Write,
    prefix: &str,
    records: &'r [Record],
    dropped: u64,
    fields: impl Fn(&'r Record) -> Vec<(&'static str, std::borrow::Cow<'r, str>)>,
) -> io::Result<()> {
    if records.is_empty() && dropped == 0 {
        return out.write_all(b"{}");
    }
    out.write_all(b"{")?;
    let mut first = true;
    for (index, record) in records.iter().enumerate() {
        out.write_all(if first { b"\n" } else { b",\n" })?;
        first = false;
        write!(out, "    \"{prefix}{}\": {{", index + 1)?;
        for (n, (key, value)) in fields(record).iter().enumerate() {
            out.write_all(if n == 0 { b"\n" } else { b",\n" })?;
            write!(out, "        \"{key}\": ")?;
            write_string(out, value)?;
        }
        out.write_all(b"\n    }")?;
    }
    if dropped > 0 {
        out.write_all(if first { b"\n" } else { b",\n" })?;
        write!(out, "    \"{DROPPED_KEY}\": \"{dropped}\"")?;
    }
    out.write_all(b"\n}")
}

/// A JSON string as Python's `json.dump(ensure_ascii=False)` writes it (serde_json escapes the
/// same characters the same way).
fn write_string(out: &mut impl Write, value: &str) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value).map_err(io::Error::other)
}
