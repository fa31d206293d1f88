//! OpenAPI 3 import (`LD_openapi_to_tasks`, `load-density openapi SPEC.{json,yaml}`).
//!
//! Each operation (`paths.<path>.<method>`) becomes one task:
//! - `request_url`: the base URL (given, else the first `servers` entry with its variables'
//!   defaults) plus the path, each path parameter written as a `${var.<name>}` placeholder;
//!   required query parameters are appended with their example (or a generated value);
//! - `name`: the `operationId`, else `<METHOD> <path>`;
//! - `headers`: the required header parameters;
//! - `json` (or `data` for form bodies): the request body's example (`example`, the first of
//!   `examples`, the schema's `example`), else a value generated from its schema (local
//!   `$ref`s followed);
//! - `assertions`: the lowest 2xx status the operation documents, when it documents one.
//!
//! [`openapi_variables`] gives a value for every path parameter (its example, else a
//! generated one); `load-density openapi` puts them in the plan's `variables`.

use std::path::Path;

use serde_json::{json, Map, Value};

use super::ImportError;

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
/// How deep `$ref`s and nested schemas are followed when generating a value.
const MAX_DEPTH: usize = 12;

/// Reads an OpenAPI 3 document, JSON or YAML (by extension; otherwise JSON then YAML).
///
/// # Errors
/// [`ImportError::Read`], [`ImportError::Parse`] (with the parser's line and column), and
/// [`ImportError::Invalid`] for a document that is not OpenAPI 3 or has no `paths`.
pub fn load_openapi(file_path: &Path) -> Result<Value, ImportError> {
    let text = std::fs::read_to_string(file_path).map_err(|source| ImportError::Read {
        path: file_path.to_path_buf(),
        source,
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let extension = file_path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let parse_error = |what, message: String| ImportError::Parse {
        path: file_path.to_path_buf(),
        what,
        message,
    };
    let document: Value =
        match extension.as_str() {
            "json" => serde_json::from_str(text)
                .map_err(|e| parse_error("OpenAPI JSON", e.to_string()))?,
            "yaml" | "yml" => serde_yaml::from_str(text)
                .map_err(|e| parse_error("OpenAPI YAML", e.to_string()))?,
            _ => match serde_json::from_str(text) {
                Ok(value) => value,
                Err(_) => serde_yaml::from_str(text)
                    .map_err(|e| parse_error("OpenAPI JSON or YAML", e.to_string()))?,
            },
        };
    check(&document)
        .map_err(|message| ImportError::Invalid(format!("{}: {message}", file_path.display())))?;
    Ok(document)
}

fn check(document: &Value) -> Result<(), String> {
    match document.get("openapi").and_then(Value::as_str) {
        Some(version) if version.starts_with("3.") => {}
        Some(version) => {
            return Err(format!(
                "\"openapi\" is {version:?}: only OpenAPI 3.x documents are supported"
            ))
        }
        None if document.get("swagger").is_some() => {
            return Err("a Swagger 2.0 document: only OpenAPI 3.x documents are supported".into())
        }
        None => return Err("not an OpenAPI document: no \"openapi\" version key".into()),
    }
    if !document.get("paths").is_some_and(Value::is_object) {
        return Err("no \"paths\" object".into());
    }
    Ok(())
}

/// The base URL: the first server's URL with its variables' defaults, or `""`.
fn server_url(document: &Value) -> String {
    let server = &document["servers"][0];
    let mut url = server["url"].as_str().unwrap_or_default().to_owned();
    for (name, variable) in server["variables"].as_object().into_iter().flatten() {
        if let Some(default) = variable["default"].as_str() {
            url = url.replace(&format!("{{{name}}}"), default);
        }
    }
    url.trim_end_matches('/').to_owned()
}

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'d>(document: &'d Value, value: &'d Value, at: &str) -> Result<&'d Value, ImportError> {
    let mut current = value;
    for _ in 0..MAX_DEPTH {
        let Some(reference) = current.get("$ref").and_then(Value::as_str) else {
            return Ok(current);
        };
        let pointer = reference.strip_prefix('#').ok_or_else(|| {
            ImportError::Invalid(format!(
                "{at}: $ref {reference:?} is not local (only \"#/...\" references are followed)"
            ))
        })?;
        current = document
            .pointer(pointer)
            .ok_or_else(|| ImportError::Invalid(format!("{at}: $ref {reference:?} not found")))?;
    }
    Err(ImportError::Invalid(format!("{at}: $ref chain too long")))
}

/// The parameters of an operation: the path item's, overridden by the operation's.
fn parameters<'d>(
    document: &'d Value,
    path_item: &'d Value,
    operation: &'d Value,
    at: &str,
) -> Result<Vec<&'d Value>, ImportError> {
    let mut found: Vec<&Value> = Vec::new();
    for list in [&path_item["parameters"], &operation["parameters"]] {
        for (i, parameter) in list.as_array().into_iter().flatten().enumerate() {
            let parameter = resolve(document, parameter, &format!("{at}.parameters[{i}]"))?;
            found.retain(|p| !(p["name"] == parameter["name"] && p["in"] == parameter["in"]));
            found.push(parameter);
        }
    }
    Ok(found)
}

/// A parameter's value: its example, its schema's example or default, else generated.
fn parameter_value(document: &Value, parameter: &Value, at: &str) -> Result<Value, ImportError> {
    if let Some(example) = parameter.get("example") {
        return Ok(example.clone());
    }
    if let Some(first) = parameter["examples"]
        .as_object()
        .and_then(|e| e.values().next())
    {
        if let Some(value) = first.get("value") {
            return Ok(value.clone());
        }
    }
    generate(document, &parameter["schema"], &format!("{at}.schema"), 0)
}

/// A value for `schema`: its example, default or first enum value, else one of its type.
fn generate(
    document: &Value,
    schema: &Value,
    at: &str,
    depth: usize,
) -> Result<Value, ImportError> {
    if depth > MAX_DEPTH {
        return Ok(Value::Null);
    }
    let schema = resolve(document, schema, at)?;
    for key in ["example", "default"] {
        if let Some(value) = schema.get(key) {
            return Ok(value.clone());
        }
    }
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return Ok(first.clone());
    }
    for key in ["allOf", "oneOf", "anyOf"] {
        if let Some(parts) = schema[key].as_array() {
            if key == "allOf" {
                let mut merged = Map::new();
                for (i, part) in parts.iter().enumerate() {
                    if let Value::Object(fields) =
                        generate(document, part, &format!("{at}.allOf[{i}]"), depth + 1)?
                    {
                        merged.extend(fields);
                    }
                }
                return Ok(Value::Object(merged));
            }
            if let Some(first) = parts.first() {
                return generate(document, first, &format!("{at}.{key}[0]"), depth + 1);
            }
        }
    }
    let kind = match &schema["type"] {
        Value::String(kind) => kind.as_str(),
        // OpenAPI 3.1 allows a list of types: the first that is not "null".
        Value::Array(kinds) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|k| *k != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ => "string",
    };
    Ok(match kind {
        "object" => {
            let mut object = Map::new();
            for (name, property) in schema["properties"].as_object().into_iter().flatten() {
                let value = generate(
                    document,
                    property,
                    &format!("{at}.properties.{name}"),
                    depth + 1,
                )?;
                object.insert(name.clone(), value);
            }
            Value::Object(object)
        }
        "array" => json!([generate(
            document,
            &schema["items"],
            &format!("{at}.items"),
            depth + 1
        )?]),
        "integer" => schema.get("minimum").cloned().unwrap_or_else(|| json!(1)),
        "number" => schema.get("minimum").cloned().unwrap_or_else(|| json!(1.5)),
        "boolean" => json!(true),
        "null" => Value::Null,
        _ => json!(match schema["format"].as_str().unwrap_or_default() {
            "date-time" => "2026-01-01T00:00:00Z",
            "date" => "2026-01-01",
            "email" => "user@example.com",
            "uuid" => "00000000-0000-4000-8000-000000000000",
            "uri" | "url" => "http://127.0.0.1/",
            "ipv4" => "127.0.0.1",
            _ => "string",
        }),
    })
}

/// The body: (`json` or `data`, value) from the request body's first usable media type.
fn body(
    document: &Value,
    operation: &Value,
    at: &str,
) -> Result<Option<(&'static str, Value)>, ImportError> {
    let Some(request_body) = operation.get("requestBody") else {
        return Ok(None);
    };
    let at = format!("{at}.requestBody");
    let request_body = resolve(document, request_body, &at)?;
    let content = request_body["content"].as_object();
    for (media_type, key) in [
        ("json", "json"),
        ("application/x-www-form-urlencoded", "data"),
        ("text/", "data"),
    ] {
        let Some((name, media)) = content
            .into_iter()
            .flatten()
            .find(|(name, _)| name.contains(media_type))
        else {
            continue;
        };
        let at = format!("{at}.content.{name}");
        let value = if let Some(example) = media.get("example") {
            example.clone()
        } else if let Some(first) = media["examples"]
            .as_object()
            .and_then(|e| e.values().next())
        {
            resolve(document, first, &format!("{at}.examples"))?["value"].clone()
        } else {
            generate(document, &media["schema"], &format!("{at}.schema"), 0)?
        };
        let value = match (key, value) {
            ("data", Value::String(text)) => Value::String(text),
            ("data", Value::Object(form)) => Value::Object(form),
            ("data", other) => Value::String(other.to_string()),
            (_, value) => value,
        };
        return Ok(Some((key, value)));
    }
    Ok(None)
}

fn query_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn encode_query(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// One task per operation. `base_url` overrides the document's first server.
///
/// # Errors
/// [`ImportError::Invalid`] for a document that is not OpenAPI 3, or a `$ref` that does not
/// resolve (naming where).
pub fn openapi_to_tasks(
    document: &Value,
    base_url: Option<&str>,
) -> Result<Vec<Value>, ImportError> {
    check(document).map_err(ImportError::Invalid)?;
    let base = base_url
        .map(|b| b.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| server_url(document));
    let mut tasks = Vec::new();
    for (path, path_item) in document["paths"].as_object().into_iter().flatten() {
        let path_at = format!("paths.{path}");
        let path_item = resolve(document, path_item, &path_at)?;
        for method in METHODS {
            let Some(operation) = path_item.get(*method) else {
                continue;
            };
            let at = format!("{path_at}.{method}");
            let parameters = parameters(document, path_item, operation, &at)?;
            let mut url = format!("{base}{path}");
            for parameter in &parameters {
                if parameter["in"] == "path" {
                    if let Some(name) = parameter["name"].as_str() {
                        url = url.replace(&format!("{{{name}}}"), &format!("${{var.{name}}}"));
                    }
                }
            }
            let mut query = Vec::new();
            let mut headers = Map::new();
            for parameter in &parameters {
                if parameter["required"] != true {
                    continue;
                }
                let Some(name) = parameter["name"].as_str() else {
                    continue;
                };
                let value = parameter_value(document, parameter, &at)?;
                match parameter["in"].as_str() {
                    Some("query") => {
                        query.push(format!(
                            "{}={}",
                            encode_query(name),
                            encode_query(&query_text(&value))
                        ));
                    }
                    Some("header") => {
                        headers.insert(name.to_owned(), Value::String(query_text(&value)));
                    }
                    _ => {}
                }
            }
            if !query.is_empty() {
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str(&query.join("&"));
            }
            let mut task = Map::new();
            task.insert("method".into(), json!(method));
            task.insert("request_url".into(), json!(url));
            let name = operation["operationId"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{} {path}", method.to_ascii_uppercase()));
            task.insert("name".into(), json!(name));
            if let Some((key, value)) = body(document, operation, &at)? {
                if key == "json" {
                    headers
                        .entry("Content-Type")
                        .or_insert_with(|| json!("application/json"));
                }
                task.insert(key.into(), value);
            }
            if !headers.is_empty() {
                task.insert("headers".into(), Value::Object(headers));
            }
            let success = operation["responses"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(code, _)| code.parse::<u16>().ok())
                .filter(|code| (200..300).contains(code))
                .min();
            if let Some(code) = success {
                task.insert(
                    "assertions".into(),
                    json!([{"type": "status_code", "value": code}]),
                );
            }
            tasks.push(Value::Object(task));
        }
    }
    Ok(tasks)
}

/// A value for every path parameter of the document (its example, else generated), for the
/// run's `variables`.
///
/// # Errors
/// As [`openapi_to_tasks`].
pub fn openapi_variables(document: &Value) -> Result<Map<String, Value>, ImportError> {
    let mut variables = Map::new();
    for (path, path_item) in document["paths"].as_object().into_iter().flatten() {
        let path_at = format!("paths.{path}");
        let path_item = resolve(document, path_item, &path_at)?;
        for method in METHODS {
            let Some(operation) = path_item.get(*method) else {
                continue;
            };
            let at = format!("{path_at}.{method}");
            for parameter in parameters(document, path_item, operation, &at)? {
                if parameter["in"] != "path" {
                    continue;
                }
                if let Some(name) = parameter["name"].as_str() {
                    if !variables.contains_key(name) {
                        let value = parameter_value(document, parameter, &at)?;
                        variables.insert(name.to_owned(), value);
                    }
                }
            }
        }
    }
    Ok(variables)
}

/// An action document: one `LD_start_test` with the tasks and the path parameters'
/// variables.
///
/// # Errors
/// As [`openapi_to_tasks`]; also [`ImportError::Invalid`] when the document has no operation.
pub fn openapi_to_action_json(
    document: &Value,
    base_url: Option<&str>,
    user: &str,
    user_count: u64,
    spawn_rate: f64,
    test_time: f64,
) -> Result<Value, ImportError> {
    let tasks = openapi_to_tasks(document, base_url)?;
    if tasks.is_empty() {
        return Err(ImportError::Invalid(
            "the OpenAPI document has no operation under \"paths\"".into(),
        ));
    }
    Ok(json!({"load_density": [["LD_start_test", {
        "user_detail_dict": {"user": user},
        "user_count": user_count,
        "spawn_rate": spawn_rate,
        "test_time": test_time,
        "variables": openapi_variables(document)?,
        "tasks": tasks,
    }]]}))
}
