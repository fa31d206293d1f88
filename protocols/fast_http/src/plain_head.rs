//! A response head in its common, plain form, parsed without `httparse`: the fast path of
//! [`crate::codec`].
//!
//! Plain means: `HTTP/1.0` or `HTTP/1.1`, a three-digit status, a space, a reason of visible
//! ASCII, and header lines `name:value` whose names are tokens followed at once by the colon,
//! whose values are tabs and visible ASCII, every line ended by CRLF, the head complete in the
//! buffer. Whatever is not plain (folded lines, bare LF, a space before a colon, bytes past
//! ASCII, a head still arriving, too many headers) is left to `httparse`, which then accepts
//! or rejects it as before: for a plain head both give the same status, reason, headers and
//! length (`tests::agrees_with_httparse` checks it on random heads).
//!
//! The saving is in the values: eight bytes at a time are checked for a byte that ends or
//! breaks the line, where `httparse` looks at each byte (or sets up its SIMD per value).

use std::ops::Range;

/// What [`parse`] found in a complete plain head.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct PlainHead {
    /// Bytes of the head, its blank line included.
    pub(crate) len: usize,
    /// `HTTP/1.1` (else `HTTP/1.0`).
    pub(crate) http11: bool,
    pub(crate) status: u16,
    /// The reason phrase, as a range of the buffer.
    pub(crate) reason: Range<usize>,
}

/// Parses a complete plain head at the start of `buf`, its headers' (name, value) ranges put
/// in `headers` (cleared first; at most `max_headers`). `None`: not plain, or not complete;
/// `headers` then holds nothing useful.
pub(crate) fn parse(
    buf: &[u8],
    headers: &mut Vec<(Range<usize>, Range<usize>)>,
    max_headers: usize,
) -> Option<PlainHead> {
    headers.clear();
    let line = buf.get(..13)?;
    if &line[..7] != b"HTTP/1." || line[8] != b' ' || line[12] != b' ' {
        return None;
    }
    let http11 = match line[7] {
        b'1' => true,
        b'0' => false,
        _ => return None,
    };
    let mut status = 0u16;
    for &digit in &line[9..12] {
        if !digit.is_ascii_digit() {
            return None;
        }
        status = status * 10 + u16::from(digit - b'0');
    }
    let reason_end = line_end(buf, 13)?;
    let reason = 13..reason_end;
    let mut pos = reason_end + 2;
    loop {
        if *buf.get(pos)? == b'\r' {
            return (*buf.get(pos + 1)? == b'\n').then_some(PlainHead {
                len: pos + 2,
                http11,
                status,
                reason,
            });
        }
        if headers.len() == max_headers {
            return None;
        }
        let name_start = pos;
        while is_token(*buf.get(pos)?) {
            pos += 1;
        }
        if pos == name_start || buf[pos] != b':' {
            return None;
        }
        let name = name_start..pos;
        pos += 1;
        while matches!(*buf.get(pos)?, b' ' | b'\t') {
            pos += 1;
        }
        let value_start = pos;
        let end = line_end(buf, pos)?;
        let mut value_end = end;
        while value_end > value_start && matches!(buf[value_end - 1], b' ' | b'\t') {
            value_end -= 1;
        }
        headers.push((name, value_start..value_end));
        pos = end + 2;
    }
}

/// The index of the CR that ends the line starting at `from`, when every byte before it is a
/// tab or visible ASCII (or a space) and an LF follows it; `None` otherwise (or when the line
/// is not complete in `buf`).
fn line_end(buf: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let rest = buf.get(from..)?;
    let mut start = 0;
    // Eight bytes at a time while none of them is below 0x20 or at or above 0x7f: any byte
    // flagged (a false alarm from a carry included) is looked at one by one below.
    for chunk in rest.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_ne_bytes(word);
        let below_space = x.wrapping_sub(ONES * 0x20) & !x;
        let del_or_high = x.wrapping_add(ONES) | x;
        if (below_space | del_or_high) & HIGHS != 0 {
            break;
        }
        start += 8;
    }
    let at = start
        + rest[start..]
            .iter()
            .position(|&b| !(b == b'\t' || (0x20..0x7f).contains(&b)))?;
    (rest[at] == b'\r' && *rest.get(at + 1)? == b'\n').then_some(from + at)
}

/// Whether `b` may appear in a header name (RFC 9110's `tchar`).
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use std::mem::MaybeUninit;

    use proptest::prelude::*;

    use super::*;

    const MAX: usize = 8;

    /// What httparse makes of `buf`, configured as the codec configures it: `None` unless
    /// the head is complete and valid.
    fn httparse_head(buf: &[u8]) -> Option<(PlainHead, Vec<(Vec<u8>, Vec<u8>)>)> {
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX];
        let mut response = httparse::Response::new(&mut []);
        let mut config = httparse::ParserConfig::default();
        config
            .allow_spaces_after_header_name_in_responses(true)
            .allow_obsolete_multiline_headers_in_responses(true);
        let len = match config.parse_response_with_uninit_headers(&mut response, buf, &mut headers)
        {
            Ok(httparse::Status::Complete(len)) => len,
            _ => return None,
        };
        let base = buf.as_ptr() as usize;
        let reason = response.reason.map_or(0..0, |r| {
            let start = r.as_ptr() as usize - base;
            start..start + r.len()
        });
        let head = PlainHead {
            len,
            http11: response.version == Some(1),
            status: response.code.unwrap_or(0),
            reason,
        };
        let headers = response
            .headers
            .iter()
            .map(|h| (h.name.as_bytes().to_vec(), h.value.to_vec()))
            .collect();
        Some((head, headers))
    }

    fn plain(buf: &[u8]) -> Option<(PlainHead, Vec<(Vec<u8>, Vec<u8>)>)> {
        let mut ranges = Vec::new();
        let head = parse(buf, &mut ranges, MAX)?;
        let headers = ranges
            .into_iter()
            .map(|(n, v)| (buf[n].to_vec(), buf[v].to_vec()))
            .collect();
        Some((head, headers))
    }

    #[test]
    fn a_plain_head_is_parsed_and_the_rest_is_left_to_httparse() {
        let nginx = b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sat, 05 Dec 2026 12:00:00 GMT\r\n\
Content-Type: text/html\r\nContent-Length: 3\r\nConnection: keep-alive  \r\nX-Empty:\r\n\r\nok\n";
        assert_eq!(plain(nginx), httparse_head(nginx));
        let (head, headers) = plain(nginx).expect("plain");
        assert_eq!((head.status, head.http11, &nginx[head.reason]), (200, true, &b"OK"[..]));
        assert_eq!(headers[4], (b"Connection".to_vec(), b"keep-alive".to_vec()));
        assert_eq!(headers[5], (b"X-Empty".to_vec(), Vec::new()));
        // Not plain: left to httparse (which accepts some of them).
        for other in [
            &b"HTTP/1.1 200 OK\r\nA: b\r\n"[..],             // incomplete
            b"HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n",    // obsolete line folding
            b"HTTP/1.1 200 OK\nA: b\n\n",                     // bare LF
            b"HTTP/1.1 200 OK\r\nA : b\r\n\r\n",              // space before the colon
            b"HTTP/1.1 200 OK\r\nA: caf\xc3\xa9\r\n\r\n",     // bytes past ASCII
            b"HTTP/1.1 200\r\n\r\n",                          // no reason
            b"HTTP/2.0 200 OK\r\n\r\n",                       // another version
            b"HTTP/1.1 200 OK\r\n1: 1\r\n2: 2\r\n3: 3\r\n4: 4\r\n5: 5\r\n6: 6\r\n7: 7\r\n8: 8\r\n9: 9\r\n\r\n",
        ] {
            assert_eq!(plain(other), None, "{:?}", String::from_utf8_lossy(other));
        }
    }

    fn line() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(b"Content-Length: 5\r\n".to_vec()),
            Just(b"Transfer-Encoding: chunked\r\n".to_vec()),
            Just(b"X-Long: 0123456789abcdefghijklmnopqrstuvwxyz\t \r\n".to_vec()),
            Just(b" folded\r\n".to_vec()),
            Just(b"\r\n".to_vec()),
            "[A-Za-z0-9!#~-]{1,12}:[ \t]{0,2}[ -~\t]{0,40}\r\n".prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..24),
        ]
    }

    fn head_like() -> impl Strategy<Value = Vec<u8>> {
        (
            prop_oneof![
                Just(b"HTTP/1.1 200 OK\r\n".to_vec()),
                Just(b"HTTP/1.0 404 Not Found\r\n".to_vec()),
                "HTTP/1\\.[0-2] [0-9]{3} [ -~\t]{0,20}\r\n".prop_map(String::into_bytes),
                proptest::collection::vec(any::<u8>(), 0..20),
            ],
            proptest::collection::vec(line(), 0..10),
            prop_oneof![Just(b"\r\n".to_vec()), Just(Vec::new())],
        )
            .prop_map(|(status, lines, end)| [status, lines.concat(), end].concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 20_000, failure_persistence: None, ..ProptestConfig::default() })]

        /// Whatever the plain parser accepts, httparse accepts with the same result.
        #[test]
        fn agrees_with_httparse(buf in head_like()) {
            if let Some(found) = plain(&buf) {
                prop_assert_eq!(Some(found), httparse_head(&buf));
            }
        }
    }
}
