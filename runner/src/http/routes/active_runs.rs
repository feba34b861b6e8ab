//! Active runs and assignment (runner-http-api.md §2.5–§2.8, §3.2–§3.3).

use crate::assign::{self, AssignError, Mode};
use crate::http::error::json_response;
use crate::http::extract::{JsonObject, RunId};
use crate::http::{ApiError, AppState};
use crate::metrics::NONE_LABEL;
use crate::state;
use crate::types::Backchannel;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// Longest worker name an assign accepts.
pub const MAX_WORKER_NAME: usize = 255;

/// The body of an assignment request on both apps (§2.7, §3.2). A string
/// field is absent, null or a string; anything else is a 400 naming it.
/// `worker` is a [`WorkerName`] on the admin app; the public app takes the
/// name from the credentials and ignores the field (`IgnoredAny`).
#[derive(Debug, serde::Deserialize)]
pub struct AssignBody<W = serde::de::IgnoredAny> {
    #[serde(default = "Option::default")]
    worker: Option<W>,
    worker_link: Option<String>,
    #[serde(default = "no_backchannel", deserialize_with = "backchannel")]
    backchannel: Backchannel,
    codebase: Option<String>,
    campaign: Option<String>,
}

impl<W> AssignBody<W> {
    pub fn into_request(self, worker: Option<String>) -> assign::Request {
        assign::Request {
            worker,
            worker_link: self.worker_link,
            backchannel: self.backchannel,
            codebase: self.codebase,
            campaign: self.campaign,
        }
    }
}

/// A worker name given in the admin app's body. No worker row can have a
/// longer name than [`MAX_WORKER_NAME`], and the name becomes a metric
/// label: a longer one is refused before it counts.
#[derive(Debug)]
pub struct WorkerName(pub String);

impl<'de> serde::Deserialize<'de> for WorkerName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        if name.len() > MAX_WORKER_NAME {
            return Err(serde::de::Error::custom(format!(
                "worker name longer than {MAX_WORKER_NAME} bytes"
            )));
        }
        Ok(WorkerName(name))
    }
}

fn no_backchannel() -> Backchannel {
    Backchannel::None
}

/// The backchannel object, checked as it arrives (see
/// [`assign::parse_backchannel`]); absent or null is none.
fn backchannel<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Backchannel, D::Error> {
    let v = <Option<Value> as serde::Deserialize>::deserialize(d)?;
    assign::parse_backchannel(v.as_ref()).map_err(serde::de::Error::custom)
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
pub async fn assign(
    State(app): State<AppState>,
    JsonObject(mut body): JsonObject<AssignBody<WorkerName>>,
) -> Result<Response, ApiError> {
    let worker = body.worker.take().map(|w| w.0);
    app.metrics
        .assignments
        .with_label_values(&[&app
            .metrics
            .worker_label
            .of(worker.as_deref().unwrap_or(NONE_LABEL))])
        .inc();
    let req = body.into_request(worker);
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
    RunId(run_id): RunId,
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
pub async fn get(State(app): State<AppState>, RunId(run_id): RunId) -> Result<Response, ApiError> {
    match state::get(&app.runs, &run_id).await? {
        Some(run) => {
            Ok(json_response(StatusCode::OK, &run.to_json(&app.clock.now_naive())).into_response())
        }
        None => Err(ApiError::not_found_text(format!("no such run {run_id}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::extract::typed;
    use serde_json::json;

    type AdminAssignBody = AssignBody<WorkerName>;

    fn reason(v: Value) -> String {
        match typed::<AdminAssignBody>(v).unwrap_err() {
            ApiError::Reason { reason, .. } => reason,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_assign_body_is_typed_and_a_refusal_names_its_field() {
        let mut body: AdminAssignBody = typed(json!({
            "worker": "w1",
            "codebase": null,
            "campaign": "fix",
            "backchannel": {"kind": "http", "url": "HTTP://Example.org:8080/x"},
            "unknown": [1]
        }))
        .unwrap();
        let worker = body.worker.take().map(|w| w.0);
        let req = body.into_request(worker);
        assert_eq!(req.worker.as_deref(), Some("w1"));
        assert_eq!(req.codebase, None);
        assert_eq!(req.campaign.as_deref(), Some("fix"));
        assert_eq!(
            req.backchannel,
            Backchannel::Polling {
                my_url: "http://example.org:8080/x".into()
            }
        );
        let empty: AdminAssignBody = typed(json!({})).unwrap();
        assert_eq!(empty.backchannel, Backchannel::None);
        // The public app ignores the field, whatever it holds.
        assert!(typed::<AssignBody>(json!({"worker": [1, {"x": 2}]})).is_ok());
        assert_eq!(
            reason(json!({"codebase": 5})),
            "field codebase: invalid type: integer `5`, expected a string"
        );
        assert_eq!(
            reason(json!({"backchannel": {"kind": "http"}})),
            "backchannel without url"
        );
        assert_eq!(
            reason(json!({"worker": "w".repeat(MAX_WORKER_NAME + 1)})),
            "worker name longer than 255 bytes"
        );
        assert!(typed::<AdminAssignBody>(json!({"worker": "w".repeat(MAX_WORKER_NAME)})).is_ok());
    }
}
