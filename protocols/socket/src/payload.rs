//! The `payload` key: text, `hex:...` or `b64:...`, with placeholders.

use base64::Engine as _;
use load_density_core::template::Template;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// How the payload text becomes bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// UTF-8 text.
    Text,
    /// `hex:`: hexadecimal digits (whitespace between them is ignored).
    Hex,
    /// `b64:`: standard base64 with padding (whitespace ignored).
    Base64,
}

/// A payload as written: its encoding (from the prefix, as written, never from a variable's
/// value) and the template of the rest.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Payload {
    pub(crate) encoding: Encoding,
    pub(crate) template: Template,
}

impl Payload {
    fn from_source(source: &str) -> Self {
        let (encoding, rest) = if let Some(rest) = source.strip_prefix("hex:") {
            (Encoding::Hex, rest)
        } else if let Some(rest) = source.strip_prefix("b64:") {
            (Encoding::Base64, rest)
        } else {
            (Encoding::Text, source)
        };
        Self {
            encoding,
            template: Template::parse(rest),
        }
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match Value::deserialize(deserializer)? {
            Value::String(s) => Ok(Self::from_source(&s)),
            // As the Python version: other scalars are sent as their text.
            Value::Number(n) => Ok(Self::from_source(&n.to_string())),
            // Python's str(True) is "True".
            Value::Bool(b) => Ok(Self::from_source(if b { "True" } else { "False" })),
            // Lists and objects: their JSON text.
            other @ (Value::Array(_) | Value::Object(_)) => {
                Ok(Self::from_source(&other.to_string()))
            }
            Value::Null => Err(D::Error::custom(
                "expected a string (text, hex:... or b64:...), got null",
            )),
        }
    }
}

/// Turns rendered payload text into bytes.
pub(crate) fn decode(encoding: Encoding, text: &str) -> Result<Vec<u8>, String> {
    match encoding {
        Encoding::Text => Ok(text.as_bytes().to_vec()),
        Encoding::Hex => decode_hex(text),
        Encoding::Base64 => {
            let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact.as_bytes())
                .map_err(|e| format!("invalid base64 after \"b64:\": {e}"))
        }
    }
}

fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() / 2);
    let mut high: Option<u8> = None;
    for (position, c) in text.char_indices() {
        if c.is_ascii_whitespace() {
            continue;
        }
        let digit = c.to_digit(16).ok_or_else(|| {
            format!("invalid hex digit {c:?} at position {position} after \"hex:\"")
        })?;
        // to_digit(16) is at most 15.
        let digit = digit as u8;
        match high.take() {
            None => high = Some(digit),
            Some(h) => out.push((h << 4) | digit),
        }
    }
    if high.is_some() {
        return Err("odd number of hex digits after \"hex:\"".to_owned());
    }
    Ok(out)
}
