//! Structural comparison of a golden's recorded outputs with a replay's
//! (normalised) outputs, producing differences at JSON paths.
//!
//! Rules from FORMAT.md: object key order never matters; array order does,
//! except for the lists compared as sets (`logs` of a finish response and
//! every `logfilenames`, published messages' included); `db_after` tables are multisets of rows; numbers
//! compare by value *and* kind (`15` is not `15.0`); a response recorded with
//! `body_ignored` is compared on status and content type only.

use crate::normalize::canonical_json;
use serde_json::{Map, Value};
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    /// e.g. `steps[1].response.json.result.code` or `db_after.run[0].worker`.
    pub path: String,
    /// `None` when the golden has nothing at this path.
    pub expected: Option<Value>,
    /// `None` when our output has nothing at this path.
    pub actual: Option<Value>,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<Value>| match v {
            None => "(absent)".to_string(),
            Some(v) => {
                let s = serde_json::to_string(v).unwrap_or_default();
                if s.len() > 300 {
                    format!(
                        "{}…",
                        &s[..s.char_indices().nth(300).map(|(i, _)| i).unwrap_or(s.len())]
                    )
                } else {
                    s
                }
            }
        };
        write!(
            f,
            "{}\n      golden: {}\n      ours:   {}",
            self.path,
            show(&self.expected),
            show(&self.actual)
        )
    }
}

/// The outputs of a scenario, in golden form: `steps` (responses only),
/// `db_after`, `redis_after`, `files_after`, `fake_worker_requests`.
pub fn compare_outputs(golden: &Value, ours: &Value) -> Vec<Difference> {
    let mut out = Vec::new();
    let g_steps = golden["steps"].as_array().cloned().unwrap_or_default();
    let o_steps = ours["steps"].as_array().cloned().unwrap_or_default();
    for i in 0..g_steps.len().max(o_steps.len()) {
        let path = format!("steps[{i}].response");
        match (g_steps.get(i), o_steps.get(i)) {
            (Some(g), Some(o)) => compare_response(&g["response"], &o["response"], &path, &mut out),
            (g, o) => out.push(Difference {
                path,
                expected: g.map(|g| g["response"].clone()),
                actual: o.map(|o| o["response"].clone()),
            }),
        }
    }
    compare_tables(&golden["db_after"], &ours["db_after"], &mut out);
    let mut g_redis = golden["redis_after"].clone();
    let mut o_redis = ours["redis_after"].clone();
    for v in [&mut g_redis, &mut o_redis] {
        if v.is_null() {
            *v = serde_json::json!({"keys": {}, "published": {}});
        }
        // A published `result` message is `result.json()`: its
        // `logfilenames` is a set like every other (FORMAT.md §3).
        if let Some(p) = v.get_mut("published") {
            *p = set_lists(p.take(), false);
        }
    }
    diff(&g_redis, &o_redis, "redis_after", &mut out);
    diff(
        &or_empty(&golden["files_after"]),
        &or_empty(&ours["files_after"]),
        "files_after",
        &mut out,
    );
    diff(
        &or_array(&golden["fake_worker_requests"]),
        &or_array(&ours["fake_worker_requests"]),
        "fake_worker_requests",
        &mut out,
    );
    out
}

fn or_empty(v: &Value) -> Value {
    if v.is_null() {
        Value::Object(Map::new())
    } else {
        v.clone()
    }
}

fn or_array(v: &Value) -> Value {
    if v.is_null() {
        Value::Array(vec![])
    } else {
        v.clone()
    }
}

fn compare_response(g: &Value, o: &Value, path: &str, out: &mut Vec<Difference>) {
    // The recordings note why instead of `true` ("prometheus text format; …"):
    // any value other than null/false means the body was not recorded.
    if g.get("body_ignored")
        .is_some_and(|v| !v.is_null() && v != &Value::Bool(false))
    {
        diff(&g["status"], &o["status"], &format!("{path}.status"), out);
        diff(
            &g["headers"]["content-type"],
            &o["headers"]["content-type"],
            &format!("{path}.headers.content-type"),
            out,
        );
        return;
    }
    let g = set_lists(g.clone(), true);
    let o = set_lists(o.clone(), true);
    diff(&g, &o, path, out);
}

/// Sort the lists FORMAT.md compares as sets, so a plain diff treats them so.
fn set_lists(mut v: Value, is_response: bool) -> Value {
    fn walk(v: &mut Value, top_of_finish: bool) {
        match v {
            Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    let as_set = k == "logfilenames" || (top_of_finish && k == "logs");
                    if as_set {
                        if let Value::Array(items) = child {
                            items.sort_by_key(canonical_json);
                        }
                    }
                    walk(child, false);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| walk(i, false)),
            _ => {}
        }
    }
    if is_response {
        if let Some(json) = v.get_mut("json") {
            walk(json, true);
        }
    } else {
        walk(&mut v, false);
    }
    v
}

fn compare_tables(golden: &Value, ours: &Value, out: &mut Vec<Difference>) {
    let empty = Map::new();
    let g = golden.as_object().unwrap_or(&empty);
    let o = ours.as_object().unwrap_or(&empty);
    let mut names: Vec<&String> = g.keys().chain(o.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let rows = |m: &Map<String, Value>| -> Vec<Value> {
            let mut rows: Vec<Value> = m
                .get(name)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|r| set_lists(r, false))
                .collect();
            rows.sort_by_key(canonical_json);
            rows
        };
        let (g_rows, o_rows) = (rows(g), rows(o));
        // Multiset difference first, so one changed row is reported once,
        // field by field, instead of shifting every row after it.
        let mut missing: Vec<Value> = Vec::new();
        let mut extra: Vec<Value> = o_rows.clone();
        for r in &g_rows {
            if let Some(pos) = extra.iter().position(|x| x == r) {
                extra.remove(pos);
            } else {
                missing.push(r.clone());
            }
        }
        let base = format!("db_after.{name}");
        for i in 0..missing.len().max(extra.len()) {
            let path = format!("{base}[{i}]");
            match (missing.get(i), extra.get(i)) {
                (Some(m), Some(e)) => diff(m, e, &path, out),
                (m, e) => out.push(Difference {
                    path,
                    expected: m.cloned(),
                    actual: e.cloned(),
                }),
            }
        }
    }
}

/// Generic structural diff.
pub fn diff(g: &Value, o: &Value, path: &str, out: &mut Vec<Difference>) {
    match (g, o) {
        (Value::Object(gm), Value::Object(om)) => {
            let mut keys: Vec<&String> = gm.keys().chain(om.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = join(path, k);
                match (gm.get(k), om.get(k)) {
                    (Some(a), Some(b)) => diff(a, b, &p, out),
                    (a, b) => out.push(Difference {
                        path: p,
                        expected: a.cloned(),
                        actual: b.cloned(),
                    }),
                }
            }
        }
        (Value::Array(ga), Value::Array(oa)) => {
            for i in 0..ga.len().max(oa.len()) {
                let p = format!("{path}[{i}]");
                match (ga.get(i), oa.get(i)) {
                    (Some(a), Some(b)) => diff(a, b, &p, out),
                    (a, b) => out.push(Difference {
                        path: p,
                        expected: a.cloned(),
                        actual: b.cloned(),
                    }),
                }
            }
        }
        // serde_json's Number equality already tells ints from floats.
        (a, b) if a == b => {}
        (a, b) => out.push(Difference {
            path: path.to_string(),
            expected: Some(a.clone()),
            actual: Some(b.clone()),
        }),
    }
}

fn join(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        format!("{path}.{key}")
    } else {
        format!("{path}[{}]", serde_json::to_string(key).unwrap())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ints_and_floats_differ() {
        let mut out = vec![];
        diff(&json!({"a": 15}), &json!({"a": 15.0}), "x", &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].path, "x.a");
    }

    #[test]
    fn key_order_is_irrelevant_but_array_order_matters() {
        let mut out = vec![];
        diff(
            &json!({"a": 1, "b": [1, 2]}),
            &json!({"b": [1, 2], "a": 1}),
            "x",
            &mut out,
        );
        assert!(out.is_empty());
        diff(&json!([1, 2]), &json!([2, 1]), "x", &mut out);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn finish_logs_and_logfilenames_are_sets() {
        let g = json!({"steps": [{"response": {"status": 201, "json": {"logs": ["a", "b"], "filenames": ["x", "y"], "result": {"logfilenames": ["a", "b"]}}}}]});
        let o = json!({"steps": [{"response": {"status": 201, "json": {"logs": ["b", "a"], "filenames": ["x", "y"], "result": {"logfilenames": ["b", "a"]}}}}]});
        assert!(compare_outputs(&g, &o).is_empty());
        let o2 = json!({"steps": [{"response": {"status": 201, "json": {"logs": ["b", "a"], "filenames": ["y", "x"], "result": {"logfilenames": ["b", "a"]}}}}]});
        let d = compare_outputs(&g, &o2);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].path.contains("filenames"));
    }

    #[test]
    fn published_logfilenames_are_sets_and_other_published_lists_are_not() {
        let msg = |logs: [&str; 2], other: [&str; 2]| {
            json!({"redis_after": {"keys": {}, "published": {"result": [
                {"json": {"logfilenames": logs, "other": other}}
            ]}}})
        };
        let g = msg(["a", "b"], ["x", "y"]);
        assert!(compare_outputs(&g, &msg(["b", "a"], ["x", "y"])).is_empty());
        let d = compare_outputs(&g, &msg(["b", "a"], ["y", "x"]));
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d.iter().all(|d| d.path.contains("other")), "{d:?}");
    }

    #[test]
    fn tables_are_multisets_and_a_changed_row_is_shown_field_by_field() {
        let g = json!({"db_after": {"run": [{"id": 1, "c": "a"}, {"id": 2, "c": "b"}]}});
        let o = json!({"db_after": {"run": [{"id": 2, "c": "b"}, {"id": 1, "c": "z"}]}});
        let d = compare_outputs(&g, &o);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].path, "db_after.run[0].c");
        assert_eq!(d[0].expected, Some(json!("a")));
    }

    #[test]
    fn body_ignored_compares_status_and_content_type_only() {
        let g = json!({"steps": [{"response": {"status": 200, "body_ignored": true, "headers": {"content-type": "text/plain"}}}]});
        let o = json!({"steps": [{"response": {"status": 200, "text": "anything", "headers": {"content-type": "text/plain"}}}]});
        assert!(compare_outputs(&g, &o).is_empty());
    }

    #[test]
    fn body_ignored_may_be_a_note_instead_of_true() {
        let g = json!({"steps": [{"response": {"status": 200, "body_ignored": "counters depend on history", "headers": {"content-type": "text/plain"}}}]});
        let o = json!({"steps": [{"response": {"status": 200, "body_ignored": true, "headers": {"content-type": "text/plain"}}}]});
        assert!(compare_outputs(&g, &o).is_empty());
        let o2 = json!({"steps": [{"response": {"status": 500, "body_ignored": true, "headers": {"content-type": "text/plain"}}}]});
        assert_eq!(compare_outputs(&g, &o2).len(), 1);
    }

    #[test]
    fn odd_keys_are_quoted_in_paths() {
        let mut out = vec![];
        diff(&json!({"a b": 1}), &json!({"a b": 2}), "x", &mut out);
        assert_eq!(out[0].path, r#"x["a b"]"#);
    }
}
