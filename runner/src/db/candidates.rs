//! The `candidate` table (and the `followup` rows that point at it).

use sqlx::PgConnection;

/// A row as `GET /candidates` reports it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Candidate {
    pub id: i32,
    pub codebase: String,
    pub suite: String,
    pub command: String,
    pub publish_policy: Option<String>,
    pub change_set: Option<String>,
    pub context: Option<String>,
    pub value: Option<i32>,
    pub success_chance: Option<f64>,
}

/// All candidates in heap order (no ORDER BY, like upstream's `SELECT *`).
pub async fn list(conn: &mut PgConnection) -> sqlx::Result<Vec<Candidate>> {
    sqlx::query_as(
        "SELECT id, codebase, suite::text AS suite, command, publish_policy, change_set, \
         context, value, success_chance FROM candidate",
    )
    .fetch_all(conn)
    .await
}

/// The command of the first candidate row for (codebase, campaign), any change set.
pub async fn command_for(
    conn: &mut PgConnection,
    codebase: &str,
    campaign: &str,
) -> sqlx::Result<Option<String>> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT command FROM candidate WHERE codebase = $1 AND suite = $2")
            .bind(codebase)
            .bind(campaign)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|r| r.0))
}

/// What `do_schedule_regular` reads from a candidate.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ScheduleInputs {
    pub value: Option<i32>,
    pub success_chance: Option<f64>,
    pub command: String,
    pub context: Option<String>,
}

/// The candidate of (codebase, campaign, change set), NULL change set matching `None`.
pub async fn schedule_inputs(
    conn: &mut PgConnection,
    codebase: &str,
    campaign: &str,
    change_set: Option<&str>,
) -> sqlx::Result<Option<ScheduleInputs>> {
    sqlx::query_as(
        "SELECT value, success_chance, command, context FROM candidate \
         WHERE codebase = $1 and suite = $2 and coalesce(change_set, '') = $3",
    )
    .bind(codebase)
    .bind(campaign)
    .bind(change_set.unwrap_or(""))
    .fetch_optional(conn)
    .await
}

/// Fields of an uploaded candidate.
#[derive(Debug, Clone)]
pub struct NewCandidate<'a> {
    pub campaign: &'a str,
    pub command: &'a str,
    pub change_set: Option<&'a str>,
    pub context: Option<&'a str>,
    pub value: Option<i32>,
    pub success_chance: Option<f64>,
    pub publish_policy: Option<&'a str>,
    pub codebase: &'a str,
}

/// Insert or overwrite the candidate of (codebase, campaign, change set);
/// the row keeps its id. Constraint errors are the caller's to sort out.
pub async fn upsert(conn: &mut PgConnection, c: &NewCandidate<'_>) -> sqlx::Result<i32> {
    let (id,): (i32,) = sqlx::query_as(
        "INSERT INTO candidate (suite, command, change_set, context, value, success_chance, \
         publish_policy, codebase) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (codebase, suite, coalesce(change_set, ''::text)) \
         DO UPDATE SET context = EXCLUDED.context, value = EXCLUDED.value, \
         success_chance = EXCLUDED.success_chance, command = EXCLUDED.command, \
         publish_policy = EXCLUDED.publish_policy, codebase = EXCLUDED.codebase RETURNING id",
    )
    .bind(c.campaign)
    .bind(c.command)
    .bind(c.change_set)
    .bind(c.context)
    .bind(c.value)
    .bind(c.success_chance)
    .bind(c.publish_policy)
    .bind(c.codebase)
    .fetch_one(conn)
    .await?;
    Ok(id)
}

/// `(merge proposal url, old command)` of the last effective runs of
/// (codebase, campaign) that ran another command and have an open merge proposal.
pub async fn open_mps_with_other_command(
    conn: &mut PgConnection,
    codebase: &str,
    campaign: &str,
    command: &str,
) -> sqlx::Result<Vec<(Option<String>, Option<String>)>> {
    sqlx::query_as(
        "SELECT merge_proposal.url AS mp_url, last_effective_runs.command AS command \
         FROM last_effective_runs \
         LEFT JOIN merge_proposal ON last_effective_runs.revision = merge_proposal.revision \
         WHERE merge_proposal.status = 'open' \
         AND last_effective_runs.codebase = $1 \
         AND last_effective_runs.suite = $2 \
         AND last_effective_runs.command != $3",
    )
    .bind(codebase)
    .bind(campaign)
    .bind(command)
    .fetch_all(conn)
    .await
}

/// Delete candidate `id` with its followups; returns its (campaign, codebase),
/// `None` when there is no such candidate.
pub async fn delete(conn: &mut PgConnection, id: i32) -> sqlx::Result<Option<(String, String)>> {
    sqlx::query("DELETE FROM followup WHERE candidate = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query_as("DELETE FROM candidate WHERE id = $1 RETURNING suite::text, codebase")
        .bind(id)
        .fetch_optional(conn)
        .await
}
