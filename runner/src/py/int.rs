//! Python's `int()` of JSON-decoded values and of strings, and the integer
//! conversion asyncpg applies before binding an `integer`/`bigint` parameter.
//!
//! Results are i128, saturated: every caller range-checks them against a
//! PostgreSQL integer type, far inside i128, so a saturated value is refused
//! exactly where Python's exact big int would be.

use serde_json::{Number, Value};

/// `int(f)` of a float: truncated toward zero; `None` for NaN and the
/// infinities (ValueError, OverflowError).
pub fn int_of_float(f: f64) -> Option<i128> {
    // `as` saturates beyond i128, which is what the callers need.
    f.is_finite().then(|| f.trunc() as i128)
}

/// A JSON number as Python holds it: an integer exactly, a float truncated.
pub fn int_of_json_number(n: &Number) -> Option<i128> {
    match (n.as_i64(), n.as_u64()) {
        (Some(i), _) => Some(i.into()),
        (None, Some(u)) => Some(u.into()),
        _ => n.as_f64().and_then(int_of_float),
    }
}

/// What asyncpg's `int4`/`int8` encoders bind: `int(obj)` for a number or a
/// bool (a Python bool is an int: `True` is 1); `None` for anything else
/// (a TypeError upstream: strings, lists, objects, null).
pub fn int_of_number(v: &Value) -> Option<i128> {
    match v {
        Value::Bool(b) => Some(i128::from(*b)),
        Value::Number(n) => int_of_json_number(n),
        _ => None,
    }
}

/// What asyncpg's `float8` encoder binds (`PyFloat_AsDouble`): a number as
/// a float, a bool as 1.0 or 0.0; `None` for anything else.
pub fn float_of_number(v: &Value) -> Option<f64> {
    match v {
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// The first code point of each run of ten Unicode decimal digits (`Nd`,
/// values 0–9 in order), as Python 3.11 knows them (Unicode 14.0).
const DIGIT_ZEROS: [u32; 66] = [
    0x30, 0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66,
    0xDE6, 0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10,
    0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650,
    0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x16A60, 0x16AC0, 0x16B50,
    0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0,
];

/// The value of a Unicode decimal digit.
fn decimal(c: char) -> Option<u32> {
    let n = c as u32;
    let i = DIGIT_ZEROS.partition_point(|&z| z <= n);
    let zero = DIGIT_ZEROS[i.checked_sub(1)?];
    (n - zero < 10).then_some(n - zero)
}

/// Python refuses to convert longer digit strings (`sys.int_info.default_max_str_digits`).
const MAX_STR_DIGITS: usize = 4300;

/// Python's `int(s)` of a str: surrounding whitespace, an optional sign,
/// decimal digits (any script's) with single `_`s only between two digits.
/// `None` where Python raises ValueError ("5.0", "1e3", "_5", "5_", "5__0").
pub fn int_from_str(s: &str) -> Option<i128> {
    // Python's whitespace here is `str.isspace()` outside ASCII and the six
    // ASCII spaces: exactly Rust's White_Space.
    let s = s.trim_matches(char::is_whitespace);
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let mut n: i128 = 0;
    let (mut count, mut after_digit) = (0usize, false);
    for c in digits.chars() {
        if c == '_' {
            if !after_digit {
                return None;
            }
            after_digit = false;
            continue;
        }
        let d = decimal(c)?;
        // Saturates: callers range-check far inside i128.
        n = n.saturating_mul(10).saturating_add(d.into());
        count += 1;
        after_digit = true;
    }
    if !after_digit || count > MAX_STR_DIGITS {
        return None;
    }
    Some(if negative { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_and_bools_convert_as_python_int() {
        assert_eq!(int_of_number(&json!(true)), Some(1));
        assert_eq!(int_of_number(&json!(false)), Some(0));
        assert_eq!(int_of_number(&json!(7.9)), Some(7));
        assert_eq!(int_of_number(&json!(-1.5)), Some(-1));
        assert_eq!(
            int_of_number(&json!(9007199254740993u64)),
            Some(9007199254740993)
        );
        assert_eq!(int_of_number(&json!(u64::MAX)), Some(u64::MAX.into()));
        assert_eq!(
            int_of_number(&json!(1e19)),
            Some(10_000_000_000_000_000_000)
        );
        assert_eq!(int_of_number(&json!(1e300)), Some(i128::MAX));
        assert_eq!(int_of_number(&json!("5")), None);
        assert_eq!(int_of_number(&json!(null)), None);
        assert_eq!(int_of_float(f64::NAN), None);
        assert_eq!(float_of_number(&json!(true)), Some(1.0));
        assert_eq!(float_of_number(&json!(false)), Some(0.0));
        assert_eq!(float_of_number(&json!(3)), Some(3.0));
        assert_eq!(float_of_number(&json!("0.5")), None);
    }

    #[test]
    fn strings_follow_python_int_grammar() {
        // Each checked with python3.11 `int(s)`.
        for (s, want) in [
            ("5_0", 50),
            (" 4_2 ", 42),
            ("+5", 5),
            ("-5", -5),
            ("007", 7),
            ("0_7", 7),
            ("\u{a0}5\n", 5),
            ("\u{665}", 5),
            ("\u{ff15}", 5),
            ("1\u{661}0", 110),
            ("\u{665}_\u{665}", 55),
        ] {
            assert_eq!(int_from_str(s), Some(want), "int({s:?})");
        }
        for s in [
            "", " ", "_5", "5_", "5__0", "+_5", "- 5", "5.0", "1e3", "0x10", "\u{1c}5", "five",
        ] {
            assert_eq!(int_from_str(s), None, "int({s:?}) raises");
        }
        assert_eq!(int_from_str(&"9".repeat(4300)), Some(i128::MAX));
        assert_eq!(int_from_str(&"9".repeat(4301)), None);
    }
}
