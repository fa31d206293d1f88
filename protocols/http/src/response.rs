//! A received HTTP response, with its whole body.

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderMap, StatusCode, Version};
use load_density_core::Response;
use url::Url;

/// A complete HTTP response: status, headers and the whole body.
///
/// As a [`Response`], a status of 400 or more is a failure (`HTTP 404 Not Found`) that keeps
/// its status code, and `length` is the number of body bytes.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    url: Url,
    body: Bytes,
    length: u64,
}

impl HttpResponse {
    pub(crate) fn new(
        status: StatusCode,
        version: Version,
        headers: HeaderMap,
        url: Url,
        body: Bytes,
        length: u64,
    ) -> Self {
        Self {
            status,
            version,
            headers,
            url,
            body,
            length,
        }
    }

    /// The status code.
    pub fn status_code(&self) -> StatusCode {
        self.status
    }

    /// The HTTP version the response came over (`HTTP/2.0` when the server took `h2`).
    pub fn version(&self) -> Version {
        self.version
    }

    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The URL of the final response, after any redirects followed.
    pub fn final_url(&self) -> &Url {
        &self.url
    }

    /// The body bytes (empty when the body was counted and dropped: a task whose checks do
    /// not read it).
    pub fn bytes(&self) -> &Bytes {
        &self.body
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }
}

impl Response for HttpResponse {
    fn status(&self) -> Option<u16> {
        Some(self.status.as_u16())
    }

    fn header(&self, name: &str) -> Option<&str> {
        // `HeaderMap::get` with a `&str` parses the name, lower-casing it.
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn body(&self) -> &[u8] {
        &self.body
    }

    fn length(&self) -> u64 {
        self.length
    }

    fn failure(&self) -> Option<Cow<'_, str>> {
        if self.status.as_u16() < 400 {
            return None;
        }
        Some(Cow::Owned(match self.status.canonical_reason() {
            Some(reason) => format!("HTTP {} {reason}", self.status.as_u16()),
            None => format!("HTTP {}", self.status.as_u16()),
        }))
    }
}
