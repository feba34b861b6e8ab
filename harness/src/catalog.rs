//! Catalogue dump of a PostgreSQL database, and a diff between two dumps.
//!
//! [`dump_catalog`] is a port of `shared/schema/dump_catalog.py`: it runs the
//! same catalogue queries (restricted to schema `public`) and builds a
//! `serde_json::Value` with the same structure as
//! `golden/schema/python-schema.json`:
//!
//! ```text
//! { source, server_version, extensions: [{name, version}],
//!   enums: {name: [label...]}, domains: {name: {base_type, not_null, default, checks}},
//!   composite_types: {name: ["attr type"...]},
//!   tables: {name: {columns: [...], constraints: [...], indexes: [...], triggers: [...]}},
//!   views: {name: {materialized, columns: [{name, type}], definition}},
//!   sequences: [name...], functions: [{name, arguments, returns, language}] }
//! ```
//!
//! Differences from the Python script: `source` is `database <name>` (there is
//! no DSN here), and sqlx's own bookkeeping table `_sqlx_migrations` is left
//! out so that a database built by `sqlx::migrate!` compares equal to one built
//! by psql.  Every catalogue value is cast to `text` (or `int`/`bool`) in SQL,
//! because sqlx will not decode `name` arrays or the `information_schema`
//! domains (`sql_identifier`, `yes_or_no`, ...) into `String`.
//!
//! [`diff_catalogs`] compares two such values and lists the differences in
//! readable form ("missing table x", "column t.c: type a != b", ...).  It
//! ignores `source`, and compares `server_version` by major version only.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use serde_json::{json, Map, Value};
use sqlx::{PgConnection, Row};

/// Tables that belong to the tooling rather than to the schema.
const IGNORED_TABLES: &[&str] = &["_sqlx_migrations"];

/// Dump the catalogue of the database `conn` is connected to.
///
/// With a pool: `dump_catalog(&mut *pool.acquire().await?)`.
pub async fn dump_catalog(conn: &mut PgConnection) -> Result<Value> {
    let mut out = Map::new();

    let db: String = sqlx::query("SELECT current_database()::text AS db")
        .fetch_one(&mut *conn)
        .await?
        .try_get("db")?;
    out.insert("source".into(), Value::String(format!("database {db}")));

    let version: String = sqlx::query("SELECT current_setting('server_version') AS v")
        .fetch_one(&mut *conn)
        .await?
        .try_get("v")?;
    out.insert("server_version".into(), Value::String(version));

    // extensions
    let mut extensions = Vec::new();
    for r in sqlx::query(
        "SELECT extname::text AS name, extversion::text AS version FROM pg_extension ORDER BY extname",
    )
    .fetch_all(&mut *conn)
    .await
    .context("querying extensions")?
    {
        extensions.push(json!({
            "name": r.try_get::<String, _>("name")?,
            "version": r.try_get::<String, _>("version")?,
        }));
    }
    out.insert("extensions".into(), Value::Array(extensions));

    // enums
    let mut enums = Map::new();
    for r in sqlx::query(
        "SELECT t.typname::text AS typname,
                array_agg(e.enumlabel::text ORDER BY e.enumsortorder) AS labels
         FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
         JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'public'
         GROUP BY t.typname ORDER BY t.typname",
    )
    .fetch_all(&mut *conn)
    .await
    .context("querying enums")?
    {
        let labels: Vec<String> = r.try_get("labels")?;
        enums.insert(r.try_get("typname")?, json!(labels));
    }
    out.insert("enums".into(), Value::Object(enums));

    // domains
    let mut domains = Map::new();
    for r in sqlx::query(
        "SELECT t.typname::text AS name, format_type(t.typbasetype, t.typtypmod) AS base_type,
                t.typnotnull AS not_null, t.typdefault AS default,
                coalesce((SELECT array_agg(pg_get_constraintdef(co.oid) ORDER BY co.conname)
                          FROM pg_constraint co WHERE co.contypid = t.oid), '{}'::text[]) AS checks
         FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE n.nspname = 'public' AND t.typtype = 'd' ORDER BY t.typname",
    )
    .fetch_all(&mut *conn)
    .await
    .context("querying domains")?
    {
        let checks: Vec<String> = r.try_get("checks")?;
        domains.insert(
            r.try_get("name")?,
            json!({
                "base_type": r.try_get::<String, _>("base_type")?,
                "not_null": r.try_get::<bool, _>("not_null")?,
                "default": r.try_get::<Option<String>, _>("default")?,
                "checks": checks,
            }),
        );
    }
    out.insert("domains".into(), Value::Object(domains));

    // free-standing composite types
    let mut composites = Map::new();
    for r in sqlx::query(
        "SELECT t.typname::text AS typname,
                array_agg(a.attname::text || ' ' || format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum) AS attrs
         FROM pg_type t JOIN pg_class cl ON cl.oid = t.typrelid JOIN pg_attribute a ON a.attrelid = cl.oid
         JOIN pg_namespace n ON n.oid = t.typnamespace
         WHERE n.nspname = 'public' AND t.typtype = 'c' AND cl.relkind = 'c' AND a.attnum > 0 AND NOT a.attisdropped
         GROUP BY t.typname ORDER BY t.typname",
    )
    .fetch_all(&mut *conn)
    .await
    .context("querying composite types")?
    {
        let attrs: Vec<String> = r.try_get("attrs")?;
        composites.insert(r.try_get("typname")?, json!(attrs));
    }
    out.insert("composite_types".into(), Value::Object(composites));

    // tables
    let table_names: Vec<String> = sqlx::query(
        "SELECT tablename::text AS tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
    )
    .fetch_all(&mut *conn)
    .await
    .context("listing tables")?
    .iter()
    .map(|r| r.try_get::<String, _>("tablename"))
    .collect::<Result<_, _>>()?;
    let mut tables = Map::new();
    for name in table_names {
        if IGNORED_TABLES.contains(&name.as_str()) {
            continue;
        }
        let table = dump_table(conn, &name)
            .await
            .with_context(|| format!("dumping table {name}"))?;
        tables.insert(name, table);
    }
    out.insert("tables".into(), Value::Object(tables));

    // views
    let mut views = Map::new();
    let view_rows = sqlx::query(
        "SELECT c.relname::text AS relname, c.relkind::text AS relkind, pg_get_viewdef(c.oid, true) AS def
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('v', 'm') ORDER BY c.relname",
    )
    .fetch_all(&mut *conn)
    .await
    .context("querying views")?;
    for r in view_rows {
        let name: String = r.try_get("relname")?;
        let relkind: String = r.try_get("relkind")?;
        let def: Option<String> = r.try_get("def")?;
        let mut cols = Vec::new();
        for a in sqlx::query(
            "SELECT attname::text AS attname, format_type(atttypid, atttypmod) AS t FROM pg_attribute
             WHERE attrelid = ('public.' || quote_ident($1))::regclass AND attnum > 0 AND NOT attisdropped
             ORDER BY attnum",
        )
        .bind(&name)
        .fetch_all(&mut *conn)
        .await
        .with_context(|| format!("querying columns of view {name}"))?
        {
            cols.push(json!({
                "name": a.try_get::<String, _>("attname")?,
                "type": a.try_get::<String, _>("t")?,
            }));
        }
        views.insert(
            name,
            json!({"materialized": relkind == "m", "columns": cols, "definition": def}),
        );
    }
    out.insert("views".into(), Value::Object(views));

    // sequences
    let mut sequences = Vec::new();
    for r in sqlx::query(
        "SELECT sequencename::text AS sequencename FROM pg_sequences WHERE schemaname = 'public' ORDER BY sequencename",
    )
    .fetch_all(&mut *conn)
    .await
    .context("querying sequences")?
    {
        sequences.push(Value::String(r.try_get("sequencename")?));
    }
    out.insert("sequences".into(), Value::Array(sequences));

    // functions that do not belong to an extension
    let mut functions = Vec::new();
    for r in sqlx::query(
        "SELECT p.proname::text AS name, pg_get_function_identity_arguments(p.oid) AS arguments,
                pg_get_function_result(p.oid) AS returns, l.lanname::text AS language
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
         WHERE n.nspname = 'public'
           AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
         ORDER BY p.proname, 2",
    )
    .fetch_all(&mut *conn)
    .await
    .context("querying functions")?
    {
        functions.push(json!({
            "name": r.try_get::<String, _>("name")?,
            "arguments": r.try_get::<Option<String>, _>("arguments")?,
            "returns": r.try_get::<Option<String>, _>("returns")?,
            "language": r.try_get::<String, _>("language")?,
        }));
    }
    out.insert("functions".into(), Value::Array(functions));

    Ok(Value::Object(out))
}

async fn dump_table(conn: &mut PgConnection, name: &str) -> Result<Value> {
    let mut cols = Vec::new();
    for r in sqlx::query(
        "SELECT column_name::text AS column_name, data_type::text AS data_type, udt_name::text AS udt_name,
                is_nullable::text AS is_nullable, column_default::text AS column_default,
                is_generated::text AS is_generated, generation_expression::text AS generation_expression,
                ordinal_position::int AS ordinal_position,
                (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
                  WHERE a.attrelid = ('public.' || quote_ident($1))::regclass AND a.attname = c.column_name) AS formatted_type,
                domain_name::text AS domain_name
         FROM information_schema.columns c WHERE table_schema = 'public' AND table_name = $1
         ORDER BY ordinal_position",
    )
    .bind(name)
    .fetch_all(&mut *conn)
    .await
    .context("querying columns")?
    {
        let is_generated: Option<String> = r.try_get("is_generated")?;
        let generated = if is_generated.as_deref() == Some("ALWAYS") {
            r.try_get::<Option<String>, _>("generation_expression")?
        } else {
            None
        };
        cols.push(json!({
            "name": r.try_get::<String, _>("column_name")?,
            "type": r.try_get::<Option<String>, _>("formatted_type")?,
            "data_type": r.try_get::<Option<String>, _>("data_type")?,
            "udt_name": r.try_get::<Option<String>, _>("udt_name")?,
            "domain": r.try_get::<Option<String>, _>("domain_name")?,
            "nullable": r.try_get::<Option<String>, _>("is_nullable")?.as_deref() == Some("YES"),
            "default": r.try_get::<Option<String>, _>("column_default")?,
            "generated": generated,
        }));
    }

    let mut cons = Vec::new();
    for r in sqlx::query(
        "SELECT conname::text AS conname, contype::text AS contype, pg_get_constraintdef(oid) AS def
         FROM pg_constraint WHERE conrelid = ('public.' || quote_ident($1))::regclass ORDER BY conname",
    )
    .bind(name)
    .fetch_all(&mut *conn)
    .await
    .context("querying constraints")?
    {
        // The Python script maps p/u/f/c/x to words with a dict keyed by str,
        // but asyncpg returns the `"char"` column as bytes, so the lookup
        // misses and python-schema.json holds the raw letter.  Keep the letter.
        let contype: String = r.try_get("contype")?;
        cons.push(json!({
            "name": r.try_get::<String, _>("conname")?,
            "type": contype,
            "definition": r.try_get::<Option<String>, _>("def")?,
        }));
    }

    let mut idx = Vec::new();
    for r in sqlx::query(
        "SELECT indexname::text AS indexname, indexdef FROM pg_indexes
         WHERE schemaname = 'public' AND tablename = $1 ORDER BY indexname",
    )
    .bind(name)
    .fetch_all(&mut *conn)
    .await
    .context("querying indexes")?
    {
        idx.push(json!({
            "name": r.try_get::<String, _>("indexname")?,
            "definition": r.try_get::<Option<String>, _>("indexdef")?,
        }));
    }

    let mut trg = Vec::new();
    for r in sqlx::query(
        "SELECT tgname::text AS tgname, pg_get_triggerdef(oid) AS def FROM pg_trigger
         WHERE tgrelid = ('public.' || quote_ident($1))::regclass AND NOT tgisinternal ORDER BY tgname",
    )
    .bind(name)
    .fetch_all(&mut *conn)
    .await
    .context("querying triggers")?
    {
        trg.push(json!({
            "name": r.try_get::<String, _>("tgname")?,
            "definition": r.try_get::<Option<String>, _>("def")?,
        }));
    }

    Ok(json!({"columns": cols, "constraints": cons, "indexes": idx, "triggers": trg}))
}

// ---------------------------------------------------------------------------
// Diff
// ---------------------------------------------------------------------------

/// List the differences between two catalogue dumps (as produced by
/// [`dump_catalog`] or `dump_catalog.py`).  An empty result means the schemas
/// are the same.  `source` is ignored and `server_version` is compared by
/// major version only (view definitions are deparsed by the server, so they
/// are only comparable within one major version).
pub fn diff_catalogs(expected: &Value, actual: &Value) -> Vec<String> {
    let mut d = Vec::new();
    let null = Value::Null;
    let get =
        |v: &'static str, root: &'_ Value| -> Value { root.get(v).cloned().unwrap_or(Value::Null) };

    // server major version
    let major = |v: &Value| {
        v.as_str()
            .and_then(|s| s.split(['.', ' ']).next())
            .map(str::to_string)
    };
    let (em, am) = (
        major(&get("server_version", expected)),
        major(&get("server_version", actual)),
    );
    if em.is_some() && am.is_some() && em != am {
        d.push(format!(
            "server major version: {} != {}",
            em.unwrap_or_default(),
            am.unwrap_or_default()
        ));
    }

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
        |view, e, a, d| {
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
        },
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

#[cfg(test)]
mod tests;
