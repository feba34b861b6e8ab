//! Request-body helpers. Python's handlers decode the raw body as JSON
//! whatever the content type says; a body that is not JSON (a 500 upstream)
//! is a 400 `{"reason": ...}` here (divergence-policy §2).

use super::ApiError;
use axum::body::Bytes;
use serde_json::Value;

/// Parse a request body as JSON, or explain why it is not.
pub fn json_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
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
