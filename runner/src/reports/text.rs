//! How the Python version prints values: `str()` of a float or of `None`, HTML escaping,
//! XML text escaping, and the writer every report file goes through.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use crate::report::ReportError;

/// Python's `repr(float)`: the shortest text that reads back as the same number, with `.0` on
/// whole numbers and an exponent below 1e-4 or from 1e16 (`1e-05`, `1e+16`).
pub fn py_float(value: f64) -> String {
    if value.is_nan() {
        return "nan".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-4..1e16).contains(&magnitude) {
        // Rust prints `1.5e-5`; Python prints `1.5e-05`.
        let text = format!("{value:e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let (sign, digits) = match exponent.strip_prefix('-') {
            Some(digits) => ('-', digits),
            None => ('+', exponent),
        };
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    let text = format!("{value}");
    if text.contains('.') {
        text
    } else {
        format!("{text}.0")
    }
}

/// Python's `str()` of an optional status code: `"200"` or `"None"`.
pub fn py_status(status: Option<u16>) -> String {
    status.map_or_else(|| "None".to_owned(), |s| s.to_string())
}

/// Python's `html.escape(text, quote=True)`: `& < > " '`.
pub fn escape_html(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(['&', '<', '>', '"', '\'']) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out.into()
}

/// A character XML 1.0 cannot hold (control characters other than tab, newline and carriage
/// return). Python writes them and produces a file no parser reads; reports write U+FFFD.
pub fn xml_forbidden(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}')
}

/// [`escape_html`] for text going into an XML document: also replaces the characters XML
/// cannot hold with U+FFFD.
pub fn escape_xml_attr(text: &str) -> String {
    escape_html(text)
        .chars()
        .map(|c| if xml_forbidden(c) { '\u{fffd}' } else { c })
        .collect()
}

/// `(year, month, day, seconds into the day)` of unix seconds, UTC (Howard Hinnant's
/// days-to-civil algorithm).
pub fn civil_utc(unix_secs: u64) -> (i64, i64, i64, u64) {
    let days = (unix_secs / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, unix_secs % 86_400)
}

/// Opens `path` for writing through a buffer, runs `write`, flushes, and names the file in
/// any error.
pub(crate) fn write_file(
    path: PathBuf,
    write: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> Result<PathBuf, ReportError> {
    let result = File::create(&path).and_then(|file| {
        let mut out = BufWriter::with_capacity(64 * 1024, file);
        write(&mut out)?;
        out.flush()
    });
    match result {
        Ok(()) => Ok(path),
        Err(source) => Err(ReportError::Write { path, source }),
    }
}

/// Checks a report name and adds `suffix` to it.
pub(crate) fn report_path(name: &str, suffix: &str) -> Result<PathBuf, ReportError> {
    if name.is_empty() {
        return Err(ReportError::EmptyName);
    }
    Ok(PathBuf::from(format!("{name}{suffix}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_python_prints_them() {
        assert_eq!(py_float(12.5), "12.5");
        assert_eq!(py_float(20.0), "20.0");
        assert_eq!(py_float(0.0), "0.0");
        assert_eq!(py_float(0.001), "0.001");
        assert_eq!(py_float(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(py_float(0.000015), "1.5e-05");
        assert_eq!(py_float(1e16), "1e+16");
        assert_eq!(py_float(123456.789), "123456.789");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_utc(0), (1970, 1, 1, 0));
        assert_eq!(civil_utc(951_782_400 + 3661), (2000, 2, 29, 3661));
        assert_eq!(civil_utc(1_798_761_599), (2026, 12, 31, 86_399));
    }

    #[test]
    fn html_escaping_matches_python() {
        assert_eq!(escape_html(r#"a&b<c>"d'"#), "a&amp;b&lt;c&gt;&quot;d&#x27;");
        assert_eq!(escape_xml_attr("a\u{1}b"), "a\u{fffd}b");
    }
}
