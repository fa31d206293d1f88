//! A tiny web application for browser recordings: a page that logs in and calls an API with
//! the session the login gave.
//!
//! | Route | Behaviour |
//! |-------|-----------|
//! | `/app` | an HTML page whose script POSTs `/app/login`, then GETs `/app/api` with `Authorization: Bearer <session>`, then sets the title to `done <status>` |
//! | `/app/login` | `POST` JSON `{"user", "password"}` → `{"session": "sess-…"}` (a new session each time) |
//! | `/app/api` | `200 {"items": [...]}` for a session this server issued, `401` otherwise |
//! | `/app/cookie-login` | sets a new session as a cookie: `Set-Cookie: sid=sess-…; Path=/; HttpOnly` |
//! | `/app/cookie-api` | `200 {"items": [...]}` when the `Cookie` header carries `sid` of a session this server issued, `401` otherwise |

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::stats::Stats;

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>loading</title></head>
<body><p id="out">loading</p>
<script>
(async () => {
  const login = await fetch('/app/login', {
    method: 'POST',
    headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({user: 'alice', password: 'pa${ss}word'})
  });
  const { session } = await login.json();
  const api = await fetch('/app/api', { headers: { 'Authorization': 'Bearer ' + session } });
  document.getElementById('out').textContent = await api.text();
  document.title = 'done ' + api.status;
})();
</script></body></html>
"#;

pub(crate) async fn page() -> Html<&'static str> {
    Html(PAGE)
}

pub(crate) async fn login(State(stats): State<Arc<Stats>>, body: Option<Json<Value>>) -> Response {
    let Some(Json(body)) = body else {
        return (StatusCode::BAD_REQUEST, "a JSON body is required").into_response();
    };
    if body["user"].as_str().is_none_or(str::is_empty) {
        return (StatusCode::BAD_REQUEST, "\"user\" is required").into_response();
    }
    let session = stats.new_session();
    Json(json!({ "session": session })).into_response()
}

pub(crate) async fn api(State(stats): State<Arc<Stats>>, headers: HeaderMap) -> Response {
    let session = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match session {
        Some(session) if stats.has_session(session) => {
            Json(json!({ "items": ["a", "b"] })).into_response()
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "no session" })),
        )
            .into_response(),
    }
}

pub(crate) async fn cookie_login(State(stats): State<Arc<Stats>>) -> Response {
    let session = stats.new_session();
    (
        [(
            header::SET_COOKIE,
            format!("sid={session}; Path=/; HttpOnly"),
        )],
        Json(json!({ "ok": true })),
    )
        .into_response()
}

pub(crate) async fn cookie_api(State(stats): State<Arc<Stats>>, headers: HeaderMap) -> Response {
    let known = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix("sid="))
        .any(|session| stats.has_session(session));
    if known {
        Json(json!({ "items": ["a", "b"] })).into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "no session cookie" })),
        )
            .into_response()
    }
}
