//! The reply a `socket_user` request reports to core.

use std::borrow::Cow;

use load_density_core::Response;

/// A received reply, as core's [`Response`] sees it.
///
/// [`body`](Response::body) is the reply: the bytes read per the task's framing (TCP) or the
/// whole reply datagram (UDP); empty when nothing was expected. [`length`](Response::length)
/// is bytes sent plus reply bytes. There is no status. The reply is a failure when it does not
/// meet the task's expectations (`expected 'pong' in reply, got 'ping\n'`).
#[derive(Debug)]
pub struct SocketReply<'a> {
    body: &'a [u8],
    sent: usize,
    failure: Option<String>,
}

impl<'a> SocketReply<'a> {
    pub(crate) fn new(body: &'a [u8], sent: usize, failure: Option<String>) -> Self {
        Self {
            body,
            sent,
            failure,
        }
    }

    /// Bytes of the payload that were sent.
    pub fn sent(&self) -> usize {
        self.sent
    }
}

impl Response for SocketReply<'_> {
    fn body(&self) -> &[u8] {
        self.body
    }

    fn length(&self) -> u64 {
        (self.sent + self.body.len()) as u64
    }

    fn failure(&self) -> Option<Cow<'_, str>> {
        self.failure.as_deref().map(Cow::Borrowed)
    }
}
