//! GET /metrics (runner-http-api.md §2.3), internal app only.

use crate::http::AppState;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// prometheus_client's `CONTENT_TYPE_LATEST` as the recording shows it
/// (the golden wins over the spec's `version=0.0.4`).
pub const CONTENT_TYPE: &str = "text/plain; version=1.0.0; charset=utf-8";

pub async fn metrics(State(app): State<AppState>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        app.metrics.render(),
    )
        .into_response()
}
