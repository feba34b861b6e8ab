//! GET and POST /codebases (runner-http-api.md §2.19–§2.20).

use super::fields::{opt_int32, opt_str, request_db_error, Object};
use crate::db;
use crate::db::codebases::Codebase;
use crate::http::error::json_response;
use crate::http::extract::{json_body, kind};
use crate::http::{ApiError, AppState};
use crate::urlutils;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;
use std::collections::BTreeMap;

/// Every codebase, in heap order as upstream (no ORDER BY).
pub async fn list(State(app): State<AppState>) -> Result<Response, ApiError> {
    let mut conn = app.db.acquire().await?;
    let rows = db::codebases::list(&mut conn).await?;
    Ok(json_response(StatusCode::OK, &rows))
}

fn url_error(e: urlutils::UrlError) -> ApiError {
    ApiError::bad_request(e.to_string())
}

/// One uploaded entry, with `url`/`branch`/`branch_url` derived from each
/// other as upstream does (the first rule that applies wins).
fn normalise(entry: &Object) -> Result<Codebase, ApiError> {
    let mut url = opt_str(entry, "url")?.map(str::to_owned);
    let mut branch = opt_str(entry, "branch")?.map(str::to_owned);
    let branch_url = if entry.contains_key("branch_url") {
        let branch_url = opt_str(entry, "branch_url")?
            .ok_or_else(|| ApiError::bad_request("field \"branch_url\" must not be null"))?;
        let (base, params) = urlutils::split_segment_parameters(branch_url).map_err(url_error)?;
        url = Some(base);
        if let Some(b) = params.get("branch") {
            branch = Some(urlutils::unescape(b));
        }
        Some(branch_url.to_owned())
    } else if entry.contains_key("branch") {
        let base = url
            .as_deref()
            .ok_or_else(|| ApiError::bad_request("field \"url\" is required with \"branch\""))?;
        let name = branch
            .as_deref()
            .ok_or_else(|| ApiError::bad_request("field \"branch\" must not be null"))?;
        let mut params = BTreeMap::new();
        params.insert("branch".to_owned(), urlutils::escape(name));
        Some(urlutils::join_segment_parameters(base, &params).map_err(url_error)?)
    } else {
        // `url` given (possibly null) or not: branch_url follows it.
        url.clone()
    };
    Ok(Codebase {
        name: opt_str(entry, "name")?.map(str::to_owned),
        branch_url,
        url,
        branch,
        subpath: opt_str(entry, "subpath")?.map(str::to_owned),
        vcs_type: opt_str(entry, "vcs_type")?.map(str::to_owned),
        web_url: opt_str(entry, "web_url")?.map(str::to_owned),
        vcs_last_revision: opt_str(entry, "vcs_last_revision")?.map(str::to_owned),
        value: opt_int32(entry, "value")?,
    })
}

/// Upsert every uploaded codebase in one transaction. Upstream stores only
/// the last entry of the list (QH-15); storing all is a deliberate fix.
pub async fn upload(State(app): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let entries = match json_body(&body)? {
        Value::Array(items) => items,
        other => {
            return Err(ApiError::bad_request(format!(
                "expected a JSON list of codebases, got {}",
                kind(&other)
            )))
        }
    };
    let mut codebases = Vec::with_capacity(entries.len());
    for entry in &entries {
        match entry {
            Value::Object(obj) => codebases.push(normalise(obj)?),
            other => {
                return Err(ApiError::bad_request(format!(
                    "each codebase must be an object, got {}",
                    kind(other)
                )))
            }
        }
    }
    let mut tx = app.db.begin().await?;
    for c in &codebases {
        db::codebases::upsert(&mut tx, c)
            .await
            .map_err(request_db_error)?;
    }
    tx.commit().await?;
    Ok(json_response(StatusCode::OK, &serde_json::json!({})))
}
