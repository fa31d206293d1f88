//! HAR import (`LD_load_har`, `LD_har_to_tasks`, `LD_har_to_action_json`, `load-density har`).
//!
//! As in the Python version (spec §11), each entry of `log.entries` becomes one task:
//! `{"method", "request_url", "name": "<METHOD> <path?query>", "headers", "json"|"data",
//! "assertions": [{"type": "status_code", "value": <recorded status>}]}`, filtered by regex
//! searches over the URL (`include`: any must match; then `exclude`: none may), with the
//! connection-level headers (`host`, `content-length`, `connection`, HTTP/2 pseudo-headers)
//! dropped. Two options the Python version lacks ([`HarOptions`]):
//!
//! - `escape_placeholders`: every `${` in the recorded text (URL, header values, bodies)
//!   becomes `$${`, so a replay sends it literally instead of reading it as a placeholder;
//! - `correlate`: a value a response gave (a string of 8 characters or more in its JSON body,
//!   or the value of one of its non-standard headers, such as a token) that a later request
//!   sends back (in its URL, a header value or its body) becomes an extractor on the first
//!   task (`{"var": "corr_N", "from": "json_path"|"header", ...}`) and a `${var.corr_N}`
//!   placeholder in the later ones, so every replayed user uses the value its own server
//!   gave.
//!
//! Cookies (a deliberate difference from the Python version, which replays every recorded
//! `Cookie` header as it is): a cookie that a replayed response set (its `Set-Cookie` headers
//! or its HAR `cookies`) is session state, and its recorded value is stale by the time the
//! plan runs. It is left out of the later requests' `Cookie` headers, so that each replayed
//! user sends the value its own server gave it, from its cookie jar, as k6's HAR converter
//! leaves cookies to k6's jar. Cookies the browser already had before the recording (no
//! replayed response set them) and cookies set by responses the filters left out are kept as
//! recorded. `keep_cookies` replays every recorded cookie literally, as Python does.
//!
//! Only `http_user` keeps a cookie jar (one per user); `fast_http_user` has none. So
//! [`har_to_action_json`] asked for a user without a jar, for a HAR whose cookies it left to
//! the jar, writes the plan for `http_user` instead and logs a warning saying so (without
//! that, every request that needs the session would fail).

use std::collections::BTreeMap;
use std::path::Path;

use regex::Regex;
use serde_json::{json, Map, Value};

use super::ImportError;

/// Headers never replayed (case-insensitive): the connection sets them.
pub const DROPPED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "connection",
    ":authority",
    ":method",
    ":path",
    ":scheme",
];

/// Response headers never taken as correlation values.
const STANDARD_RESPONSE_HEADERS: &[&str] = &[
    "date",
    "content-type",
    "content-length",
    "content-encoding",
    "server",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "cache-control",
    "expires",
    "last-modified",
    "etag",
    "vary",
    "set-cookie",
    "location",
    "age",
    "accept-ranges",
    "access-control-allow-origin",
];

/// The shortest value [`HarOptions::correlate`] looks for.
pub const MIN_CORRELATED_LEN: usize = 8;

/// Options beyond the Python conversion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HarOptions {
    /// Escape `${` in recorded text as `$${`.
    pub escape_placeholders: bool,
    /// Turn response values sent back later into extractors and placeholders.
    pub correlate: bool,
    /// More request headers to leave out (case-insensitive), e.g. `cookie`.
    pub exclude_headers: Vec<String>,
    /// Replay recorded cookies as they are, even those a replayed response set (Python's
    /// behaviour); by default those are left to the user's cookie jar.
    pub keep_cookies: bool,
}

/// The user types that keep a cookie jar per user.
pub const USERS_WITH_COOKIE_JAR: &[&str] = &["http_user"];

/// The user [`har_to_action_json`] falls back to when the HAR's cookies need a jar.
pub const COOKIE_JAR_USER: &str = "http_user";

/// Reads a HAR file (UTF-8, a BOM tolerated).
///
/// # Errors
/// [`ImportError::Read`], [`ImportError::Parse`] for text that is not JSON (with its line and
/// column), [`ImportError::Invalid`] for JSON that is not an object with a `log` object.
pub fn load_har(file_path: &Path) -> Result<Value, ImportError> {
    let text = std::fs::read_to_string(file_path).map_err(|source| ImportError::Read {
        path: file_path.to_path_buf(),
        source,
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let har: Value = serde_json::from_str(text).map_err(|e| ImportError::Parse {
        path: file_path.to_path_buf(),
        what: "HAR JSON",
        message: e.to_string(),
    })?;
    if !har.get("log").is_some_and(Value::is_object) {
        return Err(ImportError::Invalid(format!(
            "{}: not a HAR file: no \"log\" object at the top level",
            file_path.display()
        )));
    }
    Ok(har)
}

fn compile(which: &'static str, patterns: &[String]) -> Result<Vec<Regex>, ImportError> {
    patterns
        .iter()
        .map(|pattern| {
            Regex::new(pattern).map_err(|e| ImportError::Pattern {
                which,
                pattern: pattern.clone(),
                message: e.to_string(),
            })
        })
        .collect()
}

/// The HAR's entries (`log.entries`; none when missing, as in Python).
fn entries(har: &Value) -> &[Value] {
    har.pointer("/log/entries")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Converts the HAR's entries into tasks (Python's `har_to_tasks`).
///
/// # Errors
/// [`ImportError::Pattern`] for an invalid include or exclude regex.
pub fn har_to_tasks(
    har: &Value,
    include: &[String],
    exclude: &[String],
    options: &HarOptions,
) -> Result<Vec<Value>, ImportError> {
    Ok(convert(har, include, exclude, options)?.tasks)
}

/// Tasks, and the names of the cookies left to the user's jar.
struct Converted {
    tasks: Vec<Value>,
    jar_cookies: Vec<String>,
}

fn convert(
    har: &Value,
    include: &[String],
    exclude: &[String],
    options: &HarOptions,
) -> Result<Converted, ImportError> {
    let include = compile("include", include)?;
    let exclude = compile("exclude", exclude)?;
    let mut kept = Vec::new();
    for entry in entries(har) {
        let request = &entry["request"];
        let (Some(method), Some(url)) = (
            request["method"].as_str().filter(|m| !m.is_empty()),
            request["url"].as_str().filter(|u| !u.is_empty()),
        ) else {
            continue;
        };
        if !include.is_empty() && !include.iter().any(|r| r.is_match(url)) {
            continue;
        }
        if exclude.iter().any(|r| r.is_match(url)) {
            continue;
        }
        kept.push((entry, task(entry, method, url, options)));
    }
    let jar_cookies = if options.keep_cookies {
        Vec::new()
    } else {
        leave_cookies_to_jar(&mut kept)
    };
    if options.correlate {
        correlate(&mut kept);
    }
    Ok(Converted {
        tasks: kept
            .into_iter()
            .map(|(_, task)| Value::Object(task))
            .collect(),
        jar_cookies,
    })
}

/// Python's `har_to_action_json`: one `LD_start_test` action running the tasks in sequence.
///
/// # Errors
/// As [`har_to_tasks`]; also [`ImportError::Invalid`] when no entry is left to replay.
#[allow(clippy::too_many_arguments)]
pub fn har_to_action_json(
    har: &Value,
    user: &str,
    user_count: u64,
    spawn_rate: f64,
    test_time: f64,
    include: &[String],
    exclude: &[String],
    options: &HarOptions,
) -> Result<Value, ImportError> {
    let Converted { tasks, jar_cookies } = convert(har, include, exclude, options)?;
    let user = if jar_cookies.is_empty() || USERS_WITH_COOKIE_JAR.contains(&user) {
        user
    } else {
        tracing::warn!(
            "the HAR's session cookies ({}) are left to a cookie jar, and {user} keeps none: \
             the plan uses {COOKIE_JAR_USER} (or convert with keep_cookies to replay the \
             recorded values)",
            jar_cookies.join(", ")
        );
        COOKIE_JAR_USER
    };
    if tasks.is_empty() {
        return Err(ImportError::Invalid(if entries(har).is_empty() {
            "the HAR has no entries (log.entries is missing or empty)".to_owned()
        } else {
            "no HAR entry is left after the include and exclude filters".to_owned()
        }));
    }
    Ok(json!({"load_density": [["LD_start_test", {
        "user_detail_dict": {"user": user},
        "tasks": {"mode": "sequence", "tasks": tasks},
        "user_count": user_count,
        "spawn_rate": spawn_rate,
        "test_time": test_time,
    }]]}))
}

fn escape(text: &str, options: &HarOptions) -> String {
    if options.escape_placeholders {
        text.replace("${", "$${")
    } else {
        text.to_owned()
    }
}

fn escape_json(value: &mut Value) {
    match value {
        Value::String(text) if text.contains("${") => *text = text.replace("${", "$${"),
        Value::Array(items) => items.iter_mut().for_each(escape_json),
        Value::Object(map) => map.values_mut().for_each(escape_json),
        _ => {}
    }
}

/// `<METHOD> <path?query>`: `/` when the URL has no path, the whole URL when it is not
/// `scheme://host...`.
fn task_name(method: &str, url: &str) -> String {
    let upper = method.to_ascii_uppercase();
    let Some((_, after_scheme)) = url.split_once("://") else {
        return format!("{upper} {url}");
    };
    let rest = after_scheme
        .find(['/', '?', '#'])
        .map_or("", |at| &after_scheme[at..]);
    let rest = rest.split('#').next().unwrap_or_default();
    let path = if rest.is_empty() {
        "/".to_owned()
    } else if rest.starts_with('?') {
        format!("/{rest}")
    } else {
        rest.to_owned()
    };
    format!("{upper} {path}")
}

fn task(entry: &Value, method: &str, url: &str, options: &HarOptions) -> Map<String, Value> {
    let request = &entry["request"];
    let mut task = Map::new();
    task.insert("method".into(), method.to_ascii_lowercase().into());
    task.insert("request_url".into(), escape(url, options).into());
    task.insert("name".into(), task_name(method, url).into());
    let mut headers = Map::new();
    for header in request["headers"].as_array().into_iter().flatten() {
        let name = header["name"].as_str().unwrap_or_default().trim();
        if name.is_empty()
            || DROPPED_HEADERS.iter().any(|d| d.eq_ignore_ascii_case(name))
            || options
                .exclude_headers
                .iter()
                .any(|d| d.eq_ignore_ascii_case(name))
        {
            continue;
        }
        let value = match &header["value"] {
            Value::String(text) => escape(text, options),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        headers.insert(name.to_owned(), value.into());
    }
    if !headers.is_empty() {
        task.insert("headers".into(), Value::Object(headers));
    }
    if let Some((key, body)) = body(&request["postData"]) {
        let mut body = body;
        if options.escape_placeholders {
            escape_json(&mut body);
        }
        task.insert(key.into(), body);
    }
    if let Some(status) = entry["response"]["status"].as_i64().filter(|s| *s != 0) {
        task.insert(
            "assertions".into(),
            json!([{"type": "status_code", "value": status}]),
        );
    }
    task
}

/// The body of `postData`: `json` for JSON text, `data` for params or other text.
fn body(post: &Value) -> Option<(&'static str, Value)> {
    let mime = post["mimeType"].as_str().unwrap_or_default();
    let text = post["text"].as_str().unwrap_or_default();
    if mime.contains("application/json") && !text.is_empty() {
        return Some(match serde_json::from_str::<Value>(text) {
            Ok(json) => ("json", json),
            Err(_) => ("data", Value::String(text.to_owned())),
        });
    }
    let params: Map<String, Value> = post["params"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let name = p["name"].as_str().filter(|n| !n.is_empty())?;
            let value = p["value"].as_str().unwrap_or_default();
            Some((name.to_owned(), Value::String(value.to_owned())))
        })
        .collect();
    if !params.is_empty() {
        return Some(("data", Value::Object(params)));
    }
    (!text.is_empty()).then(|| ("data", Value::String(text.to_owned())))
}

/// The names of the cookies a response set: its `Set-Cookie` headers (a value may hold
/// several, one per line, as DevTools joins them) and its HAR `cookies`.
fn set_cookie_names(response: &Value) -> Vec<String> {
    let mut names = Vec::new();
    for header in response["headers"].as_array().into_iter().flatten() {
        let is_set_cookie = header["name"]
            .as_str()
            .is_some_and(|n| n.trim().eq_ignore_ascii_case("set-cookie"));
        if !is_set_cookie {
            continue;
        }
        for line in header["value"].as_str().unwrap_or_default().lines() {
            let pair = line.split(';').next().unwrap_or_default();
            if let Some((name, _)) = pair.split_once('=') {
                names.push(name.trim().to_owned());
            }
        }
    }
    for cookie in response["cookies"].as_array().into_iter().flatten() {
        if let Some(name) = cookie["name"].as_str() {
            names.push(name.trim().to_owned());
        }
    }
    names.retain(|name| !name.is_empty());
    names
}

/// Leaves out of each task's `Cookie` header the cookies an earlier replayed response set;
/// a header left empty goes. Returns the names left out, in first-seen order.
fn leave_cookies_to_jar(kept: &mut [(&Value, Map<String, Value>)]) -> Vec<String> {
    let mut set: Vec<String> = Vec::new();
    let mut left_out: Vec<String> = Vec::new();
    for (entry, task) in kept.iter_mut() {
        if !set.is_empty() {
            if let Some(Value::Object(headers)) = task.get_mut("headers") {
                let cookie_headers: Vec<String> = headers
                    .keys()
                    .filter(|name| name.eq_ignore_ascii_case("cookie"))
                    .cloned()
                    .collect();
                for header in cookie_headers {
                    let Some(Value::String(value)) = headers.get(&header) else {
                        continue;
                    };
                    let mut kept_pairs = Vec::new();
                    for pair in value.split(';') {
                        let name = pair.split('=').next().unwrap_or_default().trim();
                        if name.is_empty() {
                            continue;
                        }
                        if set.iter().any(|s| s == name) {
                            if !left_out.iter().any(|l| l == name) {
                                left_out.push(name.to_owned());
                            }
                        } else {
                            kept_pairs.push(pair.trim());
                        }
                    }
                    if kept_pairs.is_empty() {
                        headers.remove(&header);
                    } else {
                        let joined = kept_pairs.join("; ");
                        headers.insert(header, Value::String(joined));
                    }
                }
                if headers.is_empty() {
                    task.remove("headers");
                }
            }
        }
        for name in set_cookie_names(&entry["response"]) {
            if !set.contains(&name) {
                set.push(name);
            }
        }
    }
    left_out
}

/// Where a response gave a value: a JSON path in its body, or a header.
#[derive(Debug, Clone)]
enum Origin {
    JsonPath(String),
    Header(String),
}

/// Values a response gave: (value, where).
fn response_values(entry: &Value) -> Vec<(String, Origin)> {
    let mut found = Vec::new();
    let response = &entry["response"];
    let content = &response["content"];
    let is_base64 = content["encoding"].as_str() == Some("base64");
    if let (Some(text), false) = (content["text"].as_str(), is_base64) {
        if let Ok(json) = serde_json::from_str::<Value>(text) {
            walk(&json, &mut String::new(), &mut found);
        }
    }
    for header in response["headers"].as_array().into_iter().flatten() {
        let (Some(name), Some(value)) = (header["name"].as_str(), header["value"].as_str()) else {
            continue;
        };
        let name = name.trim();
        if STANDARD_RESPONSE_HEADERS
            .iter()
            .any(|s| s.eq_ignore_ascii_case(name))
            || value.len() < MIN_CORRELATED_LEN
            || value.contains(char::is_whitespace)
        {
            continue;
        }
        found.push((value.to_owned(), Origin::Header(name.to_ascii_lowercase())));
    }
    found
}

fn walk(value: &Value, path: &mut String, found: &mut Vec<(String, Origin)>) {
    match value {
        Value::String(text)
            if text.len() >= MIN_CORRELATED_LEN
                && !text.contains(char::is_whitespace)
                && !text.contains("${") =>
        {
            found.push((text.clone(), Origin::JsonPath(path.clone())));
        }
        Value::Object(map) => {
            for (key, item) in map {
                if key.contains('.') || key.is_empty() {
                    continue;
                }
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                walk(item, path, found);
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&index.to_string());
                walk(item, path, found);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// Replaces `value` in every string of `target` by `placeholder`; whether it did.
fn substitute(target: &mut Value, value: &str, placeholder: &str) -> bool {
    match target {
        Value::String(text) if text.contains(value) => {
            *text = text.replace(value, placeholder);
            true
        }
        Value::Array(items) => items.iter_mut().fold(false, |hit, item| {
            substitute(item, value, placeholder) | hit
        }),
        Value::Object(map) => map.values_mut().fold(false, |hit, item| {
            substitute(item, value, placeholder) | hit
        }),
        _ => false,
    }
}

fn correlate(kept: &mut [(&Value, Map<String, Value>)]) {
    // value -> variable, for values already correlated (the first response that gave it).
    let mut variables: BTreeMap<String, String> = BTreeMap::new();
    let mut next = 1;
    for i in 0..kept.len() {
        let candidates = response_values(kept[i].0);
        let mut extractors = Vec::new();
        for (value, origin) in candidates {
            if variables.contains_key(&value) {
                continue;
            }
            let var = format!("corr_{next}");
            let placeholder = format!("${{var.{var}}}");
            let mut used = false;
            for (_, later) in kept.iter_mut().skip(i + 1) {
                for key in ["request_url", "headers", "json", "data"] {
                    if let Some(target) = later.get_mut(key) {
                        used |= substitute(target, &value, &placeholder);
                    }
                }
            }
            if used {
                next += 1;
                extractors.push(match origin {
                    Origin::JsonPath(path) => {
                        json!({"var": var, "from": "json_path", "path": path})
                    }
                    Origin::Header(name) => json!({"var": var, "from": "header", "name": name}),
                });
                variables.insert(value, var);
            }
        }
        if !extractors.is_empty() {
            kept[i].1.insert("extract".into(), Value::Array(extractors));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_python_rules() {
        assert_eq!(task_name("get", "http://h:1/a/b?x=1#f"), "GET /a/b?x=1");
        assert_eq!(task_name("post", "https://h"), "POST /");
        assert_eq!(task_name("get", "http://h?q=1"), "GET /?q=1");
        assert_eq!(task_name("get", "not a url"), "GET not a url");
    }
}
