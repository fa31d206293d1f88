//! Dot paths into JSON documents, as used by `json_path` assertions and extractors.
//!
//! The syntax is the Python version's:
//! - the path is split on `.` and empty segments are skipped, so the empty path is the whole
//!   document;
//! - over a list, a segment must be an integer; a negative one counts from the end (`-1` is the
//!   last element);
//! - over an object, a segment is a key;
//! - anything else (a key that is missing, an index out of range, a segment left over a scalar)
//!   finds nothing.
//!
//! Two conveniences for people used to JSONPath: a leading `$` or `$.` is ignored, and a
//! trailing integer index in brackets is read as one more segment (`items[0].id` is
//! `items.0.id`). A segment whose brackets do not hold integers stays a plain key.
//!
//! ```
//! use load_density_core::json_path::JsonPath;
//! use serde_json::json;
//!
//! let body = json!({"data": {"items": [{"id": 1}, {"id": 2}]}});
//! assert_eq!(JsonPath::parse("data.items.-1.id").lookup(&body), Some(&json!(2)));
//! assert_eq!(JsonPath::parse("$.data.items[0].id").lookup(&body), Some(&json!(1)));
//! assert_eq!(JsonPath::parse("data.missing").lookup(&body), None);
//! ```

use std::fmt;

use serde_json::Value;

/// One step of a path: the key it names over an object, and its index over a list.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Segment {
    key: String,
    index: Option<i64>,
}

impl Segment {
    fn new(key: &str) -> Self {
        Self {
            key: key.to_owned(),
            index: key.parse().ok(),
        }
    }
}

/// A parsed dot path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    source: String,
    segments: Vec<Segment>,
}

impl JsonPath {
    /// Parses a path. Every string is a valid path; see the module docs for the syntax.
    pub fn parse(source: &str) -> Self {
        let trimmed = source.trim();
        let body = match trimmed.strip_prefix('$') {
            Some(rest) if rest.is_empty() || rest.starts_with('.') || rest.starts_with('[') => rest,
            _ => trimmed,
        };
        let mut segments = Vec::new();
        for part in body.split('.').filter(|part| !part.is_empty()) {
            match split_brackets(part) {
                Some((key, indices)) => {
                    if !key.is_empty() {
                        segments.push(Segment::new(key));
                    }
                    segments.extend(indices.into_iter().map(Segment::new));
                }
                None => segments.push(Segment::new(part)),
            }
        }
        Self {
            source: source.to_owned(),
            segments,
        }
    }

    /// The path as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The value at this path, if there is one. An explicit JSON `null` is returned as
    /// `Some(&Value::Null)`; callers that treat it like a missing value say so.
    pub fn lookup<'a>(&self, root: &'a Value) -> Option<&'a Value> {
        let mut current = root;
        for segment in &self.segments {
            current = match current {
                Value::Array(items) => {
                    let index = segment.index?;
                    let position = if index < 0 {
                        let len = i64::try_from(items.len()).ok()?;
                        usize::try_from(len + index).ok()?
                    } else {
                        usize::try_from(index).ok()?
                    };
                    items.get(position)?
                }
                Value::Object(map) => map.get(&segment.key)?,
                _ => return None,
            };
        }
        Some(current)
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Splits `name[1][-2]` into `name` and `["1", "-2"]`; `None` unless every bracket holds an
/// integer and nothing follows the last one.
fn split_brackets(part: &str) -> Option<(&str, Vec<&str>)> {
    let open = part.find('[')?;
    let (key, mut rest) = part.split_at(open);
    let mut indices = Vec::new();
    while !rest.is_empty() {
        let inner = rest.strip_prefix('[')?;
        let close = inner.find(']')?;
        let index = &inner[..close];
        index.parse::<i64>().ok()?;
        indices.push(index);
        rest = &inner[close + 1..];
    }
    Some((key, indices))
}

/// JSON equality, except that numbers compare by value (`5` equals `5.0`).
pub fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => numbers_equal(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// Whether two JSON numbers have the same value, exactly for integers.
pub(crate) fn numbers_equal(x: &serde_json::Number, y: &serde_json::Number) -> bool {
    match (integer(x), integer(y)) {
        (Some(a), Some(b)) => a == b,
        _ => match (x.as_f64(), y.as_f64()) {
            (Some(a), Some(b)) => a == b,
            _ => false,
        },
    }
}

fn integer(n: &serde_json::Number) -> Option<i128> {
    n.as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn follows_the_python_rules() {
        let doc = json!({"a": {"b": [10, 20, {"c": null}]}, "0": "zero", "x.y": 1});
        let get = |p: &str| JsonPath::parse(p).lookup(&doc).cloned();
        assert_eq!(get(""), Some(doc.clone()));
        assert_eq!(get("a..b.0"), Some(json!(10)));
        assert_eq!(get("a.b.-1.c"), Some(Value::Null));
        assert_eq!(get("a.b.-3"), Some(json!(10)));
        assert_eq!(get("a.b.-4"), None);
        assert_eq!(get("a.b.3"), None);
        assert_eq!(get("a.b.first"), None);
        assert_eq!(get("a.b.0.deeper"), None);
        assert_eq!(get("0"), Some(json!("zero")));
        assert_eq!(get("missing"), None);
        // A key with a dot cannot be addressed: the dot always splits.
        assert_eq!(get("x.y"), None);
    }

    #[test]
    fn tolerates_jsonpath_prefix_and_brackets() {
        let doc = json!({"items": [[1, 2], [3, 4]], "$k": 7, "w[x]": 8});
        let get = |p: &str| JsonPath::parse(p).lookup(&doc).cloned();
        assert_eq!(get("$"), Some(doc.clone()));
        assert_eq!(get("$.items.1.0"), Some(json!(3)));
        assert_eq!(get("$.items[1][-1]"), Some(json!(4)));
        assert_eq!(get("$[0]"), None);
        assert_eq!(get("$k"), Some(json!(7)));
        assert_eq!(get("w[x]"), Some(json!(8)));
        assert_eq!(JsonPath::parse(" $.items ").source(), " $.items ");
    }

    #[test]
    fn numbers_compare_by_value_other_types_strictly() {
        assert!(json_equal(&json!(5), &json!(5.0)));
        assert!(json_equal(&json!({"a": [1, 2.0]}), &json!({"a": [1.0, 2]})));
        assert!(!json_equal(&json!(5), &json!("5")));
        assert!(!json_equal(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
        assert!(json_equal(&json!(u64::MAX), &json!(u64::MAX)));
        assert!(!json_equal(&json!(u64::MAX), &json!(u64::MAX - 1)));
        assert!(!json_equal(&json!(null), &json!(false)));
    }
}
