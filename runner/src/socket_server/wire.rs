//! Reading one request and writing reply messages, in the legacy and the framed mode.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{timeout, timeout_at, Instant};

use super::MAX_REQUEST_BYTES;

/// Why no request could be read; each becomes an `Error: ...` reply.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReadError {
    /// A frame's length is 0 or over the limit.
    #[error("invalid frame length {0} (must be 1 to {MAX_REQUEST_BYTES} bytes)")]
    FrameLength(u64),
    /// The legacy request grew past the limit without being complete JSON.
    #[error("request larger than {MAX_REQUEST_BYTES} bytes")]
    TooLarge,
    /// The client sent nothing for the idle timeout.
    #[error("no data for {0:?}: closing the connection")]
    Idle(Duration),
    /// The whole request took longer than the read timeout.
    #[error("the request was not complete within {0:?}: closing the connection")]
    Slow(Duration),
    /// The connection closed in the middle of a frame.
    #[error("the connection closed after {got} of {expected} bytes")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes announced.
        expected: usize,
    },
    /// Reading failed.
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Limits for one request.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) idle: Duration,
    pub(super) read: Duration,
}

/// Reads one request: `Ok(None)` when the client closed without sending anything.
pub(super) async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
    framed: bool,
    limits: Limits,
) -> Result<Option<Vec<u8>>, ReadError> {
    let deadline = Instant::now() + limits.read;
    if framed {
        read_frame(stream, limits, deadline).await
    } else {
        read_legacy(stream, limits, deadline).await
    }
}

/// One read, bounded by the idle timeout and the request deadline.
async fn read_some<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut [u8],
    limits: Limits,
    deadline: Instant,
) -> Result<usize, ReadError> {
    match timeout_at(deadline, timeout(limits.idle, stream.read(buf))).await {
        Err(_) => Err(ReadError::Slow(limits.read)),
        Ok(Err(_)) => Err(ReadError::Idle(limits.idle)),
        Ok(Ok(read)) => Ok(read?),
    }
}

async fn read_frame<S: AsyncRead + Unpin>(
    stream: &mut S,
    limits: Limits,
    deadline: Instant,
) -> Result<Option<Vec<u8>>, ReadError> {
    let mut header = [0u8; 4];
    let mut got = 0;
    while got < header.len() {
        let read = read_some(stream, &mut header[got..], limits, deadline).await?;
        if read == 0 {
            return match got {
                0 => Ok(None),
                _ => Err(ReadError::Truncated { got, expected: 4 }),
            };
        }
        got += read;
    }
    let length = u32::from_be_bytes(header) as usize;
    if length == 0 || length > MAX_REQUEST_BYTES {
        return Err(ReadError::FrameLength(length as u64));
    }
    let mut body = vec![0u8; length];
    let mut got = 0;
    while got < length {
        let read = read_some(stream, &mut body[got..], limits, deadline).await?;
        if read == 0 {
            return Err(ReadError::Truncated {
                got,
                expected: length,
            });
        }
        got += read;
    }
    Ok(Some(body))
}

/// Reads until the text is complete JSON (or `quit_server`), the client stops sending, or the
/// limit is passed.
async fn read_legacy<S: AsyncRead + Unpin>(
    stream: &mut S,
    limits: Limits,
    deadline: Instant,
) -> Result<Option<Vec<u8>>, ReadError> {
    let mut request = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let read = read_some(stream, &mut chunk, limits, deadline).await?;
        if read == 0 {
            break;
        }
        request.extend_from_slice(&chunk[..read]);
        if request.len() > MAX_REQUEST_BYTES {
            return Err(ReadError::TooLarge);
        }
        if complete(&request) {
            break;
        }
    }
    Ok((!request.trim_ascii().is_empty()).then_some(request))
}

/// Whether `request` needs no more bytes: complete JSON, `quit_server`, or text that no more
/// bytes can make valid (its error is reported).
fn complete(request: &[u8]) -> bool {
    let text = request.trim_ascii();
    if text.is_empty() {
        return false;
    }
    if text == b"quit_server" {
        return true;
    }
    if b"quit_server".starts_with(text) {
        return false;
    }
    match serde_json::from_slice::<serde::de::IgnoredAny>(text) {
        Ok(_) => true,
        Err(error) => !error.is_eof(),
    }
}

/// Writes each message (framed: each with its 4-byte length) and flushes.
pub(super) async fn write_messages<S: AsyncWrite + Unpin>(
    stream: &mut S,
    framed: bool,
    messages: &[String],
) -> std::io::Result<()> {
    for message in messages {
        if framed {
            let length = u32::try_from(message.len()).map_err(std::io::Error::other)?;
            stream.write_all(&length.to_be_bytes()).await?;
        }
        stream.write_all(message.as_bytes()).await?;
    }
    stream.flush().await
}

#[cfg(test)]
mod tests {
    use super::complete;

    #[test]
    fn legacy_requests_are_complete_when_the_json_is() {
        assert!(!complete(b""));
        assert!(!complete(b"  [[\"LD_summary\"]"));
        assert!(complete(b"[[\"LD_summary\"]]\n"));
        assert!(complete(b"quit_server"));
        assert!(!complete(b"quit_"));
        assert!(!complete(b"{\"token\": \"abc"));
        // A syntax error cannot be repaired by more bytes: report it now.
        assert!(complete(b"[[\"LD_summary\"]]]"));
        assert!(complete(b"nope"));
    }
}
