//! InfluxDB line protocol: one point per request.
//!
//! `<measurement>,request_type=<rt>,name=<name> latency_ms=<float>,response_bytes=<int>i,`
//! `success=<true|false>[,error="<message, at most 512 characters>"] <unix time ns>`

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

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

/// `00` to `99`, two ASCII digits each.
const DIGIT_PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Appends `value` in decimal (two digits at a time, without going through `fmt`).
pub fn push_u64(value: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = value;
    while rest >= 100 {
        let pair = (rest % 100) as usize * 2;
        rest /= 100;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if rest >= 10 {
        let pair = rest as usize * 2;
        at -= 2;
        digits[at..at + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    } else {
        at -= 1;
        digits[at] = b'0' + rest as u8;
    }
    out.extend_from_slice(&digits[at..]);
}

/// Appends a duration in milliseconds, exact to the nanosecond: `12.5`, `3.0`, `0.000123`.
pub fn push_ms(duration: Duration, out: &mut Vec<u8>) {
    let ns = duration.as_nanos();
    push_u64(u64::try_from(ns / 1_000_000).unwrap_or(u64::MAX), out);
    out.push(b'.');
    let mut fraction = (ns % 1_000_000) as u32;
    if fraction == 0 {
        out.push(b'0');
        return;
    }
    let mut width = 6;
    while fraction.is_multiple_of(10) {
        fraction /= 10;
        width -= 1;
    }
    let mut digits = [b'0'; 6];
    for at in (0..width).rev() {
        digits[at] = b'0' + (fraction % 10) as u8;
        fraction /= 10;
    }
    out.extend_from_slice(&digits[..width]);
}

/// Appends what every point of a series starts with: the measurement, the tags and the name
/// of the first field, `<measurement>[,request_type=<rt>][,name=<name>] latency_ms=`.
pub fn write_series_prefix(measurement: &str, request_type: &str, name: &str, out: &mut String) {
    escape_measurement(measurement, out);
    // An empty tag value is invalid in the line protocol: such a tag is left out.
    if !request_type.is_empty() {
        out.push_str(",request_type=");
        escape_tag(request_type, out);
    }
    if !name.is_empty() {
        out.push_str(",name=");
        escape_tag(name, out);
    }
    out.push_str(" latency_ms=");
}

/// Appends the rest of a point after its series prefix ([`write_series_prefix`]), without
/// its line break, as UTF-8.
pub fn write_fields(
    response_time: Duration,
    response_length: u64,
    error: Option<&str>,
    timestamp_ns: u64,
    out: &mut Vec<u8>,
) {
    push_ms(response_time, out);
    out.extend_from_slice(b",response_bytes=");
    push_u64(response_length, out);
    out.extend_from_slice(if error.is_none() {
        b"i,success=true"
    } else {
        b"i,success=false"
    });
    if let Some(error) = error {
        let mut field = String::from(",error=\"");
        escape_string_field(error, &mut field);
        field.push('"');
        out.extend_from_slice(field.as_bytes());
    }
    out.push(b' ');
    push_u64(timestamp_ns, out);
}

/// Appends one point, without its line break, stamped `timestamp_ns`.
pub fn write_point(measurement: &str, event: &RequestEvent, timestamp_ns: u64, out: &mut String) {
    write_series_prefix(measurement, &event.request_type, &event.name, out);
    let mut fields = Vec::new();
    write_fields(
        event.response_time,
        event.response_length,
        event.error.as_deref(),
        timestamp_ns,
        &mut fields,
    );
    // Whole UTF-8 pieces only: the conversion cannot fail.
    out.push_str(&String::from_utf8_lossy(&fields));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

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

    #[test]
    fn milliseconds_and_integers_are_exact() {
        let mut text = Vec::new();
        for ns in [3_000_000, 12_345_678, 123, 1_000_100_000] {
            push_ms(Duration::from_nanos(ns), &mut text);
            text.push(b' ');
        }
        for value in [0, 7, 42, 100, 1_700_000_000_012_500_000, u64::MAX] {
            push_u64(value, &mut text);
            text.push(b' ');
        }
        assert_eq!(
            String::from_utf8_lossy(&text),
            "3.0 12.345678 0.000123 1000.1 0 7 42 100 1700000000012500000 18446744073709551615 "
        );
    }
}
