//! Why a request failed: the text of failure events.

use std::fmt;
use std::io;
use std::time::Duration;

/// What a read was waiting for when it stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Waiting {
    /// `expect_bytes`: this many bytes.
    Bytes(usize),
    /// `read_until` or `expect_substring`: this text (shown escaped).
    Text(String),
    /// UDP: one reply datagram.
    Datagram,
}

/// Why a `socket_user` request failed.
///
/// The `Display` text is the event's `error` (and so the failure record's `error` and the name
/// failures are grouped under): it says what happened in plain words. Connection problems
/// (`connection refused`, `connect timed out`) read differently from reply problems (`read
/// timed out`, `connection closed after 3 of 10 bytes`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    /// A templated target rendered into something that is not `host:port`.
    #[error("invalid target {target:?}: {reason}")]
    InvalidTarget {
        /// The rendered target.
        target: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A templated payload rendered into invalid `hex:` or `b64:` text.
    #[error("invalid payload: {0}")]
    InvalidPayload(String),
    /// A templated `read_until`, `expect_substring` or `name` rendered empty.
    #[error("{key} rendered empty")]
    EmptyKey {
        /// The task key.
        key: &'static str,
    },
    /// The host name did not resolve.
    #[error("cannot resolve {host}: {source}")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// Nothing listens on the address (TCP).
    #[error("connection refused ({addr})")]
    ConnectionRefused {
        /// `host:port`.
        addr: String,
    },
    /// The TCP handshake (with name resolution) took longer than `connect_timeout`.
    #[error("connect timed out after {} ({addr})", Secs(*after))]
    ConnectTimeout {
        /// `host:port`.
        addr: String,
        /// The connect timeout.
        after: Duration,
    },
    /// The TCP connection failed for another reason.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// The socket error.
        source: io::Error,
    },
    /// The UDP socket could not be opened.
    #[error("cannot open a UDP socket to {addr}: {source}")]
    UdpSocket {
        /// `host:port`.
        addr: String,
        /// The socket error.
        source: io::Error,
    },
    /// The payload could not be written within `timeout` (the peer does not read).
    #[error("send timed out after {}", Secs(*.0))]
    SendTimeout(Duration),
    /// Writing the payload failed.
    #[error("{}", send_text(.0))]
    Send(io::Error),
    /// The reply did not arrive within `timeout`.
    #[error("read timed out after {}{}", Secs(*after), timeout_progress(waiting, *received))]
    ReadTimeout {
        /// The read timeout.
        after: Duration,
        /// What the read was waiting for.
        waiting: Waiting,
        /// Bytes of the reply received before the timeout.
        received: usize,
    },
    /// The peer closed the connection before the reply was complete.
    #[error("connection closed {}", closed_progress(waiting, *received))]
    Closed {
        /// What the read was waiting for.
        waiting: Waiting,
        /// Bytes of the reply received before the end of the stream.
        received: usize,
    },
    /// Reading the reply failed.
    #[error("{}", receive_text(source, *received))]
    Receive {
        /// The socket error.
        source: io::Error,
        /// Bytes of the reply received before the error.
        received: usize,
    },
    /// The reply grew past the limit without the delimiter (or substring) showing up.
    #[error("no '{delimiter}' in the first {limit} bytes of the reply")]
    ReplyTooLarge {
        /// The delimiter or substring, escaped.
        delimiter: String,
        /// The limit ([`MAX_REPLY_BYTES`](crate::MAX_REPLY_BYTES)).
        limit: usize,
    },
    /// UDP: the target answered with ICMP port unreachable (nothing listens there).
    #[error("connection refused ({addr}): ICMP port unreachable")]
    PortUnreachable {
        /// `host:port`.
        addr: String,
    },
}

fn send_text(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionReset => "connection reset by peer while sending".to_owned(),
        io::ErrorKind::BrokenPipe => "connection closed by peer while sending".to_owned(),
        _ => format!("send failed: {error}"),
    }
}

fn receive_text(error: &io::Error, received: usize) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionReset => {
            format!("connection reset by peer ({received} bytes of the reply received)")
        }
        _ => format!("receive failed ({received} bytes of the reply received): {error}"),
    }
}

fn timeout_progress(waiting: &Waiting, received: usize) -> String {
    match waiting {
        Waiting::Bytes(expected) => format!(" ({received} of {expected} bytes received)"),
        Waiting::Text(text) => format!(" waiting for '{text}' ({received} bytes received)"),
        Waiting::Datagram => " waiting for a reply datagram".to_owned(),
    }
}

fn closed_progress(waiting: &Waiting, received: usize) -> String {
    match waiting {
        Waiting::Bytes(expected) => format!("after {received} of {expected} bytes"),
        Waiting::Text(text) => {
            format!("before '{text}' was seen ({received} bytes received)")
        }
        Waiting::Datagram => "before a reply datagram".to_owned(),
    }
}

/// A duration as seconds, without trailing zeros: `2s`, `0.3s`, `1.5s`.
pub(crate) struct Secs(pub(crate) Duration);

impl fmt::Display for Secs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}s", self.0.as_secs_f64())
    }
}

/// Text shown escaped, in one line: `hello\n`.
pub(crate) fn escaped(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).escape_debug().to_string()
}

/// The start of a reply, escaped and cut at `limit` characters.
pub(crate) fn excerpt(bytes: &[u8], limit: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::new();
    for (shown, c) in text.chars().enumerate() {
        if shown == limit {
            out.push_str("...");
            break;
        }
        out.extend(c.escape_debug());
    }
    out
}
