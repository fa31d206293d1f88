//! ZMTP 3.x bytes: the greeting, frames and the `READY` command, read against a size limit.
//!
//! A frame is a flags byte (bit 0 MORE, bit 1 LONG, bit 2 COMMAND), a length (one byte, or
//! eight big-endian bytes when LONG) and the body. A claimed length is compared with what the
//! message may still take before any byte of the body is read, and the body's buffer grows
//! with the bytes that arrive, never to the claimed size up front.

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt as _};

use super::{ZmtpError, MAX_FRAMES};

/// The length of a ZMTP 3 greeting.
pub(crate) const GREETING_LEN: usize = 64;
const MORE: u8 = 0x01;
const LONG: u8 = 0x02;
const COMMAND: u8 = 0x04;
/// The largest `READY` command accepted during the handshake.
const MAX_HANDSHAKE_COMMAND: usize = 64 * 1024;
/// The most a body's buffer takes before its bytes arrive.
const INITIAL_BODY_CAPACITY: usize = 8 * 1024;

/// Our greeting: ZMTP 3.0, NULL mechanism, as-server 0 (NULL ignores it).
///
/// 3.0 rather than 3.1, so a libzmq peer sends no PING commands we would have to answer.
pub(crate) fn greeting() -> [u8; GREETING_LEN] {
    let mut g = [0u8; GREETING_LEN];
    g[0] = 0xff;
    g[9] = 0x7f;
    g[10] = 3;
    g[11] = 0;
    g[12..16].copy_from_slice(b"NULL");
    g
}

/// Checks a peer's greeting: signature, version 3.x, NULL mechanism.
pub(crate) fn check_greeting(g: &[u8; GREETING_LEN]) -> Result<(), ZmtpError> {
    if g[0] != 0xff || g[9] & 0x01 == 0 {
        return Err(ZmtpError::Signature);
    }
    if g[10] != 3 {
        return Err(ZmtpError::Version {
            major: g[10],
            minor: g[11],
        });
    }
    let mechanism = &g[12..32];
    let name_len = mechanism.iter().position(|&b| b == 0).unwrap_or(20);
    if &mechanism[..name_len] != b"NULL" {
        return Err(ZmtpError::Mechanism(
            String::from_utf8_lossy(&mechanism[..name_len]).into_owned(),
        ));
    }
    Ok(())
}

/// Reads a peer's 64-byte greeting and checks it.
pub(crate) async fn read_greeting<R: AsyncRead + Unpin>(reader: &mut R) -> Result<(), ZmtpError> {
    let mut g = [0u8; GREETING_LEN];
    // The signature first: a peer that is not ZMTP at all is told apart before it sends 64 bytes.
    read_exact_or(reader, &mut g[..10], ZmtpError::Truncated).await?;
    if g[0] != 0xff || g[9] & 0x01 == 0 {
        return Err(ZmtpError::Signature);
    }
    read_exact_or(reader, &mut g[10..], ZmtpError::Truncated).await?;
    check_greeting(&g)
}

async fn read_exact_or<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut [u8],
    on_eof: ZmtpError,
) -> Result<(), ZmtpError> {
    match reader.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(on_eof),
        Err(e) => Err(e.into()),
    }
}

/// One frame as read.
#[derive(Debug)]
pub(crate) struct Frame {
    flags: u8,
    /// The body.
    pub(crate) body: Bytes,
}

impl Frame {
    /// Whether more frames of the same message follow.
    pub(crate) fn more(&self) -> bool {
        self.flags & MORE != 0
    }

    /// Whether this is a command rather than a message frame.
    pub(crate) fn command(&self) -> bool {
        self.flags & COMMAND != 0
    }
}

/// Reads one frame whose body may take at most `limit` bytes.
///
/// `at_boundary`: an end of stream before the flags byte is [`ZmtpError::Closed`] rather
/// than [`ZmtpError::Truncated`].
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    limit: usize,
    at_boundary: bool,
) -> Result<Frame, ZmtpError> {
    let mut flags = [0u8; 1];
    let on_eof = if at_boundary {
        ZmtpError::Closed
    } else {
        ZmtpError::Truncated
    };
    read_exact_or(reader, &mut flags, on_eof).await?;
    let flags = flags[0];
    if flags & !(MORE | LONG | COMMAND) != 0 {
        return Err(ZmtpError::Handshake(format!(
            "reserved bits set in a frame's flags ({flags:#04x})"
        )));
    }
    if flags & COMMAND != 0 && flags & MORE != 0 {
        return Err(ZmtpError::Handshake("a command frame with MORE set".into()));
    }
    let claimed = if flags & LONG != 0 {
        let mut len = [0u8; 8];
        read_exact_or(reader, &mut len, ZmtpError::Truncated).await?;
        u64::from_be_bytes(len)
    } else {
        let mut len = [0u8; 1];
        read_exact_or(reader, &mut len, ZmtpError::Truncated).await?;
        u64::from(len[0])
    };
    let len = usize::try_from(claimed)
        .ok()
        .filter(|&len| len <= limit)
        .ok_or(ZmtpError::Oversize { claimed, limit })?;
    // Grows with what arrives (read_to_end reserves in small steps), never to `len` up front.
    let mut body = Vec::with_capacity(len.min(INITIAL_BODY_CAPACITY));
    let read = (&mut *reader).take(claimed).read_to_end(&mut body).await?;
    if read < len {
        return Err(ZmtpError::Truncated);
    }
    Ok(Frame {
        flags,
        body: Bytes::from(body),
    })
}

/// Reads the next message (its frames), at most `max_size` bytes of bodies in all, skipping
/// commands between messages.
pub(crate) async fn read_message<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_size: usize,
) -> Result<Vec<Bytes>, ZmtpError> {
    let mut frames = Vec::new();
    let mut left = max_size;
    loop {
        let frame = read_frame(reader, left, frames.is_empty()).await?;
        if frame.command() {
            if !frames.is_empty() {
                return Err(ZmtpError::Handshake(
                    "a command in the middle of a message".into(),
                ));
            }
            // PING and the like: nothing Locust's protocol needs, and we announced 3.0.
            continue;
        }
        left -= frame.body.len();
        let more = frame.more();
        frames.push(frame.body);
        if !more {
            return Ok(frames);
        }
        if frames.len() >= MAX_FRAMES {
            return Err(ZmtpError::TooManyFrames(MAX_FRAMES));
        }
    }
}

/// Appends one frame to `out`.
pub(crate) fn encode_frame(out: &mut Vec<u8>, body: &[u8], more: bool, command: bool) {
    let mut flags = if more { MORE } else { 0 };
    if command {
        flags |= COMMAND;
    }
    if let Ok(short) = u8::try_from(body.len()) {
        out.push(flags);
        out.push(short);
    } else {
        out.push(flags | LONG);
        out.extend_from_slice(&(body.len() as u64).to_be_bytes());
    }
    out.extend_from_slice(body);
}

/// A message of `frames`, encoded.
pub(crate) fn encode_message(frames: &[&[u8]]) -> Vec<u8> {
    let size: usize = frames.iter().map(|f| f.len() + 9).sum();
    let mut out = Vec::with_capacity(size);
    for (i, frame) in frames.iter().enumerate() {
        encode_frame(&mut out, frame, i + 1 < frames.len(), false);
    }
    out
}

/// Our `READY` command frame: `Socket-Type` and `Identity`.
pub(crate) fn ready(socket_type: &str, identity: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(64 + identity.len());
    body.push(5);
    body.extend_from_slice(b"READY");
    for (name, value) in [
        (&b"Socket-Type"[..], socket_type.as_bytes()),
        (&b"Identity"[..], identity),
    ] {
        body.push(name.len() as u8);
        body.extend_from_slice(name);
        body.extend_from_slice(&(value.len() as u32).to_be_bytes());
        body.extend_from_slice(value);
    }
    let mut out = Vec::with_capacity(body.len() + 9);
    encode_frame(&mut out, &body, false, true);
    out
}

/// What a peer's `READY` says.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Ready {
    /// `Socket-Type`.
    pub(crate) socket_type: String,
    /// `Identity` (empty when absent).
    pub(crate) identity: Bytes,
}

/// Reads the peer's `READY` command (the first frame after the greeting).
pub(crate) async fn read_ready<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Ready, ZmtpError> {
    let frame = read_frame(reader, MAX_HANDSHAKE_COMMAND, false).await?;
    if !frame.command() {
        return Err(ZmtpError::Handshake(
            "expected the READY command, got a message frame".into(),
        ));
    }
    parse_ready(&frame.body)
}

/// Parses a `READY` command's body.
pub(crate) fn parse_ready(body: &[u8]) -> Result<Ready, ZmtpError> {
    let bad = |what: &str| ZmtpError::Handshake(what.to_owned());
    let (name, mut rest) = take_short(body).ok_or_else(|| bad("an empty command"))?;
    if name == b"ERROR" {
        let reason = take_short(rest).map(|(r, _)| String::from_utf8_lossy(r).into_owned());
        return Err(ZmtpError::Handshake(format!(
            "the peer sent ERROR: {}",
            reason.unwrap_or_default()
        )));
    }
    if name != b"READY" {
        return Err(ZmtpError::Handshake(format!(
            "expected the READY command, got {:?}",
            String::from_utf8_lossy(name)
        )));
    }
    let mut ready = Ready::default();
    let mut socket_type = None;
    while !rest.is_empty() {
        let (name, after) = take_short(rest).ok_or_else(|| bad("a truncated property name"))?;
        let (value, after) = take_long(after).ok_or_else(|| bad("a truncated property value"))?;
        rest = after;
        if name.eq_ignore_ascii_case(b"Socket-Type") {
            socket_type = Some(
                std::str::from_utf8(value)
                    .map_err(|_| bad("Socket-Type is not text"))?
                    .to_owned(),
            );
        } else if name.eq_ignore_ascii_case(b"Identity") {
            if value.len() > 255 {
                return Err(bad("an Identity longer than 255 bytes"));
            }
            ready.identity = Bytes::copy_from_slice(value);
        }
    }
    ready.socket_type = socket_type.ok_or_else(|| bad("READY without Socket-Type"))?;
    Ok(ready)
}

fn take_short(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&len, rest) = bytes.split_first()?;
    let len = usize::from(len);
    (rest.len() >= len).then(|| rest.split_at(len))
}

fn take_long(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?);
    let len = usize::try_from(len).ok()?;
    let rest = &bytes[4..];
    (rest.len() >= len).then(|| rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_round_trips_and_a_bad_one_is_an_error() {
        let frame = ready("DEALER", b"node_1");
        assert_eq!(frame[0], COMMAND);
        let parsed = parse_ready(&frame[2..]).expect("ready");
        assert_eq!(parsed.socket_type, "DEALER");
        assert_eq!(&parsed.identity[..], b"node_1");
        assert!(parse_ready(&frame[2..frame.len() - 1]).is_err());
        assert!(parse_ready(b"\x04PING").is_err());
    }

    #[test]
    fn greetings_are_checked() {
        assert!(check_greeting(&greeting()).is_ok());
        let mut old = greeting();
        old[10] = 2;
        assert!(matches!(
            check_greeting(&old),
            Err(ZmtpError::Version { major: 2, .. })
        ));
        let mut curve = greeting();
        curve[12..17].copy_from_slice(b"CURVE");
        assert!(matches!(check_greeting(&curve), Err(ZmtpError::Mechanism(m)) if m == "CURVE"));
        let mut http = greeting();
        http[..10].copy_from_slice(b"GET / HTTP");
        assert!(matches!(check_greeting(&http), Err(ZmtpError::Signature)));
    }

    #[tokio::test]
    async fn frames_round_trip_and_claims_are_checked_before_reading() {
        let big = vec![7u8; 300];
        let wire = encode_message(&[b"id", &big]);
        let frames = read_message(&mut &wire[..], 1000).await.expect("message");
        assert_eq!(frames, vec![Bytes::from_static(b"id"), Bytes::from(big)]);
        // The limit is for the whole message: 2 + 300 bytes do not fit in 301.
        assert!(matches!(
            read_message(&mut &wire[..], 301).await,
            Err(ZmtpError::Oversize {
                claimed: 300,
                limit: 299
            })
        ));
        let mut huge = vec![LONG];
        huge.extend_from_slice(&(1u64 << 62).to_be_bytes());
        assert!(matches!(
            read_message(&mut &huge[..], 1 << 20).await,
            Err(ZmtpError::Oversize { claimed, .. }) if claimed == 1 << 62
        ));
        assert!(matches!(
            read_message(&mut &wire[..5], 1000).await,
            Err(ZmtpError::Truncated)
        ));
        assert!(matches!(
            read_message(&mut &b""[..], 1000).await,
            Err(ZmtpError::Closed)
        ));
    }
}
