//! Typed access to request JSON fields and query parameters. Where Python
//! raised (KeyError, TypeError, a database type error: a 500 upstream), these
//! answer 400 `{"reason": ...}` (divergence-policy §2).

use crate::http::extract::kind;
use crate::http::ApiError;
use serde_json::{Map, Value};

pub type Object = Map<String, Value>;

/// `body[key]`: a required field that must be a string.
pub fn req_str<'a>(obj: &'a Object, key: &str) -> Result<&'a str, ApiError> {
    match obj.get(key) {
        None => Err(ApiError::bad_request(format!("missing field {key:?}"))),
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(mistyped(key, "a string", other)),
    }
}

/// `body.get(key)`: absent or null is `None`, otherwise a string.
pub fn opt_str<'a>(obj: &'a Object, key: &str) -> Result<Option<&'a str>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(mistyped(key, "a string", other)),
    }
}

/// A number (not a boolean), absent or null being `None`.
pub fn opt_number(obj: &Object, key: &str) -> Result<Option<f64>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .map(Some)
            .ok_or_else(|| mistyped(key, "a number", &Value::Number(n.clone()))),
        Some(other) => Err(mistyped(key, "a number", other)),
    }
}

/// An integer that fits a PostgreSQL `integer`, absent or null being `None`.
/// A float is truncated toward zero, as asyncpg's `int4` encoder (`int()`)
/// does upstream: 7.9 is stored as 7, -1.5 as -1.
pub fn opt_int32(obj: &Object, key: &str) -> Result<Option<i32>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Number(n)) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .map(f64::trunc)
                    .filter(|f| (i32::MIN as f64..=i32::MAX as f64).contains(f))
                    .map(|f| f as i64)
            })
            .and_then(|i| i32::try_from(i).ok())
            .map(Some)
            .ok_or_else(|| mistyped(key, "a 32-bit integer", v)),
        Some(other) => Err(mistyped(key, "an integer", other)),
    }
}

/// `body.get(key, default)` for a boolean column: null stores NULL.
pub fn opt_bool(obj: &Object, key: &str, default: bool) -> Result<Option<bool>, ApiError> {
    match obj.get(key) {
        None => Ok(Some(default)),
        Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(mistyped(key, "a boolean", other)),
    }
}

/// `timedelta(seconds=body[key]) if body.get(key) else None`.
pub fn opt_duration(obj: &Object, key: &str) -> Result<Option<chrono::TimeDelta>, ApiError> {
    match obj.get(key) {
        Some(v) if crate::py::repr::truthy(v) => match v {
            Value::Number(n) => match n.as_f64() {
                Some(secs) if secs.is_finite() && secs.abs() < 1e15 => {
                    Ok(Some(crate::db::interval::from_seconds(secs)))
                }
                _ => Err(mistyped(key, "a number of seconds", v)),
            },
            other => Err(mistyped(key, "a number of seconds", other)),
        },
        _ => Ok(None),
    }
}

/// A queue bucket name, checked against the `queue_bucket` enum.
pub fn opt_bucket<'a>(obj: &'a Object, key: &str) -> Result<Option<&'a str>, ApiError> {
    let bucket = opt_str(obj, key)?;
    match bucket {
        Some(b) if !crate::schedule::is_bucket(b) => {
            Err(ApiError::bad_request(format!("invalid bucket {b:?}")))
        }
        _ => Ok(bucket),
    }
}

pub fn mistyped(key: &str, expected: &str, got: &Value) -> ApiError {
    ApiError::bad_request(format!(
        "field {key:?} must be {expected}, not {}",
        kind(got)
    ))
}

/// Query-string pairs, decoded.
pub fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// `request.query[key]`: the first value; missing is a 400.
pub fn query_param<'a>(pairs: &'a [(String, String)], key: &str) -> Result<&'a str, ApiError> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .ok_or_else(|| ApiError::bad_request(format!("missing query parameter {key:?}")))
}

/// A database error the request caused (invalid enum text, constraint
/// violation, bad value: SQLSTATE classes 22 and 23) is a 400; anything
/// else stays a 500. The caller's transaction is rolled back either way.
pub fn request_db_error(e: sqlx::Error) -> ApiError {
    if let sqlx::Error::Database(db) = &e {
        let class = db.code().map(|c| c.chars().take(2).collect::<String>());
        if matches!(class.as_deref(), Some("22") | Some("23")) {
            return ApiError::bad_request(db.message().to_owned());
        }
    }
    e.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_given_as_floats_are_truncated_like_python_int() {
        let get = |v: Value| {
            let obj = json!({ "value": v });
            opt_int32(obj.as_object().unwrap(), "value").ok().flatten()
        };
        assert_eq!(get(json!(7.9)), Some(7));
        assert_eq!(get(json!(3.0)), Some(3));
        assert_eq!(get(json!(-1.5)), Some(-1));
        assert_eq!(get(json!(42)), Some(42));
        assert_eq!(get(json!(3e10)), None);
        assert_eq!(get(json!(4294967296i64)), None);
    }
}
