//! The `queue` table and the `queue_positions` view (runner-internals.md §3, §8.1).

use super::enums::QueueBucket;
use chrono::TimeDelta;
use sqlx::postgres::types::PgInterval;
use sqlx::{PgConnection, Postgres, QueryBuilder};

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
    /// Added to the smallest priority in the queue (a bigint parameter,
    /// already an int as asyncpg makes it).
    pub offset: i64,
    pub bucket: QueueBucket,
    pub context: Option<&'a str>,
    pub estimated_duration: Option<TimeDelta>,
    /// NULL when the request said `"refresh": null`.
    pub refresh: Option<bool>,
    pub requester: Option<&'a str>,
}

/// Insert or update the queue row of (codebase, campaign, change set);
/// returns its id and the bucket it ended in. An existing row in a more
/// urgent bucket is left alone.
pub async fn add(conn: &mut PgConnection, item: &NewItem<'_>) -> sqlx::Result<(i32, QueueBucket)> {
    let row: Option<(i32, QueueBucket)> = sqlx::query_as(
        "INSERT INTO queue (command, priority, bucket, context, estimated_duration, suite, \
         refresh, requester, change_set, codebase) \
         VALUES ($1, (SELECT COALESCE(MIN(priority), 0) FROM queue) + $2, $3, \
         $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (codebase, suite, coalesce(change_set, ''::text)) DO UPDATE SET \
         context = EXCLUDED.context, priority = EXCLUDED.priority, bucket = EXCLUDED.bucket, \
         estimated_duration = EXCLUDED.estimated_duration, refresh = EXCLUDED.refresh, \
         requester = EXCLUDED.requester, command = EXCLUDED.command, \
         codebase = EXCLUDED.codebase \
         WHERE queue.bucket >= EXCLUDED.bucket OR \
         (queue.bucket = EXCLUDED.bucket AND queue.priority >= EXCLUDED.priority) \
         RETURNING id, bucket",
    )
    .bind(item.command)
    .bind(item.offset)
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
        "SELECT id, bucket FROM queue WHERE codebase = $1 AND suite = $2 \
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

// ---------------------------------------------------------------------------
// Assignment (runner-internals.md §3): picking the next item, deleting items.
// ---------------------------------------------------------------------------

/// A queue row joined with its codebase's VCS location.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct NextItem {
    pub id: i32,
    pub command: Option<String>,
    pub context: Option<String>,
    pub estimated_duration: Option<PgInterval>,
    pub campaign: String,
    pub refresh: Option<bool>,
    pub requester: Option<String>,
    pub change_set: Option<String>,
    pub codebase: String,
    pub vcs_type: Option<String>,
    pub branch_url: Option<String>,
    pub subpath: Option<String>,
}

/// Filters of [`next_item`]; empty ones are left out of the query.
#[derive(Debug, Clone, Default)]
pub struct NextItemFilter<'a> {
    pub codebase: Option<&'a str>,
    pub campaign: Option<&'a str>,
    pub exclude_hosts: &'a [String],
    pub assigned: &'a [i32],
}

/// The first unclaimed queue item in (bucket, priority, id) order.
pub async fn next_item(
    conn: &mut PgConnection,
    filter: &NextItemFilter<'_>,
) -> sqlx::Result<Option<NextItem>> {
    Ok(next_items(conn, filter, 1).await?.into_iter().next())
}

/// The first `limit` unclaimed queue items in (bucket, priority, id) order,
/// one indexed query. The host test is upstream's: the authority of the
/// codebase's branch URL (port included), NULL URLs never excluded.
///
/// An unfiltered selection (the shared one every plain assign uses) is
/// written so that PostgreSQL can keep one generic plan per statement
/// instead of planning every call afresh (~0.1 ms each, most of the query's
/// cost when few items are claimed): the limit is a literal, rounded up to a
/// power of two so there are few distinct statements, and the claimed ids
/// are a hashed `NOT IN` subquery. `NOT (id = ANY($1))` would be hashed only
/// in a plan made for the very array, so a generic plan tested every row
/// against every claimed id (2 ms at 1,000 claims). A codebase or campaign
/// filter keeps its limit a parameter, so it is still planned for its very
/// value: one plan for every campaign could walk the whole queue for a rare
/// one.
pub async fn next_items(
    conn: &mut PgConnection,
    filter: &NextItemFilter<'_>,
    limit: i64,
) -> sqlx::Result<Vec<NextItem>> {
    let mut q = QueryBuilder::<Postgres>::new(
        "SELECT queue.id AS id, queue.command AS command, queue.context AS context, \
         queue.estimated_duration AS estimated_duration, queue.suite::text AS campaign, \
         queue.refresh AS refresh, queue.requester AS requester, \
         queue.change_set AS change_set, queue.codebase AS codebase, \
         codebase.vcs_type::text AS vcs_type, codebase.branch_url AS branch_url, \
         codebase.subpath AS subpath \
         FROM queue LEFT JOIN codebase ON codebase.name = queue.codebase",
    );
    let codebase = filter.codebase.filter(|c| !c.is_empty());
    let campaign = filter.campaign.filter(|c| !c.is_empty());
    let mut clause = " WHERE ";
    let mut next = |q: &mut QueryBuilder<'_, Postgres>| {
        q.push(std::mem::replace(&mut clause, " AND "));
    };
    if !filter.assigned.is_empty() {
        next(&mut q);
        // Never NULL, so NOT IN means "not one of them".
        q.push("queue.id NOT IN (SELECT unnest(")
            .push_bind(filter.assigned)
            .push("::int[]))");
    }
    if let Some(c) = codebase {
        next(&mut q);
        q.push("queue.codebase = ").push_bind(c);
    }
    if let Some(c) = campaign {
        next(&mut q);
        q.push("queue.suite = ").push_bind(c);
    }
    if !filter.exclude_hosts.is_empty() {
        next(&mut q);
        q.push(
            "NOT (codebase.branch_url IS NOT NULL AND \
             SUBSTRING(codebase.branch_url from '.*://(?:[^/@]*@)?([^/]*)') = ANY(",
        )
        .push_bind(filter.exclude_hosts)
        .push("::text[]))");
    }
    q.push(" ORDER BY queue.bucket ASC, queue.priority ASC, queue.id ASC LIMIT ");
    if codebase.is_some() || campaign.is_some() {
        q.push_bind(limit);
    } else {
        let rows = u64::try_from(limit.clamp(1, 1 << 30))
            .unwrap_or(1)
            .next_power_of_two();
        q.push(rows);
    }
    let mut items = q.build_query_as::<NextItem>().fetch_all(conn).await?;
    items.truncate(usize::try_from(limit.max(0)).unwrap_or(usize::MAX));
    Ok(items)
}

/// Is the queue item still there? A claim won after a finish released it
/// refers to a deleted item (finish commits the deletion before releasing).
/// Looked up through the unique (codebase, suite, change set) index: the
/// schema has no index on `queue.id`.
pub async fn exists(conn: &mut PgConnection, item: &NextItem) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM queue WHERE codebase = $2 AND suite = $3 \
         AND coalesce(change_set, '') = coalesce($4, '') AND id = $1)",
    )
    .bind(item.id)
    .bind(&item.codebase)
    .bind(&item.campaign)
    .bind(&item.change_set)
    .fetch_one(conn)
    .await
}
