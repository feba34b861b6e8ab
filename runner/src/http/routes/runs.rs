//! GET and POST /runs/{run_id} (runner-http-api.md §2.17–§2.18).

use super::fields::{mistyped, request_db_error};
use crate::db;
use crate::http::error::json_response;
use crate::http::extract::json_object;
use crate::http::{ApiError, AppState};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

/// Labels of the `publish_status` enum.
pub const PUBLISH_STATUSES: [&str; 6] = [
    "unknown",
    "blocked",
    "needs-manual-review",
    "rejected",
    "approved",
    "ignored",
];

#[derive(serde::Serialize)]
struct RunInfo {
    codebase: String,
    campaign: String,
    publish_status: String,
}

fn no_such_run(run_id: &str) -> ApiError {
    ApiError::not_found_text(format!("no such run: {run_id}"))
}

pub async fn get(
    State(app): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Response, ApiError> {
    let mut conn = app.db.acquire().await?;
    let (codebase, campaign, publish_status) = db::runs::publish_info(&mut conn, &run_id)
        .await?
        .ok_or_else(|| no_such_run(&run_id))?;
    Ok(json_response(
        StatusCode::OK,
        &RunInfo {
            codebase,
            campaign,
            publish_status,
        },
    ))
}

#[derive(serde::Serialize)]
struct Updated<'a> {
    run_id: &'a str,
    publish_status: &'a str,
    codebase: String,
    campaign: String,
}

/// Set a run's publish status and announce it on `publish-status`. A
/// missing or invalid status, or approving a run without revision, is a
/// 400 with the run untouched (a 500 upstream).
pub async fn update(
    State(app): State<AppState>,
    Path(run_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let data = json_object(&body)?;
    let status = match data.get("publish_status") {
        None => return Err(ApiError::bad_request("missing field \"publish_status\"")),
        Some(Value::String(s)) if PUBLISH_STATUSES.contains(&s.as_str()) => s.as_str(),
        Some(Value::String(s)) => {
            return Err(ApiError::bad_request(format!(
                "invalid publish_status {s:?}"
            )))
        }
        Some(other) => return Err(mistyped("publish_status", "a string", other)),
    };
    let mut conn = app.db.acquire().await?;
    let (codebase, campaign) = db::runs::set_publish_status(&mut conn, &run_id, status)
        .await
        .map_err(request_db_error)?
        .ok_or_else(|| no_such_run(&run_id))?;
    drop(conn);
    let ret = Updated {
        run_id: &run_id,
        publish_status: status,
        codebase,
        campaign,
    };
    crate::state::publish(&app.runs, "publish-status", &ret).await?;
    Ok(json_response(StatusCode::OK, &ret))
}
