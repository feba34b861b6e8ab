//! GET, POST /candidates and DELETE /candidates/{id}
//! (runner-http-api.md §2.21–§2.23).

use super::fields::{
    mistyped, opt_bucket, opt_float8, opt_int4, opt_str, request_db_error, Object,
};
use crate::db;
use crate::db::enums::QueueBucket;
use crate::db::interval::total_seconds;
use crate::http::error::json_response;
use crate::http::extract::{json_body, kind};
use crate::http::{ApiError, AppState};
use crate::py::repr::{py_eq, repr, repr_str, str_of, truthy};
use crate::schedule::{self, ScheduleError};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;
use sqlx::{Acquire, PgConnection};

#[derive(serde::Serialize)]
struct CandidateOut {
    id: i32,
    codebase: String,
    campaign: String,
    command: String,
    #[serde(rename = "publish-policy")]
    publish_policy: Option<String>,
    change_set: Option<String>,
    context: Option<String>,
    value: Option<i32>,
    success_chance: Option<f64>,
}

/// Every candidate, in heap order as upstream (no ORDER BY).
pub async fn list(State(app): State<AppState>) -> Result<Response, ApiError> {
    let mut conn = app.db.acquire().await?;
    let out: Vec<CandidateOut> = db::candidates::list(&mut conn)
        .await?
        .into_iter()
        .map(|c| CandidateOut {
            id: c.id,
            codebase: c.codebase,
            campaign: c.suite,
            command: c.command,
            publish_policy: c.publish_policy,
            change_set: c.change_set,
            context: c.context,
            value: c.value,
            success_chance: c.success_chance,
        })
        .collect();
    Ok(json_response(StatusCode::OK, &out))
}

/// A Python set of JSON scalars rendered as a list (insertion order).
#[derive(Debug, Default, serde::Serialize)]
#[serde(transparent)]
struct PySet(Vec<Value>);

impl PySet {
    fn add(&mut self, v: Value) {
        if !self.0.iter().any(|x| py_eq(x, &v)) {
            self.0.push(v);
        }
    }
}

#[derive(serde::Serialize)]
struct Success {
    campaign: String,
    codebase: String,
    bucket: QueueBucket,
    change_set: Option<String>,
    offset: f64,
    estimated_duration: Option<f64>,
    #[serde(rename = "queue-id")]
    queue_id: i32,
    refresh: bool,
}

#[derive(Default, serde::Serialize)]
struct UploadResult {
    success: Vec<Success>,
    invalid_command: PySet,
    invalid_value: PySet,
    unknown_campaigns: PySet,
    unknown_codebases: PySet,
    unknown_publish_policies: PySet,
}

/// Why a candidate was skipped (its savepoint is rolled back).
enum Skip {
    UnknownCampaign(Value),
    InvalidCommand(Value),
    InvalidValue(Value),
    UnknownCodebase(Value),
    UnknownPublishPolicy(Value),
}

fn text_400(text: String) -> ApiError {
    ApiError::Text {
        status: StatusCode::BAD_REQUEST,
        text,
    }
}

/// The codebase and campaign fields, which upstream reads first (their
/// absence is its KeyError text).
fn required_fields(cand: &Object) -> Result<(&Value, &Value), ApiError> {
    let shown = || repr(&Value::Object(cand.clone()));
    let codebase = match cand.get("codebase") {
        None => {
            return Err(text_400(format!(
                "no codebase field for candidate {}",
                shown()
            )))
        }
        Some(Value::Null) => {
            return Err(text_400(format!(
                "codebase field is None for candidate {}",
                shown()
            )))
        }
        Some(v) => v,
    };
    let campaign = match cand.get("campaign") {
        None => {
            return Err(text_400(format!(
                "no campaign field for candidate {}",
                shown()
            )))
        }
        Some(v) => v,
    };
    Ok((codebase, campaign))
}

/// Upstream swaps the followup insert's parameters, so any entry fails
/// (QH-16); refuse them up front instead.
fn refuse_followups(cand: &Object) -> Result<(), ApiError> {
    match cand.get("followup_for") {
        None => Ok(()),
        Some(Value::Array(a)) if a.is_empty() => Ok(()),
        Some(Value::String(s)) if s.is_empty() => Ok(()),
        Some(Value::Object(o)) if o.is_empty() => Ok(()),
        Some(_) => Err(ApiError::bad_request("followup_for is not supported")),
    }
}

/// Store and schedule one candidate inside its savepoint.
async fn process(
    app: &AppState,
    conn: &mut PgConnection,
    cand: &Object,
) -> Result<Result<Success, Skip>, ApiError> {
    let (codebase, campaign) = required_fields(cand)?;
    let config = match campaign {
        Value::String(name) => app.config.campaign(name),
        // Lists and objects are unhashable in Python's set: a 500 upstream.
        Value::Array(_) | Value::Object(_) => {
            return Err(mistyped("campaign", "a string", campaign))
        }
        _ => None,
    };
    let Some(config) = config else {
        return Ok(Err(Skip::UnknownCampaign(campaign.clone())));
    };
    let campaign = campaign.as_str().unwrap_or_default();

    // A truthy command that is not a string fails only at the insert
    // upstream, after the value check: refused after it here too.
    let command = match cand.get("command") {
        Some(Value::String(c)) if !c.is_empty() => Ok(c.clone()),
        Some(v) if truthy(v) => Err(mistyped("command", "a string", v)),
        _ => match config.command.as_deref() {
            Some(c) if !c.is_empty() => Ok(c.to_owned()),
            other => {
                return Ok(Err(Skip::InvalidCommand(
                    other.map_or(Value::Null, Value::from),
                )))
            }
        },
    };
    if let Some(v) = cand.get("value") {
        if py_eq(v, &Value::from(0)) {
            return Ok(Err(Skip::InvalidValue(v.clone())));
        }
    }
    let command = command?;
    let publish_policy = opt_str(cand, "publish-policy")?;
    let codebase = codebase
        .as_str()
        .ok_or_else(|| mistyped("codebase", "a string", codebase))?;
    let change_set = opt_str(cand, "change_set")?;
    let new = db::candidates::NewCandidate {
        campaign,
        command: &command,
        change_set,
        context: opt_str(cand, "context")?,
        value: opt_int4(cand, "value")?,
        success_chance: opt_float8(cand, "success_chance")?,
        publish_policy,
        codebase,
    };
    if let Some(skip) = store(conn, &new).await? {
        return Ok(Err(skip));
    }
    let (bucket, refresh, requester) = how_to_schedule(conn, cand, &new).await?;
    refuse_followups(cand)?;
    let regular = schedule::Regular {
        codebase,
        campaign,
        command: Some(&command),
        change_set,
        bucket,
        requester: Some(&requester),
        refresh,
        ..Default::default()
    };
    schedule_candidate(app, conn, regular).await.map(Ok)
}

/// Insert or overwrite the candidate; an unknown codebase or publish policy
/// skips it.
async fn store(
    conn: &mut PgConnection,
    new: &db::candidates::NewCandidate<'_>,
) -> Result<Option<Skip>, ApiError> {
    let Err(e) = db::candidates::upsert(conn, new).await else {
        return Ok(None);
    };
    if let sqlx::Error::Database(db) = &e {
        match db.constraint() {
            Some("candidate_codebase_fkey") => {
                return Ok(Some(Skip::UnknownCodebase(Value::from(new.codebase))))
            }
            Some("candidate_publish_policy_fkey") => {
                return Ok(Some(Skip::UnknownPublishPolicy(
                    new.publish_policy.map_or(Value::Null, Value::from),
                )))
            }
            _ => {}
        }
    }
    Err(request_db_error(e))
}

/// The bucket, refresh flag and requester of the candidate's queue entry.
async fn how_to_schedule(
    conn: &mut PgConnection,
    cand: &Object,
    new: &db::candidates::NewCandidate<'_>,
) -> Result<(Option<QueueBucket>, bool, String), ApiError> {
    // A changed command for a change with an open merge proposal: redo it
    // urgently, from scratch.
    let (codebase, campaign, command) = (new.codebase, new.campaign, new.command);
    let existing =
        db::candidates::open_mps_with_other_command(conn, codebase, campaign, command).await?;
    let (bucket, refresh, mut requester) = match existing.first() {
        Some((mp_url, old)) => {
            let old = old.as_deref().map_or("None".to_owned(), repr_str);
            let change = format!("{old} \u{21d2} {}", repr_str(command));
            if mp_url.as_deref().is_some_and(|u| !u.is_empty()) {
                (
                    Some(QueueBucket::UpdateExistingMp),
                    true,
                    format!("command changed for existing mp: {change}"),
                )
            } else {
                (None, true, format!("command changed: {change}"))
            }
        }
        None => (
            opt_bucket(cand, "bucket")?,
            false,
            "candidate update".to_owned(),
        ),
    };
    if let Some(r) = cand.get("requester").filter(|r| truthy(r)) {
        requester.push(' ');
        requester.push_str(&str_of(r));
    }
    Ok((bucket, refresh, requester))
}

/// Queue the candidate; what the upload reports for it.
async fn schedule_candidate(
    app: &AppState,
    conn: &mut PgConnection,
    regular: schedule::Regular<'_>,
) -> Result<Success, ApiError> {
    let (campaign, codebase, change_set, refresh) = (
        regular.campaign,
        regular.codebase,
        regular.change_set,
        regular.refresh,
    );
    let scheduled = schedule::do_schedule_regular(conn, regular, app.clock.now_naive())
        .await
        .map_err(|e| match e {
            ScheduleError::Db(e) => ApiError::from(e),
            ScheduleError::CandidateUnavailable { .. } => {
                ApiError::Internal(anyhow::anyhow!("candidate vanished: {campaign}/{codebase}"))
            }
            ScheduleError::Other(e) => ApiError::Internal(e),
        })?;
    Ok(Success {
        campaign: campaign.to_owned(),
        codebase: codebase.to_owned(),
        bucket: scheduled.bucket,
        change_set: change_set.map(str::to_owned),
        offset: scheduled.offset,
        estimated_duration: Some(total_seconds(scheduled.estimated_duration)),
        queue_id: scheduled.queue_id,
        refresh,
    })
}

/// Store and schedule a list of candidates, all or nothing: rejected ones
/// are reported per kind; a malformed one aborts the whole upload.
pub async fn upload(State(app): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let items = match json_body(&body)? {
        Value::Array(items) => items,
        other => {
            return Err(ApiError::bad_request(format!(
                "expected a JSON list of candidates, got {}",
                kind(&other)
            )))
        }
    };
    let mut out = UploadResult::default();
    let mut tx = app.db.begin().await?;
    for item in &items {
        let Value::Object(cand) = item else {
            return Err(ApiError::bad_request(format!(
                "each candidate must be an object, got {}",
                kind(item)
            )));
        };
        let mut sp = (&mut tx).begin().await?;
        match process(&app, &mut sp, cand).await? {
            Ok(success) => {
                sp.commit().await?;
                out.success.push(success);
            }
            Err(skip) => {
                sp.rollback().await?;
                match skip {
                    Skip::UnknownCampaign(v) => out.unknown_campaigns.add(v),
                    Skip::InvalidCommand(v) => out.invalid_command.add(v),
                    Skip::InvalidValue(v) => out.invalid_value.add(v),
                    Skip::UnknownCodebase(v) => out.unknown_codebases.add(v),
                    Skip::UnknownPublishPolicy(v) => out.unknown_publish_policies.add(v),
                }
            }
        }
    }
    tx.commit().await?;
    Ok(json_response(StatusCode::OK, &out))
}

/// Delete a candidate, its followups and every queue entry of its
/// (campaign, codebase). Unknown ids are a 404 (a 500 upstream, QH-17).
pub async fn delete(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    // `int(request.match_info["id"])`: "5_0" is 50, " 5" is 5.
    let parsed = crate::py::int::int_from_str(&id)
        .ok_or_else(|| ApiError::bad_request(format!("invalid candidate id {id:?}")))?;
    let not_found = || ApiError::Reason {
        status: StatusCode::NOT_FOUND,
        reason: format!("no such candidate: {parsed}"),
    };
    let id = i32::try_from(parsed).map_err(|_| not_found())?;
    let mut tx = app.db.begin().await?;
    let (campaign, codebase) = db::candidates::delete(&mut tx, id)
        .await?
        .ok_or_else(not_found)?;
    db::queue::delete_for(&mut tx, &campaign, &codebase).await?;
    tx.commit().await?;
    Ok(json_response(StatusCode::OK, &serde_json::json!({})))
}
