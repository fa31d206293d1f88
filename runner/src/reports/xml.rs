//! `LD_generate_xml_report` and `LD_generate_xml`: the JSON report's objects as XML.
//!
//! The root is `<xml_data>`; each `Success_TestN` / `Failure_TestN` is an element with one
//! child element per field. The files are laid out as Python's `minidom.toprettyxml()` lays
//! them out: the declaration `<?xml version="1.0" ?>`, tab indentation, `\n` line endings,
//! `<tag/>` for an empty value, `&`, `<`, `>` and `"` escaped in text. The failure file is
//! written first, like Python's. The in-memory form is the compact `ElementTree.tostring`
//! text (`<xml_data />` when empty).
//!
//! Differences from Python: an empty store writes `<xml_data/>` instead of raising; records
//! dropped by the record cap are counted in a last `<Dropped_Records>` element; characters
//! XML cannot hold are written as U+FFFD (Python wrote a file no parser reads).

use std::io::{self, Write};
use std::path::PathBuf;

use load_density_core::{Record, TestRecord};

use super::fields::{dropped_split, failure_fields, success_fields};
use super::json::DROPPED_KEY;
use super::text::{report_path, write_file, xml_forbidden};
use crate::report::ReportError;

/// Writes `<xml_file_name>_failure.xml` then `<xml_file_name>_success.xml` and returns
/// (success path, failure path).
///
/// # Errors
/// An empty name, or a file that cannot be written.
pub fn generate_xml_report(
    store: &TestRecord,
    xml_file_name: &str,
) -> Result<(PathBuf, PathBuf), ReportError> {
    let success_path = report_path(xml_file_name, "_success.xml")?;
    let failure_path = report_path(xml_file_name, "_failure.xml")?;
    let (dropped_s, dropped_f) = dropped_split(store);
    store.with_records(|successes, failures| {
        let failure = write_file(failure_path, |out| {
            write_pretty(out, "Failure_Test", failures, dropped_f, |r| {
                failure_fields(r).into_iter().collect()
            })
        })?;
        let success = write_file(success_path, |out| {
            write_pretty(out, "Success_Test", successes, dropped_s, |r| {
                success_fields(r).into_iter().collect()
            })
        })?;
        tracing::info!(success = %success.display(), failure = %failure.display(), "XML report written");
        Ok((success, failure))
    })
}

/// The two documents in memory, compact (Python's `generate_xml`).
pub fn generate_xml(store: &TestRecord) -> (String, String) {
    let (dropped_s, dropped_f) = dropped_split(store);
    store.with_records(|successes, failures| {
        let mut s = Vec::new();
        let mut f = Vec::new();
        // Writing to a Vec cannot fail.
        let _ = write_compact(&mut s, "Success_Test", successes, dropped_s, |r| {
            success_fields(r).into_iter().collect()
        });
        let _ = write_compact(&mut f, "Failure_Test", failures, dropped_f, |r| {
            failure_fields(r).into_iter().collect()
        });
        (
            String::from_utf8_lossy(&s).into_owned(),
            String::from_utf8_lossy(&f).into_owned(),
        )
    })
}

type Fields<'r> = Vec<(&'static str, std::borrow::Cow<'r, str>)>;

fn write_pretty<'r>(
    out: &mut impl Write,
    prefix: &str,
    records: &'r [Record],
    dropped: u64,
    fields: impl Fn(&'r Record) -> Fields<'r>,
) -> io::Result<()> {
    out.write_all(b"<?xml version=\"1.0\" ?>\n")?;
    if records.is_empty() && dropped == 0 {
        return out.write_all(b"<xml_data/>\n");
    }
    out.write_all(b"<xml_data>\n")?;
    for (index, record) in records.iter().enumerate() {
        writeln!(out, "\t<{prefix}{}>", index + 1)?;
        for (key, value) in fields(record) {
            out.write_all(b"\t\t")?;
            pretty_element(out, key, &value)?;
        }
        writeln!(out, "\t</{prefix}{}>", index + 1)?;
    }
    if dropped > 0 {
        out.write_all(b"\t")?;
        pretty_element(out, DROPPED_KEY, &dropped.to_string())?;
    }
    out.write_all(b"</xml_data>\n")
}

/// `<key>value</key>\n`, or `<key/>\n` when empty, escaped as minidom escapes text.
fn pretty_element(out: &mut impl Write, key: &str, value: &str) -> io::Result<()> {
    if value.is_empty() {
        return writeln!(out, "<{key}/>");
    }
    write!(out, "<{key}>")?;
    // The XML parser Python goes through turns CR and CRLF into LF.
    let value = value.replace("\r\n", "\n").replace('\r', "\n");
    write_text(out, &value, true)?;
    writeln!(out, "</{key}>")
}

fn write_compact<'r>(
    out: &mut impl Write,
    prefix: &str,
    records: &'r [Record],
    dropped: u64,
    fields: impl Fn(&'r Record) -> Fields<'r>,
) -> io::Result<()> {
    if records.is_empty() && dropped == 0 {
        return out.write_all(b"<xml_data />");
    }
    out.write_all(b"<xml_data>")?;
    for (index, record) in records.iter().enumerate() {
        write!(out, "<{prefix}{}>", index + 1)?;
        for (key, value) in fields(record) {
            compact_element(out, key, &value)?;
        }
        write!(out, "</{prefix}{}>", index + 1)?;
    }
    if dropped > 0 {
        compact_element(out, DROPPED_KEY, &dropped.to_string())?;
    }
    out.write_all(b"</xml_data>")
}

/// `<key>value</key>` or `<key />`, escaped as ElementTree escapes text.
fn compact_element(out: &mut impl Write, key: &str, value: &str) -> io::Result<()> {
    if value.is_empty() {
        return write!(out, "<{key} />");
    }
    write!(out, "<{key}>")?;
    write_text(out, value, false)?;
    write!(out, "</{key}>")
}

fn write_text(out: &mut impl Write, value: &str, quote: bool) -> io::Result<()> {
    let mut buf = [0u8; 4];
    for c in value.chars() {
        match c {
            '&' => out.write_all(b"&amp;")?,
            '<' => out.write_all(b"&lt;")?,
            '>' => out.write_all(b"&gt;")?,
            '"' if quote => out.write_all(b"&quot;")?,
            c if xml_forbidden(c) => out.write_all("\u{fffd}".as_bytes())?,
            c => out.write_all(c.encode_utf8(&mut buf).as_bytes())?,
        }
    }
    Ok(())
}
