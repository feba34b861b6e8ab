//! GET and POST /codebases (runner-http-api.md §2.19–§2.20).

use super::fields::{py_int4, request_db_error};
use crate::db;
use crate::db::codebases::Codebase;
use crate::http::error::json_response;
use crate::http::extract::{json_body, kind, typed};
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

/// One uploaded entry. `branch_url` and `branch` tell absent from null:
/// given at all, they decide how the others are derived.
#[derive(Debug, serde::Deserialize)]
struct Entry {
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    branch_url: Option<Option<String>>,
    url: Option<String>,
    #[serde(default, deserialize_with = "present")]
    branch: Option<Option<String>>,
    subpath: Option<String>,
    vcs_type: Option<String>,
    web_url: Option<String>,
    vcs_last_revision: Option<String>,
    #[serde(default, deserialize_with = "py_int4")]
    value: Option<i32>,
}

/// A field that is present, even as null.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    <Option<String> as serde::Deserialize>::deserialize(d).map(Some)
}

/// An entry with `url`/`branch`/`branch_url` derived from each other as
/// upstream does (the first rule that applies wins).
fn normalise(entry: Entry) -> Result<Codebase, ApiError> {
    let Entry {
        mut url,
        mut branch,
        ..
    } = entry;
    let branch_url = match (entry.branch_url, &branch) {
        (Some(branch_url), _) => {
            let branch_url = branch_url
                .ok_or_else(|| ApiError::bad_request("field \"branch_url\" must not be null"))?;
            let (base, params) =
                urlutils::split_segment_parameters(&branch_url).map_err(url_error)?;
            url = Some(base);
            if let Some(b) = params.get("branch") {
                branch = Some(Some(urlutils::unescape(b)));
            }
            Some(branch_url)
        }
        (None, Some(name)) => {
            let base = url.as_deref().ok_or_else(|| {
                ApiError::bad_request("field \"url\" is required with \"branch\"")
            })?;
            let name = name
                .as_deref()
                .ok_or_else(|| ApiError::bad_request("field \"branch\" must not be null"))?;
            let mut params = BTreeMap::new();
            params.insert("branch".to_owned(), urlutils::escape(name));
            Some(urlutils::join_segment_parameters(base, &params).map_err(url_error)?)
        }
        // `url` given (possibly null) or not: branch_url follows it.
        (None, None) => url.clone(),
    };
    Ok(Codebase {
        name: entry.name,
        branch_url,
        url,
        branch: branch.flatten(),
        subpath: entry.subpath,
        vcs_type: entry.vcs_type,
        web_url: entry.web_url,
        vcs_last_revision: entry.vcs_last_revision,
        value: entry.value,
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
    if let Some(other) = entries.iter().find(|e| !e.is_object()) {
        return Err(ApiError::bad_request(format!(
            "each codebase must be an object, got {}",
            kind(other)
        )));
    }
    let codebases = typed::<Vec<Entry>>(Value::Array(entries))?
        .into_iter()
        .map(normalise)
        .collect::<Result<Vec<_>, _>>()?;
    let mut tx = app.db.begin().await?;
    for c in &codebases {
        db::codebases::upsert(&mut tx, c)
            .await
            .map_err(request_db_error)?;
    }
    tx.commit().await?;
    Ok(json_response(StatusCode::OK, &serde_json::json!({})))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entries(v: Value) -> Result<Vec<Codebase>, String> {
        let reason = |e: ApiError| match e {
            ApiError::Reason { reason, .. } => reason,
            other => panic!("{other:?}"),
        };
        typed::<Vec<Entry>>(v)
            .map_err(reason)?
            .into_iter()
            .map(normalise)
            .collect::<Result<_, _>>()
            .map_err(reason)
    }

    #[test]
    fn urls_are_derived_from_each_other_as_upstream_does() {
        let got = entries(json!([
            {"name": "a", "branch_url": "https://h/a,branch=b%2Fc"},
            {"name": "b", "url": "https://h/b", "branch": "x,y"},
            {"name": "c", "url": "https://h/c", "value": 2.5},
            {"name": "d", "url": null}
        ]))
        .unwrap();
        assert_eq!(got[0].url.as_deref(), Some("https://h/a"));
        assert_eq!(got[0].branch.as_deref(), Some("b/c"));
        assert_eq!(
            got[1].branch_url.as_deref(),
            Some("https://h/b,branch=x%2Cy")
        );
        assert_eq!(got[2].branch_url.as_deref(), Some("https://h/c"));
        assert_eq!(got[2].value, Some(2));
        assert_eq!(got[3].branch_url, None);
    }

    #[test]
    fn a_refusal_names_the_entry_and_field() {
        let err = entries(json!([{"name": "a"}, {"name": "b", "value": "5"}])).unwrap_err();
        assert!(err.contains("field [1].value: invalid type"), "{err}");
        let err = entries(json!([{"name": "a", "branch_url": null}])).unwrap_err();
        assert!(err.contains("\"branch_url\" must not be null"), "{err}");
        let err = entries(json!([{"name": "a", "branch": "b"}])).unwrap_err();
        assert!(err.contains("\"url\" is required with"), "{err}");
    }
}
