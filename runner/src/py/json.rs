//! JSON bytes exactly as Python's `json.dumps(obj)` writes them with default
//! settings, which is what aiohttp's `json_response` and the runner's Redis
//! publications produce:
//!
//! - separators `", "` and `": "`, no trailing newline;
//! - every character outside printable ASCII escaped (`ensure_ascii`):
//!   `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, everything else as
//!   lowercase `\uXXXX` (UTF-16 surrogate pairs above the BMP, DEL too);
//!   `/` is not escaped;
//! - floats as Python's `repr` (`15.0`, `1e+16`, `1.5e-07`); non-finite
//!   ones, which Python writes `NaN`/`Infinity`, become `null` (serde_json
//!   decides that before the formatter). Python's `json.loads` does accept
//!   `NaN`, `Infinity`, `-Infinity` (and `1e400` as infinity) in a request;
//!   the runner refuses such a body with a 400 instead (serde_json cannot
//!   parse them: a known difference from Python), and computes none itself,
//!   so no request makes one reach here;
//! - object members in the order the value serializes them.
//!
//! Key order: [`to_string`]/[`to_vec`] keep whatever order `Serialize`
//! produces: structs keep field order, and a `serde_json::Value` object
//! keeps its `Map`'s iteration order, which is insertion order with the
//! workspace's `preserve_order` feature (sorted without it).
//!
//! [`PyFormatter`] carries the rules; [`to_vec`] runs it through
//! `serde_json::Serializer`.

use std::io;

use serde::ser::Serialize;
use serde_json::ser::{CharEscape, Formatter};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(String);

/// Serialize like Python's `json.dumps`. Panics only if the value's
/// `Serialize` impl fails or a map key is not a string, number or bool
/// (Python raises `TypeError` there too); see [`try_to_vec`].
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> String {
    // The output is pure ASCII.
    String::from_utf8(to_vec(value)).expect("pyjson output is ASCII")
}

/// Bytes of [`to_string`].
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    try_to_vec(value).unwrap_or_else(|e| panic!("pyjson: cannot serialize value: {e}"))
}

/// Fallible [`to_vec`].
pub fn try_to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    value
        .serialize(&mut serde_json::Serializer::with_formatter(
            &mut out,
            PyFormatter,
        ))
        .map_err(|e| Error(e.to_string()))?;
    Ok(out)
}

/// Fallible [`to_string`].
pub fn try_to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, Error> {
    try_to_vec(value).map(|v| String::from_utf8(v).expect("pyjson output is ASCII"))
}

// ---------------------------------------------------------------------------
// Shared formatting rules

/// Write `s` with Python's `ensure_ascii` escaping, without quotes.
fn write_escaped<W: ?Sized + io::Write>(w: &mut W, s: &str) -> io::Result<()> {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if (' '..='~').contains(&c) && c != '"' && c != '\\' {
            continue;
        }
        w.write_all(&bytes[start..i])?;
        start = i + c.len_utf8();
        match c {
            '"' => w.write_all(b"\\\"")?,
            '\\' => w.write_all(b"\\\\")?,
            '\n' => w.write_all(b"\\n")?,
            '\r' => w.write_all(b"\\r")?,
            '\t' => w.write_all(b"\\t")?,
            '\u{8}' => w.write_all(b"\\b")?,
            '\u{c}' => w.write_all(b"\\f")?,
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
    }
    w.write_all(&bytes[start..])
}

/// Python `float.__repr__` given Rust's shortest round-trip `{:e}` output
/// (e.g. `-1.25e-7`): fixed notation when the decimal exponent is in
/// [-4, 16), else `d.ddde±XX`.
fn repr_from_exp(sci: &str) -> String {
    let (mantissa, exp) = sci.split_once('e').expect("{:e} output has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|&c| c != '.').collect();
    // Position of the decimal point relative to the digit string.
    let decpt = exp + 1;
    let n = digits.len() as i32;
    if !(-4 < decpt && decpt <= 16) {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{esign}{:02}", exp.abs())
    } else if decpt <= 0 {
        format!("{sign}0.{}{digits}", "0".repeat((-decpt) as usize))
    } else if decpt >= n {
        format!("{sign}{digits}{}.0", "0".repeat((decpt - n) as usize))
    } else {
        let (int, frac) = digits.split_at(decpt as usize);
        format!("{sign}{int}.{frac}")
    }
}

fn non_finite(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("NaN")
    } else if v.is_infinite() {
        Some(if v > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        None
    }
}

/// `repr(v)` as Python prints a float, plus json's non-finite spellings.
pub fn float_repr(v: f64) -> String {
    match non_finite(v) {
        Some(s) => s.to_owned(),
        None => repr_from_exp(&shortest_f64(v)),
    }
}

/// Number of significant digits in `{:e}` output.
fn digit_count(sci: &str) -> usize {
    sci.bytes()
        .take_while(|&b| b != b'e')
        .filter(u8::is_ascii_digit)
        .count()
}

/// Shortest round-trip digits in `{:e}` form, ties going to the even digit
/// as in Python (David Gay's dtoa). Rust's shortest mode can pick the odd
/// neighbour when two candidates are equally close (111659285584252.125
/// gives `...52.13`, Python `...52.12`); the correctly rounded value at the
/// same precision is the closest candidate, so use it whenever it
/// round-trips.
fn shortest_f64(v: f64) -> String {
    let sci = format!("{v:e}");
    let exact = format!("{:.*e}", digit_count(&sci) - 1, v);
    if exact.parse::<f64>() == Ok(v) {
        exact
    } else {
        sci
    }
}

fn shortest_f32(v: f32) -> String {
    let sci = format!("{v:e}");
    let exact = format!("{:.*e}", digit_count(&sci) - 1, v);
    if exact.parse::<f32>() == Ok(v) {
        exact
    } else {
        sci
    }
}

/// f32 values use their own shortest digits (0.1f32 prints `0.1`), laid
/// out by Python's rules.
fn float_repr_f32(v: f32) -> String {
    match non_finite(v.into()) {
        Some(s) => s.to_owned(),
        None => repr_from_exp(&shortest_f32(v)),
    }
}

// ---------------------------------------------------------------------------
// serde_json formatter

/// `serde_json` formatter with Python's output rules. Through
/// `serde_json::Serializer`, NaN and infinities become `null` (serde_json
/// decides that before calling the formatter); use [`to_vec`] to get
/// `NaN`/`Infinity`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PyFormatter;

impl Formatter for PyFormatter {
    fn write_f32<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f32) -> io::Result<()> {
        w.write_all(float_repr_f32(value).as_bytes())
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        w.write_all(float_repr(value).as_bytes())
    }

    // serde_json passes non-ASCII text and DEL through as fragments.
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        write_escaped(w, fragment)
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        let s: &[u8] = match escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            CharEscape::Solidus => b"/",
            CharEscape::Backspace => b"\\b",
            CharEscape::FormFeed => b"\\f",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            CharEscape::AsciiControl(b) => return write!(w, "\\u{b:04x}"),
        };
        w.write_all(s)
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;
    use serde_json::json;
    use std::collections::BTreeMap;

    // Expected strings below were printed by CPython 3.11 `json.dumps`.

    #[test]
    fn separators_and_basic_values() {
        let v = json!({"a": 1, "b": [1, 2.5, null, true, false], "c": {}});
        assert_eq!(
            to_string(&v),
            r#"{"a": 1, "b": [1, 2.5, null, true, false], "c": {}}"#
        );
        assert_eq!(to_string(&json!([])), "[]");
        assert_eq!(to_string(&json!({})), "{}");
        assert_eq!(to_string(&Vec::<u8>::new()), "[]");
        assert_eq!(to_string(&()), "null");
        assert_eq!(to_string(&Option::<i32>::None), "null");
        assert_eq!(to_string(&Some(3)), "3");
        assert_eq!(
            to_string(&(u128::from(u64::MAX) + 1, i64::MIN)),
            "[18446744073709551616, -9223372036854775808]"
        );
    }

    #[test]
    fn non_ascii_escaped_slash_kept() {
        assert_eq!(
            to_string("caf\u{e9} \u{2603} \u{1F600} /path"),
            r#""caf\u00e9 \u2603 \ud83d\ude00 /path""#
        );
        assert_eq!(to_string(&'\u{e9}'), r#""\u00e9""#);
    }

    #[test]
    fn control_characters() {
        let s =
            "quote\" back\\ nl\n cr\r tab\t bs\u{8} ff\u{c} nul\0 us\u{1f} del\u{7f} tilde~ space ";
        let expected = r#""quote\" back\\ nl\n cr\r tab\t bs\b ff\f nul\u0000 us\u001f del\u007f tilde~ space ""#;
        assert_eq!(to_string(s), expected);
        // The serde_json formatter path gives the same bytes.
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(&mut out, PyFormatter);
        s.serialize(&mut ser).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn floats_like_python_repr() {
        let v = [
            15.0,
            35000.0,
            1e16,
            1.5e-07,
            0.0001,
            0.00001,
            1e15,
            9999999999999998.0,
            123456789012345678.0,
            -0.0,
            0.0,
            0.1,
            1.0 / 3.0,
            2.5e-5,
            1.7976931348623157e308,
            5e-324,
            1e100,
            -1.5e22,
            1e22,
            123.456,
            1e-4,
            12345.678e10,
        ];
        assert_eq!(
            to_string(&v),
            "[15.0, 35000.0, 1e+16, 1.5e-07, 0.0001, 1e-05, 1000000000000000.0, \
             9999999999999998.0, 1.2345678901234568e+17, -0.0, 0.0, 0.1, \
             0.3333333333333333, 2.5e-05, 1.7976931348623157e+308, 5e-324, 1e+100, \
             -1.5e+22, 1e+22, 123.456, 0.0001, 123456780000000.0]"
        );
        // Exact ties between two shortest candidates go to the even digit
        // (111659285584252.125 and -1113178120592002.25, built exactly).
        assert_eq!(
            to_string(&[893274284674017.0 / 8.0, -4452712482368009.0 / 4.0]),
            "[111659285584252.12, -1113178120592002.2]"
        );
        assert_eq!(to_string(&0.1f32), "0.1");
        assert_eq!(to_string(&1e20f32), "1e+20");
    }

    #[test]
    fn non_finite_floats_are_null() {
        // Python writes NaN/Infinity; requests holding them are refused
        // with a 400 before anything is serialised.
        assert_eq!(
            to_string(&[f64::NAN, f64::INFINITY, f64::NEG_INFINITY]),
            "[null, null, null]"
        );
    }

    #[test]
    fn formatter_with_serde_json_serializer() {
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(&mut out, PyFormatter);
        json!({"a": [1.0, "\u{e9}"], "b": 1e16})
            .serialize(&mut ser)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a": [1.0, "\u00e9"], "b": 1e+16}"#
        );
    }

    #[test]
    fn struct_field_order_and_enums() {
        #[derive(Serialize)]
        enum E {
            Unit,
            New(u8),
            Tuple(u8, u8),
            Struct { y: u8, x: u8 },
        }
        #[derive(Serialize)]
        struct S {
            zeta: u32,
            alpha: &'static str,
            duration: f64,
            #[serde(skip_serializing_if = "Option::is_none")]
            skipped: Option<u8>,
            e: Vec<E>,
            nested: Option<Box<S>>,
        }
        let s = S {
            zeta: 1,
            alpha: "a",
            duration: 35000.0,
            skipped: None,
            e: vec![E::Unit, E::New(1), E::Tuple(1, 2), E::Struct { y: 1, x: 2 }],
            nested: None,
        };
        assert_eq!(
            to_string(&s),
            r#"{"zeta": 1, "alpha": "a", "duration": 35000.0, "e": ["Unit", {"New": 1}, {"Tuple": [1, 2]}, {"Struct": {"y": 1, "x": 2}}], "nested": null}"#
        );
    }

    #[test]
    fn map_keys_like_python() {
        // json.dumps({1.5: 1, None: 2}) / {1: "b"} / {True: 1}
        let mut m = BTreeMap::new();
        m.insert(1, "b");
        assert_eq!(to_string(&m), r#"{"1": "b"}"#);
        let mut m = BTreeMap::new();
        m.insert(true, 1);
        assert_eq!(to_string(&m), r#"{"true": 1}"#);
        let pairs: Vec<(f64, i32)> = vec![(1.5, 1)];
        let m: serde_json::Map<String, serde_json::Value> = pairs
            .iter()
            .map(|(k, v)| (float_repr(*k), json!(v)))
            .collect();
        assert_eq!(to_string(&m), r#"{"1.5": 1}"#);
        let mut bad = BTreeMap::new();
        bad.insert(vec![1], 1);
        assert!(try_to_string(&bad).is_err());
    }

    #[test]
    fn value_objects_in_map_iteration_order() {
        let v: serde_json::Value = serde_json::from_str(r#"{"b": 1, "a": 2}"#).unwrap();
        // Insertion order with serde_json's preserve_order, sorted without.
        let expected = if v.as_object().unwrap().keys().next().unwrap() == "b" {
            r#"{"b": 1, "a": 2}"#
        } else {
            r#"{"a": 2, "b": 1}"#
        };
        assert_eq!(to_string(&v), expected);
    }

    #[test]
    fn to_vec_matches_to_string() {
        assert_eq!(to_vec(&json!({"k": "v"})), br#"{"k": "v"}"#.to_vec());
    }
}
