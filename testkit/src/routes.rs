//! The httpbin-like routes served by [`crate::HttpTarget`].

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use base64::Engine as _;
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use serde_json::{json, Map, Value};

use crate::stats::Stats;

/// Maximum `/delay/{ms}` sleep.
const MAX_DELAY_MS: u64 = 60_000;
/// Maximum `/bytes/{n}` body size.
const MAX_BYTES: u64 = 100 * 1024 * 1024;
/// Maximum request body accepted by the echo routes.
const MAX_ECHO_BODY: usize = 64 * 1024 * 1024;

type Shared = Arc<Stats>;

/// Builds the router with every testkit route.
pub(crate) fn router(stats: Shared) -> Router {
    Router::new()
        .route("/", any(root))
        .route("/get", any(get))
        .route("/post", any(echo))
        .route("/put", any(echo))
        .route("/patch", any(echo))
        .route("/delete", any(echo))
        .route("/anything", any(echo))
        .route("/anything/{*rest}", any(echo))
        .route("/status/{code}", any(status))
        .route("/delay/{ms}", any(delay))
        .route("/stall/{stall_ms}/{period_ms}", any(stall))
        .route("/bytes/{n}", any(bytes_route))
        .route("/headers", any(headers))
        .route("/cookies", any(cookies))
        .route("/cookies/set", any(cookies_set))
        .route("/redirect/{n}", any(redirect))
        .route("/basic-auth/{user}/{pass}", any(basic_auth))
        .route("/bearer", any(bearer))
        .route("/token", any(token))
        .route("/echo-token", any(echo_token))
        .route("/app", any(crate::app::page))
        .route("/app/login", any(crate::app::login))
        .route("/app/api", any(crate::app::api))
        .route("/app/cookie-login", any(crate::app::cookie_login))
        .route("/app/cookie-api", any(crate::app::cookie_api))
        .with_state(stats)
}

async fn root() -> &'static str {
    "ok"
}

async fn get(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    Json(json!({
        "args": args_json(&uri),
        "headers": headers_json(&headers, &uri),
        "method": method.as_str(),
        "url": path_and_query(&uri),
    }))
    .into_response()
}

async fn echo(req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_ECHO_BODY).await {
        Ok(body) => body,
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    let parsed_json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null)
    };
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let form = if is_form {
        pairs_json(url::form_urlencoded::parse(&body))
    } else {
        Value::Object(Map::new())
    };
    Json(json!({
        "method": parts.method.as_str(),
        "url": path_and_query(&parts.uri),
        "args": args_json(&parts.uri),
        "headers": headers_json(&parts.headers, &parts.uri),
        "json": parsed_json,
        "data": String::from_utf8_lossy(&body),
        "form": form,
        "cookies": cookies_json(&parts.headers),
    }))
    .into_response()
}

async fn status(Path(code): Path<String>) -> Response {
    match code.parse::<u16>() {
        Ok(code @ 100..=599) => match StatusCode::from_u16(code) {
            Ok(status) => status.into_response(),
            Err(_) => StatusCode::BAD_REQUEST.into_response(),
        },
        _ => StatusCode::BAD_REQUEST.into_response(),
    }
}

async fn delay(Path(ms): Path<String>) -> Response {
    let Ok(ms) = ms.parse::<u64>() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let ms = ms.min(MAX_DELAY_MS);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Json(json!({ "delay_ms": ms })).into_response()
}

/// The clock the stall windows of [`stall`] are cut from (shared by every target of the
/// process, so two targets stall together).
fn stall_epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

/// `/stall/{stall_ms}/{period_ms}`: a target that freezes for the first `stall_ms` of every
/// `period_ms` (e.g. `/stall/1000/4000`, 1 s out of every 4): a request that arrives during
/// a stall waits until it ends; any other is answered at once. Answers
/// `{"stalled_ms": <how long this request waited>}`.
async fn stall(Path((stall_ms, period_ms)): Path<(String, String)>) -> Response {
    let (Ok(stall_ms), Ok(period_ms)) = (stall_ms.parse::<u64>(), period_ms.parse::<u64>()) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if period_ms == 0 || stall_ms > period_ms || period_ms > MAX_DELAY_MS {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let period = Duration::from_millis(period_ms);
    let phase_ns = stall_epoch().elapsed().as_nanos() % period.as_nanos();
    let phase = Duration::from_nanos(u64::try_from(phase_ns).unwrap_or(u64::MAX));
    let wait = Duration::from_millis(stall_ms).saturating_sub(phase);
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    Json(json!({ "stalled_ms": wait.as_millis() as u64 })).into_response()
}

async fn bytes_route(Path(n): Path<String>) -> Response {
    let Ok(n) = n.parse::<u64>() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let body = PatternBody {
        remaining: n.min(MAX_BYTES),
    };
    (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::new(body),
    )
        .into_response()
}

async fn headers(uri: Uri, headers: HeaderMap) -> Response {
    Json(json!({ "headers": headers_json(&headers, &uri) })).into_response()
}

async fn cookies(headers: HeaderMap) -> Response {
    Json(json!({ "cookies": cookies_json(&headers) })).into_response()
}

async fn cookies_set(uri: Uri) -> Response {
    let mut response = (StatusCode::FOUND, [(header::LOCATION, "/cookies")]).into_response();
    let query = uri.query().unwrap_or_default();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match HeaderValue::try_from(format!("{name}={value}; Path=/")) {
            Ok(cookie) => {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            Err(_) => return StatusCode::BAD_REQUEST.into_response(),
        }
    }
    response
}

async fn redirect(Path(n): Path<String>) -> Response {
    let Ok(n) = n.parse::<u64>() else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let location = match n.checked_sub(1) {
        Some(next) => format!("/redirect/{next}"),
        None => "/get".to_owned(),
    };
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

async fn basic_auth(Path((user, pass)): Path<(String, String)>, headers: HeaderMap) -> Response {
    let expected = format!("{user}:{pass}");
    let authorized = authorization(&headers, "basic")
        .and_then(|encoded| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()
        })
        .is_some_and(|decoded| decoded == expected.as_bytes());
    if authorized {
        Json(json!({ "authenticated": true, "user": user })).into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"testkit\"")],
            Json(json!({ "authenticated": false })),
        )
            .into_response()
    }
}

async fn bearer(headers: HeaderMap) -> Response {
    match authorization(&headers, "bearer").filter(|token| !token.is_empty()) {
        Some(token) => Json(json!({ "authenticated": true, "token": token })).into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({ "authenticated": false })),
        )
            .into_response(),
    }
}

async fn token(State(stats): State<Shared>) -> Response {
    let token = format!("tok-{}", stats.next_token());
    let mut response = Json(json!({ "token": token })).into_response();
    if let Ok(value) = HeaderValue::try_from(token) {
        response.headers_mut().insert("x-token", value);
    }
    response
}

async fn echo_token(uri: Uri, headers: HeaderMap) -> Response {
    let from_header = headers
        .get("x-token")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let token = from_header.or_else(|| {
        url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .find(|(name, _)| name == "token")
            .map(|(_, value)| value.into_owned())
    });
    Json(json!({ "token": token })).into_response()
}

// ---------------------------------------------------------------------------
// helpers

/// The credentials of an `Authorization: <scheme> <credentials>` header
/// (scheme compared case-insensitively).
fn authorization<'h>(headers: &'h HeaderMap, scheme: &str) -> Option<&'h str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (found, credentials) = value.split_once(' ')?;
    found
        .eq_ignore_ascii_case(scheme)
        .then(|| credentials.trim())
}

fn path_and_query(uri: &Uri) -> &str {
    uri.path_and_query().map_or("/", |pq| pq.as_str())
}

fn args_json(uri: &Uri) -> Value {
    pairs_json(url::form_urlencoded::parse(
        uri.query().unwrap_or_default().as_bytes(),
    ))
}

/// Converts name/value pairs to a JSON object; repeated names become arrays.
fn pairs_json<'a>(
    pairs: impl Iterator<Item = (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
) -> Value {
    let mut map = Map::new();
    for (name, value) in pairs {
        let value = Value::String(value.into_owned());
        match map.get_mut(name.as_ref()) {
            Some(Value::Array(values)) => values.push(value),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, value]);
            }
            None => {
                map.insert(name.into_owned(), value);
            }
        }
    }
    Value::Object(map)
}

/// Request headers as `{lower-case name: value}`; repeated headers are joined
/// with `", "`. For HTTP/2 requests without a `host` header the URI authority
/// is reported as `host`.
fn headers_json(headers: &HeaderMap, uri: &Uri) -> Value {
    let mut map = Map::new();
    if !headers.contains_key(header::HOST) {
        if let Some(authority) = uri.authority() {
            map.insert("host".to_owned(), Value::String(authority.to_string()));
        }
    }
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        match map.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                map.insert(name.as_str().to_owned(), Value::String(value.into_owned()));
            }
        }
    }
    Value::Object(map)
}

/// Cookies from all `Cookie` headers as `{name: value}`.
fn cookies_json(headers: &HeaderMap) -> Value {
    let mut map = Map::new();
    for value in headers.get_all(header::COOKIE) {
        let value = String::from_utf8_lossy(value.as_bytes());
        for pair in value.split(';') {
            let pair = pair.trim();
            if pair.is_empty() {
                continue;
            }
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            map.insert(
                name.trim().to_owned(),
                Value::String(value.trim().to_owned()),
            );
        }
    }
    Value::Object(map)
}

/// Size of the static pattern chunk (a multiple of 256 so every chunk starts
/// at pattern offset 0).
const CHUNK: usize = 64 * 1024;

/// `PATTERN[i] == i % 256`.
static PATTERN: [u8; CHUNK] = pattern();

const fn pattern() -> [u8; CHUNK] {
    let mut buf = [0u8; CHUNK];
    let mut i = 0;
    while i < CHUNK {
        buf[i] = (i % 256) as u8;
        i += 1;
    }
    buf
}

/// A zero-copy body of `remaining` bytes where byte `i` is `i % 256`.
struct PatternBody {
    remaining: u64,
}

impl hyper::body::Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let len = usize::try_from(self.remaining).map_or(CHUNK, |r| r.min(CHUNK));
        self.remaining -= len as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&PATTERN[..len])))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
