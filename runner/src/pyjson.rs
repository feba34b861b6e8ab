//! JSON bytes exactly as Python's `json.dumps(obj)` writes them with default
//! settings, which is what aiohttp's `json_response` and the runner's Redis
//! publications produce:
//!
//! - separators `", "` and `": "`, no trailing newline;
//! - every character outside printable ASCII escaped (`ensure_ascii`):
//!   `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, everything else as
//!   lowercase `\uXXXX` (UTF-16 surrogate pairs above the BMP, DEL too);
//!   `/` is not escaped;
//! - floats as Python's `repr` (`15.0`, `1e+16`, `1.5e-07`), non-finite
//!   ones as `NaN`, `Infinity`, `-Infinity`;
//! - object members in the order the value serializes them.
//!
//! Key order: [`to_string`]/[`to_vec`] keep whatever order `Serialize`
//! produces: structs keep field order, and a `serde_json::Value` object
//! keeps its `Map`'s iteration order, which is insertion order with the
//! workspace's `preserve_order` feature (sorted without it).
//!
//! [`PyFormatter`] is the same formatting as a `serde_json` formatter, for
//! streaming through `serde_json::Serializer`; there serde_json itself turns
//! non-finite floats into `null` before the formatter sees them, which is why
//! [`to_vec`] uses its own serializer.

use std::fmt::Display;
use std::io;

use serde::de::{self, Deserialize, Deserializer};
use serde::ser::{self, Impossible, Serialize};
use serde_json::ser::{CharEscape, Formatter};

/// Name under which `serde_json::value::RawValue` serializes itself.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(String);

impl ser::Error for Error {
    fn custom<T: Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// Serialize like Python's `json.dumps`. Panics only if the value's
/// `Serialize` impl fails or a map key is not a string, number, bool or
/// unit (Python raises `TypeError` there too); see [`try_to_vec`].
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
    let mut ser = PySerializer { out: Vec::new() };
    value.serialize(&mut ser)?;
    Ok(ser.out)
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

fn write_quoted<W: ?Sized + io::Write>(w: &mut W, s: &str) -> io::Result<()> {
    w.write_all(b"\"")?;
    write_escaped(w, s)?;
    w.write_all(b"\"")
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

// ---------------------------------------------------------------------------
// Serializer (own implementation so non-finite floats reach the output)

struct PySerializer {
    out: Vec<u8>,
}

impl PySerializer {
    fn raw(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
    }

    fn string(&mut self, s: &str) {
        // Writing to a Vec cannot fail.
        let _ = write_quoted(&mut self.out, s);
    }
}

/// State of an array or object being written.
struct Compound<'a> {
    ser: &'a mut PySerializer,
    first: bool,
    /// Closing text: `]`, `}`, or `]}`/`}}` for enum variants.
    close: &'static str,
    /// Serializing a `RawValue`: its one field is JSON text to re-emit.
    raw_value: bool,
}

impl Compound<'_> {
    fn separator(&mut self) {
        if !self.first {
            self.ser.raw(", ");
        }
        self.first = false;
    }
}

impl<'a> ser::Serializer for &'a mut PySerializer {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.raw(if v { "true" } else { "false" });
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }

    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }

    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.serialize_i64(v.into())
    }

    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.raw(&v.to_string());
        Ok(())
    }

    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.raw(&v.to_string());
        Ok(())
    }

    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.serialize_u64(v.into())
    }

    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.serialize_u64(v.into())
    }

    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.serialize_u64(v.into())
    }

    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.raw(&v.to_string());
        Ok(())
    }

    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.raw(&v.to_string());
        Ok(())
    }

    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.raw(&float_repr_f32(v));
        Ok(())
    }

    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.raw(&float_repr(v));
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.string(v.encode_utf8(&mut [0; 4]));
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.string(v);
        Ok(())
    }

    // Like serde_json: bytes become an array of numbers.
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        use ser::SerializeSeq;
        let mut seq = self.serialize_seq(Some(v.len()))?;
        for b in v {
            seq.serialize_element(b)?;
        }
        seq.end()
    }

    fn serialize_none(self) -> Result<(), Error> {
        self.serialize_unit()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Error> {
        self.raw("null");
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.raw("{");
        self.string(variant);
        self.raw(": ");
        value.serialize(&mut *self)?;
        self.raw("}");
        Ok(())
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a>, Error> {
        self.raw("[");
        Ok(Compound {
            ser: self,
            first: true,
            close: "]",
            raw_value: false,
        })
    }

    fn serialize_tuple(self, len: usize) -> Result<Compound<'a>, Error> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, Error> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, Error> {
        self.raw("{");
        self.string(variant);
        self.raw(": [");
        Ok(Compound {
            ser: self,
            first: true,
            close: "]}",
            raw_value: false,
        })
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a>, Error> {
        self.raw("{");
        Ok(Compound {
            ser: self,
            first: true,
            close: "}",
            raw_value: false,
        })
    }

    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Compound<'a>, Error> {
        if name == RAW_VALUE_TOKEN {
            return Ok(Compound {
                ser: self,
                first: true,
                close: "",
                raw_value: true,
            });
        }
        self.serialize_map(Some(len))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, Error> {
        self.raw("{");
        self.string(variant);
        self.raw(": {");
        Ok(Compound {
            ser: self,
            first: true,
            close: "}}",
            raw_value: false,
        })
    }
}

impl ser::SerializeSeq for Compound<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.separator();
        value.serialize(&mut *self.ser)
    }

    fn end(self) -> Result<(), Error> {
        self.ser.raw(self.close);
        Ok(())
    }
}

impl ser::SerializeTuple for Compound<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, value)
    }

    fn end(self) -> Result<(), Error> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for Compound<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, value)
    }

    fn end(self) -> Result<(), Error> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleVariant for Compound<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        ser::SerializeSeq::serialize_element(self, value)
    }

    fn end(self) -> Result<(), Error> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.separator();
        key.serialize(KeySerializer(&mut *self.ser))
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.ser.raw(": ");
        value.serialize(&mut *self.ser)
    }

    fn end(self) -> Result<(), Error> {
        self.ser.raw(self.close);
        Ok(())
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        if self.raw_value {
            // Re-emit the embedded JSON text with Python's formatting,
            // keeping its member order.
            let text = match serde_json::to_value(value) {
                Ok(serde_json::Value::String(s)) => s,
                _ => return Err(Error("RawValue without JSON text".to_owned())),
            };
            let tree: RawJson = serde_json::from_str(&text)
                .map_err(|e| Error(format!("invalid RawValue JSON: {e}")))?;
            return tree.serialize(&mut *self.ser);
        }
        ser::SerializeMap::serialize_entry(self, key, value)
    }

    fn end(self) -> Result<(), Error> {
        ser::SerializeMap::end(self)
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        ser::SerializeMap::serialize_entry(self, key, value)
    }

    fn end(self) -> Result<(), Error> {
        ser::SerializeMap::end(self)
    }
}

/// Object keys: Python's `json.dumps` turns str, int, float, bool and None
/// keys into strings and rejects everything else.
struct KeySerializer<'a>(&'a mut PySerializer);

fn key_error() -> Error {
    Error("keys must be str, int, float, bool or None".to_owned())
}

impl KeySerializer<'_> {
    fn quoted(self, s: &str) -> Result<(), Error> {
        self.0.string(s);
        Ok(())
    }
}

impl ser::Serializer for KeySerializer<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStruct = Impossible<(), Error>;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.quoted(if v { "true" } else { "false" })
    }

    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.quoted(&v.to_string())
    }

    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.quoted(&v.to_string())
    }

    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.quoted(&v.to_string())
    }

    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.quoted(&v.to_string())
    }

    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.quoted(&v.to_string())
    }

    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.quoted(&v.to_string())
    }

    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.quoted(&v.to_string())
    }

    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.quoted(&v.to_string())
    }

    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.quoted(&v.to_string())
    }

    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.quoted(&v.to_string())
    }

    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        self.quoted(&float_repr_f32(v))
    }

    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        self.quoted(&float_repr(v))
    }

    fn serialize_char(self, v: char) -> Result<(), Error> {
        self.quoted(v.encode_utf8(&mut [0; 4]))
    }

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.quoted(v)
    }

    fn serialize_bytes(self, _v: &[u8]) -> Result<(), Error> {
        Err(key_error())
    }

    fn serialize_none(self) -> Result<(), Error> {
        self.quoted("null")
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Error> {
        self.quoted("null")
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.quoted("null")
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.quoted(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), Error> {
        Err(key_error())
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(key_error())
    }

    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Error> {
        Err(key_error())
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(key_error())
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(key_error())
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(key_error())
    }

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, Error> {
        Err(key_error())
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(key_error())
    }
}

// ---------------------------------------------------------------------------
// Order-preserving JSON tree, for re-emitting RawValue text

enum RawJson {
    Null,
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    Str(String),
    Array(Vec<RawJson>),
    Object(Vec<(String, RawJson)>),
}

impl Serialize for RawJson {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use ser::{SerializeMap, SerializeSeq};
        match self {
            RawJson::Null => s.serialize_unit(),
            RawJson::Bool(b) => s.serialize_bool(*b),
            RawJson::I64(n) => s.serialize_i64(*n),
            RawJson::U64(n) => s.serialize_u64(*n),
            RawJson::F64(n) => s.serialize_f64(*n),
            RawJson::Str(v) => s.serialize_str(v),
            RawJson::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            RawJson::Object(members) => {
                let mut map = s.serialize_map(Some(members.len()))?;
                for (k, v) in members {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl<'de> de::Visitor<'de> for Visitor {
            type Value = RawJson;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_unit<E>(self) -> Result<RawJson, E> {
                Ok(RawJson::Null)
            }

            fn visit_bool<E>(self, v: bool) -> Result<RawJson, E> {
                Ok(RawJson::Bool(v))
            }

            fn visit_i64<E>(self, v: i64) -> Result<RawJson, E> {
                Ok(RawJson::I64(v))
            }

            fn visit_u64<E>(self, v: u64) -> Result<RawJson, E> {
                Ok(RawJson::U64(v))
            }

            fn visit_f64<E>(self, v: f64) -> Result<RawJson, E> {
                Ok(RawJson::F64(v))
            }

            fn visit_str<E>(self, v: &str) -> Result<RawJson, E> {
                Ok(RawJson::Str(v.to_owned()))
            }

            fn visit_string<E>(self, v: String) -> Result<RawJson, E> {
                Ok(RawJson::Str(v))
            }

            fn visit_seq<A: de::SeqAccess<'de>>(self, mut a: A) -> Result<RawJson, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = a.next_element()? {
                    items.push(item);
                }
                Ok(RawJson::Array(items))
            }

            fn visit_map<A: de::MapAccess<'de>>(self, mut a: A) -> Result<RawJson, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = a.next_entry()? {
                    members.push(member);
                }
                Ok(RawJson::Object(members))
            }
        }

        d.deserialize_any(Visitor)
    }
}

// ---------------------------------------------------------------------------

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
    fn non_finite_floats() {
        assert_eq!(
            to_string(&[f64::NAN, f64::INFINITY, f64::NEG_INFINITY]),
            "[NaN, Infinity, -Infinity]"
        );
        assert_eq!(to_string(&f32::NAN), "NaN");
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
        m.insert(Some(true), 1);
        m.insert(None, 2);
        assert_eq!(to_string(&m), r#"{"null": 2, "true": 1}"#);
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
    fn raw_value_reformatted_in_order() {
        let raw =
            serde_json::value::RawValue::from_string(r#"{"b":[1,2.0,1e2],"a":"é"}"#.to_owned())
                .unwrap();
        assert_eq!(to_string(&raw), r#"{"b": [1, 2.0, 100.0], "a": "\u00e9"}"#);
    }

    #[test]
    fn to_vec_matches_to_string() {
        assert_eq!(to_vec(&json!({"k": "v"})), br#"{"k": "v"}"#.to_vec());
    }
}
