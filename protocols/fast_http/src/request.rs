//! Encoding HTTP/1.1 requests into bytes.
//!
//! A static task is encoded once, at prepare time, into the exact bytes sent per request; a
//! dynamic task is encoded per request into the user's reusable buffer. Either way a request is
//! one `write` of head and body together.

use url::{Position, Url};

/// The `User-Agent` sent when a task sets none.
pub(crate) const USER_AGENT: &str = concat!("load-density/", env!("CARGO_PKG_VERSION"));

/// Whether `name` is a valid header name (an RFC 9110 token).
pub(crate) fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// Whether `value` is a valid header value (no CR, LF, NUL or other control bytes but TAB).
pub(crate) fn valid_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b >= 0x20 && b != 0x7f))
}

/// Checks one header, with a message naming it.
pub(crate) fn check_header(name: &str, value: &str) -> Result<(), String> {
    if !valid_header_name(name) {
        return Err(format!("invalid header name {name:?}"));
    }
    if !valid_header_value(value) {
        return Err(format!(
            "invalid value for header {name:?}: control characters (CR, LF, ...) are not allowed"
        ));
    }
    Ok(())
}

/// Headers the client always writes itself: a task's own are ignored.
fn framed_by_client(name: &str) -> bool {
    name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding")
}

/// Whether a method sends `Content-Length: 0` when it has no body (as browsers and `requests`
/// do, so servers that insist on a length for POST accept it).
fn expects_body(method: &str) -> bool {
    matches!(method, "POST" | "PUT" | "PATCH")
}

/// The request target (origin-form: path and query) of `url`.
pub(crate) fn origin_form(url: &Url) -> &str {
    let target = &url[Position::BeforePath..Position::AfterQuery];
    if target.is_empty() {
        "/"
    } else {
        target
    }
}

/// The `Host` header value for `url`: host, and port when it is not the scheme's default.
pub(crate) fn host_header(url: &Url) -> &str {
    &url[Position::BeforeHost..Position::AfterPort]
}

/// Appends one HTTP/1.1 request to `out`.
///
/// `headers` are written in order, after `Host` (unless one of them is `Host`) and before
/// `User-Agent` (unless one of them is `User-Agent`) and `Content-Length`. The caller has
/// validated them (see [`check_header`]).
pub(crate) fn encode<'h>(
    out: &mut Vec<u8>,
    method: &str,
    url: &Url,
    headers: impl Iterator<Item = (&'h str, &'h str)> + Clone,
    body: Option<&[u8]>,
) {
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(origin_form(url).as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut has_host = false;
    let mut has_agent = false;
    for (name, _) in headers.clone() {
        has_host |= name.eq_ignore_ascii_case("host");
        has_agent |= name.eq_ignore_ascii_case("user-agent");
    }
    if !has_host {
        out.extend_from_slice(b"Host: ");
        out.extend_from_slice(host_header(url).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in headers {
        if framed_by_client(name) {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !has_agent {
        out.extend_from_slice(b"User-Agent: ");
        out.extend_from_slice(USER_AGENT.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match body {
        Some(body) => {
            out.extend_from_slice(b"Content-Length: ");
            push_decimal(out, body.len());
            out.extend_from_slice(b"\r\n\r\n");
            out.extend_from_slice(body);
        }
        None if expects_body(method) => out.extend_from_slice(b"Content-Length: 0\r\n\r\n"),
        None => out.extend_from_slice(b"\r\n"),
    }
}

fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        // `n % 10` is below 10, so the cast cannot truncate.
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}
