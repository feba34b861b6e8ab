//! The worker-facing assignment routes (runner-http-api.md §3.2, §3.3).

use super::active_runs::{respond, AssignBody};
use crate::assign::Mode;
use crate::http::extract::{json_body, require_worker, typed_object};
use crate::http::{ApiError, AppState};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

/// POST /runner/active-runs: the body is parsed before the credentials are
/// checked, as upstream does; the worker name comes from the login.
pub async fn assign(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_body(&body)?;
    let worker = require_worker(&app, &headers).await?;
    let body: AssignBody = typed_object(body)?;
    app.metrics
        .assignments
        .with_label_values(&[&app.metrics.worker_label.of(&worker)])
        .inc();
    let req = body.into_request(Some(worker));
    respond(&app, Mode::Assign, &req, "/runner/active-runs/").await
}
