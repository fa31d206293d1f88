//! Reading one HTTP/1.x response: head with `httparse`, then the body by its framing
//! (`Content-Length`, chunked, or until the server closes), as RFC 9112 section 6.3 says.

use std::mem::MaybeUninit;
use std::ops::Range;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt as _, ReadBuf};

use crate::conn::Transport;
use crate::error::FastHttpError;

/// Response headers parsed per response; more is an error.
const MAX_HEADERS: usize = 128;
/// Longest response head (status line and headers) accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Longest chunk-size line or trailer section accepted.
const MAX_LINE: usize = 64 * 1024;
/// Free space guaranteed before each read. Small, so that a user's buffer stays small for
/// small responses; it grows by doubling when a head or body needs more.
const MIN_READ: usize = 2 * 1024;
/// The read buffer made for a response when the user has none (it gave it back when idle);
/// it doubles when a response needs more.
const FIRST_BUFFER: usize = 4 * 1024;
/// Most free space reserved at once while discarding a large body (fewer reads per body).
const DISCARD_READ: usize = 64 * 1024;
/// Most bytes reserved at once for a body whose length the server announced.
const MAX_RESERVE: usize = 1024 * 1024;

/// The head of the last response, in buffers reused from response to response.
#[derive(Debug, Default)]
pub(crate) struct Head {
    status: u16,
    bytes: Vec<u8>,
    reason: Range<usize>,
    headers: Vec<(Range<usize>, Range<usize>)>,
}

impl Head {
    /// The status code.
    pub(crate) fn status(&self) -> u16 {
        self.status
    }

    /// The reason phrase as the server sent it.
    pub(crate) fn reason(&self) -> &str {
        std::str::from_utf8(&self.bytes[self.reason.clone()]).unwrap_or("")
    }

    /// The first value of header `name` (case-insensitive) that is valid UTF-8.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| self.bytes[n.clone()].eq_ignore_ascii_case(name.as_bytes()))
            .find_map(|(_, v)| std::str::from_utf8(&self.bytes[v.clone()]).ok())
    }
}

/// How the body of a response is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
}

/// What the reader does with a response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyMode {
    /// Count the bytes and drop them as they arrive: nothing reads the body, so memory stays
    /// flat whatever the server sends.
    Discard,
    /// Keep the body (assertions or extractors read it), failing the request when it grows
    /// past this many bytes (`max_body_size`).
    Keep(u64),
}

/// A response read off the connection.
#[derive(Debug)]
pub(crate) struct Received {
    /// The body, de-chunked; empty when it was discarded.
    pub(crate) body: Bytes,
    /// Bytes of body received (after de-chunking), kept or not.
    pub(crate) length: u64,
    /// Whether the connection can carry another request.
    pub(crate) keep_alive: bool,
}

/// Reads responses from one connection (a [`Transport`]; any byte source in tests).
pub(crate) struct ResponseReader<'a, R = Transport> {
    pub(crate) io: &'a mut R,
    pub(crate) buf: &'a mut BytesMut,
    /// Scratch space for de-chunking.
    pub(crate) chunked: &'a mut BytesMut,
    /// Set once any byte of a response arrived.
    pub(crate) received_any: bool,
}

impl<R: AsyncRead + Unpin> ResponseReader<'_, R> {
    /// Reads more bytes into the buffer; `Ok(0)` at end of stream.
    async fn fill(&mut self) -> Result<usize, FastHttpError> {
        let read = if self.buf.capacity() == 0 {
            // No buffer (the user gave it back when it went idle): wait for the response with
            // none, so that a user waiting for its response holds no read buffer.
            std::future::poll_fn(|cx| self.poll_first_read(cx)).await
        } else {
            if self.buf.capacity() - self.buf.len() < MIN_READ {
                self.buf.reserve(MIN_READ * 2);
            }
            self.io.read_buf(self.buf).await
        };
        let n = read.map_err(FastHttpError::Receive)?;
        if n > 0 {
            self.received_any = true;
        }
        Ok(n)
    }

    /// Reads what has arrived into stack space (not part of the user's task), then makes the
    /// read buffer ([`FIRST_BUFFER`]) and copies it there.
    fn poll_first_read(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        let mut space = [MaybeUninit::<u8>::uninit(); FIRST_BUFFER];
        let mut read = ReadBuf::uninit(&mut space);
        ready!(Pin::new(&mut *self.io).poll_read(cx, &mut read))?;
        let filled = read.filled();
        self.buf.reserve(FIRST_BUFFER);
        self.buf.extend_from_slice(filled);
        Poll::Ready(Ok(filled.len()))
    }

    /// Reads one final response to a request; `head_request` says the request was `HEAD`
    /// (whose response has no body whatever its headers say), `mode` whether the body is kept.
    pub(crate) async fn read(
        &mut self,
        head: &mut Head,
        head_request: bool,
        mode: BodyMode,
    ) -> Result<Received, FastHttpError> {
        let (framing, mut keep_alive) = loop {
            let parsed = self.parse_head(head)?;
            match parsed {
                Some((_, _)) if (100..200).contains(&head.status) && head.status != 101 => {
                    // An interim response (100 Continue, 103 Early Hints): the final one follows.
                    continue;
                }
                Some((framing, keep_alive)) => break (framing, keep_alive),
                None => {
                    if self.buf.len() > MAX_HEAD {
                        return Err(FastHttpError::InvalidResponse(format!(
                            "response head larger than {} KiB",
                            MAX_HEAD / 1024
                        )));
                    }
                    if self.fill().await? == 0 {
                        return Err(if self.buf.is_empty() && !self.received_any {
                            FastHttpError::ClosedBeforeResponse
                        } else {
                            FastHttpError::ClosedDuringResponse("head")
                        });
                    }
                }
            }
        };
        let framing = if head_request || head.status == 101 {
            if head.status == 101 {
                keep_alive = false;
            }
            Framing::Empty
        } else {
            framing
        };
        let (body, length) = match (framing, mode) {
            (Framing::Empty, _) => (Bytes::new(), 0),
            (Framing::Length(len), BodyMode::Keep(max)) => {
                let body = self.read_length(len, max).await?;
                let length = body.len() as u64;
                (body, length)
            }
            (Framing::Length(len), BodyMode::Discard) => {
                self.discard_length(len).await?;
                (Bytes::new(), len)
            }
            (Framing::Chunked, mode) => self.read_chunked(mode).await?,
            (Framing::UntilClose, mode) => {
                keep_alive = false;
                self.read_until_close(mode).await?
            }
        };
        if !self.buf.is_empty() {
            // Bytes nobody asked for: the connection's state is unknown, do not reuse it.
            keep_alive = false;
        }
        Ok(Received {
            body,
            length,
            keep_alive,
        })
    }

    /// Parses a complete head at the start of the buffer into `head` and consumes it;
    /// `Ok(None)` when more bytes are needed.
    fn parse_head(&mut self, head: &mut Head) -> Result<Option<(Framing, bool)>, FastHttpError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        // Left uninitialised: httparse writes the entries it fills, and nothing else is read,
        // so no 128-entry array is zeroed per response.
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut []);
        let mut config = httparse::ParserConfig::default();
        config
            .allow_spaces_after_header_name_in_responses(true)
            .allow_obsolete_multiline_headers_in_responses(true);
        let len = match config.parse_response_with_uninit_headers(
            &mut response,
            self.buf,
            &mut headers,
        ) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(FastHttpError::InvalidResponse(format!(
                    "more than {MAX_HEADERS} headers"
                )))
            }
            Err(e) => return Err(FastHttpError::InvalidResponse(e.to_string())),
        };
        let base = self.buf.as_ptr() as usize;
        let span = |s: &[u8]| {
            let start = s.as_ptr() as usize - base;
            start..start + s.len()
        };
        head.status = response.code.unwrap_or(0);
        head.reason = response.reason.map_or(0..0, |r| span(r.as_bytes()));
        head.headers.clear();
        head.bytes.clear();
        head.bytes.extend_from_slice(&self.buf[..len]);

        let http11 = response.version == Some(1);
        let mut close = false;
        let mut keep_alive_token = false;
        let mut length: Option<u64> = None;
        let mut transfer_encoding: Option<bool> = None;
        for header in response.headers.iter() {
            head.headers
                .push((span(header.name.as_bytes()), span(header.value)));
            let name = header.name;
            if header_name_is(name.as_bytes(), b"content-length") {
                let value = parse_length(header.value).ok_or_else(|| {
                    FastHttpError::InvalidResponse(format!(
                        "invalid Content-Length {:?}",
                        String::from_utf8_lossy(header.value)
                    ))
                })?;
                if length.is_some_and(|l| l != value) {
                    return Err(FastHttpError::InvalidResponse(
                        "conflicting Content-Length headers".to_owned(),
                    ));
                }
                length = Some(value);
            } else if header_name_is(name.as_bytes(), b"transfer-encoding") {
                // Chunked only counts when it is the last coding.
                let last = header
                    .value
                    .split(|b| *b == b',')
                    .map(<[u8]>::trim_ascii)
                    .rfind(|c| !c.is_empty());
                transfer_encoding = Some(last.is_some_and(|c| c.eq_ignore_ascii_case(b"chunked")));
            } else if header_name_is(name.as_bytes(), b"connection") {
                for token in header.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                    close |= token.eq_ignore_ascii_case(b"close");
                    keep_alive_token |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            }
        }
        let status = head.status;
        let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
            Framing::Empty
        } else {
            match (transfer_encoding, length) {
                (Some(true), _) => Framing::Chunked,
                (Some(false), _) => Framing::UntilClose,
                (None, Some(len)) => Framing::Length(len),
                (None, None) => Framing::UntilClose,
            }
        };
        let keep_alive = if http11 { !close } else { keep_alive_token };
        self.buf.advance(len);
        Ok(Some((framing, keep_alive)))
    }

    async fn read_length(&mut self, len: u64, max: u64) -> Result<Bytes, FastHttpError> {
        if len > max {
            return Err(FastHttpError::BodyTooLarge { limit: max });
        }
        let len = usize::try_from(len).map_err(|_| {
            FastHttpError::InvalidResponse(format!("Content-Length {len} is too large"))
        })?;
        while self.buf.len() < len {
            let missing = len - self.buf.len();
            self.buf.reserve(missing.min(MAX_RESERVE));
            let n = self
                .io
                .read_buf(&mut (&mut *self.buf).limit(missing))
                .await
                .map_err(FastHttpError::Receive)?;
            if n == 0 {
                return Err(FastHttpError::ClosedDuringResponse("body"));
            }
        }
        Ok(self.buf.split_to(len).freeze())
    }

    /// Reads and drops a body of `len` bytes.
    async fn discard_length(&mut self, len: u64) -> Result<(), FastHttpError> {
        let mut remaining = len;
        loop {
            let take = usize::try_from(remaining).map_or(self.buf.len(), |r| r.min(self.buf.len()));
            self.buf.advance(take);
            remaining -= take as u64;
            if remaining == 0 {
                return Ok(());
            }
            let want = usize::try_from(remaining).map_or(DISCARD_READ, |r| r.min(DISCARD_READ));
            if self.buf.capacity() < want {
                self.buf.reserve(want);
            }
            if self.fill().await? == 0 {
                return Err(FastHttpError::ClosedDuringResponse("body"));
            }
        }
    }

    /// Reads a chunked body: kept (de-chunked, at most `max` bytes) or counted and dropped.
    async fn read_chunked(&mut self, mode: BodyMode) -> Result<(Bytes, u64), FastHttpError> {
        self.chunked.clear();
        let mut length: u64 = 0;
        loop {
            let size = match httparse::parse_chunk_size(self.buf) {
                Ok(httparse::Status::Complete((consumed, size))) => {
                    self.buf.advance(consumed);
                    size
                }
                Ok(httparse::Status::Partial) => {
                    if self.buf.len() > MAX_LINE {
                        return Err(FastHttpError::InvalidResponse(
                            "chunk-size line too long".to_owned(),
                        ));
                    }
                    if self.fill().await? == 0 {
                        return Err(FastHttpError::ClosedDuringResponse("body"));
                    }
                    continue;
                }
                Err(_) => {
                    return Err(FastHttpError::InvalidResponse(
                        "invalid chunk size".to_owned(),
                    ))
                }
            };
            if size == 0 {
                self.skip_trailers().await?;
                return Ok((self.chunked.split().freeze(), length));
            }
            length = length.saturating_add(size);
            let keep = match mode {
                BodyMode::Keep(max) if length > max => {
                    return Err(FastHttpError::BodyTooLarge { limit: max })
                }
                BodyMode::Keep(_) => true,
                BodyMode::Discard => false,
            };
            let mut remaining = usize::try_from(size).map_err(|_| {
                FastHttpError::InvalidResponse(format!("chunk size {size} is too large"))
            })?;
            while remaining > 0 {
                if !keep {
                    if self.buf.is_empty() && self.fill().await? == 0 {
                        return Err(FastHttpError::ClosedDuringResponse("body"));
                    }
                    let take = remaining.min(self.buf.len());
                    self.buf.advance(take);
                    remaining -= take;
                } else if self.buf.is_empty() {
                    // Read the chunk straight into the body.
                    self.chunked.reserve(remaining.min(MAX_RESERVE));
                    let n = self
                        .io
                        .read_buf(&mut (&mut *self.chunked).limit(remaining))
                        .await
                        .map_err(FastHttpError::Receive)?;
                    if n == 0 {
                        return Err(FastHttpError::ClosedDuringResponse("body"));
                    }
                    remaining -= n;
                } else {
                    let take = remaining.min(self.buf.len());
                    self.chunked.extend_from_slice(&self.buf[..take]);
                    self.buf.advance(take);
                    remaining -= take;
                }
            }
            while self.buf.len() < 2 {
                if self.fill().await? == 0 {
                    return Err(FastHttpError::ClosedDuringResponse("body"));
                }
            }
            if &self.buf[..2] != b"\r\n" {
                return Err(FastHttpError::InvalidResponse(
                    "chunk data not followed by CRLF".to_owned(),
                ));
            }
            self.buf.advance(2);
        }
    }

    /// Skips the trailer section after the last chunk, up to and including its empty line.
    async fn skip_trailers(&mut self) -> Result<(), FastHttpError> {
        let mut seen = 0;
        loop {
            match self.buf.iter().position(|b| *b == b'\n') {
                Some(end) => {
                    let line_is_empty = self.buf[..end].iter().all(|b| *b == b'\r');
                    seen += end + 1;
                    self.buf.advance(end + 1);
                    if line_is_empty {
                        return Ok(());
                    }
                }
                None => {
                    if seen + self.buf.len() > MAX_LINE {
                        return Err(FastHttpError::InvalidResponse(
                            "trailer section too long".to_owned(),
                        ));
                    }
                    if self.fill().await? == 0 {
                        return Err(FastHttpError::ClosedDuringResponse("body"));
                    }
                }
            }
        }
    }

    /// Reads a body delimited by the end of the connection: kept (at most `max` bytes) or
    /// counted and dropped.
    async fn read_until_close(&mut self, mode: BodyMode) -> Result<(Bytes, u64), FastHttpError> {
        match mode {
            BodyMode::Keep(max) => loop {
                // Bytes of the body may have come with the head: check before each read.
                if self.buf.len() as u64 > max {
                    return Err(FastHttpError::BodyTooLarge { limit: max });
                }
                if self.fill().await? == 0 {
                    let length = self.buf.len() as u64;
                    return Ok((self.buf.split().freeze(), length));
                }
            },
            BodyMode::Discard => {
                let mut length = self.buf.len() as u64;
                self.buf.clear();
                loop {
                    let n = self.fill().await?;
                    if n == 0 {
                        return Ok((Bytes::new(), length));
                    }
                    length = length.saturating_add(n as u64);
                    self.buf.clear();
                }
            }
        }
    }
}

/// Parses a `Content-Length` value: ASCII digits only (around them, spaces and tabs), at
/// most `u64::MAX`.
fn parse_length(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |length, &byte| {
        if byte.is_ascii_digit() {
            length.checked_mul(10)?.checked_add(u64::from(byte - b'0'))
        } else {
            None
        }
    })
}

/// Whether the header name `name`, which httparse has checked holds token characters only,
/// is `lower` (lowercase letters and `-`) in any case. Setting bit 0x20 lowercases an ASCII
/// letter; among token characters only a letter becomes a lowercase letter that way, and only
/// `-` becomes `-`, so the comparison is exact, at a few instructions a byte where
/// `eq_ignore_ascii_case` takes about ten (it runs for every header of every response).
fn header_name_is(name: &[u8], lower: &[u8]) -> bool {
    name.len() == lower.len() && name.iter().zip(lower).all(|(n, l)| n | 0x20 == *l)
}

#[cfg(test)]
mod tests {
    use super::{header_name_is, parse_length};

    #[test]
    fn content_lengths_are_digits_within_u64() {
        assert_eq!(parse_length(b"0"), Some(0));
        assert_eq!(parse_length(b" 42\t"), Some(42));
        assert_eq!(parse_length(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b""[..],
            b"  ",
            b"+1",
            b"-1",
            b"1 2",
            b"0x10",
            b"12a",
            b"18446744073709551616",
        ] {
            assert_eq!(
                parse_length(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn header_names_match_in_any_case_and_nothing_else() {
        for name in [
            "content-length",
            "Content-Length",
            "CONTENT-LENGTH",
            "cOnTeNt-LeNgTh",
        ] {
            assert!(header_name_is(name.as_bytes(), b"content-length"), "{name}");
        }
        for name in [
            "content-lengt",
            "content-lengths",
            "content_length",
            "content-length ",
        ] {
            assert!(
                !header_name_is(name.as_bytes(), b"content-length"),
                "{name}"
            );
        }
        // Every token character other than a letter or `-` stays apart from them.
        let token_punctuation = b"!#$%&'*+.^_`|~0123456789";
        for &byte in token_punctuation {
            for target in b'a'..=b'z' {
                assert!(!header_name_is(&[byte], &[target]), "{byte} vs {target}");
            }
            assert!(!header_name_is(&[byte], b"-"), "{byte} vs -");
        }
    }
}
