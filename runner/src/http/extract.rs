//! What every route takes from a request, each with its rejection mapped
//! through [`ApiError`]: the worker login, the `{run_id}` path segment, the
//! JSON body. Python's handlers decode the raw body as JSON whatever the
//! content type says; a body that is not JSON (a 500 upstream) is a 400
//! `{"reason": ...}` here (divergence-policy §2).

use super::ApiError;
use crate::app::App;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// The worker a public request is made by: its Basic login, checked against
/// the `worker` table; any credential problem is [`ApiError::LoginRequired`].
/// A function rather than an extractor because upstream checks the login
/// after other things (the assign parses its body first, the finish looks
/// its run up first), and extractors run before the handler.
pub async fn require_worker(app: &App, headers: &HeaderMap) -> Result<String, ApiError> {
    // A value that is not visible ASCII cannot be Basic credentials.
    let value = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    Ok(crate::auth::check_worker(&app.db, value).await?)
}

/// The `{run_id}` segment of a run's route. Every such route takes it with
/// this, so a segment that is not UTF-8 is refused the same way everywhere.
#[derive(Debug, Clone)]
pub struct RunId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RunId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        #[derive(serde::Deserialize)]
        struct Params {
            run_id: String,
        }
        let Path(p) = Path::<Params>::from_request_parts(parts, state)
            .await
            .map_err(path_rejection)?;
        Ok(RunId(p.run_id))
    }
}

/// How a path that does not deserialize is answered.
pub fn path_rejection(e: PathRejection) -> ApiError {
    ApiError::bad_request(format!("invalid path: {}", e.body_text()))
}

/// Parse a request body as JSON, or explain why it is not. A string no
/// PostgreSQL text column can hold (a NUL character) is refused here, once
/// for every route (a 500 upstream, divergence-policy §2).
pub fn json_body(body: &Bytes) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    if let Some(at) = crate::validate::find_nul(&v) {
        return Err(ApiError::bad_request(format!(
            "NUL character in the request body at {at}"
        )));
    }
    Ok(v)
}

/// Parse a request body that must be a JSON object (handlers call `.get()` on it).
pub fn json_object(body: &Bytes) -> Result<serde_json::Map<String, Value>, ApiError> {
    match json_body(body)? {
        Value::Object(m) => Ok(m),
        other => Err(not_an_object(&other)),
    }
}

fn not_an_object(v: &Value) -> ApiError {
    ApiError::bad_request(format!("expected a JSON object, got {}", kind(v)))
}

/// [`typed`] for a parsed body that must be a JSON object, for a handler
/// that checks something else between parsing and typing (upstream's order).
pub fn typed_object<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, ApiError> {
    match v {
        Value::Object(_) => typed(v),
        other => Err(not_an_object(&other)),
    }
}

/// A JSON object body as a typed request: parsed and NUL-checked as
/// [`json_object`] does, then deserialized into `T`, whose
/// `deserialize_with` helpers hold the Python quirks and word their own
/// refusals (upstream's checks' texts, pinned by the goldens). Parsing into
/// a `Value` first keeps Python's handling of a repeated key (the last one
/// wins). The rejection is the one [`ApiError`].
pub struct JsonObject<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for JsonObject<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // A body that cannot be read (past axum's size limit) is answered
        // as the `Bytes` extractor answers it.
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::Text {
                status: e.status(),
                text: e.body_text(),
            })?;
        typed(Value::Object(json_object(&body)?)).map(JsonObject)
    }
}

/// `T` from a parsed body. A missing field is worded as the hand-written
/// checks word it; a helper's refusal is used as it stands (it names its
/// field); serde's own refusals get the field's path.
pub fn typed<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.into_inner().to_string();
        if let Some(field) = msg
            .strip_prefix("missing field `")
            .and_then(|m| m.strip_suffix('`'))
        {
            return ApiError::bad_request(format!("missing field {field:?}"));
        }
        const SERDE_OWN: [&str; 6] = [
            "invalid type: ",
            "invalid value: ",
            "invalid length ",
            "unknown variant ",
            "unknown field ",
            "duplicate field ",
        ];
        if SERDE_OWN.iter().any(|p| msg.starts_with(p)) {
            ApiError::bad_request(format!("field {path}: {msg}"))
        } else {
            ApiError::bad_request(msg)
        }
    })
}

/// Middleware of both apps: a NUL character in the path or the query (as
/// `%00`; a raw one never gets past the HTTP parser) would reach
/// PostgreSQL through some path or query parameter, so it is a 400 for
/// every route at once (a 500 upstream, divergence-policy §2).
pub async fn refuse_nul_in_url(req: Request, next: Next) -> Response {
    if req
        .uri()
        .path_and_query()
        .is_some_and(|pq| pq.as_str().contains("%00"))
    {
        return ApiError::bad_request("NUL character in the request URL").into_response();
    }
    next.run(req).await
}

pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_anywhere_in_a_body_is_a_400_naming_where() {
        let err = |b: &str| match json_body(&Bytes::from(b.to_string())) {
            Err(ApiError::Reason { status, reason }) => (status.as_u16(), reason),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            err(r#"[{"a": 1, "requester": "a\u0000b"}]"#),
            (
                400,
                "NUL character in the request body at $[0].requester".into()
            )
        );
        assert_eq!(
            err(r#"{"k\u0000": 1}"#).1,
            "NUL character in the request body at $"
        );
        assert_eq!(
            err(r#""\u0000""#).1,
            "NUL character in the request body at $"
        );
        assert!(json_body(&Bytes::from_static(br#"{"a": ["b", {"c": "\u0001"}]}"#)).is_ok());
    }
}
