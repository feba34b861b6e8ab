//! Active runs and assignment (runner-http-api.md §2.5–§2.8, §3.2–§3.3).

use crate::assign::{self, AssignError, Mode};
use crate::http::error::json_response;
use crate::http::extract::{json_object, kind};
use crate::http::{ApiError, AppState};
use crate::metrics::NONE_LABEL;
use crate::state;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

/// An optional string field; anything else but null is the caller's error.
fn opt_string(body: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ApiError::bad_request(format!(
            "{key} must be a string, got {}",
            kind(other)
        ))),
    }
}

/// Longest worker name an assign accepts.
pub const MAX_WORKER_NAME: usize = 255;

/// The assignment request of both apps; `worker` comes from the body only
/// on the admin app (the public app takes it from the credentials).
pub fn parse_request(
    body: &Map<String, Value>,
    worker: Option<String>,
) -> Result<assign::Request, ApiError> {
    Ok(assign::Request {
        worker,
        worker_link: opt_string(body, "worker_link")?,
        backchannel: assign::parse_backchannel(body.get("backchannel"))
            .map_err(ApiError::bad_request)?,
        codebase: opt_string(body, "codebase")?,
        campaign: opt_string(body, "campaign")?,
    })
}

/// Run the procedure and shape its outcome; `location` prefixes the run id.
pub async fn respond(
    app: &AppState,
    mode: Mode,
    req: &assign::Request,
    location: &str,
) -> Result<Response, ApiError> {
    match assign::next_item(app, app.opener.as_ref(), mode, req).await {
        Ok(a) => {
            if mode == Mode::Assign {
                tracing::info!(
                    run_id = %a.id,
                    codebase = %a.codebase,
                    campaign = %a.campaign,
                    worker = %req.worker.as_deref().unwrap_or(""),
                    "assigned run"
                );
            }
            let mut resp = json_response(StatusCode::CREATED, &a);
            let loc = HeaderValue::from_str(&format!("{location}{}", a.id))
                .map_err(anyhow::Error::from)?;
            resp.headers_mut().insert(header::LOCATION, loc);
            Ok(resp)
        }
        Err(AssignError::QueueEmpty) => Ok(crate::http::error::reason_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "queue empty",
        )),
        Err(AssignError::RateLimited) => {
            // Upstream never carries the retry-after value through (QH-3).
            let mut resp =
                crate::http::error::reason_response(StatusCode::TOO_MANY_REQUESTS, "None");
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("120"));
            Ok(resp)
        }
        Err(AssignError::Internal(e)) => Err(ApiError::Internal(e)),
    }
}

/// POST /active-runs (§2.7).
pub async fn assign(State(app): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let body = json_object(&body)?;
    let worker = opt_string(&body, "worker")?;
    // No worker row can have a longer name than this bound, and the name
    // becomes a metric label: a longer one is refused before it counts.
    if worker.as_ref().is_some_and(|w| w.len() > MAX_WORKER_NAME) {
        return Err(ApiError::bad_request(format!(
            "worker name longer than {MAX_WORKER_NAME} bytes"
        )));
    }
    app.metrics
        .assignments
        .with_label_values(&[&app
            .metrics
            .worker_label
            .of(worker.as_deref().unwrap_or(NONE_LABEL))])
        .inc();
    let req = parse_request(&body, worker)?;
    respond(&app, Mode::Assign, &req, "/active-runs/").await
}

/// GET /active-runs/+peek (§2.8): no worker, no filters.
pub async fn peek(State(app): State<AppState>) -> Result<Response, ApiError> {
    respond(
        &app,
        Mode::Peek,
        &assign::Request::default(),
        "/active-runs/",
    )
    .await
}

/// GET /active-runs (§2.5): the `processing` list of /status.
pub async fn list(State(app): State<AppState>) -> Result<Response, ApiError> {
    let runs = state::processing(&app.runs)
        .await
        .map_err(anyhow::Error::from)?;
    Ok(json_response(StatusCode::OK, &runs))
}

/// GET /runner/active-runs/{run_id} (§3.3): unauthenticated, so the
/// backchannel URL is shown without its userinfo (divergence-policy §2).
pub async fn public_get(
    State(app): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Response, ApiError> {
    match state::get(&app.runs, &run_id).await? {
        Some(run) => {
            let mut doc = run.to_json(&app.clock.now_naive());
            if let Some(Value::String(url)) = doc.pointer_mut("/backchannel/my_url") {
                *url = crate::backchannel::without_userinfo(url);
            }
            Ok(json_response(StatusCode::OK, &doc))
        }
        None => Err(ApiError::not_found_text(format!("no such run {run_id}"))),
    }
}

/// GET /active-runs/{run_id} (§2.6).
pub async fn get(
    State(app): State<AppState>,
    Path(run_id): Path<String>,
) -> Result<Response, ApiError> {
    match state::get(&app.runs, &run_id).await? {
        Some(run) => {
            Ok(json_response(StatusCode::OK, &run.to_json(&app.clock.now_naive())).into_response())
        }
        None => Err(ApiError::not_found_text(format!("no such run {run_id}"))),
    }
}
