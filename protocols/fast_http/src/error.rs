//! Why a request failed: the text of failure events.

use std::fmt;
use std::io;
use std::time::Duration;

/// Why a `fast_http_user` request got no usable response.
///
/// The `Display` text is the event's `error` (and so the failure record's `error` and the name
/// failures are grouped under), so it says what happened in plain words and names the peer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FastHttpError {
    /// The task could not be rendered into a request (a placeholder produced an invalid URL,
    /// header, ...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The host name did not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// Nothing listens on the address.
    #[error("connection refused ({addr})")]
    ConnectionRefused {
        /// `host:port`.
        addr: String,
    },
    /// The TCP connection failed for another reason.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// The socket error.
        source: io::Error,
    },
    /// The TLS handshake failed; the text names the certificate problem when there is one
    /// (`invalid peer certificate: UnknownIssuer`).
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// The connect + request + response took longer than the task's timeout.
    #[error("timed out after {}", Secs(*.0))]
    Timeout(Duration),
    /// The server closed the connection before sending any byte of the response.
    #[error("connection closed before the response")]
    ClosedBeforeResponse,
    /// The server closed the connection in the middle of the response.
    #[error("connection closed before the end of the response {0}")]
    ClosedDuringResponse(&'static str),
    /// Sending the request failed.
    #[error("sending the request failed: {0}")]
    Send(io::Error),
    /// Reading the response failed.
    #[error("reading the response failed: {0}")]
    Receive(io::Error),
    /// The body of a response whose body is kept (the task's assertions or extractors read it)
    /// is larger than the group's `max_body_size`.
    #[error("response body larger than max_body_size ({limit} bytes)")]
    BodyTooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The server's response is not valid HTTP/1.x.
    #[error("invalid HTTP response: {0}")]
    InvalidResponse(String),
    /// More redirects than [`MAX_REDIRECTS`](crate::MAX_REDIRECTS) in a row.
    #[error("too many redirects (more than {0})")]
    TooManyRedirects(usize),
    /// A redirect without a usable `Location`.
    #[error("invalid redirect: {0}")]
    InvalidRedirect(String),
}

impl FastHttpError {
    /// Whether a request on a reused keep-alive connection failed in a way that means the
    /// server had already closed that connection (nothing of a response was received), so
    /// sending again on a fresh connection is safe to try once.
    pub(crate) fn is_stale_connection(&self) -> bool {
        match self {
            FastHttpError::ClosedBeforeResponse => true,
            FastHttpError::Send(e) | FastHttpError::Receive(e) => matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::UnexpectedEof
            ),
            _ => false,
        }
    }
}

/// A duration as seconds, without trailing zeros: `2s`, `0.2s`, `1.5s`.
struct Secs(Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0.as_secs_f64())
    }
}
