//! The public (worker-facing) app.

use super::error::{framework_pages, not_found_page, text_response, ApiError};
use super::AppState;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { text_response(StatusCode::OK, "") }))
        .route("/runner/active-runs", post(|| todo_route("public-assign")))
        .route(
            "/runner/active-runs/{run_id}",
            get(|| todo_route("get-active-run")),
        )
        .route(
            "/runner/active-runs/{run_id}/finish",
            post(|| todo_route("public-finish")),
        )
        .fallback(|| async { not_found_page() })
        .layer(axum::middleware::map_response(framework_pages))
        .layer(axum::middleware::from_fn_with_state(state.clone(), super::metrics_layer::track))
        .with_state(state)
}

async fn todo_route(name: &'static str) -> Result<Response, ApiError> {
    Err(ApiError::NotImplemented(name))
}
