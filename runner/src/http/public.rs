//! The public (worker-facing) app.

use super::error::{framework_pages, not_found_page, text_response};
use super::metrics_layer::Routes;
use super::AppState;
use crate::metrics::NONE_LABEL;
use axum::http::StatusCode;
use axum::Router;

/// Every route of the public app, each with its metric name (upstream
/// names only the GET; assign and finish are named here too, so worker
/// latency can be told apart).
pub fn routes() -> Routes {
    use super::routes::*;
    Routes::new()
        .at("/")
        .get(NONE_LABEL, || async { text_response(StatusCode::OK, "") })
        .at("/runner/active-runs")
        .post("assign", public_runs::assign)
        .at("/runner/active-runs/{run_id}")
        .get("get-active-run", active_runs::public_get)
        .at("/runner/active-runs/{run_id}/finish")
        .post("finish", finish::public_finish)
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
