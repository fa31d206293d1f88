//! What every request goes through: a refusal of requests for another host name (DNS
//! rebinding), basic authentication when configured, a refusal of state-changing requests sent
//! by another site's page, and protective response headers.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::{BasicAuth, Shared, WebUiSettings};

/// The host name of a `Host` value (`name`, `name:port`, `[v6]:port`), lowercased, without a
/// trailing dot.
fn host_name(value: &str) -> String {
    let value = value.trim();
    let name = match value.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(rest, |(v6, _)| v6),
        None => match value.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => value,
        },
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether the request names this UI: a page of another site whose name was made to resolve
/// to this machine (DNS rebinding) sends its own name, never an IP address or `localhost`.
fn host_allowed(request: &Request, settings: &WebUiSettings) -> bool {
    let value = request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()));
    // A client that names no host (HTTP/1.0) is no browser.
    let Some(value) = value else {
        return true;
    };
    let name = host_name(&value);
    name.parse::<std::net::IpAddr>().is_ok()
        || name == "localhost"
        || name.ends_with(".localhost")
        || name.eq_ignore_ascii_case(settings.host().trim_end_matches('.'))
        || settings
            .allowed_hosts()
            .iter()
            .any(|allowed| allowed == "*" || *allowed == name)
}

/// Compares in time that depends on the lengths only, not on where the bytes differ.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorized(headers: &HeaderMap, auth: &BasicAuth) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(encoded) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let expected = format!("{}:{}", auth.username(), auth.password());
    same_bytes(&decoded, expected.as_bytes())
}

/// Whether a state-changing request comes from this UI's own page (or from a non-browser
/// client, which sends no `Origin`).
fn same_origin(request: &Request) -> bool {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return true;
    }
    let headers = request.headers();
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site == "cross-site" || site == "same-site" {
            return false;
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (origin.to_str().ok(), host) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host)),
        _ => false,
    }
}

pub(crate) async fn guard(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    if !host_allowed(&request, &shared.settings) {
        return (
            StatusCode::FORBIDDEN,
            "this host name is not allowed (add it to web_ui_dict.allowed_hosts)\n",
        )
            .into_response();
    }
    if let Some(auth) = &shared.settings.auth {
        if !authorized(request.headers(), auth) {
            return (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    "Basic realm=\"LoadDensity\", charset=\"UTF-8\"",
                )],
                "authentication required\n",
            )
                .into_response();
        }
    }
    if !same_origin(&request) {
        return (StatusCode::FORBIDDEN, "cross-origin requests are refused\n").into_response();
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}
