//! Why an MQTT task failed.

/// A failed MQTT task: its text is the failure reason recorded in the event.
///
/// Reasons leave the broker address out (the event carries it as its URL), so failures of one
/// kind group together in the statistics.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MqttError {
    /// The connection could not be made (TCP, TLS, DNS), or the broker closed it before CONNACK.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The broker answered CONNECT with a refusal.
    #[error("connection refused: {reason} (code {code})")]
    Refused {
        /// The CONNACK return code (MQTT 3.1.1) or reason code (MQTT 5).
        code: u8,
        /// What the code means.
        reason: &'static str,
    },
    /// The broker refused a request: a SUBACK failure code, or an MQTT 5 PUBACK, PUBREC or
    /// UNSUBACK reason code of 0x80 or more.
    #[error("{packet} refused: {reason} (code {code})")]
    Rejected {
        /// The acknowledgement that carried the refusal (`SUBACK`, `PUBACK`, ...).
        packet: &'static str,
        /// The return or reason code.
        code: u8,
        /// What the code means.
        reason: &'static str,
    },
    /// No acknowledgement (or message) within the task's timeout.
    #[error("timed out after {secs}s waiting for {what}")]
    Timeout {
        /// What was awaited (`CONNACK`, `PUBACK`, `a message on "t"`, ...).
        what: String,
        /// The timeout, in seconds.
        secs: f64,
    },
    /// The connection broke while the task waited, or had broken since the last task.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// The connection cannot take the request: its queue is full, too many requests await an
    /// acknowledgement, or the packet is larger than `max_packet_size`.
    #[error("request not accepted: {0}")]
    Busy(String),
    /// The task could not be rendered (a placeholder gave an invalid broker, topic or payload).
    #[error("tasks[{index}]: {message}")]
    Render {
        /// Index of the task.
        index: usize,
        /// What is wrong.
        message: String,
    },
}

impl MqttError {
    /// The MQTT return or reason code, when the broker sent one.
    pub fn status(&self) -> Option<u16> {
        match self {
            MqttError::Refused { code, .. } | MqttError::Rejected { code, .. } => {
                Some(u16::from(*code))
            }
            _ => None,
        }
    }

    pub(crate) fn timeout(what: impl Into<String>, limit: std::time::Duration) -> Self {
        MqttError::Timeout {
            what: what.into(),
            secs: limit.as_secs_f64(),
        }
    }
}
