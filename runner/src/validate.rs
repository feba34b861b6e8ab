//! Checks every input shares before it reaches PostgreSQL or the
//! filesystem: PostgreSQL text cannot hold a NUL character, so a request
//! carrying one is refused up front (divergence-policy §2) instead of
//! failing half-way with a 500.

use serde_json::Value;

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
pub fn prefix_within(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The JSON path (`$.a[0].b`) of the first string or key with a NUL.
pub fn find_nul(v: &Value) -> Option<String> {
    nul_at(v, String::new())
}

fn nul_at(v: &Value, path: String) -> Option<String> {
    let here = || {
        if path.is_empty() {
            "$".to_string()
        } else {
            format!("${path}")
        }
    };
    match v {
        Value::String(s) if s.contains('\0') => Some(here()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, x)| nul_at(x, format!("{path}[{i}]"))),
        Value::Object(m) => m.iter().find_map(|(k, x)| {
            if k.contains('\0') {
                Some(here())
            } else {
                nul_at(x, format!("{path}.{k}"))
            }
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_first_nul_is_located_by_path() {
        assert_eq!(
            find_nul(&json!({"a": [1, {"b": "x\u{0}"}]})).as_deref(),
            Some("$.a[1].b")
        );
        assert_eq!(find_nul(&json!("\u{0}")).as_deref(), Some("$"));
        assert_eq!(find_nul(&json!({"a": "\u{1}", "b": [null, 2.5]})), None);
    }
}
