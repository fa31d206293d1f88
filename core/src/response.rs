//! The one view of a response that core needs from a protocol.
//!
//! Assertions, extractors and the record store see a response only through [`Response`]: a
//! protocol crate implements it for its own response type and does nothing else to support
//! them.

use std::borrow::Cow;

/// A received response, as core sees it.
pub trait Response {
    /// The protocol status code (HTTP status, gRPC code, MQTT reason code), if any.
    fn status(&self) -> Option<u16> {
        None
    }

    /// The protocol's name for its status, when it has names (a gRPC code such as
    /// `NOT_FOUND`). A `status_code` assertion whose value is a name compares it with this,
    /// case-insensitively; without a name such an assertion fails.
    fn status_name(&self) -> Option<&str> {
        None
    }

    /// A header or metadata value, looked up case-insensitively.
    fn header(&self, _name: &str) -> Option<&str> {
        None
    }

    /// The body (or received frame / message) bytes, when the protocol kept them.
    ///
    /// Assertions and extractors read the body through this. A protocol may skip keeping
    /// bodies for tasks without body-based checks: see
    /// [`UserContext::needs_body`](crate::UserContext::needs_body).
    fn body(&self) -> &[u8] {
        &[]
    }

    /// Bytes counted for the request (`response_length`).
    fn length(&self) -> u64;

    /// The protocol's own verdict: `Some(reason)` when the response is a failure by the
    /// protocol's rules (an HTTP 4xx/5xx, a non-OK gRPC status), whatever the assertions say.
    /// A task that asserts the status code takes over that decision.
    fn failure(&self) -> Option<Cow<'_, str>> {
        None
    }
}
