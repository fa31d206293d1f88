//! The dashboard: its page and assets (built into the binary), and the server-sent events it
//! listens to.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, Stream};
use tokio::sync::watch;

use super::live::Frame;
use super::Shared;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const CHART_JS: &str = include_str!("assets/chart.js");
const STYLE_CSS: &str = include_str!("assets/style.css");
const FAVICON_SVG: &str = include_str!("assets/favicon.svg");

/// How soon a page reconnects after losing the stream.
const RECONNECT: Duration = Duration::from_secs(2);

/// Only our own files, no inline script or style, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// `GET /`: the dashboard.
pub(crate) async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        INDEX_HTML,
    )
        .into_response()
}

/// `GET /assets/{file}`.
pub(crate) async fn asset(Path(file): Path<String>) -> Response {
    let (content_type, body) = match file.as_str() {
        "app.js" => ("text/javascript; charset=utf-8", APP_JS),
        "chart.js" => ("text/javascript; charset=utf-8", CHART_JS),
        "style.css" => ("text/css; charset=utf-8", STYLE_CSS),
        "favicon.svg" => ("image/svg+xml", FAVICON_SVG),
        _ => return (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    };
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// `GET /stats/summary.json`: the summary report of this run, as a download.
pub(crate) async fn summary(State(shared): State<Arc<Shared>>) -> Response {
    super::api::summary_json(&shared)
}

enum Step {
    Init,
    Updates,
    Done,
}

/// `GET /events`: `init` (settings, chart history, latest update), then an `update` about once
/// a second; the stream ends after the run's last update.
pub(crate) async fn events(
    State(shared): State<Arc<Shared>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let frames = shared.live.subscribe();
    let stream = stream::unfold(
        (Step::Init, frames, shared),
        |(step, mut frames, shared): (Step, watch::Receiver<Arc<Frame>>, Arc<Shared>)| async move {
            let (name, data, last) = match step {
                Step::Done => return None,
                Step::Init => {
                    let frame = frames.borrow_and_update().clone();
                    ("init", shared.live.init_event(&frame), frame.last)
                }
                Step::Updates => {
                    if frames.changed().await.is_err() {
                        return None;
                    }
                    let frame = frames.borrow_and_update().clone();
                    ("update", frame.update.clone(), frame.last)
                }
            };
            let mut event = Event::default().event(name).data(data);
            if name == "init" {
                event = event.retry(RECONNECT);
            }
            let next = if last { Step::Done } else { Step::Updates };
            Some((Ok(event), (next, frames, shared)))
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::default())
}
