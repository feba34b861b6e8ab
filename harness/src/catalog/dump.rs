//! The catalogue dump: `dump_catalog.py`'s queries, restricted to schema
//! `public`.

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
    out.insert("extensions".into(), extensions(conn).await?);
    out.insert("enums".into(), enums(conn).await?);
    out.insert("domains".into(), domains(conn).await?);
    out.insert("composite_types".into(), composite_types(conn).await?);
    out.insert("tables".into(), tables(conn).await?);
    out.insert("views".into(), views(conn).await?);
    out.insert("sequences".into(), sequences(conn).await?);
    out.insert("functions".into(), functions(conn).await?);
    Ok(Value::Object(out))
}

/// `[{name, version}]`
async fn extensions(conn: &mut PgConnection) -> Result<Value> {
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
    Ok(Value::Array(extensions))
}

/// `{name: [labels]}`
async fn enums(conn: &mut PgConnection) -> Result<Value> {
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
    Ok(Value::Object(enums))
}

/// `{name: {base_type, not_null, default, checks}}`
async fn domains(conn: &mut PgConnection) -> Result<Value> {
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
    Ok(Value::Object(domains))
}

/// Free-standing composite types: `{name: ["attr type"]}`
async fn composite_types(conn: &mut PgConnection) -> Result<Value> {
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
    Ok(Value::Object(composites))
}

/// `{name: table}` (see [`dump_table`]), tooling tables left out.
async fn tables(conn: &mut PgConnection) -> Result<Value> {
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
    Ok(Value::Object(tables))
}

/// `{name: {materialized, columns, definition}}`
async fn views(conn: &mut PgConnection) -> Result<Value> {
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
    Ok(Value::Object(views))
}

/// `[name]`
async fn sequences(conn: &mut PgConnection) -> Result<Value> {
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
    Ok(Value::Array(sequences))
}

/// Functions that do not belong to an extension:
/// `[{name, arguments, returns, language}]`
async fn functions(conn: &mut PgConnection) -> Result<Value> {
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
    Ok(Value::Array(functions))
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
