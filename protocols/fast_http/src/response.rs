//! The response a `fast_http_user` request reports to core.

use std::borrow::Cow;

use bytes::Bytes;
use load_density_core::Response;

use crate::codec::Head;

/// A received HTTP response, as core's [`Response`] sees it.
///
/// It borrows the user's reusable head buffer, so it lives only while the request is recorded.
/// A status of 400 or more is a failure (`HTTP 503 Service Unavailable`) that keeps its status.
#[derive(Debug)]
pub(crate) struct FastHttpResponse<'a> {
    head: &'a Head,
    body: Bytes,
    length: u64,
}

impl<'a> FastHttpResponse<'a> {
    /// A response with `length` body bytes, of which `body` holds those kept (none when the
    /// body was discarded).
    pub(crate) fn new(head: &'a Head, body: Bytes, length: u64) -> Self {
        Self { head, body, length }
    }

    /// The reason phrase: the standard one for known codes, else the server's.
    fn reason(&self) -> &str {
        http::StatusCode::from_u16(self.head.status())
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or_else(|| self.head.reason())
    }
}

impl Response for FastHttpResponse<'_> {
    fn status(&self) -> Option<u16> {
        Some(self.head.status())
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.header(name)
    }

    fn body(&self) -> &[u8] {
        &self.body
    }

    fn length(&self) -> u64 {
        self.length
    }

    fn failure(&self) -> Option<Cow<'_, str>> {
        let status = self.head.status();
        if status < 400 {
            return None;
        }
        let reason = self.reason();
        Some(Cow::Owned(if reason.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status} {reason}")
        }))
    }
}
