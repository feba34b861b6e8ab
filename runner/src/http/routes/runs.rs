//! GET and POST /runs/{run_id} (runner-http-api.md §2.17–§2.18).

use super::fields::{mistyped_text, request_db_error};
use crate::db;
use crate::db::enums::PublishStatus;
use crate::http::error::json_response;
use crate::http::extract::JsonObject;
use crate::http::extract::RunId;
use crate::http::{ApiError, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

#[derive(serde::Serialize)]
struct RunInfo {
    codebase: String,
    campaign: String,
    publish_status: PublishStatus,
}

fn no_such_run(run_id: &str) -> ApiError {
    ApiError::not_found_text(format!("no such run: {run_id}"))
}

pub async fn get(State(app): State<AppState>, RunId(run_id): RunId) -> Result<Response, ApiError> {
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
    publish_status: PublishStatus,
    codebase: String,
    campaign: String,
}

/// The body of POST /runs/{run_id}.
#[derive(serde::Deserialize)]
pub struct Update {
    #[serde(deserialize_with = "publish_status")]
    publish_status: PublishStatus,
}

/// One of the `publish_status` enum's labels: anything else fails
/// upstream's enum cast (a 500 there, a 400 here).
fn publish_status<'de, D: serde::Deserializer<'de>>(d: D) -> Result<PublishStatus, D::Error> {
    use serde::de::Error;
    match <Value as serde::Deserialize>::deserialize(d)? {
        Value::String(s) => s
            .parse()
            .map_err(|_| D::Error::custom(format!("invalid publish_status {s:?}"))),
        other => Err(D::Error::custom(mistyped_text(
            "publish_status",
            "a string",
            &other,
        ))),
    }
}

/// Set a run's publish status and announce it on `publish-status`. A
/// missing or invalid status, or approving a run without revision, is a
/// 400 with the run untouched (a 500 upstream).
pub async fn update(
    State(app): State<AppState>,
    RunId(run_id): RunId,
    JsonObject(Update { publish_status }): JsonObject<Update>,
) -> Result<Response, ApiError> {
    let status = publish_status;
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
