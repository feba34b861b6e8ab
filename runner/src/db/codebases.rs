//! The `codebase` table.

use sqlx::PgConnection;

/// A codebase row, fields in the order `GET /codebases` reports them.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, sqlx::FromRow)]
pub struct Codebase {
    pub name: Option<String>,
    pub branch_url: Option<String>,
    pub url: Option<String>,
    pub branch: Option<String>,
    pub subpath: Option<String>,
    pub vcs_type: Option<String>,
    pub web_url: Option<String>,
    pub vcs_last_revision: Option<String>,
    pub value: Option<i32>,
}

/// All codebases in heap order (no ORDER BY, as upstream).
pub async fn list(conn: &mut PgConnection) -> sqlx::Result<Vec<Codebase>> {
    sqlx::query_as(
        "SELECT name::text AS name, branch_url, url, branch, subpath, vcs_type::text AS vcs_type, \
         web_url, vcs_last_revision, value FROM codebase",
    )
    .fetch_all(conn)
    .await
}

/// Insert a codebase, or overwrite every column but `name` of the one with that name.
pub async fn upsert(conn: &mut PgConnection, c: &Codebase) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO codebase (name, branch_url, url, branch, subpath, vcs_type, \
         vcs_last_revision, value, web_url) \
         VALUES ($1, $2, $3, $4, $5, $6::vcs_type, $7, $8, $9) \
         ON CONFLICT (name) DO UPDATE SET \
         branch_url = EXCLUDED.branch_url, subpath = EXCLUDED.subpath, \
         vcs_type = EXCLUDED.vcs_type, vcs_last_revision = EXCLUDED.vcs_last_revision, \
         value = EXCLUDED.value, url = EXCLUDED.url, branch = EXCLUDED.branch, \
         web_url = EXCLUDED.web_url",
    )
    .bind(&c.name)
    .bind(&c.branch_url)
    .bind(&c.url)
    .bind(&c.branch)
    .bind(&c.subpath)
    .bind(&c.vcs_type)
    .bind(&c.vcs_last_revision)
    .bind(c.value)
    .bind(&c.web_url)
    .execute(conn)
    .await?;
    Ok(())
}

/// The codebase's value relative to the largest one, at most 1.0; 1.0 when
/// any of them is NULL; `None` for an unknown codebase. A zero maximum is a
/// division error, as upstream.
pub async fn normalized_value(conn: &mut PgConnection, name: &str) -> sqlx::Result<Option<f64>> {
    let row: Option<(Option<f64>,)> = sqlx::query_as(
        "SELECT (coalesce(least(1.0 * value / (SELECT max(value) FROM codebase), 1.0), 1.0))::float8 \
         FROM codebase WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(conn)
    .await?;
    Ok(row.and_then(|r| r.0))
}
