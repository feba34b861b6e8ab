//! POST /schedule and POST /schedule-control (runner-http-api.md §2.15–§2.16).

use super::fields::{
    opt_bool, opt_bucket, opt_duration, opt_int8, opt_str, request_db_error, Object,
};
use crate::db;
use crate::db::enums::QueueBucket;
use crate::db::interval::total_seconds;
use crate::http::error::{json_response, reason_response};
use crate::http::extract::json_object;
use crate::http::{ApiError, AppState};
use crate::schedule::{self, ScheduleError, Scheduled, DEFAULT_SCHEDULE_OFFSET};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

#[derive(serde::Serialize)]
struct ScheduleResponse {
    campaign: String,
    /// Echoed as received (an int stays an int), or -1.0.
    offset: Value,
    bucket: QueueBucket,
    codebase: String,
    queue_id: i32,
    estimated_duration_seconds: Option<f64>,
}

fn response(campaign: String, codebase: String, offset: Option<&Value>, s: Scheduled) -> Response {
    let offset = offset
        .cloned()
        .unwrap_or_else(|| Value::from(DEFAULT_SCHEDULE_OFFSET));
    let secs = total_seconds(s.estimated_duration);
    json_response(
        StatusCode::OK,
        &ScheduleResponse {
            campaign,
            offset,
            bucket: s.bucket,
            codebase,
            queue_id: s.queue_id,
            // Python tests the timedelta's truthiness.
            estimated_duration_seconds: (secs != 0.0).then_some(secs),
        },
    )
}

fn schedule_error(e: ScheduleError) -> ApiError {
    match e {
        ScheduleError::CandidateUnavailable { .. } => ApiError::Text {
            status: StatusCode::BAD_REQUEST,
            text: "Candidate not available".to_owned(),
        },
        ScheduleError::Db(e) => request_db_error(e),
        ScheduleError::Other(e) => ApiError::Internal(e),
    }
}

/// `offset` is bound as a bigint: an integer exactly, a float truncated, a
/// bool as 0 or 1, beyond bigint a 400 (a 500 upstream). Returned as sent.
fn offset_field(req: &Object) -> Result<(Option<i64>, Option<&Value>), ApiError> {
    let offset = opt_int8(req, "offset")?;
    Ok((offset, req.get("offset").filter(|v| !v.is_null())))
}

/// Queue (codebase, campaign), given directly or taken from a run, at the
/// front of its bucket.
pub async fn schedule(State(app): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let req = json_object(&body)?;
    let mut tx = app.db.begin().await?;
    let (campaign, codebase, run_command) = if req.contains_key("run_id") {
        let found = match opt_str(&req, "run_id")? {
            Some(id) => db::runs::schedule_info(&mut tx, id).await?,
            None => None,
        };
        let Some((campaign, codebase, command)) = found else {
            return Ok(reason_response(StatusCode::NOT_FOUND, "Run not found"));
        };
        (campaign, codebase, command)
    } else {
        let campaign = super::fields::req_str(&req, "campaign")?.to_owned();
        let codebase = super::fields::req_str(&req, "codebase")?.to_owned();
        (campaign, codebase, None)
    };
    // Python converts only the duration before the command lookup; the
    // other fields fail at the insert, after "no command specified".
    let estimated_duration = opt_duration(&req, "estimated_duration")?;

    // First non-empty of: a candidate's command, the campaign's, the run's.
    let mut command = db::candidates::command_for(&mut tx, &codebase, &campaign).await?;
    if command.is_none() {
        // Upstream raises KeyError (500) for an unconfigured campaign (QH-12).
        let config = app
            .config
            .campaign(&campaign)
            .ok_or_else(|| ApiError::bad_request(format!("unknown campaign {campaign:?}")))?;
        command = config.command.clone().filter(|c| !c.is_empty());
    }
    let command = command
        .or(run_command.filter(|c| !c.is_empty()))
        .ok_or_else(|| ApiError::Text {
            status: StatusCode::BAD_REQUEST,
            text: "no command specified".to_owned(),
        })?;
    let refresh = opt_bool(&req, "refresh", false)?;
    let change_set = opt_str(&req, "change_set")?;
    let requester = opt_str(&req, "requester")?;
    let bucket = opt_bucket(&req, "bucket")?;
    let (offset, offset_json) = offset_field(&req)?;

    let scheduled = schedule::do_schedule(
        &mut tx,
        schedule::Manual {
            campaign: &campaign,
            codebase: &codebase,
            bucket,
            change_set,
            offset,
            refresh,
            requester,
            estimated_duration,
            command: Some(&command),
        },
    )
    .await
    .map_err(schedule_error)?;
    tx.commit().await?;
    Ok(response(campaign, codebase, offset_json, scheduled))
}

/// Queue a control run (`brz up --revision=<main branch revision>`) for a
/// codebase, given directly or through a run.
pub async fn schedule_control(
    State(app): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = json_object(&body)?;
    // Before the run lookup Python only requires `requester` and converts
    // the duration; the other fields fail later, so an unknown run is a 404
    // whatever they hold.
    if !req.contains_key("requester") {
        return Err(ApiError::bad_request("missing field \"requester\""));
    }
    // Parsed (and so validated) but not used, as upstream (QH-13).
    let _ = opt_duration(&req, "estimated_duration")?;

    let mut tx = app.db.begin().await?;
    let (codebase, revision) = if req.contains_key("run_id") {
        let found = match opt_str(&req, "run_id")? {
            Some(id) => db::runs::control_info(&mut tx, id).await?,
            None => None,
        };
        let Some((revision, codebase)) = found else {
            return Ok(reason_response(StatusCode::NOT_FOUND, "Run not found"));
        };
        let revision =
            revision.ok_or_else(|| ApiError::bad_request("the run has no main_branch_revision"))?;
        (codebase, revision)
    } else {
        let codebase = super::fields::req_str(&req, "codebase")?.to_owned();
        let revision = super::fields::req_str(&req, "main_branch_revision")?.to_owned();
        (codebase, revision)
    };
    let change_set = opt_str(&req, "change_set")?;
    let (offset, offset_json) = offset_field(&req)?;
    let requester = opt_str(&req, "requester")?;
    let refresh = opt_bool(&req, "refresh", false)?;
    let bucket = opt_bucket(&req, "bucket")?;
    let scheduled = schedule::do_schedule_control(
        &mut tx,
        schedule::Control {
            codebase: &codebase,
            change_set,
            main_branch_revision: Some(&revision),
            offset,
            refresh,
            bucket,
            requester,
        },
    )
    .await
    .map_err(schedule_error)?;
    tx.commit().await?;
    Ok(response(
        "control".to_owned(),
        codebase,
        offset_json,
        scheduled,
    ))
}
