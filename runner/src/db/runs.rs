//! The `run` table: reading runs, their publish status, and the history the
//! scheduler estimates from.

use chrono::NaiveDateTime;
use sqlx::postgres::types::PgInterval;
use sqlx::PgConnection;

/// `(codebase, campaign, publish_status)` of a run.
pub async fn publish_info(
    conn: &mut PgConnection,
    run_id: &str,
) -> sqlx::Result<Option<(String, String, String)>> {
    sqlx::query_as("SELECT codebase, suite::text, publish_status::text FROM run WHERE id = $1")
        .bind(run_id)
        .fetch_optional(conn)
        .await
}

/// Set a run's publish status; returns its `(codebase, campaign)`, `None`
/// when there is no such run. Enum and CHECK violations come back as errors.
pub async fn set_publish_status(
    conn: &mut PgConnection,
    run_id: &str,
    publish_status: &str,
) -> sqlx::Result<Option<(String, String)>> {
    sqlx::query_as(
        "UPDATE run SET publish_status = $2::publish_status WHERE id = $1 \
         RETURNING codebase, suite::text",
    )
    .bind(run_id)
    .bind(publish_status)
    .fetch_optional(conn)
    .await
}

/// `(campaign, codebase, command)` of a run.
pub async fn schedule_info(
    conn: &mut PgConnection,
    run_id: &str,
) -> sqlx::Result<Option<(String, String, Option<String>)>> {
    sqlx::query_as("SELECT suite::text, codebase, command FROM run WHERE id = $1")
        .bind(run_id)
        .fetch_optional(conn)
        .await
}

/// `(main_branch_revision, codebase)` of a run.
pub async fn control_info(
    conn: &mut PgConnection,
    run_id: &str,
) -> sqlx::Result<Option<(Option<String>, String)>> {
    sqlx::query_as("SELECT main_branch_revision, codebase FROM run WHERE id = $1")
        .bind(run_id)
        .fetch_optional(conn)
        .await
}

/// Average `finish_time - start_time` of the non-transient runs matching the
/// given codebase and/or campaign (runner-internals.md §8.4).
pub async fn average_duration(
    conn: &mut PgConnection,
    codebase: Option<&str>,
    campaign: Option<&str>,
) -> sqlx::Result<Option<PgInterval>> {
    let mut sql = String::from(
        "SELECT AVG(finish_time - start_time) FROM run WHERE failure_transient is not True",
    );
    let mut n = 0;
    if codebase.is_some() {
        n += 1;
        sql.push_str(&format!(" AND codebase = ${n}"));
    }
    if campaign.is_some() {
        n += 1;
        sql.push_str(&format!(" AND suite = ${n}"));
    }
    let mut q = sqlx::query_as::<_, (Option<PgInterval>,)>(&sql);
    if let Some(c) = codebase {
        q = q.bind(c);
    }
    if let Some(c) = campaign {
        q = q.bind(c);
    }
    Ok(q.fetch_one(conn).await?.0)
}

/// A past run as the success estimator sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PastRun {
    pub result_code: String,
    pub instigated_context: Option<String>,
    pub context: Option<String>,
    pub failure_details: Option<serde_json::Value>,
    pub duration: Option<PgInterval>,
    pub start_time: Option<NaiveDateTime>,
}

/// Non-transient runs of (codebase, campaign), newest first (§8.5).
pub async fn past_runs(
    conn: &mut PgConnection,
    codebase: &str,
    campaign: &str,
) -> sqlx::Result<Vec<PastRun>> {
    sqlx::query_as(
        "SELECT result_code, instigated_context, context, failure_details, \
         finish_time - start_time AS duration, start_time FROM run \
         WHERE codebase = $1 AND suite = $2 AND failure_transient IS NOT True \
         ORDER BY start_time DESC",
    )
    .bind(codebase)
    .bind(campaign)
    .fetch_all(conn)
    .await
}

/// Debian version comparison operators; anything else is refused rather than
/// spliced into SQL (upstream splices the worker-supplied text, QI-19).
pub const VERSION_OPERATORS: [&str; 7] = ["<<", "<=", "=", ">=", ">>", "<", ">"];

/// Whether `all_debian_versions` has `source` (at a version satisfying
/// `op version` when given). The bundled schema lacks that table, so this
/// fails as upstream's query does.
pub async fn dep_available(
    conn: &mut PgConnection,
    source: &str,
    version: Option<(&str, &str)>,
) -> anyhow::Result<bool> {
    let row: Option<(i32,)> = match version {
        Some((op, v)) => {
            if !VERSION_OPERATORS.contains(&op) {
                anyhow::bail!("unsupported version operator {op:?}");
            }
            let sql =
                format!("SELECT 1 FROM all_debian_versions WHERE source = $1 AND version {op} $2");
            sqlx::query_as(&sql)
                .bind(source)
                .bind(v)
                .fetch_optional(conn)
                .await?
        }
        None => {
            sqlx::query_as("SELECT 1 FROM all_debian_versions WHERE source = $1 AND True")
                .bind(source)
                .fetch_optional(conn)
                .await?
        }
    };
    Ok(row.is_some())
}
