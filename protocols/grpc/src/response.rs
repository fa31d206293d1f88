//! What core sees of a gRPC call's outcome.

use std::borrow::Cow;

use load_density_core::Response;
use tonic::metadata::{KeyAndValueRef, MetadataMap};
use tonic::Code;

/// The canonical name of a gRPC status code (`OK`, `NOT_FOUND`, `UNAVAILABLE`, ...), or
/// `UNKNOWN` for a number outside the 17 defined codes.
///
/// ```
/// assert_eq!(load_density_grpc::code_name(14), "UNAVAILABLE");
/// assert_eq!(load_density_grpc::code_name(0), "OK");
/// assert_eq!(load_density_grpc::code_name(99), "UNKNOWN");
/// ```
pub fn code_name(code: i32) -> &'static str {
    match Code::from_i32(code) {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The outcome of one gRPC call (or, for `each_message_event`, one received stream message),
/// as core's assertions, extractors and the record store see it.
///
/// - [`status`](Response::status) is the numeric gRPC code and
///   [`status_name`](Response::status_name) its name, so a `status_code` assertion may say
///   `0`, `"OK"` or `"NOT_FOUND"`;
/// - [`body`](Response::body) is the response as JSON (proto field names, default values
///   included): one message for unary and client-streaming calls, a JSON list of every
///   received message for server-streaming and bidi calls. It is filled only when the task
///   has a check that reads the body;
/// - [`header`](Response::header) looks up the response headers, then the trailers;
/// - [`length`](Response::length) counts the received message bytes;
/// - [`failure`](Response::failure) is `NAME: message` for any code but `OK`.
#[derive(Debug, Clone)]
pub struct GrpcResponse {
    code: i32,
    message: String,
    metadata: Vec<(String, String)>,
    body: Vec<u8>,
    length: u64,
    received: u64,
    sent: u64,
}

impl GrpcResponse {
    /// A response with this status code and message.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            metadata: Vec::new(),
            body: Vec::new(),
            length: 0,
            received: 0,
            sent: 0,
        }
    }

    /// Sets the JSON body.
    pub fn with_body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// Sets the received and sent message counts and the received bytes.
    pub fn with_counts(mut self, received: u64, sent: u64, length: u64) -> Self {
        self.received = received;
        self.sent = sent;
        self.length = length;
        self
    }

    /// Adds every ASCII entry of `map` (headers or trailers) to the metadata [`header`]
    /// looks up. Binary (`-bin`) entries are skipped.
    ///
    /// [`header`]: Response::header
    pub fn with_metadata(mut self, map: &MetadataMap) -> Self {
        for entry in map.iter() {
            if let KeyAndValueRef::Ascii(key, value) = entry {
                if let Ok(value) = value.to_str() {
                    self.metadata
                        .push((key.as_str().to_owned(), value.to_owned()));
                }
            }
        }
        self
    }

    /// The numeric gRPC status code.
    pub fn code(&self) -> i32 {
        self.code
    }

    /// The status code's name (`OK`, `UNAVAILABLE`, ...).
    pub fn code_name(&self) -> &'static str {
        code_name(self.code)
    }

    /// The status message (empty for most successes).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Messages received from the server.
    pub fn messages_received(&self) -> u64 {
        self.received
    }

    /// Messages sent to the server.
    pub fn messages_sent(&self) -> u64 {
        self.sent
    }
}

impl Response for GrpcResponse {
    fn status(&self) -> Option<u16> {
        u16::try_from(self.code).ok()
    }

    fn status_name(&self) -> Option<&str> {
        Some(code_name(self.code))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn body(&self) -> &[u8] {
        &self.body
    }

    fn length(&self) -> u64 {
        self.length
    }

    fn failure(&self) -> Option<Cow<'_, str>> {
        if self.code == 0 {
            None
        } else if self.message.is_empty() {
            Some(Cow::Borrowed(code_name(self.code)))
        } else {
            Some(Cow::Owned(format!(
                "{}: {}",
                code_name(self.code),
                self.message
            )))
        }
    }
}
