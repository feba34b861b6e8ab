//! The `run` table: reading runs, their publish status, and the history the
//! scheduler estimates from.

use super::enums::PublishStatus;
use chrono::NaiveDateTime;
use sqlx::postgres::types::PgInterval;
use sqlx::{PgConnection, Postgres, QueryBuilder};

/// `(codebase, campaign, publish_status)` of a run.
pub async fn publish_info(
    conn: &mut PgConnection,
    run_id: &str,
) -> sqlx::Result<Option<(String, String, PublishStatus)>> {
    sqlx::query_as("SELECT codebase, suite::text, publish_status FROM run WHERE id = $1")
        .bind(run_id)
        .fetch_optional(conn)
        .await
}

/// Set a run's publish status; returns its `(codebase, campaign)`, `None`
/// when there is no such run. Enum and CHECK violations come back as errors.
pub async fn set_publish_status(
    conn: &mut PgConnection,
    run_id: &str,
    publish_status: PublishStatus,
) -> sqlx::Result<Option<(String, String)>> {
    sqlx::query_as(
        "UPDATE run SET publish_status = $2 WHERE id = $1 \
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
    let mut q = QueryBuilder::<Postgres>::new(
        "SELECT AVG(finish_time - start_time) FROM run WHERE failure_transient is not True",
    );
    if let Some(c) = codebase {
        q.push(" AND codebase = ").push_bind(c);
    }
    if let Some(c) = campaign {
        q.push(" AND suite = ").push_bind(c);
    }
    let (avg,): (Option<PgInterval>,) = q.build_query_as().fetch_one(conn).await?;
    Ok(avg)
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

// ---------------------------------------------------------------------------
// Reads of the assignment (runner-internals.md §4.5, §4.6).
// ---------------------------------------------------------------------------

/// Highest Debian version built for `codebase` in `distribution` (§4.6).
pub async fn last_build_version(
    conn: &mut PgConnection,
    codebase: &str,
    distribution: &str,
) -> sqlx::Result<Option<String>> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT debian_build.version::text FROM run \
         INNER JOIN debian_build ON debian_build.run_id = run.id \
         WHERE run.codebase = $1 AND debian_build.distribution = $2 \
         ORDER BY debian_build.version DESC LIMIT 1",
    )
    .bind(codebase)
    .bind(distribution)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(v,)| v))
}

/// A `new_result_branch` row: (role, remote_name, base_revision, revision).
pub type ResultBranchRow = (String, Option<String>, Option<String>, Option<String>);

/// The run a resume branch continues (§6.7).
#[derive(Debug, Clone, PartialEq)]
pub struct ResumeRun {
    pub id: String,
    pub result: Option<serde_json::Value>,
    pub publish_status: String,
    pub branches: Vec<ResultBranchRow>,
}

/// Newest successful run of `campaign` whose revision is `revision`.
pub async fn resume_run(
    conn: &mut PgConnection,
    campaign: &str,
    revision: &str,
) -> sqlx::Result<Option<ResumeRun>> {
    let row: Option<(String, Option<sqlx::types::Json<serde_json::Value>>, String)> =
        sqlx::query_as(
            "SELECT id, result, publish_status::text FROM run \
             WHERE suite = $1 AND revision = $2 AND result_code = 'success' \
             ORDER BY finish_time DESC LIMIT 1",
        )
        .bind(campaign)
        .bind(revision)
        .fetch_optional(&mut *conn)
        .await?;
    let Some((id, result, publish_status)) = row else {
        return Ok(None);
    };
    let branches = sqlx::query_as(
        "SELECT role, remote_name, base_revision, revision FROM new_result_branch \
         WHERE run_id = $1",
    )
    .bind(&id)
    .fetch_all(conn)
    .await?;
    Ok(Some(ResumeRun {
        id,
        result: result.map(|j| j.0),
        publish_status,
        branches,
    }))
}

// --- Storing finished runs (runner-internals.md §7.1, §7.3, §7.4) ---

/// One `run` row as `store_finished` writes it.
#[derive(Debug, Clone)]
pub struct RunRecord<'a> {
    pub id: &'a str,
    pub command: &'a str,
    pub description: Option<&'a str>,
    pub result_code: &'a str,
    pub start_time: NaiveDateTime,
    pub finish_time: NaiveDateTime,
    pub instigated_context: Option<&'a str>,
    pub context: Option<&'a str>,
    pub main_branch_revision: Option<&'a str>,
    pub revision: Option<&'a str>,
    /// The codemod result as JSON text; `None` → NULL.
    pub result: Option<String>,
    pub campaign: &'a str,
    pub vcs_type: Option<&'a str>,
    pub branch_url: Option<&'a str>,
    pub subpath: Option<&'a str>,
    pub logfilenames: &'a [String],
    pub value: Option<i32>,
    /// The worker that ran it; stored only if it has a `worker` row.
    pub worker: Option<&'a str>,
    /// `(actual_name, revision)`; `None` → NULL, empty → `{}`.
    pub result_tags: Option<Vec<(Option<String>, String)>>,
    pub resume_from: Option<&'a str>,
    /// JSON text; `None` → NULL.
    pub failure_details: Option<String>,
    pub failure_stage: Option<&'a str>,
    pub target_branch_url: Option<&'a str>,
    pub change_set: &'a str,
    pub failure_transient: Option<bool>,
    pub codebase: &'a str,
}

/// The queue row a stored run came from: deleted with the run's insert.
#[derive(Debug, Clone)]
pub struct QueueRow<'a> {
    pub id: i64,
    pub codebase: Option<&'a str>,
    pub campaign: &'a str,
    pub change_set: Option<&'a str>,
}

/// Everything storing one finished run writes (runner-internals.md §7.1).
#[derive(Debug, Clone)]
pub struct FinishedRun<'a> {
    pub run: RunRecord<'a>,
    /// Insert the run's change set (`run.change_set`) unless it exists.
    pub new_change_set: bool,
    pub branches: &'a [ResultBranchRow],
    pub build: Option<DebianBuildRecord<'a>>,
    pub queue: QueueRow<'a>,
}

/// What storing a finished run found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stored {
    /// `run.worker` has a `worker` row; otherwise the run is stored with
    /// no worker (upstream loses the result on the foreign-key error).
    pub worker_known: bool,
}

/// Store a finished run: its change set if new, the run row (with the
/// worker only if registered), its Debian build and the deletion of its
/// queue row as one statement, then its result branches if it has any.
/// One statement is atomic on its own and costs one round trip where a
/// transaction of the same writes took six or more. Rows inserted by one part are visible to the
/// foreign-key checks and the `AFTER` triggers, which run once the whole
/// statement is done.
///
/// `queue.id` has no index of its own, so the queue row is found through
/// the unique (codebase, suite, change set) index, `id` still deciding
/// which row goes; by `id` alone (a scan) only when that finds nothing,
/// e.g. an item re-queued under another change set, as upstream deletes
/// by id.
pub async fn store_finished(conn: &mut PgConnection, f: &FinishedRun<'_>) -> sqlx::Result<Stored> {
    if f.branches.is_empty() {
        return store_run_and_more(conn, f).await;
    }
    // Upstream inserts the branches after the run, so the run's `last_run`
    // trigger has run before they exist (its `last_unabsorbed_run_id` stays
    // NULL, as the goldens show): a second statement, in one transaction.
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    let stored = store_run_and_more(&mut tx, f).await?;
    store_branches(&mut tx, f.run.id, f.branches).await?;
    tx.commit().await?;
    Ok(stored)
}

/// Everything [`store_finished`] writes but the result branches, as one
/// statement.
async fn store_run_and_more(conn: &mut PgConnection, f: &FinishedRun<'_>) -> sqlx::Result<Stored> {
    let run = &f.run;
    let (tag_names, tag_revisions): (Option<Vec<Option<String>>>, Option<Vec<String>>) =
        match &run.result_tags {
            Some(tags) => {
                let (n, r) = tags.iter().cloned().unzip();
                (Some(n), Some(r))
            }
            None => (None, None),
        };
    let build = f.build.as_ref();
    let (worker_known,): (bool,) = sqlx::query_as(
        "WITH cs AS ( \
           INSERT INTO change_set (id, campaign) SELECT $25::text, $12::text WHERE $28 \
           ON CONFLICT DO NOTHING), \
         w AS (SELECT name FROM worker WHERE name = $18::text), \
         r AS ( \
           INSERT INTO run (id, command, description, result_code, start_time, finish_time, \
           instigated_context, context, main_branch_revision, revision, result, suite, vcs_type, \
           branch_url, subpath, logfilenames, value, worker, result_tags, resume_from, \
           failure_details, failure_stage, target_branch_url, change_set, failure_transient, \
           codebase) \
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::text::json, $12::text, \
           $13::vcs_type, $14, $15, $16, $17, (SELECT name FROM w), \
           CASE WHEN $20::text[] IS NULL THEN NULL ELSE ARRAY( \
             SELECT ROW(t.n, t.r)::result_tag \
             FROM unnest($19::text[], $20::text[]) WITH ORDINALITY AS t(n, r, i) \
             ORDER BY t.i) END, \
           $21, $22::text::json, $23, $24, $25::text, $26, $27)), \
         d AS ( \
           INSERT INTO debian_build (run_id, source, version, distribution, lintian_result, \
           binary_packages) \
           SELECT $1, $30, $31::text::debversion, $32, $33::text::json, $34 WHERE $29), \
         q AS ( \
           DELETE FROM queue WHERE codebase = $36 AND suite = $37 \
           AND coalesce(change_set, '') = coalesce($38, '') AND id = $35 RETURNING id), \
         q_by_id AS ( \
           DELETE FROM queue WHERE id = $35 AND NOT EXISTS (SELECT FROM q)) \
         SELECT EXISTS (SELECT FROM w)",
    )
    .bind(run.id)
    .bind(run.command)
    .bind(run.description)
    .bind(run.result_code)
    .bind(run.start_time)
    .bind(run.finish_time)
    .bind(run.instigated_context)
    .bind(run.context)
    .bind(run.main_branch_revision)
    .bind(run.revision)
    .bind(&run.result)
    .bind(run.campaign)
    .bind(run.vcs_type)
    .bind(run.branch_url)
    .bind(run.subpath)
    .bind(run.logfilenames)
    .bind(run.value)
    .bind(run.worker)
    .bind(tag_names)
    .bind(tag_revisions)
    .bind(run.resume_from)
    .bind(&run.failure_details)
    .bind(run.failure_stage)
    .bind(run.target_branch_url)
    .bind(run.change_set)
    .bind(run.failure_transient)
    .bind(run.codebase)
    .bind(f.new_change_set)
    .bind(build.is_some())
    .bind(build.and_then(|b| b.source))
    .bind(build.map(|b| b.version))
    .bind(build.and_then(|b| b.distribution))
    .bind(build.and_then(|b| b.lintian_result.as_deref()))
    .bind(build.and_then(|b| b.binary_packages))
    .bind(f.queue.id)
    .bind(f.queue.codebase)
    .bind(f.queue.campaign)
    .bind(f.queue.change_set)
    .fetch_one(conn)
    .await?;
    Ok(Stored { worker_known })
}

/// The result branches of run `run_id`, in order.
async fn store_branches(
    conn: &mut PgConnection,
    run_id: &str,
    branches: &[ResultBranchRow],
) -> sqlx::Result<()> {
    let mut roles = Vec::with_capacity(branches.len());
    let mut remote_names = Vec::with_capacity(branches.len());
    let mut base_revisions = Vec::with_capacity(branches.len());
    let mut revisions = Vec::with_capacity(branches.len());
    for (role, remote_name, base_revision, revision) in branches {
        roles.push(role.as_str());
        remote_names.push(remote_name.as_deref());
        base_revisions.push(base_revision.as_deref());
        revisions.push(revision.as_deref());
    }
    sqlx::query(
        "INSERT INTO new_result_branch (run_id, role, remote_name, base_revision, revision) \
         SELECT $1, t.role, t.remote_name, t.base_revision, t.revision \
         FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) \
           WITH ORDINALITY AS t(role, remote_name, base_revision, revision, i) \
         ORDER BY t.i",
    )
    .bind(run_id)
    .bind(roles)
    .bind(remote_names)
    .bind(base_revisions)
    .bind(revisions)
    .execute(conn)
    .await?;
    Ok(())
}

/// One `debian_build` row.
#[derive(Debug, Clone)]
pub struct DebianBuildRecord<'a> {
    pub run_id: &'a str,
    pub source: Option<&'a str>,
    pub version: &'a str,
    pub distribution: Option<&'a str>,
    /// JSON text; `None` → NULL.
    pub lintian_result: Option<String>,
    pub binary_packages: Option<&'a [String]>,
}

/// True when `e` is the run primary-key clash (the run was stored before).
pub fn is_run_exists(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.constraint())
        .is_some_and(|c| c == "run_pkey")
}

/// A run that is stored already, as a retried finish answers it.
#[derive(Debug, Clone)]
pub struct StoredRun {
    pub worker: Option<String>,
    pub logfilenames: Vec<String>,
    /// The result document (`JanitorResult.json()`'s keys) rebuilt from the
    /// row: `remotes` and the build target's details are not stored, so
    /// they read `null` and `{}`.
    pub result: serde_json::Value,
}

#[derive(sqlx::FromRow)]
struct StoredRow {
    codebase: String,
    suite: Option<String>,
    change_set: Option<String>,
    result_code: String,
    start_time: Option<chrono::NaiveDateTime>,
    finish_time: Option<chrono::NaiveDateTime>,
    description: Option<String>,
    failure_stage: Option<String>,
    failure_details: Option<sqlx::types::Json<serde_json::Value>>,
    main_branch_revision: Option<String>,
    revision: Option<String>,
    logfilenames: Vec<String>,
    value: Option<i32>,
    worker: Option<String>,
    branch_url: Option<String>,
    result: Option<sqlx::types::Json<serde_json::Value>>,
    resume_from: Option<String>,
    failure_transient: Option<bool>,
    tags: Option<String>,
}

/// The stored run `id`, if any (a retried finish, divergence-policy §3).
pub async fn stored_run(conn: &mut PgConnection, id: &str) -> sqlx::Result<Option<StoredRun>> {
    use crate::types::time::{isoformat, seconds_between};
    use serde_json::{json, Value};
    let row: Option<StoredRow> = sqlx::query_as(
        "SELECT codebase::text, suite::text, change_set::text, result_code::text, start_time, finish_time, \
         description, failure_stage, failure_details, main_branch_revision, revision, \
         logfilenames, value, worker, branch_url, result, resume_from, failure_transient, \
         (SELECT json_agg(json_build_array(t.actual_name, t.revision))::text \
          FROM unnest(result_tags) AS t) AS tags \
         FROM run WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let branches: Vec<ResultBranchRow> = sqlx::query_as(
        "SELECT role, remote_name, base_revision, revision FROM new_result_branch \
         WHERE run_id = $1",
    )
    .bind(id)
    .fetch_all(conn)
    .await?;
    // Both are NOT NULL for every run the runner stores; a row written by
    // other tools without them reads as a zero-length run.
    let start = r.start_time.or(r.finish_time).unwrap_or_default();
    let finish = r.finish_time.unwrap_or(start);
    let tags: Value = r
        .tags
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let result = json!({
        "codebase": r.codebase,
        "campaign": r.suite,
        "change_set": r.change_set,
        "log_id": id,
        "description": r.description,
        "code": r.result_code,
        "failure_details": r.failure_details.map(|j| j.0),
        "failure_stage": r.failure_stage,
        "duration": seconds_between(&finish, &start),
        "finish_time": isoformat(&finish),
        "start_time": isoformat(&start),
        "transient": r.failure_transient,
        "target": {},
        "logfilenames": &r.logfilenames,
        "codemod": r.result.map(|j| j.0),
        "value": r.value,
        "remotes": null,
        "branch_url": r.branch_url,
        "resume": r.resume_from.map(|id| json!({ "run_id": id })),
        "branches": (!branches.is_empty()).then(|| branches
            .iter()
            .map(|(role, name, base, rev)| json!([role, name, base, rev]))
            .collect::<Vec<_>>()),
        "tags": tags,
        "revision": r.revision,
        "main_branch_revision": r.main_branch_revision,
    });
    Ok(Some(StoredRun {
        worker: r.worker,
        logfilenames: r.logfilenames,
        result,
    }))
}
