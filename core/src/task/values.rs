//! Values as the Python LoadDensity accepts them, and durations as Locust writes them.
//!
//! Task lists written for the Python version run unchanged: where it converts a value
//! (`bool(retain)`, a number of seconds), these accept what it accepts, with the same meaning,
//! and say what they expected in words ("a whole number", "a number of seconds") rather than
//! Rust type names. Use them on a task's or a configuration's fields:
//!
//! ```
//! use load_density_core::task::values;
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Task {
//!     #[serde(default, deserialize_with = "values::opt_bool")]
//!     retain: Option<bool>,
//!     #[serde(default, deserialize_with = "values::opt_whole")]
//!     qos: Option<u8>,
//!     #[serde(default, deserialize_with = "values::opt_seconds")]
//!     timeout: Option<f64>,
//! }
//!
//! let task: Task = serde_json::from_value(serde_json::json!(
//!     {"retain": 0, "qos": 1.0, "timeout": "1m30s"}
//! )).unwrap();
//! assert_eq!((task.retain, task.qos, task.timeout), (Some(false), Some(1), Some(90.0)));
//! let wrong = serde_json::from_value::<Task>(serde_json::json!({"qos": "high"}));
//! assert!(wrong.err().unwrap().to_string().contains("a whole number"));
//! ```
//!
//! | helper | accepts |
//! |---|---|
//! | [`opt_bool`] | `true`/`false`, and numbers as Python's `bool()` reads them (`0` is false, any other number true) |
//! | [`opt_whole`] | whole numbers in the field's range, also written as `1.0` |
//! | [`opt_seconds`] | a number of seconds, or a duration string ([`parse_duration`]) |
//!
//! Strings are not read as booleans: Python's `bool("false")` is true, which no one means.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Seconds in a Locust duration string: `20` or `2.5` (seconds), `20s`, `3m`, `2h`, `1h30m`,
/// `3h30m10s` (hours, minutes and seconds in that order, each at most once).
///
/// ```
/// use load_density_core::task::values::parse_duration;
/// assert_eq!(parse_duration("1h30m"), Ok(5400.0));
/// assert_eq!(parse_duration("30s"), Ok(30.0));
/// assert_eq!(parse_duration("2.5"), Ok(2.5));
/// assert!(parse_duration("30x").is_err());
/// ```
///
/// # Errors
/// What was expected, naming the text.
pub fn parse_duration(text: &str) -> Result<f64, String> {
    let wrong = || {
        format!(
            "{text:?} is not a duration: give seconds (30, 2.5) or hours, minutes and seconds \
             such as \"30s\", \"5m\", \"1h30m\", \"3h30m10s\""
        )
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(wrong());
    }
    if let Ok(seconds) = trimmed.parse::<f64>() {
        return if seconds.is_finite() && seconds >= 0.0 {
            Ok(seconds)
        } else {
            Err(wrong())
        };
    }
    let mut seconds = 0.0;
    let mut number = String::new();
    let mut next_unit = 0; // 0: h, m or s may come; 1: m or s; 2: s; 3: nothing
    for c in trimmed.chars() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let (rank, scale) = match c {
            'h' => (0, 3600.0),
            'm' => (1, 60.0),
            's' => (2, 1.0),
            _ => return Err(wrong()),
        };
        if rank < next_unit || number.is_empty() {
            return Err(wrong());
        }
        let value: f64 = number.parse().map_err(|_| wrong())?;
        seconds += value * scale;
        number.clear();
        next_unit = rank + 1;
    }
    if number.is_empty() && seconds.is_finite() {
        Ok(seconds)
    } else {
        Err(wrong())
    }
}

/// A boolean as Python's `bool()` reads a JSON boolean or number.
pub fn bool_of(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_f64().map(|x| x != 0.0),
        _ => None,
    }
}

/// A whole number (`3`, or `3.0`), if `value` is one.
pub fn whole_of(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|x| x.fract() == 0.0 && *x >= 0.0 && *x <= u64::MAX as f64)
                .map(|x| x as u64)
        }),
        _ => None,
    }
}

/// Seconds from a number or a duration string ([`parse_duration`]).
///
/// # Errors
/// What was expected, naming the value.
pub fn seconds_of(value: &Value) -> Result<f64, String> {
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(x) if x.is_finite() && x >= 0.0 => Ok(x),
            _ => Err(format!("expected a number of seconds >= 0, got {n}")),
        },
        Value::String(text) => parse_duration(text),
        other => Err(format!(
            "expected a number of seconds or a duration such as \"30s\" or \"1h30m\", got {other}"
        )),
    }
}

/// `deserialize_with` for an `Option<bool>` field: see [`bool_of`]; null is `None`.
///
/// # Errors
/// A value that is neither a boolean nor a number.
pub fn opt_bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        value => bool_of(&value).map(Some).ok_or_else(|| {
            D::Error::custom(format!("expected true or false (or 0 / 1), got {value}"))
        }),
    }
}

/// `deserialize_with` for an `Option<u8>`, `Option<u16>`, `Option<u32>` or `Option<u64>`
/// field: a whole number in the type's range ([`whole_of`]); null is `None`.
///
/// # Errors
/// A value that is not a whole number in range, said in words.
pub fn opt_whole<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64> + Bounded,
{
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        value => whole_of(&value)
            .and_then(|n| T::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                D::Error::custom(format!(
                    "expected a whole number {}, got {value}",
                    T::RANGE_TEXT
                ))
            }),
    }
}

/// `deserialize_with` for an `Option<f64>` of seconds: a number or a duration string
/// ([`seconds_of`]); null is `None`.
///
/// # Errors
/// A value that is not a number of seconds or a duration, said in words.
pub fn opt_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        value => seconds_of(&value).map(Some).map_err(D::Error::custom),
    }
}

/// `deserialize_with` for a whole-number field (`u8` to `u64`), as [`opt_whole`] without null.
///
/// # Errors
/// A value that is not a whole number in range, said in words.
pub fn whole<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64> + Bounded,
{
    opt_whole(deserializer)?.ok_or_else(|| {
        D::Error::custom(format!(
            "expected a whole number {}, got null",
            T::RANGE_TEXT
        ))
    })
}

/// `deserialize_with` for an `f64` field that takes any number (a rate, a ratio).
///
/// # Errors
/// A value that is not a number, said in words.
pub fn number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| D::Error::custom(format!("expected a number, got {n}"))),
        other => Err(D::Error::custom(format!("expected a number, got {other}"))),
    }
}

/// The range of an unsigned integer type, as text for messages.
pub trait Bounded {
    /// `"from 0 to 255"` for `u8`, and so on; `"(0 or more)"` for `u64`.
    const RANGE_TEXT: &'static str;
}

impl Bounded for u8 {
    const RANGE_TEXT: &'static str = "from 0 to 255";
}
impl Bounded for u16 {
    const RANGE_TEXT: &'static str = "from 0 to 65535";
}
impl Bounded for u32 {
    const RANGE_TEXT: &'static str = "from 0 to 4294967295";
}
impl Bounded for u64 {
    const RANGE_TEXT: &'static str = "(0 or more)";
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn durations_as_locust_writes_them() {
        for (text, seconds) in [
            ("20", 20.0),
            ("0.5", 0.5),
            ("20s", 20.0),
            ("3m", 180.0),
            ("2h", 7200.0),
            ("1h30m", 5400.0),
            ("3h30m10s", 12610.0),
            ("1m30s", 90.0),
            (" 45s ", 45.0),
        ] {
            assert_eq!(parse_duration(text), Ok(seconds), "{text}");
        }
        for text in ["", "s", "30x", "1m1h", "1s1s", "-3", "3h-", "inf"] {
            let error = parse_duration(text).expect_err(text);
            assert!(error.contains("not a duration"), "{error}");
        }
    }

    #[test]
    fn python_shaped_values() {
        assert_eq!(bool_of(&json!(0)), Some(false));
        assert_eq!(bool_of(&json!(2)), Some(true));
        assert_eq!(bool_of(&json!(0.0)), Some(false));
        assert_eq!(bool_of(&json!("false")), None);
        assert_eq!(whole_of(&json!(2.0)), Some(2));
        assert_eq!(whole_of(&json!(2.5)), None);
        assert_eq!(whole_of(&json!(-1)), None);
        assert_eq!(seconds_of(&json!("1h")), Ok(3600.0));
        assert!(seconds_of(&json!(-1))
            .expect_err("negative")
            .contains("number of seconds"));
    }
}
