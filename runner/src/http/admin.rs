//! The internal ("admin") app: every route of the Python runner's internal app.

use super::error::{framework_pages, not_found_page, text_response, ApiError};
use super::AppState;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(health))
        .route("/metrics", get(super::routes::metrics::metrics))
        .route("/status", get(|| todo_route("status")))
        .route(
            "/active-runs",
            get(|| todo_route("get-active-runs")).post(|| todo_route("assign")),
        )
        .route("/active-runs/+peek", get(|| todo_route("peek")))
        .route("/active-runs/{run_id}", get(|| todo_route("get-active-run")))
        .route("/active-runs/{run_id}/finish", post(|| todo_route("finish")))
        .route("/log/{run_id}", get(super::routes::logs::log_index))
        .route("/log/{run_id}/{filename}", get(super::routes::logs::log))
        .route("/kill/{run_id}", post(super::routes::logs::kill))
        .route("/queue", get(|| todo_route("queue")))
        .route("/queue/position", get(|| todo_route("queue-position")))
        .route("/schedule", post(|| todo_route("schedule")))
        .route("/schedule-control", post(|| todo_route("schedule-control")))
        .route(
            "/runs/{run_id}",
            get(|| todo_route("get-run")).post(|| todo_route("update-run")),
        )
        .route(
            "/codebases",
            get(|| todo_route("download-codebases")).post(|| todo_route("upload-codebases")),
        )
        .route(
            "/candidates",
            get(|| todo_route("download-candidates")).post(|| todo_route("upload-candidates")),
        )
        .route("/candidates/{id}", axum::routing::delete(|| todo_route("delete-candidate")))
        .fallback(|| async { not_found_page() })
        .layer(axum::middleware::map_response(framework_pages))
        .layer(axum::middleware::from_fn_with_state(state.clone(), super::metrics_layer::track))
        .with_state(state)
}

async fn health() -> Response {
    text_response(StatusCode::OK, "ok")
}

async fn todo_route(name: &'static str) -> Result<Response, ApiError> {
    Err(ApiError::NotImplemented(name))
}
