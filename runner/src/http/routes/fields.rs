//! Typed access to request JSON fields and query parameters. Where Python
//! raised (KeyError, TypeError, a database type error: a 500 upstream), these
//! answer 400 `{"reason": ...}` (divergence-policy §2).

use crate::db::enums::QueueBucket;
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

/// `body.get(key)` bound to an integer column of `bits` bits, as asyncpg's
/// `int4`/`int8` encoders do: a bool is 0 or 1 (a Python bool is an int), a
/// float is truncated toward zero (7.9 → 7, -1.5 → -1); absent or null is
/// `None`. Out of range is a 400 (an OverflowError, so a 500, upstream).
fn opt_int_bits(obj: &Object, key: &str, bits: u32) -> Result<Option<i128>, ApiError> {
    let Some(v) = obj.get(key).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let max = (1i128 << (bits - 1)) - 1;
    match crate::py::int::int_of_number(v) {
        Some(i) if (-max - 1..=max).contains(&i) => Ok(Some(i)),
        Some(_) => Err(ApiError::bad_request(format!(
            "field {key:?} is out of range for a {bits}-bit integer: {v}"
        ))),
        None => Err(mistyped(key, "an integer", v)),
    }
}

/// [`opt_int4`] as a `deserialize_with` helper for typed bodies: its
/// refusals start as serde's own do, so [`crate::http::extract::typed`]
/// prefixes the field's path.
pub fn py_int4<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
    use serde::de::{Error, Unexpected};
    let Some(v) = <Option<Value> as serde::Deserialize>::deserialize(d)? else {
        return Ok(None);
    };
    match crate::py::int::int_of_number(&v) {
        Some(i) => i32::try_from(i).map(Some).map_err(|_| {
            D::Error::invalid_value(Unexpected::Other(&v.to_string()), &"a 32-bit integer")
        }),
        None => Err(D::Error::invalid_type(
            Unexpected::Other(kind(&v)),
            &"an integer",
        )),
    }
}

/// [`opt_int_bits`] for an `integer` column.
pub fn opt_int4(obj: &Object, key: &str) -> Result<Option<i32>, ApiError> {
    Ok(opt_int_bits(obj, key, 32)?.map(|i| i as i32))
}

/// [`opt_int_bits`] for a `bigint` parameter.
pub fn opt_int8(obj: &Object, key: &str) -> Result<Option<i64>, ApiError> {
    Ok(opt_int_bits(obj, key, 64)?.map(|i| i as i64))
}

/// `body.get(key)` bound to a `double precision` column, as asyncpg's
/// `float8` encoder does: any number, a bool as 1.0 or 0.0; absent or null
/// is `None`.
pub fn opt_float8(obj: &Object, key: &str) -> Result<Option<f64>, ApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => crate::py::int::float_of_number(v)
            .map(Some)
            .ok_or_else(|| mistyped(key, "a number", v)),
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
        // `timedelta(seconds=True)` is one second: a bool is an int.
        Some(v) if crate::py::repr::truthy(v) => match crate::py::int::float_of_number(v) {
            Some(secs) => crate::db::interval::from_seconds(secs)
                .map(Some)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "field {key:?} is out of range for a timedelta \
                     (at most 999999999 days): {v}"
                    ))
                }),
            None => Err(mistyped(key, "a number of seconds", v)),
        },
        _ => Ok(None),
    }
}

/// A queue bucket name, one of the `queue_bucket` enum's labels.
pub fn opt_bucket(obj: &Object, key: &str) -> Result<Option<QueueBucket>, ApiError> {
    opt_str(obj, key)?
        .map(|b| {
            b.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid bucket {b:?}")))
        })
        .transpose()
}

pub fn mistyped(key: &str, expected: &str, got: &Value) -> ApiError {
    ApiError::bad_request(mistyped_text(key, expected, got))
}

/// What [`mistyped`] answers, for `deserialize_with` helpers.
pub fn mistyped_text(key: &str, expected: &str, got: &Value) -> String {
    format!("field {key:?} must be {expected}, not {}", kind(got))
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
            opt_int4(obj.as_object().unwrap(), "value").ok().flatten()
        };
        assert_eq!(get(json!(7.9)), Some(7));
        assert_eq!(get(json!(3.0)), Some(3));
        assert_eq!(get(json!(-1.5)), Some(-1));
        assert_eq!(get(json!(42)), Some(42));
        assert_eq!(get(json!(3e10)), None);
        assert_eq!(get(json!(4294967296i64)), None);
    }

    fn field(v: Value) -> Object {
        json!({ "f": v }).as_object().unwrap().clone()
    }

    #[test]
    fn bools_are_ints_as_in_python() {
        assert_eq!(opt_int4(&field(json!(true)), "f").unwrap(), Some(1));
        assert_eq!(opt_int4(&field(json!(false)), "f").unwrap(), Some(0));
        assert_eq!(opt_int8(&field(json!(true)), "f").unwrap(), Some(1));
        assert_eq!(opt_float8(&field(json!(true)), "f").unwrap(), Some(1.0));
        assert_eq!(opt_float8(&field(json!(false)), "f").unwrap(), Some(0.0));
        let secs = |v| opt_duration(&field(v), "f").unwrap();
        assert_eq!(secs(json!(true)), Some(chrono::TimeDelta::seconds(1)));
        assert_eq!(secs(json!(false)), None);
    }

    #[test]
    fn integers_are_range_checked_with_a_reason() {
        let reason = |e: ApiError| match e {
            ApiError::Reason { reason, .. } => reason,
            other => panic!("not a reason: {other:?}"),
        };
        assert_eq!(
            opt_int4(&field(json!(2147483647)), "f").unwrap(),
            Some(i32::MAX)
        );
        let e = reason(opt_int4(&field(json!(2147483648u64)), "f").unwrap_err());
        assert_eq!(
            e,
            "field \"f\" is out of range for a 32-bit integer: 2147483648"
        );
        assert!(opt_int8(&field(json!(1e19)), "f").is_err());
        assert!(opt_int4(&field(json!("5")), "f").is_err());
        assert!(opt_float8(&field(json!("0.5")), "f").is_err());
        assert_eq!(opt_int4(&field(json!(null)), "f").unwrap(), None);
    }

    #[test]
    fn typed_int4_fields_read_like_python_int_and_name_the_field() {
        #[derive(serde::Deserialize, Debug)]
        struct B {
            #[serde(default, deserialize_with = "py_int4")]
            n: Option<i32>,
        }
        let get = |v: Value| crate::http::extract::typed::<B>(v).map(|b| b.n);
        assert_eq!(get(json!({"n": 7.9})).unwrap(), Some(7));
        assert_eq!(get(json!({"n": true})).unwrap(), Some(1));
        assert_eq!(get(json!({"n": null})).unwrap(), None);
        assert_eq!(get(json!({})).unwrap(), None);
        let reason = |v| match get(v).unwrap_err() {
            ApiError::Reason { reason, .. } => reason,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            reason(json!({"n": 2147483648u64})),
            "field n: invalid value: 2147483648, expected a 32-bit integer"
        );
        assert_eq!(
            reason(json!({"n": "5"})),
            "field n: invalid type: a string, expected an integer"
        );
    }

    #[test]
    fn durations_span_what_a_timedelta_holds() {
        let secs = |v| opt_duration(&field(v), "f");
        let td = secs(json!(1e13)).unwrap().unwrap();
        assert_eq!(crate::db::interval::total_seconds(td), 1e13);
        // 8.64e13 s is 10⁹ days: Python's OverflowError.
        match secs(json!(8.64e13)).unwrap_err() {
            ApiError::Reason { reason, .. } => assert_eq!(
                reason,
                "field \"f\" is out of range for a timedelta (at most 999999999 days): 86400000000000.0"
            ),
            other => panic!("{other:?}"),
        }
        assert!(secs(json!("5")).is_err());
    }
}
