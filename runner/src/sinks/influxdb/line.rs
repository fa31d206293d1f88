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

/// Appends `value` in decimal (without going through `fmt`).
pub fn push_u64(value: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 32];
    let end = put_u64(value, &mut digits, 0);
    out.extend_from_slice(&digits[..end]);
}

/// ASCII `0` in every byte.
const ZEROS: u64 = 0x3030_3030_3030_3030;

/// The eight decimal digits of `value` (below 100,000,000, zero-padded), most significant
/// first, as digit values 0-9 in the bytes of a little-endian `u64`: the number is split into
/// two halves of four digits, each into two of two, each into two digits, all halves side by
/// side in the lanes of one integer, a multiply and a shift per split.
#[inline]
fn eight_digits(value: u32) -> u64 {
    let x = u64::from(value / 10_000) | (u64::from(value % 10_000) << 32);
    // n * 10_486 >> 20 is n / 100 for n below 10,000.
    let hundreds = ((x * 10_486) >> 20) & 0x0000_007F_0000_007F;
    let pairs = hundreds | ((x - hundreds * 100) << 16);
    // n * 103 >> 10 is n / 10 for n below 100.
    let tens = ((pairs * 103) >> 10) & 0x000F_000F_000F_000F;
    tens | ((pairs - tens * 10) << 8)
}

/// Writes the `digits` (1 to 8) low decimal digits of `value` (below 100,000,000) at
/// `out[at..]`, which must have room for 8 bytes, and returns where they end.
#[inline]
fn put_digits(value: u64, digits: usize, out: &mut [u8], at: usize) -> usize {
    // Below 10^8: the conversion cannot fail.
    let word = eight_digits(u32::try_from(value).unwrap_or(0)) >> (8 * (8 - digits));
    out[at..at + 8].copy_from_slice(&(word | ZEROS).to_le_bytes());
    at + digits
}

/// How many decimal digits `value` has.
#[inline]
fn digit_count(value: u64) -> usize {
    value.checked_ilog10().map_or(1, |log| log as usize + 1)
}

/// Writes `value` in decimal at `out[at..]` and returns where it ends. `out` must have room
/// for 28 bytes from `at` (20 digits and 8 written past them).
#[inline]
pub fn put_u64(value: u64, out: &mut [u8], at: usize) -> usize {
    if value < 10 {
        out[at] = b'0' + value as u8;
        at + 1
    } else if value < E8 {
        put_digits(value, digit_count(value), out, at)
    } else {
        put_long(value, out, at)
    }
}

const E8: u64 = 100_000_000;

/// [`put_u64`] for values of nine digits or more.
#[cold]
#[inline(never)]
fn put_long(value: u64, out: &mut [u8], at: usize) -> usize {
    if value < E8 * E8 {
        let high = value / E8;
        let end = put_digits(high, digit_count(high), out, at);
        put_digits(value - high * E8, 8, out, end)
    } else {
        let high = value / (E8 * E8);
        let middle = value / E8 - high * E8;
        let end = put_digits(high, digit_count(high), out, at);
        let end = put_digits(middle, 8, out, end);
        put_digits(value % E8, 8, out, end)
    }
}

/// Appends a duration in milliseconds, exact to the nanosecond: `12.5`, `3.0`, `0.000123`.
pub fn push_ms(duration: Duration, out: &mut Vec<u8>) {
    let mut digits = [0u8; 48];
    let end = put_ms(duration, &mut digits, 0);
    out.extend_from_slice(&digits[..end]);
}

/// Writes a duration in milliseconds as [`push_ms`] does, at `out[at..]` (room for 37
/// bytes), and returns where it ends.
#[inline(always)]
pub fn put_ms(duration: Duration, out: &mut [u8], at: usize) -> usize {
    let nanos = duration.subsec_nanos();
    // Whole milliseconds as `as_nanos() / 1_000_000` gives them, saturated to u64.
    let ms = duration
        .as_secs()
        .checked_mul(1000)
        .and_then(|ms| ms.checked_add(u64::from(nanos / 1_000_000)))
        .unwrap_or(u64::MAX);
    let end = put_u64(ms, out, at);
    out[end] = b'.';
    let fraction = nanos % 1_000_000;
    if fraction == 0 {
        out[end + 1] = b'0';
        return end + 2;
    }
    // Eight digits of fraction * 100 (six, then two zeros), the trailing zeros left out: each
    // trailing zero digit is a zero byte at the top of the word.
    let word = eight_digits(fraction * 100);
    out[end + 1..end + 9].copy_from_slice(&(word | ZEROS).to_le_bytes());
    end + 1 + 8 - (word.leading_zeros() / 8) as usize
}

/// Bytes [`FieldWriter::put_fields`] may write.
pub const FIELDS_ROOM: usize = 96;
/// Bytes [`FieldWriter::put_timestamp`] may write.
pub const TIMESTAMP_ROOM: usize = 48;

/// Timestamps are written as their digits above this power of ten, cached (the points of a
/// batch share them), and the nine digits below it.
const TIMESTAMP_SPLIT: u64 = 1_000_000_000;

/// Writes the fields of points after their series prefix ([`write_series_prefix`]) into a
/// fixed room, keeping the high digits of the last timestamp written.
#[derive(Debug, Clone, Default)]
pub struct FieldWriter {
    /// `timestamp / TIMESTAMP_SPLIT` of the last timestamp at or above the split.
    high: u64,
    /// Its digits (at most 11), and what follows them.
    high_digits: [u8; 16],
    /// How many digits `high_digits` holds (0: none cached yet).
    high_len: usize,
    /// The last response length written (below 10^8), its digits (8 bytes, the digits first)
    /// and how many they are (0: none cached yet): a series' responses often have one size.
    length: u64,
    length_digits: [u8; 8],
    length_len: usize,
}

impl FieldWriter {
    /// Writes `<latency ms>,response_bytes=<n>i,success=<true|false>` at `out[at..]` (room
    /// for [`FIELDS_ROOM`] bytes) and returns where it ends.
    #[inline(always)]
    pub fn put_fields(
        &mut self,
        response_time: Duration,
        response_length: u64,
        success: bool,
        out: &mut [u8],
        at: usize,
    ) -> usize {
        let mut end = put_ms(response_time, out, at);
        out[end..end + 16].copy_from_slice(b",response_bytes=");
        end += 16;
        if response_length == self.length && self.length_len > 0 {
            out[end..end + 8].copy_from_slice(&self.length_digits);
            end += self.length_len;
        } else {
            let start = end;
            end = put_u64(response_length, out, start);
            if response_length < E8 {
                self.length = response_length;
                self.length_len = end - start;
                self.length_digits.copy_from_slice(&out[start..start + 8]);
            }
        }
        if success {
            out[end..end + 14].copy_from_slice(b"i,success=true");
            end + 14
        } else {
            out[end..end + 15].copy_from_slice(b"i,success=false");
            end + 15
        }
    }

    /// Writes ` <timestamp_ns>\n` at `out[at..]` (room for [`TIMESTAMP_ROOM`] bytes) and returns
    /// where it ends.
    #[inline(always)]
    pub fn put_timestamp(&mut self, timestamp_ns: u64, out: &mut [u8], at: usize) -> usize {
        out[at] = b' ';
        let mut end = at + 1;
        if timestamp_ns < TIMESTAMP_SPLIT {
            end = put_u64(timestamp_ns, out, end);
        } else {
            let high = timestamp_ns / TIMESTAMP_SPLIT;
            if high != self.high || self.high_len == 0 {
                self.high = high;
                let mut digits = [0; 32];
                self.high_len = put_u64(high, &mut digits, 0);
                self.high_digits.copy_from_slice(&digits[..16]);
            }
            // A fixed-size copy; the bytes after the high digits are overwritten below.
            out[end..end + 16].copy_from_slice(&self.high_digits);
            end += self.high_len;
            let low = timestamp_ns - high * TIMESTAMP_SPLIT;
            let first = low / 100_000_000;
            out[end] = b'0' + first as u8;
            end = put_digits(low - first * 100_000_000, 8, out, end + 1);
        }
        out[end] = b'\n';
        end + 1
    }
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
    let mut writer = FieldWriter::default();
    let mut room = [0u8; FIELDS_ROOM];
    let end = writer.put_fields(
        response_time,
        response_length,
        error.is_none(),
        &mut room,
        0,
    );
    out.extend_from_slice(&room[..end]);
    if let Some(error) = error {
        push_error_field(error, out);
    }
    let mut room = [0u8; TIMESTAMP_ROOM];
    let end = writer.put_timestamp(timestamp_ns, &mut room, 0);
    // Without the line break.
    out.extend_from_slice(&room[..end - 1]);
}

/// Appends `,error="<escaped message, at most MAX_ERROR_CHARS characters>"`.
pub fn push_error_field(error: &str, out: &mut Vec<u8>) {
    out.extend_from_slice(b",error=\"");
    // Most messages are short and have nothing to escape: copied as they are.
    if error.len() <= MAX_ERROR_CHARS && !error.bytes().any(|b| matches!(b, b'\\' | b'"')) {
        out.extend_from_slice(error.as_bytes());
    } else {
        let mut field = String::new();
        escape_string_field(error, &mut field);
        out.extend_from_slice(field.as_bytes());
    }
    out.push(b'"');
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

    /// A pseudo-random sequence (xorshift), for values over the whole range.
    fn values(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    #[test]
    fn the_field_writer_writes_what_fmt_writes() {
        let mut next = values(0x2545_f491_4f6c_dd1d);
        let mut writer = FieldWriter::default();
        let mut room = [0u8; FIELDS_ROOM + TIMESTAMP_ROOM];
        for i in 0..200_000u64 {
            let r = next();
            let duration = match i % 5 {
                0 => Duration::from_nanos(r % 10_000_000_000),
                1 => Duration::from_nanos(r % 1000 * 1_000_000),
                2 => Duration::from_nanos(r % 100_000 * 1000),
                3 => Duration::from_nanos(r),
                _ => Duration::new(r, (r % 1_000_000_000) as u32),
            };
            let length = match i % 4 {
                0 => r >> (r % 64),
                1 => r % 3 * 300,
                2 => 10u64.pow((r % 20) as u32),
                _ => u64::MAX - r % 10,
            };
            let timestamp = match i % 6 {
                0 => r,
                1 => r % 10_000_000_000,
                2 => 1_764_938_123_000_000_000 + r % 3_000_000_000,
                3 => r % 10,
                4 => 10u64.pow((r % 20) as u32) - r % 2,
                _ => u64::MAX - r % 1000,
            };
            let success = !r.is_multiple_of(3);
            let ns = duration.as_nanos();
            let ms = u64::try_from(ns / 1_000_000).unwrap_or(u64::MAX);
            let fraction = format!("{:06}", ns % 1_000_000);
            let fraction = match fraction.trim_end_matches('0') {
                "" => "0",
                digits => digits,
            };
            let expected =
                format!("{ms}.{fraction},response_bytes={length}i,success={success} {timestamp}\n");
            let end = writer.put_fields(duration, length, success, &mut room, 0);
            let end = writer.put_timestamp(timestamp, &mut room, end);
            assert_eq!(String::from_utf8_lossy(&room[..end]), expected, "case {i}");
        }
    }
}
