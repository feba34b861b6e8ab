//! Request-body helpers. Python's handlers decode the raw body as JSON
//! whatever the content type says; a body that is not JSON (a 500 upstream)
//! is a 400 `{"reason": ...}` here (divergence-policy §2).

use super::ApiError;
use axum::body::Bytes;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

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
        other => Err(ApiError::bad_request(format!(
            "expected a JSON object, got {}",
            kind(&other)
        ))),
    }
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
