//! The `queue` table and the `queue_positions` view (runner-internals.md §3, §8.1).

use chrono::TimeDelta;
use sqlx::postgres::types::PgInterval;
use sqlx::PgConnection;

/// One row of `GET /queue`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct QueueEntry {
    pub id: i32,
    pub codebase: String,
    pub campaign: String,
    pub context: Option<String>,
    pub command: Option<String>,
}

/// Every queue row in scheduling order (bucket, priority, id); `limit` 0 or
/// absent means all of them.
pub async fn list(conn: &mut PgConnection, limit: Option<i64>) -> sqlx::Result<Vec<QueueEntry>> {
    let mut sql = String::from(
        "SELECT queue.id AS id, queue.codebase AS codebase, queue.suite::text AS campaign, \
         queue.context AS context, queue.command AS command FROM queue \
         ORDER BY queue.bucket ASC, queue.priority ASC, queue.id ASC",
    );
    match limit {
        Some(n) if n != 0 => {
            sql.push_str(" LIMIT $1");
            sqlx::query_as(&sql).bind(n).fetch_all(conn).await
        }
        _ => sqlx::query_as(&sql).fetch_all(conn).await,
    }
}

/// `(position, wait_time)` of the (codebase, campaign) entry from `queue_positions`.
pub async fn position(
    conn: &mut PgConnection,
    codebase: &str,
    campaign: &str,
) -> sqlx::Result<Option<(Option<i64>, Option<PgInterval>)>> {
    sqlx::query_as(
        "SELECT position, wait_time FROM queue_positions WHERE codebase = $1 AND suite = $2",
    )
    .bind(codebase)
    .bind(campaign)
    .fetch_optional(conn)
    .await
}

/// Arguments of `queue.add`.
#[derive(Debug, Clone)]
pub struct NewItem<'a> {
    pub codebase: &'a str,
    pub campaign: &'a str,
    pub command: &'a str,
    pub change_set: Option<&'a str>,
    /// Added to the smallest priority in the queue; bound as bigint, so
    /// truncated toward zero as asyncpg does.
    pub offset: f64,
    pub bucket: &'a str,
    pub context: Option<&'a str>,
    pub estimated_duration: Option<TimeDelta>,
    /// NULL when the request said `"refresh": null`.
    pub refresh: Option<bool>,
    pub requester: Option<&'a str>,
}

/// Insert or update the queue row of (codebase, campaign, change set);
/// returns its id and the bucket it ended in. An existing row in a more
/// urgent bucket is left alone.
pub async fn add(conn: &mut PgConnection, item: &NewItem<'_>) -> sqlx::Result<(i32, String)> {
    let row: Option<(i32, String)> = sqlx::query_as(
        "INSERT INTO queue (command, priority, bucket, context, estimated_duration, suite, \
         refresh, requester, change_set, codebase) \
         VALUES ($1, (SELECT COALESCE(MIN(priority), 0) FROM queue) + $2, $3::queue_bucket, \
         $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (codebase, suite, coalesce(change_set, ''::text)) DO UPDATE SET \
         context = EXCLUDED.context, priority = EXCLUDED.priority, bucket = EXCLUDED.bucket, \
         estimated_duration = EXCLUDED.estimated_duration, refresh = EXCLUDED.refresh, \
         requester = EXCLUDED.requester, command = EXCLUDED.command, \
         codebase = EXCLUDED.codebase \
         WHERE queue.bucket >= EXCLUDED.bucket OR \
         (queue.bucket = EXCLUDED.bucket AND queue.priority >= EXCLUDED.priority) \
         RETURNING id, bucket::text",
    )
    .bind(item.command)
    .bind(item.offset.trunc() as i64)
    .bind(item.bucket)
    .bind(item.context)
    .bind(item.estimated_duration.map(super::interval::from_timedelta))
    .bind(item.campaign)
    .bind(item.refresh)
    .bind(item.requester)
    .bind(item.change_set)
    .bind(item.codebase)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = row {
        return Ok(row);
    }
    sqlx::query_as(
        "SELECT id, bucket::text FROM queue WHERE codebase = $1 AND suite = $2 \
         AND coalesce(change_set, '') = $3",
    )
    .bind(item.codebase)
    .bind(item.campaign)
    .bind(item.change_set.unwrap_or(""))
    .fetch_one(conn)
    .await
}

/// Remove every queue row of (campaign, codebase), all change sets.
pub async fn delete_for(
    conn: &mut PgConnection,
    campaign: &str,
    codebase: &str,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM queue WHERE suite = $1 AND codebase = $2")
        .bind(campaign)
        .bind(codebase)
        .execute(conn)
        .await?;
    Ok(())
}
