//! `/metrics`: the Prometheus exporter's text, served on the web UI's port too.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// The exporter's OpenMetrics text while it runs; 404 with a hint otherwise.
pub(super) async fn metrics() -> Response {
    #[cfg(feature = "prometheus")]
    if let Some(text) = crate::sinks::prometheus::encode_current() {
        return (
            [(header::CONTENT_TYPE, crate::sinks::prometheus::CONTENT_TYPE)],
            text,
        )
            .into_response();
    }
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "the Prometheus exporter is not running: start it with LD_start_prometheus_exporter\n",
    )
        .into_response()
}
