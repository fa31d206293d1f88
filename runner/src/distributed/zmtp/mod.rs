//! ZeroMQ's wire protocol, ZMTP 3.x with the NULL mechanism, over tokio TCP: the ROUTER a
//! master binds (`router`) and the DEALER a worker connects (`dealer`).
//!
//! Only what Locust's master/worker protocol uses is here: the 64-byte greeting, the `READY`
//! command with its `Socket-Type` and `Identity` properties, and multipart messages of data
//! frames (a flags byte, a 1- or 8-byte length, the body). Other commands are read and
//! ignored. Peers are libzmq (pyzmq, so Python Locust) and this module itself.
//!
//! Written here because the `zeromq` crate (0.7, the newest release) reserves the length a
//! frame header claims before the bytes arrive, with no option to limit it: one frame header
//! made a master allocate what the peer claimed. Here every length a peer claims is checked
//! against `max_message_size` before anything is read into memory, and a buffer only ever
//! grows with the bytes that actually arrived.

pub(crate) mod codec;
pub(crate) mod dealer;
pub(crate) mod router;

use std::time::Duration;

/// Why a ZMTP connection ended or could not start.
#[derive(Debug, thiserror::Error)]
pub enum ZmtpError {
    /// The socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The peer closed the connection between messages.
    #[error("the peer closed the connection")]
    Closed,
    /// The peer closed the connection in the middle of a greeting, a header or a body.
    #[error("the peer closed the connection in the middle of a frame")]
    Truncated,
    /// The first bytes are not a ZMTP greeting.
    #[error("not a ZMTP peer: the greeting's signature is wrong")]
    Signature,
    /// A ZMTP version other than 3.x.
    #[error("the peer speaks ZMTP {major}.{minor}; only 3.x is supported")]
    Version {
        /// The peer's major version.
        major: u8,
        /// The peer's minor version.
        minor: u8,
    },
    /// A security mechanism other than NULL.
    #[error("the peer asks for the {0:?} security mechanism; only NULL is supported")]
    Mechanism(String),
    /// A frame, or a message, longer than the limit.
    #[error(
        "a frame claims {claimed} bytes, more than max_message_size allows ({limit} bytes left \
         for this message)"
    )]
    Oversize {
        /// The length the peer claimed.
        claimed: u64,
        /// What the message could still take.
        limit: usize,
    },
    /// More frames in one message than any message of the protocol has.
    #[error("a message of more than {0} frames")]
    TooManyFrames(usize),
    /// The handshake broke a rule of ZMTP.
    #[error("bad ZMTP handshake: {0}")]
    Handshake(String),
    /// The peer's socket type cannot talk to ours.
    #[error("a {peer} socket cannot talk to a {ours} socket")]
    SocketType {
        /// The peer's `Socket-Type`.
        peer: String,
        /// Ours.
        ours: &'static str,
    },
    /// The peer took too long.
    #[error("the peer took longer than {0:?} to {1}")]
    Timeout(Duration, &'static str),
}

/// How long a peer may take to complete the greeting and `READY` exchange.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The most frames one message may have (Locust's have two, three with an empty delimiter).
pub(crate) const MAX_FRAMES: usize = 16;
