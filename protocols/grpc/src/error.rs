//! Why a call got no gRPC status from the server.

use std::io;

/// A connection to the target could not be opened. Recorded as `UNAVAILABLE: <reason>`, with
/// no status code (no response was received).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// Nothing listens on the port.
    #[error("connection refused ({0})")]
    Refused(String),
    /// Any other socket error while connecting (unreachable network, unknown host, ...).
    #[error("cannot connect to {address}: {reason}")]
    Io {
        /// `host:port`.
        address: String,
        /// The operating system's message.
        reason: String,
    },
    /// The TLS handshake failed (an untrusted certificate, ...).
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// The TLS server did not agree to speak HTTP/2 (ALPN `h2`).
    #[error("the TLS server at {0} does not offer HTTP/2 (ALPN h2)")]
    NoH2(String),
    /// The HTTP/2 handshake failed.
    #[error("HTTP/2 handshake failed: {0}")]
    Handshake(String),
}

impl ConnectError {
    /// Classifies a socket error from connecting to `address`.
    pub(crate) fn from_io(address: &str, error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::ConnectionRefused {
            Self::Refused(address.to_owned())
        } else {
            Self::Io {
                address: address.to_owned(),
                reason: error.to_string(),
            }
        }
    }
}

/// A call that ended without a gRPC status from the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No connection could be opened.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The connection broke during the call (the server went away, a reset, a protocol
    /// error).
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// The connection was found closed before the request was sent; safe to retry on a new
    /// connection.
    #[error("connection closed: {0}")]
    NotSent(String),
    /// A payload rendered from placeholders does not fit the request message.
    #[error("payload: {0}")]
    Payload(String),
    /// A metadata value rendered from placeholders is not a valid header value.
    #[error("metadata {0:?}: not a valid metadata value")]
    Metadata(String),
}

impl CallError {
    /// The gRPC status name the failure is reported with.
    pub fn code_name(&self) -> &'static str {
        match self {
            Self::Connect(_) | Self::ConnectionLost(_) | Self::NotSent(_) => "UNAVAILABLE",
            Self::Payload(_) | Self::Metadata(_) => "INVALID_ARGUMENT",
        }
    }
}
