//! Why a request got no usable response.

use std::error::Error as _;
use std::time::Duration;

/// Why a request failed before a full response arrived.
///
/// [`HttpError::reason`] is the text recorded as the event's error: this error's message
/// followed by its cause chain (for example `connection failed: tcp connect error: Connection
/// refused (os error 111)` or `connection failed: invalid peer certificate: UnknownIssuer`).
/// The URL is not part of it (the event carries the URL), so failures of one kind group
/// together in the statistics.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The task index is not in the group's task list.
    #[error("no task {index} in this group (it has {len})")]
    NoSuchTask {
        /// The index asked for.
        index: usize,
        /// Number of tasks in the group.
        len: usize,
    },
    /// The task could not be rendered with this user's variables (a bad URL after
    /// substitution, say).
    #[error("task {index}: {message}")]
    Render {
        /// Task index.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// A rendered header name or value is not valid HTTP.
    #[error("invalid header {name:?}: {message}")]
    InvalidHeader {
        /// The header name as rendered.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// The reqwest client could not be built.
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
    /// No complete response within the task's timeout.
    #[error("timed out after {}s", after.as_secs_f64())]
    Timeout {
        /// The timeout that expired.
        after: Duration,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
    /// Connecting failed: refused, unreachable, DNS, TLS handshake or certificate.
    #[error("connection failed")]
    Connect(#[source] reqwest::Error),
    /// Too many redirects, or a redirect that could not be followed.
    #[error("redirect failed")]
    Redirect(#[source] reqwest::Error),
    /// The request failed after connecting (connection reset, protocol error).
    #[error("request failed")]
    Request(#[source] reqwest::Error),
    /// The body is larger than the group's `max_body_size` and a check reads it.
    #[error("response body larger than max_body_size ({limit} bytes)")]
    BodyTooLarge {
        /// The status received.
        status: u16,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The status and headers arrived, the body did not.
    #[error("reading the response body failed (HTTP {status})")]
    Body {
        /// The status received.
        status: u16,
        /// The underlying error.
        #[source]
        source: reqwest::Error,
    },
}

impl HttpError {
    /// Classifies a reqwest error from sending a request with `timeout`.
    pub(crate) fn from_send(error: reqwest::Error, timeout: Duration) -> Self {
        let error = error.without_url();
        if error.is_timeout() {
            HttpError::Timeout {
                after: timeout,
                source: error,
            }
        } else if error.is_connect() {
            HttpError::Connect(error)
        } else if error.is_redirect() {
            HttpError::Redirect(error)
        } else {
            HttpError::Request(error)
        }
    }

    /// Classifies a reqwest error from reading the body of a response with `status`.
    pub(crate) fn from_body(error: reqwest::Error, status: u16, timeout: Duration) -> Self {
        let error = error.without_url();
        if error.is_timeout() {
            HttpError::Timeout {
                after: timeout,
                source: error,
            }
        } else {
            HttpError::Body {
                status,
                source: error,
            }
        }
    }

    /// The status code received before the failure, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::Body { status, .. } | HttpError::BodyTooLarge { status, .. } => {
                Some(*status)
            }
            _ => None,
        }
    }

    /// The recorded failure reason: this error's message and its causes, joined by `": "`.
    ///
    /// reqwest's own generic messages (`error sending request`, ...) are left out, as are
    /// causes whose text the previous message already contains; a timeout is just `timed out
    /// after Ns`.
    pub fn reason(&self) -> String {
        let mut reason = self.to_string();
        if matches!(self, HttpError::Timeout { .. }) {
            return reason;
        }
        let mut last = reason.clone();
        let mut cause = self.source();
        while let Some(error) = cause {
            let text = error.to_string();
            let generic = error.is::<reqwest::Error>() || text.starts_with("client error (");
            if !generic && !text.is_empty() && !last.contains(&text) {
                reason.push_str(": ");
                reason.push_str(&text);
                last = text;
            }
            cause = error.source();
        }
        reason
    }
}
