//! The worker-facing assignment routes (runner-http-api.md §3.2, §3.3).

use super::active_runs::{parse_request, respond};
use crate::assign::Mode;
use crate::auth::{check_worker, AuthError};
use crate::http::error::text_response;
use crate::http::extract::{json_body, kind};
use crate::http::{ApiError, AppState};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::Value;

/// 401 `worker login required` with the Basic challenge upstream sends.
pub fn login_required() -> Response {
    let mut resp = text_response(StatusCode::UNAUTHORIZED, "worker login required");
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic Realm=\"Janitor\""),
    );
    resp
}

/// The authenticated worker's name, or the response to send instead.
pub async fn authenticate(app: &AppState, headers: &HeaderMap) -> Result<String, Response> {
    let value = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    match check_worker(&app.db, value).await {
        Ok(name) => Ok(name),
        Err(AuthError::Db(e)) => Err(axum::response::IntoResponse::into_response(ApiError::from(
            e,
        ))),
        Err(_) => Err(login_required()),
    }
}

/// POST /runner/active-runs: the body is parsed before the credentials are
/// checked, as upstream does; the worker name comes from the login.
pub async fn assign(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = json_body(&body)?;
    let worker = match authenticate(&app, &headers).await {
        Ok(w) => w,
        Err(resp) => return Ok(resp),
    };
    let Value::Object(body) = body else {
        return Err(ApiError::bad_request(format!(
            "expected a JSON object, got {}",
            kind(&body)
        )));
    };
    app.metrics
        .assignments
        .with_label_values(&[&app.metrics.worker_label.of(&worker)])
        .inc();
    let req = parse_request(&body, Some(worker))?;
    respond(&app, Mode::Assign, &req, "/runner/active-runs/").await
}
