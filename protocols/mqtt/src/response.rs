//! What an MQTT task got back, as core sees it.

use bytes::Bytes;
use load_density_core::Response;

/// The outcome of a successful MQTT task, for recording and assertions.
///
/// - `status()`: the MQTT code the broker answered with: 0 for CONNACK, the granted QoS for
///   SUBACK, the reason code of an MQTT 5 PUBACK (0 for MQTT 3.1.1); `None` when no
///   acknowledgement is involved (a QoS 0 publish, `receive`, `disconnect`).
/// - `body()`: the received payload for `receive` (without a stamp header), else empty.
/// - `length()`: payload bytes sent (`publish`) or received (`receive`), stamp header
///   included; 0 for the other methods.
#[derive(Debug, Clone, Default)]
pub struct MqttResponse {
    status: Option<u16>,
    topic: Option<String>,
    body: Bytes,
    length: u64,
}

impl MqttResponse {
    pub(crate) fn new(status: Option<u8>, length: usize) -> Self {
        Self {
            status: status.map(u16::from),
            length: length as u64,
            ..Self::default()
        }
    }

    pub(crate) fn message(topic: String, body: Bytes, wire_len: usize) -> Self {
        Self {
            status: None,
            topic: Some(topic),
            body,
            length: wire_len as u64,
        }
    }

    /// The topic of the received message (`receive` only).
    pub fn topic(&self) -> Option<&str> {
        self.topic.as_deref()
    }

    /// The received payload as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Response for MqttResponse {
    fn status(&self) -> Option<u16> {
        self.status
    }

    fn header(&self, name: &str) -> Option<&str> {
        if name.eq_ignore_ascii_case("topic") {
            self.topic.as_deref()
        } else {
            None
        }
    }

    fn body(&self) -> &[u8] {
        &self.body
    }

    fn length(&self) -> u64 {
        self.length
    }
}
