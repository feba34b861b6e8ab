//! The internal ("admin") app: every route of the Python runner's internal app.

use super::error::{framework_pages, not_found_page, text_response};
use super::metrics_layer::Routes;
use super::AppState;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;

/// Every route of the internal app, each with its metric name.
pub fn routes() -> Routes {
    use super::routes::*;
    Routes::new()
        .at("/health")
        .get("health", health)
        .at("/ready")
        .get("ready", ready)
        .at("/metrics")
        .get("metrics", metrics::metrics)
        .at("/status")
        .get("status", status::status)
        .at("/active-runs")
        .get("get-active-runs", active_runs::list)
        .post("assign", active_runs::assign)
        .at("/active-runs/+peek")
        .get("peek", active_runs::peek)
        .at("/active-runs/{run_id}")
        .get("get-active-run", active_runs::get)
        .at("/active-runs/{run_id}/finish")
        .post("finish", finish::finish)
        .at("/log/{run_id}")
        .get("log-index", logs::log_index)
        .at("/log/{run_id}/{filename}")
        .get("log", logs::log)
        .at("/kill/{run_id}")
        .post("kill", logs::kill)
        .at("/queue")
        .get("queue", queue::list)
        .at("/queue/position")
        .get("queue-position", queue::position)
        .at("/schedule")
        .post("schedule", schedule::schedule)
        .at("/schedule-control")
        .post("schedule-control", schedule::schedule_control)
        .at("/runs/{run_id}")
        .get("get-run", runs::get)
        .post("update-run", runs::update)
        .at("/codebases")
        .get("download-codebases", codebases::list)
        .post("upload-codebases", codebases::upload)
        .at("/candidates")
        .get("download-candidates", candidates::list)
        .post("upload-candidates", candidates::upload)
        .at("/candidates/{id}")
        .delete("delete-candidate", candidates::delete)
}

pub fn router(state: AppState) -> Router {
    let (router, names) = routes().finish();
    router
        .fallback(|| async { not_found_page() })
        .layer(axum::middleware::from_fn(super::extract::refuse_nul_in_url))
        .layer(axum::middleware::map_response(framework_pages))
        .layer(axum::middleware::from_fn_with_state(
            (state.clone(), names),
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
