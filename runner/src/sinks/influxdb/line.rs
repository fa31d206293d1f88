//! InfluxDB line protocol: one point per request.
//!
//! `<measurement>,request_type=<rt>,name=<name> latency_ms=<float>,response_bytes=<int>i,`
//! `success=<true|false>[,error="<message, at most 512 characters>"] <unix time ns>`

use std::fmt::Write as _;
use std::time::UNIX_EPOCH;

use load_density_core::RequestEvent;

/// Characters of an error message kept in the `error` field.
pub const MAX_ERROR_CHARS: usize = 512;

/// Escapes a measurement name: comma and space.
pub fn escape_measurement(text: &str, out: &mut String) {
    for c in text.chars() {
        if matches!(c, ',' | ' ') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Escapes a tag key or value: space, comma and `=` (a backslash itself is kept as is, as the
/// Python sink does).
pub fn escape_tag(text: &str, out: &mut String) {
    for c in text.chars() {
        if matches!(c, ',' | ' ' | '=') {
            out.push('\\');
        }
        // A line break would end the point: it is sent as a space.
        if matches!(c, '\n' | '\r') {
            out.push_str("\\ ");
            continue;
        }
        out.push(c);
    }
}

/// Escapes a string field value: `\` and `"`.
pub fn escape_string_field(text: &str, out: &mut String) {
    for c in text.chars().take(MAX_ERROR_CHARS) {
        if matches!(c, '\\' | '"') {
            out.push('\\');
        }
        out.push(c);
    }
}

/// A float as Python prints it: shortest round-trip digits, and `.0` on whole numbers.
pub fn format_float(value: f64, out: &mut String) {
    let start = out.len();
    let _ = write!(out, "{value}");
    if value.is_finite() && !out[start..].contains(['.', 'e', 'E']) {
        out.push_str(".0");
    }
}

/// The point's time: when the request ended, in nanoseconds since the Unix epoch.
pub fn timestamp_ns(event: &RequestEvent) -> u64 {
    (event.start_time + event.response_time)
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Appends one point, without its line break, stamped `timestamp_ns`.
pub fn write_point(measurement: &str, event: &RequestEvent, timestamp_ns: u64, out: &mut String) {
    escape_measurement(measurement, out);
    // An empty tag value is invalid in the line protocol: such a tag is left out.
    if !event.request_type.is_empty() {
        out.push_str(",request_type=");
        escape_tag(&event.request_type, out);
    }
    if !event.name.is_empty() {
        out.push_str(",name=");
        escape_tag(&event.name, out);
    }
    out.push_str(" latency_ms=");
    format_float(event.response_time.as_secs_f64() * 1000.0, out);
    let _ = write!(
        out,
        ",response_bytes={}i,success={}",
        event.response_length,
        event.is_success()
    );
    if let Some(error) = &event.error {
        out.push_str(",error=\"");
        escape_string_field(error, out);
        out.push('"');
    }
    let _ = write!(out, " {timestamp_ns}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn event(name: &str, error: Option<&str>) -> RequestEvent {
        RequestEvent {
            request_type: Arc::from("GET"),
            name: Arc::from(name),
            url: Arc::from("http://x/"),
            status: Some(200),
            response_time: Duration::from_micros(12_500),
            response_length: 42,
            error: error.map(Arc::from),
            start_time: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            start_delay: None,
        }
    }

    #[test]
    fn a_point_escapes_tags_and_string_fields() {
        let mut line = String::new();
        let e = event("/a b,c=d\\e", Some("said \"no\" \\ twice"));
        write_point("loaddensity_request", &e, timestamp_ns(&e), &mut line);
        assert_eq!(
            line,
            "loaddensity_request,request_type=GET,name=/a\\ b\\,c\\=d\\e \
             latency_ms=12.5,response_bytes=42i,success=false,\
             error=\"said \\\"no\\\" \\\\ twice\" 1700000000012500000"
        );
    }

    #[test]
    fn floats_print_as_python_does_and_errors_are_truncated() {
        let mut text = String::new();
        format_float(3.0, &mut text);
        text.push(' ');
        format_float(0.1 + 0.2, &mut text);
        assert_eq!(text, "3.0 0.30000000000000004");
        let long = "x".repeat(600);
        let mut line = String::new();
        let e = event("n", Some(&long));
        write_point("m e", &e, 1, &mut line);
        assert!(line.starts_with("m\\ e,request_type=GET,name=n latency_ms=12.5"));
        assert!(line.contains(&format!("error=\"{}\" 1", "x".repeat(512))));
        assert!(!line.contains(&"x".repeat(513)));
    }
}
