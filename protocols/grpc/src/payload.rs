//! JSON payloads to protobuf bytes, and protobuf bytes back to JSON, through the message
//! descriptors (`prost-reflect`), with no generated code.

use bytes::Bytes;
use load_density_core::task::json_kind;
use load_density_core::variables::UserVariables;
use load_density_core::JsonTemplate;
use prost::Message as _;
use prost_reflect::{DynamicMessage, Kind, MessageDescriptor, SerializeOptions};
use serde::de::DeserializeSeed as _;
use serde_json::Value;

/// A request message as a task gives it.
#[derive(Debug, Clone)]
pub(crate) enum Payload {
    /// No placeholders: converted and encoded once, at prepare time.
    Constant(Bytes),
    /// Rendered with the user's variables and encoded per message.
    Dynamic(JsonTemplate),
}

/// Where a payload problem is (a JSON path inside the payload, possibly empty) and what it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PayloadError {
    pub(crate) path: String,
    pub(crate) message: String,
}

impl PayloadError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    /// `path: message`, or the message alone for the payload itself.
    pub(crate) fn describe(&self) -> String {
        if self.path.is_empty() || self.path == "." {
            self.message.clone()
        } else {
            format!("{}: {}", self.path, self.message)
        }
    }
}

impl Payload {
    /// Compiles a payload for `message`: a constant one is converted and encoded now; a
    /// dynamic one has its field names checked now (its values are checked per call).
    pub(crate) fn compile(
        template: JsonTemplate,
        message: &MessageDescriptor,
    ) -> Result<Self, PayloadError> {
        // Field names first: this names the unknown key and lists the message's fields.
        check_fields(template.source(), message, "")?;
        if template.is_dynamic() {
            Ok(Self::Dynamic(template))
        } else {
            let value = template.render(&UserVariables::default());
            encode_json(&value, message).map(Self::Constant)
        }
    }

    /// The encoded message for one call.
    pub(crate) fn encode(
        &self,
        message: &MessageDescriptor,
        vars: &UserVariables,
    ) -> Result<Bytes, PayloadError> {
        match self {
            Self::Constant(bytes) => Ok(bytes.clone()),
            Self::Dynamic(template) => encode_json(&template.render(vars), message),
        }
    }
}

/// Converts JSON (the protobuf JSON mapping: proto or JSON field names, enums by name or
/// number, 64-bit integers as numbers or strings) into an encoded `message`.
pub(crate) fn encode_json(
    value: &Value,
    message: &MessageDescriptor,
) -> Result<Bytes, PayloadError> {
    if !value.is_object() {
        return Err(not_an_object(value, message));
    }
    let mut track = serde_path_to_error::Track::new();
    let deserializer = serde_path_to_error::Deserializer::new(value, &mut track);
    match message.clone().deserialize(deserializer) {
        Ok(dynamic) => Ok(Bytes::from(dynamic.encode_to_vec())),
        Err(error) => {
            let path = track.path().to_string();
            let about = match field_type(message, &path) {
                Some(kind) => format!("field `{path}` of {} is {kind}", message.full_name()),
                None => format!("message {}", message.full_name()),
            };
            Err(PayloadError::new(path, format!("{error} ({about})")))
        }
    }
}

/// The protobuf type of the field at a payload path (`inner.value`, `tags[1]`), for messages.
fn field_type(message: &MessageDescriptor, path: &str) -> Option<String> {
    let mut current = message.clone();
    let mut segments = path
        .split('.')
        .filter(|s| !s.is_empty() && *s != "?")
        .peekable();
    while let Some(segment) = segments.next() {
        let name = segment.split('[').next().unwrap_or(segment);
        let field = current
            .get_field_by_name(name)
            .or_else(|| current.get_field_by_json_name(name))?;
        let element = segment.contains('[');
        if field.is_map() {
            // `labels.key`: the value of a map entry.
            let value = match field.kind() {
                Kind::Message(entry) => entry.map_entry_value_field(),
                _ => return None,
            };
            if segments.next().is_none() {
                return Some(format!("a map to {}", kind_name(&value.kind())));
            }
            match value.kind() {
                Kind::Message(inner) if segments.peek().is_some() => current = inner,
                kind => return Some(kind_name(&kind)),
            }
            continue;
        }
        let last = segments.peek().is_none();
        match field.kind() {
            Kind::Message(inner) if !last => current = inner,
            kind if last => {
                let name = kind_name(&kind);
                return Some(if field.is_list() && !element {
                    format!("a list of {name}")
                } else {
                    name
                });
            }
            _ => return None,
        }
    }
    None
}

fn kind_name(kind: &Kind) -> String {
    match kind {
        Kind::Double => "double".to_owned(),
        Kind::Float => "float".to_owned(),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => "int32".to_owned(),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => "int64".to_owned(),
        Kind::Uint32 | Kind::Fixed32 => "uint32".to_owned(),
        Kind::Uint64 | Kind::Fixed64 => "uint64".to_owned(),
        Kind::Bool => "bool".to_owned(),
        Kind::String => "string".to_owned(),
        Kind::Bytes => "bytes (base64)".to_owned(),
        Kind::Message(message) => format!("message {}", message.full_name()),
        Kind::Enum(enumeration) => {
            let names: Vec<String> = enumeration.values().map(|v| v.name().to_owned()).collect();
            let names = names.join(", ");
            format!("enum {} ({names})", enumeration.full_name())
        }
    }
}

/// The error for a payload that is not a JSON object.
fn not_an_object(value: &Value, message: &MessageDescriptor) -> PayloadError {
    PayloadError::new(
        "",
        format!(
            "a payload must be a JSON object (the fields of {}), got {}",
            message.full_name(),
            json_kind(value)
        ),
    )
}

/// Checks that every key of a payload names a field, recursing into message
/// fields; values are left to the per-call conversion.
fn check_fields(
    value: &Value,
    message: &MessageDescriptor,
    path: &str,
) -> Result<(), PayloadError> {
    let Value::Object(map) = value else {
        return if path.is_empty() {
            Err(not_an_object(value, message))
        } else {
            Ok(())
        };
    };
    if message.full_name().starts_with("google.protobuf.") {
        // Well-known types have their own JSON forms.
        return Ok(());
    }
    for (key, item) in map {
        let child = join(path, key);
        let field = message
            .get_field_by_name(key)
            .or_else(|| message.get_field_by_json_name(key))
            .ok_or_else(|| {
                let names: Vec<String> = message.fields().map(|f| f.name().to_owned()).collect();
                PayloadError::new(
                    child.clone(),
                    format!(
                        "unknown field `{key}` in message {} (fields: {})",
                        message.full_name(),
                        names.join(", ")
                    ),
                )
            })?;
        if field.is_map() {
            continue;
        }
        if let Kind::Message(inner) = field.kind() {
            match item {
                Value::Array(items) if field.is_list() => {
                    for (position, element) in items.iter().enumerate() {
                        check_fields(element, &inner, &format!("{child}[{position}]"))?;
                    }
                }
                other => check_fields(other, &inner, &child)?,
            }
        }
    }
    Ok(())
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// How response messages are written as JSON: proto field names, default values included,
/// enums by name, 64-bit integers as strings (the protobuf JSON mapping).
fn serialize_options() -> SerializeOptions {
    SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(false)
}

/// Appends the JSON of one encoded `message` to `out`.
pub(crate) fn write_json(
    bytes: &[u8],
    message: &MessageDescriptor,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    let dynamic = DynamicMessage::decode(message.clone(), bytes)
        .map_err(|e| format!("cannot decode the response as {}: {e}", message.full_name()))?;
    let mut serializer = serde_json::Serializer::new(out);
    dynamic
        .serialize_with_options(&mut serializer, &serialize_options())
        .map_err(|e| format!("cannot write the response as JSON: {e}"))
}

/// The JSON body of a call's received messages: the one message for a unary response, a list
/// for a streamed one (`null` when a unary call received none).
pub(crate) fn response_json(
    messages: &[Bytes],
    message: &MessageDescriptor,
    streamed: bool,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(messages.iter().map(|m| m.len() * 2 + 2).sum());
    if streamed {
        out.push(b'[');
        for (position, bytes) in messages.iter().enumerate() {
            if position > 0 {
                out.push(b',');
            }
            write_json(bytes, message, &mut out)?;
        }
        out.push(b']');
    } else {
        match messages.first() {
            Some(bytes) => write_json(bytes, message, &mut out)?,
            None => out.extend_from_slice(b"null"),
        }
    }
    Ok(out)
}
