//! FORMAT.md §7: the normalisation of volatile values, applied to our own
//! output before it is compared with a golden (which is already normalised).
//!
//! One [`Normalizer`] lives for a whole scenario: placeholder numbers are
//! handed out in traversal order, and the mapping is kept so that request
//! placeholders (`<uuid:1>` in a later path) can be resolved to real values.

use chrono::{DateTime, NaiveDateTime, Utc};
use regex::Regex;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::LazyLock;

static UUID_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").unwrap()
});
static TIMESTAMP_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?").unwrap()
});
static PLACEHOLDER_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"<uuid:(\d+)>|<timestamp>").unwrap());

pub const TIMESTAMP: &str = "<timestamp>";
pub const DURATION: &str = "<duration>";

/// How far from the recording's wall clock a timestamp may be and still count
/// as generated at run time (rule 3).
const RUNTIME_WINDOW_DAYS: i64 = 3;

#[derive(Debug, Clone)]
pub struct Normalizer {
    numbers: HashMap<String, usize>,
    values: HashMap<usize, String>,
    next: usize,
    recorded_at: DateTime<Utc>,
    /// Fixture values of this replay mapped back to the recording's constants
    /// (scenario directory → `/tmp/janitor-golden`, fake worker URL → ...).
    fixtures: Vec<(String, String)>,
}

impl Normalizer {
    pub fn new(recorded_at: DateTime<Utc>) -> Self {
        Normalizer {
            numbers: HashMap::new(),
            values: HashMap::new(),
            next: 1,
            recorded_at,
            fixtures: Vec::new(),
        }
    }

    /// Replace `ours` by `recorded` in every string before normalising.
    pub fn map_fixture(&mut self, ours: impl Into<String>, recorded: impl Into<String>) {
        let ours = ours.into();
        let recorded = recorded.into();
        if ours != recorded {
            self.fixtures.push((ours, recorded));
            // Longest first, so a URL with a trailing slash wins over its prefix.
            self.fixtures.sort_by_key(|f| std::cmp::Reverse(f.0.len()));
        }
    }

    pub fn unmap_fixtures(&self, s: &str) -> String {
        let mut s = s.to_string();
        for (ours, recorded) in &self.fixtures {
            if s.contains(ours.as_str()) {
                s = s.replace(ours.as_str(), recorded);
            }
        }
        s
    }

    /// Is `s` (a whole string) a timestamp produced at run time?
    pub fn is_runtime_timestamp(&self, s: &str) -> bool {
        match TIMESTAMP_RE.find(s) {
            Some(m) if m.start() == 0 && m.end() == s.len() => self.near_recording(s),
            _ => false,
        }
    }

    fn near_recording(&self, ts: &str) -> bool {
        match parse_timestamp(ts) {
            Some(t) => (t - self.recorded_at).num_seconds().abs() <= RUNTIME_WINDOW_DAYS * 86400,
            None => false,
        }
    }

    fn number(&mut self, uuid: &str, provisional: bool) -> String {
        if let Some(n) = self.numbers.get(uuid) {
            return format!("<uuid:{n}>");
        }
        if provisional {
            return "<uuid:?>".to_string();
        }
        let n = self.next;
        self.next += 1;
        self.numbers.insert(uuid.to_string(), n);
        self.values.insert(n, uuid.to_string());
        format!("<uuid:{n}>")
    }

    pub fn string(&mut self, s: &str) -> String {
        self.string_with(s, false)
    }

    fn string_with(&mut self, s: &str, provisional: bool) -> String {
        let s = self.unmap_fixtures(s);
        let mut out = String::with_capacity(s.len());
        let mut last = 0;
        for m in UUID_RE.find_iter(&s) {
            out.push_str(&s[last..m.start()]);
            out.push_str(&self.number(m.as_str(), provisional));
            last = m.end();
        }
        out.push_str(&s[last..]);
        if !TIMESTAMP_RE.is_match(&out) {
            return out;
        }
        TIMESTAMP_RE
            .replace_all(&out, |c: &regex::Captures| {
                let ts = c.get(0).unwrap().as_str();
                if self.near_recording(ts) {
                    TIMESTAMP.to_string()
                } else {
                    ts.to_string()
                }
            })
            .into_owned()
    }

    pub fn value(&mut self, v: &Value) -> Value {
        self.value_with(v, false)
    }

    fn value_with(&mut self, v: &Value, provisional: bool) -> Value {
        match v {
            Value::String(s) => Value::String(self.string_with(s, provisional)),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| self.value_with(i, provisional))
                    .collect(),
            ),
            Value::Object(map) => Value::Object(self.object(map, provisional)),
            other => other.clone(),
        }
    }

    fn object(&mut self, map: &Map<String, Value>, provisional: bool) -> Map<String, Value> {
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        let mut out = Map::new();
        for k in keys {
            let nk = self.string_with(k, provisional);
            let nv = self.value_with(&map[k], provisional);
            out.insert(nk, nv);
        }
        // Rule 4: durations.
        for key in ["current_duration", "keepalive_age"] {
            if out.get(key).is_some_and(Value::is_number) {
                out.insert(key.to_string(), Value::String(DURATION.into()));
            }
        }
        if out.get("duration").is_some_and(|d| !d.is_null()) {
            let runtime = ["start_time", "finish_time"].iter().any(|k| {
                map.get(*k)
                    .and_then(Value::as_str)
                    .is_some_and(|s| self.is_runtime_timestamp(&self.unmap_fixtures(s)))
            });
            if runtime {
                out.insert("duration".into(), Value::String(DURATION.into()));
            }
        }
        out
    }

    /// Rule 5: a table's rows, sorted by their provisional form, then numbered.
    pub fn table_rows(&mut self, rows: &[Value]) -> Vec<Value> {
        let mut keyed: Vec<(String, &Value)> = rows
            .iter()
            .map(|r| (canonical_json(&self.value_with(r, true)), r))
            .collect();
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        keyed.into_iter().map(|(_, r)| self.value(r)).collect()
    }

    /// Put real values back for the placeholders of a recorded request.
    /// A `<uuid:N>` no earlier response produced becomes a fresh UUID (e.g. an
    /// unknown run id), registered under N so later numbering stays aligned.
    pub fn resolve(&mut self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.resolve_str(s)),
            Value::Array(items) => Value::Array(items.iter().map(|i| self.resolve(i)).collect()),
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let mut out = Map::new();
                for k in keys {
                    let nk = self.resolve_str(k);
                    out.insert(nk, self.resolve(&map[k]));
                }
                Value::Object(out)
            }
            other => other.clone(),
        }
    }

    pub fn resolve_str(&mut self, s: &str) -> String {
        if !s.contains('<') {
            return s.to_string();
        }
        let now = self.recorded_at;
        PLACEHOLDER_RE
            .replace_all(s, |c: &regex::Captures| match c.get(1) {
                Some(n) => {
                    let n: usize = n.as_str().parse().unwrap();
                    if let Some(v) = self.values.get(&n) {
                        return v.clone();
                    }
                    let fresh = uuid::Uuid::new_v4().to_string();
                    self.numbers.insert(fresh.clone(), n);
                    self.values.insert(n, fresh.clone());
                    self.next = self.next.max(n + 1);
                    fresh
                }
                None => now.naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
            })
            .into_owned()
    }

    /// The real value behind `<uuid:N>`, if one has been seen.
    pub fn uuid_value(&self, n: usize) -> Option<&str> {
        self.values.get(&n).map(String::as_str)
    }
}

/// Normalise a whole outputs document (`steps`, `db_after`, `redis_after`,
/// `files_after`, `fake_worker_requests`) in FORMAT.md's traversal order.
pub fn normalize_document(norm: &mut Normalizer, doc: &Value) -> Value {
    let mut out = Map::new();
    let steps: Vec<Value> = doc["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|st| {
            let request = norm.value(&st["request"]);
            let response = norm.value(&st["response"]);
            serde_json::json!({"request": request, "response": response})
        })
        .collect();
    out.insert("steps".into(), Value::Array(steps));
    let mut tables = Map::new();
    if let Some(db) = doc["db_after"].as_object() {
        let mut names: Vec<&String> = db.keys().collect();
        names.sort();
        for name in names {
            let rows = db[name].as_array().cloned().unwrap_or_default();
            tables.insert(name.clone(), Value::Array(norm.table_rows(&rows)));
        }
    }
    out.insert("db_after".into(), Value::Object(tables));
    let keys = norm.value(&doc["redis_after"]["keys"]);
    let published = norm.value(&doc["redis_after"]["published"]);
    out.insert(
        "redis_after".into(),
        serde_json::json!({"keys": keys, "published": published}),
    );
    out.insert("files_after".into(), norm.value(&doc["files_after"]));
    out.insert(
        "fake_worker_requests".into(),
        norm.value(&doc["fake_worker_requests"]),
    );
    Value::Object(out)
}

/// Parse a timestamp as rule 3 reads it: aware values converted to UTC,
/// naive ones taken as UTC.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let s = s.replacen(' ', "T", 1);
    if let Ok(t) = DateTime::parse_from_rfc3339(&s) {
        return Some(t.with_timezone(&Utc));
    }
    // Offsets written without a colon (`+0000`).
    if let Ok(t) = DateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

/// Python's `json.dumps(v, sort_keys=True)` (default separators, ASCII only):
/// the sort key of rows (FORMAT.md §4).
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_py_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_py_string(k, out);
                out.push_str(": ");
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
    }
}

fn write_py_string(s: &str, out: &mut String) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{:04x}", unit);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> DateTime<Utc> {
        parse_timestamp(s).unwrap()
    }

    #[test]
    fn uuids_are_numbered_in_traversal_order_and_kept() {
        let mut n = Normalizer::new(at("2026-01-01T00:00:00"));
        let a = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
        let b = "6fa459ea-ee8a-3ca4-894e-db77e160355e";
        let v = json!({"z": a, "a": format!("/runs/{b}"), "m": [a, b]});
        // keys visited in sorted order: a, m, z
        assert_eq!(
            n.value(&v),
            json!({"a": "/runs/<uuid:1>", "m": ["<uuid:2>", "<uuid:1>"], "z": "<uuid:2>"})
        );
        assert_eq!(n.uuid_value(1), Some(b));
    }

    #[test]
    fn only_runtime_timestamps_are_replaced() {
        let mut n = Normalizer::new(at("2026-01-01T00:00:00"));
        assert_eq!(n.string("2026-01-02T12:00:00.123"), TIMESTAMP);
        assert_eq!(
            n.string("at 2025-12-30 01:00:00+01:00 ok"),
            "at <timestamp> ok"
        );
        assert_eq!(n.string("2020-02-02T10:10:30"), "2020-02-02T10:10:30");
        assert_eq!(n.string("2025-12-20T00:00:00Z"), "2025-12-20T00:00:00Z");
    }

    #[test]
    fn durations_follow_rule_4() {
        let mut n = Normalizer::new(at("2026-01-01T00:00:00"));
        let v = json!({"current_duration": 1.5, "keepalive_age": null,
                        "x": {"duration": 3.0, "start_time": "2026-01-01T00:00:01"},
                        "y": {"duration": 630.0, "start_time": "2020-02-02T10:00:00"},
                        "w": {"duration": null, "finish_time": "2026-01-01T00:00:01"}});
        let out = n.value(&v);
        assert_eq!(out["current_duration"], DURATION);
        assert_eq!(out["keepalive_age"], Value::Null);
        assert_eq!(out["x"]["duration"], DURATION);
        assert_eq!(out["y"]["duration"], json!(630.0));
        assert_eq!(out["w"]["duration"], Value::Null);
    }

    #[test]
    fn table_rows_are_numbered_after_sorting_by_provisional_form() {
        let mut n = Normalizer::new(at("2026-01-01T00:00:00"));
        let a = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
        let b = "6fa459ea-ee8a-3ca4-894e-db77e160355e";
        let rows = vec![json!({"id": a, "k": "z"}), json!({"id": b, "k": "a"})];
        let out = n.table_rows(&rows);
        assert_eq!(
            out,
            vec![
                json!({"id": "<uuid:1>", "k": "a"}),
                json!({"id": "<uuid:2>", "k": "z"})
            ]
        );
    }

    #[test]
    fn resolve_reuses_known_values_and_invents_unknown_ones() {
        let mut n = Normalizer::new(at("2026-01-01T00:00:00"));
        let a = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
        n.string(a);
        assert_eq!(
            n.resolve_str("/active-runs/<uuid:1>/finish"),
            format!("/active-runs/{a}/finish")
        );
        let fresh = n.resolve_str("/runs/<uuid:2>");
        assert_ne!(fresh, "/runs/<uuid:2>");
        assert_eq!(n.string(&fresh), "/runs/<uuid:2>");
        assert_eq!(n.string("1b4e28ba-2fa1-11d2-883f-0016d3cca428"), "<uuid:3>");
    }

    #[test]
    fn fixtures_are_mapped_back_before_normalising() {
        let mut n = Normalizer::new(at("2026-01-01T00:00:00"));
        n.map_fixture("/tmp/jh-abc", "/tmp/janitor-golden");
        n.map_fixture("http://127.0.0.1:4444/", "http://127.0.0.1:58123/");
        assert_eq!(
            n.string("file:///tmp/jh-abc/vcs/git/x via http://127.0.0.1:4444/"),
            "file:///tmp/janitor-golden/vcs/git/x via http://127.0.0.1:58123/"
        );
    }

    #[test]
    fn canonical_json_matches_python_sort_keys() {
        assert_eq!(
            canonical_json(&json!({"b": [1, 2.5, null], "a": "é\n"})),
            r#"{"a": "\u00e9\n", "b": [1, 2.5, null]}"#
        );
    }
}
