//! The internal ("admin") app: every route of the Python runner's internal app.

use super::error::{framework_pages, not_found_page, text_response};
use super::AppState;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(super::routes::metrics::metrics))
        .route("/status", get(super::routes::status::status))
        .route(
            "/active-runs",
            get(super::routes::active_runs::list).post(super::routes::active_runs::assign),
        )
        .route("/active-runs/+peek", get(super::routes::active_runs::peek))
        .route(
            "/active-runs/{run_id}",
            get(super::routes::active_runs::get),
        )
        .route(
            "/active-runs/{run_id}/finish",
            post(super::routes::finish::finish),
        )
        .route("/log/{run_id}", get(super::routes::logs::log_index))
        .route("/log/{run_id}/{filename}", get(super::routes::logs::log))
        .route("/kill/{run_id}", post(super::routes::logs::kill))
        .route("/queue", get(super::routes::queue::list))
        .route("/queue/position", get(super::routes::queue::position))
        .route("/schedule", post(super::routes::schedule::schedule))
        .route(
            "/schedule-control",
            post(super::routes::schedule::schedule_control),
        )
        .route(
            "/runs/{run_id}",
            get(super::routes::runs::get).post(super::routes::runs::update),
        )
        .route(
            "/codebases",
            get(super::routes::codebases::list).post(super::routes::codebases::upload),
        )
        .route(
            "/candidates",
            get(super::routes::candidates::list).post(super::routes::candidates::upload),
        )
        .route(
            "/candidates/{id}",
            axum::routing::delete(super::routes::candidates::delete),
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

/// Liveness only: the process answers.
async fn health() -> Response {
    text_response(StatusCode::OK, "ok")
}

/// Readiness: "ok" only while PostgreSQL and Redis both answer; otherwise
/// 503 `{"reason"}` so a load balancer stops sending work here.
async fn ready(axum::extract::State(app): axum::extract::State<AppState>) -> Response {
    match app.check_dependencies().await {
        Ok(()) => text_response(StatusCode::OK, "ok"),
        Err(reason) => super::error::reason_response(StatusCode::SERVICE_UNAVAILABLE, &reason),
    }
}
