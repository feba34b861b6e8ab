//! The public (worker-facing) app.

use super::error::{framework_pages, not_found_page, text_response};
use super::AppState;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(|| async { text_response(StatusCode::OK, "") }))
        .route(
            "/runner/active-runs",
            post(super::routes::public_runs::assign),
        )
        .route(
            "/runner/active-runs/{run_id}",
            get(super::routes::active_runs::public_get),
        )
        .route(
            "/runner/active-runs/{run_id}/finish",
            post(super::routes::finish::public_finish),
        )
        .fallback(|| async { not_found_page() })
        .layer(axum::middleware::from_fn(super::extract::refuse_nul_in_url))
        .layer(axum::middleware::map_response(framework_pages))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            super::metrics_layer::track,
        ))
        .with_state(state)
}
