//! Readable differences between two catalogue dumps.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// List the differences between two catalogue dumps (as produced by
/// [`super::dump_catalog`] or `dump_catalog.py`).  An empty result means the schemas
/// are the same.  `source` is ignored and `server_version` is compared by
/// major version only (view definitions are deparsed by the server, so they
/// are only comparable within one major version).
pub fn diff_catalogs(expected: &Value, actual: &Value) -> Vec<String> {
    let mut d = Vec::new();
    let get =
        |v: &'static str, root: &'_ Value| -> Value { root.get(v).cloned().unwrap_or(Value::Null) };

    diff_server_version(
        &mut d,
        &get("server_version", expected),
        &get("server_version", actual),
    );

    // extensions: [{name, version}]
    diff_keyed_list(
        &mut d,
        "extension",
        &get("extensions", expected),
        &get("extensions", actual),
        |e| str_field(e, "name"),
        |name, e, a, d| {
            diff_field(d, &format!("extension {name}"), "version", e, a);
        },
    );

    // enums: {name: [labels]}
    diff_map(
        &mut d,
        "enum",
        &get("enums", expected),
        &get("enums", actual),
        |name, e, a, d| {
            if e != a {
                d.push(format!("enum {name}: labels {} != {}", show(e), show(a)));
            }
        },
    );

    // domains: {name: {base_type, not_null, default, checks}}
    diff_map(
        &mut d,
        "domain",
        &get("domains", expected),
        &get("domains", actual),
        |name, e, a, d| {
            diff_object_fields(d, &format!("domain {name}"), e, a);
        },
    );

    // composite types: {name: ["attr type"]}
    diff_map(
        &mut d,
        "composite type",
        &get("composite_types", expected),
        &get("composite_types", actual),
        |name, e, a, d| {
            if e != a {
                d.push(format!(
                    "composite type {name}: attributes {} != {}",
                    show(e),
                    show(a)
                ));
            }
        },
    );

    // tables
    diff_map(
        &mut d,
        "table",
        &get("tables", expected),
        &get("tables", actual),
        |table, e, a, d| {
            diff_table(d, table, e, a);
        },
    );

    // views: {name: {materialized, columns, definition}}
    diff_map(
        &mut d,
        "view",
        &get("views", expected),
        &get("views", actual),
        |view, e, a, d| diff_view(d, view, e, a),
    );

    // sequences: [name]
    diff_name_list(
        &mut d,
        "sequence",
        &get("sequences", expected),
        &get("sequences", actual),
    );

    // functions: [{name, arguments, returns, language}], keyed by name(arguments)
    diff_keyed_list(
        &mut d,
        "function",
        &get("functions", expected),
        &get("functions", actual),
        |f| format!("{}({})", str_field(f, "name"), str_field(f, "arguments")),
        |sig, e, a, d| {
            let ctx = format!("function {sig}");
            diff_field(d, &ctx, "returns", e, a);
            diff_field(d, &ctx, "language", e, a);
            diff_other_fields(d, &ctx, e, a, &["name", "arguments", "returns", "language"]);
        },
    );

    // anything else at the top level
    let known = [
        "source",
        "server_version",
        "extensions",
        "enums",
        "domains",
        "composite_types",
        "tables",
        "views",
        "sequences",
        "functions",
    ];
    diff_other_fields(&mut d, "catalogue", expected, actual, &known);
    d
}

/// The server's major version (a minor one does not change the catalogue).
fn diff_server_version(d: &mut Vec<String>, expected: &Value, actual: &Value) {
    let major = |v: &Value| {
        v.as_str()
            .and_then(|s| s.split(['.', ' ']).next())
            .map(str::to_string)
    };
    if let (Some(em), Some(am)) = (major(expected), major(actual)) {
        if em != am {
            d.push(format!("server major version: {em} != {am}"));
        }
    }
}

/// A view: `{materialized, columns, definition}`.
fn diff_view(d: &mut Vec<String>, view: &str, e: &Value, a: &Value) {
    let null = Value::Null;
    let ctx = format!("view {view}");
    diff_field(d, &ctx, "materialized", e, a);
    let (ec, ac) = (
        e.get("columns").unwrap_or(&null),
        a.get("columns").unwrap_or(&null),
    );
    if ec != ac {
        diff_columns(d, &ctx, "view column", view, ec, ac);
    }
    let (edef, adef) = (
        e.get("definition").unwrap_or(&null),
        a.get("definition").unwrap_or(&null),
    );
    if edef != adef {
        d.push(format!(
            "{ctx}: definition differs{}",
            first_line_difference(edef, adef)
        ));
    }
    diff_other_fields(d, &ctx, e, a, &["materialized", "columns", "definition"]);
}

fn diff_table(d: &mut Vec<String>, table: &str, e: &Value, a: &Value) {
    let null = Value::Null;
    let ctx = format!("table {table}");
    let (ec, ac) = (
        e.get("columns").unwrap_or(&null),
        a.get("columns").unwrap_or(&null),
    );
    if ec != ac {
        diff_columns(d, &ctx, "column", table, ec, ac);
    }
    for (key, what) in [
        ("constraints", "constraint"),
        ("indexes", "index"),
        ("triggers", "trigger"),
    ] {
        diff_keyed_list(
            d,
            what,
            e.get(key).unwrap_or(&null),
            a.get(key).unwrap_or(&null),
            |x| format!("{table}.{}", str_field(x, "name")),
            |name, e, a, d| {
                let ctx = format!("{what} {name}");
                diff_object_fields(d, &ctx, e, a);
            },
        );
    }
    diff_other_fields(
        d,
        &ctx,
        e,
        a,
        &["columns", "constraints", "indexes", "triggers"],
    );
}

/// Columns are lists of objects with a `name`; report missing/extra columns,
/// per-field differences, and a changed order.
fn diff_columns(d: &mut Vec<String>, ctx: &str, label: &str, owner: &str, e: &Value, a: &Value) {
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|l| l.iter().map(|c| str_field(c, "name")).collect())
            .unwrap_or_default()
    };
    let (en, an) = (names(e), names(a));
    diff_keyed_list(
        d,
        label,
        e,
        a,
        |c| format!("{owner}.{}", str_field(c, "name")),
        |name, e, a, d| diff_object_fields(d, &format!("{label} {name}"), e, a),
    );
    let eset: BTreeSet<&String> = en.iter().collect();
    let aset: BTreeSet<&String> = an.iter().collect();
    if eset == aset && en != an {
        d.push(format!(
            "{ctx}: column order [{}] != [{}]",
            en.join(", "),
            an.join(", ")
        ));
    } else if eset != aset {
        // order of the common columns
        let ec: Vec<&String> = en.iter().filter(|n| aset.contains(n)).collect();
        let ac: Vec<&String> = an.iter().filter(|n| eset.contains(n)).collect();
        if ec != ac {
            d.push(format!(
                "{ctx}: order of common columns [{}] != [{}]",
                ec.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                ac.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
    }
}

/// Compare two maps (`{name: value}`): missing/extra keys, then `f` on common keys.
fn diff_map(
    d: &mut Vec<String>,
    what: &str,
    expected: &Value,
    actual: &Value,
    f: impl Fn(&str, &Value, &Value, &mut Vec<String>),
) {
    let empty = Map::new();
    let e = expected.as_object().unwrap_or(&empty);
    let a = actual.as_object().unwrap_or(&empty);
    if !expected.is_object() && !expected.is_null() || !actual.is_object() && !actual.is_null() {
        d.push(format!(
            "{what}s: not an object ({} / {})",
            kind(expected),
            kind(actual)
        ));
        return;
    }
    for k in e.keys().filter(|k| !a.contains_key(*k)) {
        d.push(format!("missing {what} {k}"));
    }
    for k in a.keys().filter(|k| !e.contains_key(*k)) {
        d.push(format!("extra {what} {k}"));
    }
    for (k, ev) in e {
        if let Some(av) = a.get(k) {
            if ev != av {
                f(k, ev, av, d);
            }
        }
    }
}

/// Compare two lists of objects keyed by `key`: missing/extra items, duplicate
/// keys, then `f` on items present in both.
fn diff_keyed_list(
    d: &mut Vec<String>,
    what: &str,
    expected: &Value,
    actual: &Value,
    key: impl Fn(&Value) -> String,
    f: impl Fn(&str, &Value, &Value, &mut Vec<String>),
) {
    let index = |v: &Value, side: &str, d: &mut Vec<String>| -> BTreeMap<String, Value> {
        let mut m = BTreeMap::new();
        for item in v.as_array().map(|l| l.as_slice()).unwrap_or(&[]) {
            let k = key(item);
            if m.insert(k.clone(), item.clone()).is_some() {
                d.push(format!("duplicate {what} {k} in {side}"));
            }
        }
        m
    };
    let e = index(expected, "expected", d);
    let a = index(actual, "actual", d);
    for k in e.keys().filter(|k| !a.contains_key(*k)) {
        d.push(format!("missing {what} {k}"));
    }
    for k in a.keys().filter(|k| !e.contains_key(*k)) {
        d.push(format!("extra {what} {k}"));
    }
    for (k, ev) in &e {
        if let Some(av) = a.get(k) {
            if ev != av {
                f(k, ev, av, d);
            }
        }
    }
}

/// Compare two lists of plain names.
fn diff_name_list(d: &mut Vec<String>, what: &str, expected: &Value, actual: &Value) {
    let set = |v: &Value| -> BTreeSet<String> {
        v.as_array()
            .map(|l| {
                l.iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| x.to_string())
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (e, a) = (set(expected), set(actual));
    for k in e.difference(&a) {
        d.push(format!("missing {what} {k}"));
    }
    for k in a.difference(&e) {
        d.push(format!("extra {what} {k}"));
    }
}

/// Compare every field of two objects, reporting `ctx: field a != b`.
fn diff_object_fields(d: &mut Vec<String>, ctx: &str, e: &Value, a: &Value) {
    let (Some(eo), Some(ao)) = (e.as_object(), a.as_object()) else {
        if e != a {
            d.push(format!("{ctx}: {} != {}", show(e), show(a)));
        }
        return;
    };
    let keys: BTreeSet<&String> = eo.keys().chain(ao.keys()).collect();
    for k in keys {
        diff_field(d, ctx, k, e, a);
    }
}

/// Compare the fields of two objects that are not in `known`.
fn diff_other_fields(d: &mut Vec<String>, ctx: &str, e: &Value, a: &Value, known: &[&str]) {
    let empty = Map::new();
    let eo = e.as_object().unwrap_or(&empty);
    let ao = a.as_object().unwrap_or(&empty);
    let keys: BTreeSet<&String> = eo
        .keys()
        .chain(ao.keys())
        .filter(|k| !known.contains(&k.as_str()))
        .collect();
    for k in keys {
        diff_field(d, ctx, k, e, a);
    }
}

fn diff_field(d: &mut Vec<String>, ctx: &str, field: &str, e: &Value, a: &Value) {
    match (e.get(field), a.get(field)) {
        (Some(ev), Some(av)) if ev != av => {
            d.push(format!("{ctx}: {field} {} != {}", show(ev), show(av)))
        }
        (Some(_), None) => d.push(format!("{ctx}: missing field {field}")),
        (None, Some(_)) => d.push(format!("{ctx}: extra field {field}")),
        _ => {}
    }
}

fn first_line_difference(e: &Value, a: &Value) -> String {
    let (Some(es), Some(as_)) = (e.as_str(), a.as_str()) else {
        return format!(": {} != {}", show(e), show(a));
    };
    let (el, al): (Vec<&str>, Vec<&str>) = (es.lines().collect(), as_.lines().collect());
    for i in 0..el.len().max(al.len()) {
        let (x, y) = (el.get(i), al.get(i));
        if x != y {
            return format!(
                " (first at line {}: {:?} != {:?})",
                i + 1,
                x.copied().unwrap_or("<end>"),
                y.copied().unwrap_or("<end>")
            );
        }
    }
    String::new()
}

fn str_field(v: &Value, field: &str) -> String {
    match v.get(field) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Strings print bare, everything else as compact JSON.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
