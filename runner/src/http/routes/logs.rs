//! Logs and kill of an active run through its backchannel
//! (runner-http-api.md §2.10–§2.12).

use crate::backchannel::{self, BackchannelError};
use crate::http::error::{json_response, reason_response, ApiError};
use crate::http::extract::{path_rejection, RunId};
use crate::http::AppState;
use crate::state;
use crate::types::{ActiveRun, Backchannel};
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

async fn find_active_run(app: &AppState, run_id: &str) -> Result<ActiveRun, ApiError> {
    state::get(&app.runs, run_id)
        .await?
        .ok_or_else(|| ApiError::not_found_text(format!("No such current run: {run_id}")))
}

/// Upstream lets these escape as 500s (QH-7); the rule book answers 501.
fn no_backchannel(run_id: &str) -> ApiError {
    ApiError::Reason {
        status: StatusCode::NOT_IMPLEMENTED,
        reason: format!("run {run_id} has no backchannel to fetch logs from"),
    }
}

/// What the worker's answer (or its absence) means for our caller: never a
/// 500, since the failure is the peer's, not ours.
fn peer_error(e: BackchannelError) -> ApiError {
    let status = match &e {
        BackchannelError::Lacks(_) => StatusCode::NOT_IMPLEMENTED,
        _ => StatusCode::BAD_GATEWAY,
    };
    ApiError::Reason {
        status,
        reason: e.to_string(),
    }
}

/// GET /log/{run_id}: the log file names the worker reports.
pub async fn log_index(
    State(app): State<AppState>,
    RunId(run_id): RunId,
) -> Result<Response, ApiError> {
    let run = find_active_run(&app, &run_id).await?;
    match backchannel::list_log_files(&run.backchannel).await {
        Ok(names) => Ok(json_response(StatusCode::OK, &names)),
        Err(BackchannelError::NotSupported) => Err(no_backchannel(&run_id)),
        Err(e) => Err(peer_error(e)),
    }
}

#[derive(serde::Deserialize)]
pub struct LogFile {
    filename: String,
}

/// GET /log/{run_id}/{filename}: one log file, bytes as the worker sent them.
pub async fn log(
    State(app): State<AppState>,
    RunId(run_id): RunId,
    filename: Result<Path<LogFile>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(LogFile { filename }) = filename.map_err(path_rejection)?;
    if filename.contains('/') {
        return Err(ApiError::Text {
            status: StatusCode::BAD_REQUEST,
            text: format!("Invalid filename {filename}"),
        });
    }
    let run = find_active_run(&app, &run_id).await?;
    match backchannel::get_log_file(&run.backchannel, &filename).await {
        Ok(resp) => {
            // Streamed as it arrives (chunked, no Content-Length, as
            // upstream), so a huge log never sits in memory; type without charset.
            let body = Body::from_stream(resp.bytes_stream());
            Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
                body,
            )
                .into_response())
        }
        Err(BackchannelError::NotFound(name)) => match run.backchannel {
            // Jenkins only serves worker.log: upstream's own 404 text.
            Backchannel::Jenkins { .. } => Err(ApiError::not_found_text(format!(
                "No such log file: {name}"
            ))),
            // The worker's 404 was a 500 upstream (QH-7); the rule book answers 404.
            _ => Ok(reason_response(
                StatusCode::NOT_FOUND,
                &format!("No such log file: {name}"),
            )),
        },
        Err(BackchannelError::NotSupported) => Err(no_backchannel(&run_id)),
        Err(e) => Err(peer_error(e)),
    }
}

/// POST /kill/{run_id}: ask the worker to stop; the run stays registered.
pub async fn kill(State(app): State<AppState>, RunId(run_id): RunId) -> Result<Response, ApiError> {
    let run = find_active_run(&app, &run_id).await?;
    // Captured before killing, with a fresh current_duration.
    let ret = run.to_json(&app.clock.now_naive());
    match backchannel::kill(&run.backchannel).await {
        Ok(()) => Ok(json_response(StatusCode::OK, &ret)),
        Err(BackchannelError::NotSupported) => Err(ApiError::Text {
            status: StatusCode::NOT_IMPLEMENTED,
            text: "kill not supported for this type of run".into(),
        }),
        Err(e) => Err(peer_error(e)),
    }
}
