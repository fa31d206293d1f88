//! Why a WebSocket task failed: the text every failure event carries.

use std::fmt;
use std::io;
use std::time::Duration;

use tokio_tungstenite::tungstenite;
use tungstenite::error::{ProtocolError, SubProtocolError, UrlError};

/// Seconds as users write them: `0.3`, `5`.
struct Secs(Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.as_secs_f64())
    }
}

/// A WebSocket task failure. Its text is the event's `error`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WsError {
    /// Nothing listens on the target port.
    #[error("connection refused ({addr})")]
    Refused {
        /// `host:port` of the target.
        addr: String,
    },
    /// The TCP connection could not be opened for another reason (DNS, unreachable, ...).
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// `host:port` of the target.
        addr: String,
        /// What the system said.
        reason: String,
    },
    /// Opening the connection (TCP, TLS and WebSocket handshakes) took longer than the timeout.
    #[error("timed out after {}s connecting", Secs(*.0))]
    ConnectTimeout(Duration),
    /// Writing a frame took longer than the timeout.
    #[error("timed out after {}s sending a frame", Secs(*.0))]
    SendTimeout(Duration),
    /// No matching frame arrived within the timeout.
    #[error("timed out after {}s waiting for a frame", Secs(*.0))]
    RecvTimeout(Duration),
    /// The TLS handshake failed, e.g. `invalid peer certificate: UnknownIssuer`.
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// The server answered the WebSocket handshake with something other than `101`.
    #[error("handshake rejected: HTTP {0}")]
    Rejected(String),
    /// The server did not pick one of the offered subprotocols.
    #[error("subprotocol negotiation failed: {0}")]
    Subprotocol(String),
    /// The server closed the connection (a close frame, a reset or end of stream).
    #[error("server closed the connection")]
    Closed,
    /// A `send`, `recv` or `sendrecv` task had no URL and no connection to use.
    #[error("websocket connection not established (the task has no URL and no connection was opened before)")]
    NotConnected,
    /// A task's URL rendered into something that is not a `ws://` or `wss://` URL.
    #[error("invalid URL: {0}")]
    Url(String),
    /// A task's payload rendered into invalid `hex:` or `b64:` text.
    #[error("invalid payload: {0}")]
    Payload(String),
    /// A handshake header rendered into an invalid value.
    #[error("invalid header {name:?}: {reason}")]
    Header {
        /// The header name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// Any other WebSocket protocol error.
    #[error("websocket error: {0}")]
    Protocol(String),
}

fn is_closed_io(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::NotConnected
    )
}

/// The rustls error inside an I/O error, if that is what it is.
fn tls_reason(error: &io::Error) -> Option<String> {
    let inner = error.get_ref()?;
    inner
        .downcast_ref::<rustls::Error>()
        .map(|tls| tls.to_string())
}

impl WsError {
    /// Whether the failure happened on the connection (so it can no longer be trusted), rather
    /// than while rendering the task (a bad URL, payload or header after placeholders).
    pub fn involves_connection(&self) -> bool {
        !matches!(
            self,
            WsError::Url(_) | WsError::Payload(_) | WsError::Header { .. } | WsError::NotConnected
        )
    }

    /// Classifies an error from an established connection (reading or writing frames).
    pub(crate) fn from_stream(error: tungstenite::Error) -> Self {
        match error {
            tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
                WsError::Closed
            }
            tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
                WsError::Closed
            }
            tungstenite::Error::Io(io) if is_closed_io(&io) => WsError::Closed,
            tungstenite::Error::Io(io) => match tls_reason(&io) {
                Some(reason) => WsError::Tls(reason),
                None => WsError::Protocol(io.to_string()),
            },
            other => WsError::Protocol(other.to_string()),
        }
    }

    /// Classifies an error from opening a connection to `addr` (`host:port`).
    pub(crate) fn from_connect(error: tungstenite::Error, addr: &str) -> Self {
        match error {
            tungstenite::Error::Io(io) => {
                if let Some(reason) = tls_reason(&io) {
                    WsError::Tls(reason)
                } else if io.kind() == io::ErrorKind::ConnectionRefused {
                    WsError::Refused {
                        addr: addr.to_owned(),
                    }
                } else if is_closed_io(&io) {
                    WsError::Closed
                } else {
                    WsError::Connect {
                        addr: addr.to_owned(),
                        reason: io.to_string(),
                    }
                }
            }
            tungstenite::Error::Tls(tls) => WsError::Tls(tls.to_string()),
            tungstenite::Error::Http(response) => {
                let status = response.status();
                WsError::Rejected(format!(
                    "{} {}",
                    status.as_u16(),
                    status.canonical_reason().unwrap_or_default()
                ))
            }
            tungstenite::Error::Protocol(ProtocolError::SecWebSocketSubProtocolError(e)) => {
                WsError::Subprotocol(match e {
                    SubProtocolError::NoSubProtocol => {
                        "the server accepted none of the offered subprotocols".to_owned()
                    }
                    other => other.to_string(),
                })
            }
            tungstenite::Error::Url(UrlError::TlsFeatureNotEnabled) => {
                WsError::Url("wss:// needs TLS support".to_owned())
            }
            tungstenite::Error::Url(e) => WsError::Url(e.to_string()),
            other => Self::from_stream(other),
        }
    }
}
