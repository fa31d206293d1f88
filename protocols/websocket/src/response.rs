//! What core sees of a WebSocket task's outcome.

use std::borrow::Cow;

use load_density_core::Response;
use tokio_tungstenite::tungstenite::Bytes;

/// The outcome of one WebSocket task, as core's assertions, extractors and the record store see
/// it.
///
/// - `connect`: status `101`, the handshake response's headers, an empty body;
/// - `recv` / `sendrecv`: the received frame as the body (text frames as their UTF-8 bytes);
/// - `send` / `close`: an empty body.
///
/// [`length`](Response::length) is the number of payload bytes the task moved (sent, received,
/// or both for `sendrecv`).
#[derive(Debug, Clone, Default)]
pub struct WsResponse {
    status: Option<u16>,
    headers: Vec<(String, String)>,
    frame: Bytes,
    length: u64,
    failure: Option<String>,
}

impl WsResponse {
    /// An outcome that moved `length` bytes and received `frame`.
    pub fn new(frame: Bytes, length: u64) -> Self {
        Self {
            frame,
            length,
            ..Self::default()
        }
    }

    /// A successful handshake (status 101) with its response headers.
    pub fn handshake(headers: Vec<(String, String)>) -> Self {
        Self {
            status: Some(101),
            headers,
            ..Self::default()
        }
    }

    /// Marks the outcome a failure (e.g. a frame that does not match `expect`).
    pub fn with_failure(mut self, reason: impl Into<String>) -> Self {
        self.failure = Some(reason.into());
        self
    }

    /// The received frame (empty when none was received).
    pub fn frame(&self) -> &[u8] {
        &self.frame
    }
}

impl Response for WsResponse {
    fn status(&self) -> Option<u16> {
        self.status
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn body(&self) -> &[u8] {
        &self.frame
    }

    fn length(&self) -> u64 {
        self.length
    }

    fn failure(&self) -> Option<Cow<'_, str>> {
        self.failure.as_deref().map(Cow::Borrowed)
    }
}
