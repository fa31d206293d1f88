//! The message envelope of Locust's master/worker protocol: one msgpack array of exactly three
//! elements, `[type: str, data: any, node_id: str]`, in one ZeroMQ frame.
//!
//! Strings are always msgpack `str` (never `bin`), integers use the smallest encoding and map
//! keys may be integers, as Python's `msgpack.dumps(..., use_bin_type=True)` writes them.

use rmpv::Value;

/// The largest message accepted from a peer when the run sets no `max_message_size` (32 MiB):
/// room for a plan with CSV rows and a busy worker's records, while one message cannot make a
/// peer decode without bound.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 32 * 1024 * 1024;

/// The most nesting levels a message may have.
const MAX_DEPTH: usize = 256;

/// Why a payload is not a protocol message, or a message lacks what its type needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The bytes are not one complete msgpack value.
    #[error("not msgpack: {0}")]
    Msgpack(String),
    /// Bytes follow the message.
    #[error("{0} bytes of trailing data after the message")]
    Trailing(usize),
    /// The value is not a 3-element array of (str, any, str).
    #[error("not a [type, data, node_id] array: {0}")]
    Envelope(String),
    /// A field is missing or has the wrong type.
    #[error("{kind}: {message}")]
    Field {
        /// The message type.
        kind: String,
        /// What is wrong.
        message: String,
    },
    /// The message is larger than the receiver's `max_message_size`.
    #[error("a message of {size} bytes, larger than max_message_size ({max} bytes): dropped")]
    TooLarge {
        /// The message's size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A ZeroMQ frame layout other than the protocol's.
    #[error("{0}")]
    Frames(String),
}

/// One protocol message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// `client_ready`, `heartbeat`, `spawn`, ...
    pub kind: String,
    /// The payload (`nil`, a map, a string...).
    pub data: Value,
    /// Worker to master: the sender's id; master to worker: the destination's id.
    pub node_id: String,
}

impl Message {
    /// A message.
    pub fn new(kind: impl Into<String>, data: Value, node_id: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            data,
            node_id: node_id.into(),
        }
    }

    /// The msgpack bytes of `[kind, data, node_id]`.
    pub fn encode(&self) -> Vec<u8> {
        let envelope = Value::Array(vec![
            Value::from(self.kind.as_str()),
            self.data.clone(),
            Value::from(self.node_id.as_str()),
        ]);
        let mut bytes = Vec::with_capacity(64);
        // Writing into a Vec cannot fail.
        let _ = rmpv::encode::write_value(&mut bytes, &envelope);
        bytes
    }

    /// Reads one message of at most [`DEFAULT_MAX_MESSAGE_SIZE`] bytes; see
    /// [`Message::decode_limited`].
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        Self::decode_limited(bytes, DEFAULT_MAX_MESSAGE_SIZE)
    }

    /// Reads one message; rejects anything but exactly one `[str, any, str]` array, and any
    /// message larger than `max` bytes before decoding it. The msgpack decoder never sizes a
    /// buffer from a length the peer claims (it grows as bytes arrive), so decoding costs at
    /// most a small multiple of the message's size.
    pub fn decode_limited(bytes: &[u8], max: usize) -> Result<Self, WireError> {
        if bytes.len() > max {
            return Err(WireError::TooLarge {
                size: bytes.len(),
                max,
            });
        }
        let mut rest = bytes;
        let value = rmpv::decode::read_value_with_max_depth(&mut rest, MAX_DEPTH)
            .map_err(|e| WireError::Msgpack(e.to_string()))?;
        if !rest.is_empty() {
            return Err(WireError::Trailing(rest.len()));
        }
        let Value::Array(mut items) = value else {
            return Err(WireError::Envelope(format!("got {}", kind_of(&value))));
        };
        if items.len() != 3 {
            return Err(WireError::Envelope(format!(
                "an array of {} elements",
                items.len()
            )));
        }
        let node_id = items.pop().unwrap_or(Value::Nil);
        let data = items.pop().unwrap_or(Value::Nil);
        let kind = items.pop().unwrap_or(Value::Nil);
        let kind = match kind {
            Value::String(s) => s
                .into_str()
                .ok_or_else(|| WireError::Envelope("the type is not valid UTF-8".into()))?,
            other => {
                return Err(WireError::Envelope(format!(
                    "the type is {}, not a string",
                    kind_of(&other)
                )))
            }
        };
        let node_id = match node_id {
            Value::String(s) => s
                .into_str()
                .ok_or_else(|| WireError::Envelope("the node id is not valid UTF-8".into()))?,
            other => {
                return Err(WireError::Envelope(format!(
                    "the node id is {}, not a string",
                    kind_of(&other)
                )))
            }
        };
        Ok(Self {
            kind,
            data,
            node_id,
        })
    }

    /// An error about this message's `data`.
    pub fn field_error(&self, message: impl Into<String>) -> WireError {
        WireError::Field {
            kind: self.kind.clone(),
            message: message.into(),
        }
    }
}

/// A short name of a value's msgpack type, for error messages.
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Nil => "nil",
        Value::Boolean(_) => "a boolean",
        Value::Integer(_) => "an integer",
        Value::F32(_) | Value::F64(_) => "a float",
        Value::String(_) => "a string",
        Value::Binary(_) => "binary",
        Value::Array(_) => "an array",
        Value::Map(_) => "a map",
        Value::Ext(..) => "an ext value",
    }
}

/// Builds a msgpack map with string keys.
pub fn map<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::from(k), v))
            .collect(),
    )
}

/// The value under string key `key` of a map (`None` when absent or not a map).
pub fn get<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match value {
        Value::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// A number, int or float, as f64 (Python sends whichever the value happens to be).
pub fn as_f64(value: &Value) -> Option<f64> {
    match value {
        Value::Integer(i) => i.as_f64(),
        Value::F32(f) => Some(f64::from(*f)),
        Value::F64(f) => Some(*f),
        _ => None,
    }
}

/// A whole number >= 0 (an int, or a float with no fraction).
pub fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Integer(i) => i.as_u64(),
        other => as_f64(other)
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1.8e19)
            .map(|f| f as u64),
    }
}

/// A required string field of `msg.data`.
pub fn req_str<'a>(msg: &'a Message, key: &str) -> Result<&'a str, WireError> {
    match get(&msg.data, key) {
        Some(Value::String(s)) => s
            .as_str()
            .ok_or_else(|| msg.field_error(format!("{key} is not valid UTF-8"))),
        Some(other) => Err(msg.field_error(format!("{key} is {}, not a string", kind_of(other)))),
        None => Err(msg.field_error(format!("{key} is missing"))),
    }
}

/// A required numeric field of `msg.data`.
pub fn req_f64(msg: &Message, key: &str) -> Result<f64, WireError> {
    match get(&msg.data, key) {
        Some(v) => as_f64(v)
            .ok_or_else(|| msg.field_error(format!("{key} is {}, not a number", kind_of(v)))),
        None => Err(msg.field_error(format!("{key} is missing"))),
    }
}

/// A `{str: int}` map (class name -> user count) of `msg.data`.
pub fn req_counts(msg: &Message, key: &str) -> Result<Vec<(String, u64)>, WireError> {
    let Some(value) = get(&msg.data, key) else {
        return Err(msg.field_error(format!("{key} is missing")));
    };
    counts(value).map_err(|e| msg.field_error(format!("{key}: {e}")))
}

/// Reads a `{str: int}` map.
pub fn counts(value: &Value) -> Result<Vec<(String, u64)>, String> {
    let Value::Map(entries) = value else {
        return Err(format!("{}, not a map", kind_of(value)));
    };
    entries
        .iter()
        .map(|(k, v)| {
            let name = k
                .as_str()
                .ok_or_else(|| format!("a key is {}, not a string", kind_of(k)))?;
            let count = as_u64(v)
                .ok_or_else(|| format!("{name:?} is {}, not a whole number >= 0", kind_of(v)))?;
            Ok((name.to_owned(), count))
        })
        .collect()
}

/// A `{str: int}` map value.
pub fn counts_value(counts: &[(String, u64)]) -> Value {
    Value::Map(
        counts
            .iter()
            .map(|(k, v)| (Value::from(k.as_str()), Value::from(*v)))
            .collect(),
    )
}
