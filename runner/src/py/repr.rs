//! Python `repr()`/`str()` of JSON-decoded values (runner-internals.md
//! §15.5), for the texts the runner builds from request data (candidate 400
//! bodies, the "command changed" requester).

use serde_json::Value;

/// `repr(s)` of a Python str.
pub fn repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if !is_printable(c) => {
                let n = c as u32;
                if n < 0x100 {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n < 0x10000 {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `str.isprintable` for one character, for the characters that
/// matter in practice: controls, separators other than space, format
/// characters, private use and noncharacters are not printable.
fn is_printable(c: char) -> bool {
    let n = c as u32;
    !(c.is_control()
        || n == 0xa0
        || n == 0xad
        || n == 0x1680
        || (0x2000..=0x200f).contains(&n)
        || (0x2028..=0x202f).contains(&n)
        || (0x205f..=0x206f).contains(&n)
        || n == 0x3000
        || n == 0xfeff
        || (0xfff9..=0xfffb).contains(&n)
        || (0xe000..=0xf8ff).contains(&n)
        || (n & 0xfffe) == 0xfffe
        || (0xfdd0..=0xfdef).contains(&n)
        || n >= 0xf0000)
}

/// `repr(v)` of the Python object `json.loads` produces for `v`.
pub fn repr(v: &Value) -> String {
    match v {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (None, Some(u), _) => u.to_string(),
            (None, None, Some(f)) => crate::py::json::float_repr(f)
                .replace("Infinity", "inf")
                .replace("NaN", "nan"),
            _ => n.to_string(),
        },
        Value::String(s) => repr_str(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", repr_str(k), repr(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// `str(v)`: a str as is, everything else as its repr.
pub fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => repr(other),
    }
}

/// Python truthiness of a JSON-decoded value.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Python `==` between JSON-decoded scalars (`0 == 0.0 == False`), used to
/// de-duplicate the rejection sets of the candidate upload.
pub fn py_eq(a: &Value, b: &Value) -> bool {
    fn num(v: &Value) -> Option<f64> {
        match v {
            Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    }
    match (num(a), num(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn str_repr_picks_quotes_like_python() {
        assert_eq!(repr_str("lintian-brush --old"), "'lintian-brush --old'");
        assert_eq!(repr_str("it's"), "\"it's\"");
        assert_eq!(repr_str("it's \"x\""), "'it\\'s \"x\"'");
        assert_eq!(repr_str("a\\b\n\u{1}é"), "'a\\\\b\\n\\x01é'");
        assert_eq!(repr_str("\u{a0}\u{2028}"), "'\\xa0\\u2028'");
    }

    #[test]
    fn dict_repr_keeps_order_and_python_literals() {
        let v: Value =
            serde_json::from_str(r#"{"value": null, "campaign": "scratch", "x": [1, 2.5, true]}"#)
                .unwrap();
        assert_eq!(
            repr(&v),
            "{'value': None, 'campaign': 'scratch', 'x': [1, 2.5, True]}"
        );
        assert_eq!(repr(&json!(15.0)), "15.0");
    }

    #[test]
    fn truthiness_and_equality() {
        assert!(!truthy(&json!(0.0)));
        assert!(!truthy(&json!("")));
        assert!(truthy(&json!("x")));
        assert!(py_eq(&json!(0), &json!(false)));
        assert!(py_eq(&json!(0), &json!(0.0)));
        assert!(!py_eq(&json!("0"), &json!(0)));
    }
}
