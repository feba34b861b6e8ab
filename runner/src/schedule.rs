//! Scheduling helpers (runner-internals.md §8): `do_schedule`,
//! `do_schedule_regular`, `do_schedule_control`, the duration and success
//! estimators, `calculate_offset`, and the reschedule after a run (§7.5).
//! Plain functions over a connection so they run inside the caller's
//! transaction and are testable without HTTP.

use crate::app::App;
use crate::db;
use crate::db::enums::QueueBucket;
use crate::db::interval::{from_seconds, microseconds_part, to_timedelta, total_seconds};
use chrono::{NaiveDateTime, TimeDelta};
use serde_json::Value;
use sqlx::PgConnection;

pub const DEFAULT_ESTIMATED_DURATION_SECS: i64 = 15;
pub const DEFAULT_SCHEDULE_OFFSET: f64 = -1.0;
const FIRST_RUN_BONUS: f64 = 100.0;
/// Overhead of doing a run, in milliseconds.
const MINIMUM_COST: f64 = 20000.0;
const MINIMUM_NORMALIZED_CODEBASE_VALUE: f64 = 0.1;
const DEFAULT_NORMALIZED_CODEBASE_VALUE: f64 = 0.5;

#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// No candidate to take the command (or value) from.
    #[error("no candidate for {campaign}/{codebase}")]
    CandidateUnavailable { campaign: String, codebase: String },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// Upstream's assertion failures and other surprises.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// What a schedule call did: `(offset, estimated_duration, queue_id, bucket)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Scheduled {
    pub offset: f64,
    pub estimated_duration: TimeDelta,
    pub queue_id: i32,
    pub bucket: QueueBucket,
}

fn default_duration() -> TimeDelta {
    TimeDelta::seconds(DEFAULT_ESTIMATED_DURATION_SECS)
}

async fn average(
    conn: &mut PgConnection,
    codebase: Option<&str>,
    campaign: Option<&str>,
) -> sqlx::Result<Option<TimeDelta>> {
    Ok(db::runs::average_duration(conn, codebase, campaign)
        .await?
        .as_ref()
        .map(to_timedelta))
}

/// §8.4: the average duration of (codebase, campaign) runs, else of the
/// codebase's, else of the campaign's, else 15 s.
pub async fn estimate_duration(
    conn: &mut PgConnection,
    codebase: &str,
    campaign: &str,
) -> sqlx::Result<TimeDelta> {
    if let Some(d) = average(conn, Some(codebase), Some(campaign)).await? {
        return Ok(d);
    }
    if let Some(d) = average(conn, Some(codebase), None).await? {
        return Ok(d);
    }
    if let Some(d) = average(conn, None, Some(campaign)).await? {
        return Ok(d);
    }
    Ok(default_duration())
}

/// §8.5 result: success probability, expected duration, and the number of
/// runs considered.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    pub probability: f64,
    pub duration: TimeDelta,
    pub total_previous_runs: i64,
}

/// Upstream ignores worker failures that started more than a whole day ago.
fn ignored(run: &db::runs::PastRun, now: NaiveDateTime) -> anyhow::Result<bool> {
    if run.result_code != "worker-failure" {
        return Ok(false);
    }
    let start = run
        .start_time
        .ok_or_else(|| anyhow::anyhow!("worker-failure run without start_time"))?;
    Ok(now - start >= TimeDelta::days(1))
}

/// Every relation has an alternative present in `all_debian_versions`.
async fn deps_satisfied(conn: &mut PgConnection, relations: &[Value]) -> anyhow::Result<bool> {
    for dep in relations {
        let alternatives = dep
            .as_array()
            .ok_or_else(|| anyhow::anyhow!("relation is not a list: {dep}"))?;
        let mut found = false;
        for sub in alternatives {
            let name = sub
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow::anyhow!("dependency without name: {sub}"))?;
            let version = match sub.get("version") {
                None | Some(Value::Null) => None,
                Some(Value::Array(v)) if v.len() == 2 => match (v[0].as_str(), v[1].as_str()) {
                    (Some(op), Some(ver)) => Some((op, ver)),
                    _ => anyhow::bail!("invalid version constraint: {sub}"),
                },
                Some(other) => anyhow::bail!("invalid version constraint: {other}"),
            };
            if db::runs::dep_available(conn, name, version).await? {
                found = true;
                break;
            }
        }
        if !found {
            return Ok(false);
        }
    }
    Ok(true)
}

/// §8.5 over the non-transient run history of (codebase, campaign).
pub async fn estimate_success_probability_and_duration(
    conn: &mut PgConnection,
    codebase: &str,
    campaign: &str,
    context: Option<&str>,
    now: NaiveDateTime,
) -> Result<Estimate, ScheduleError> {
    let mut total: i64 = 0;
    let mut success: i64 = 0;
    let mut multiplier = if context.is_none() { 0.5 } else { 1.0 };
    let mut durations = Vec::new();
    for run in db::runs::past_runs(conn, codebase, campaign).await? {
        if ignored(&run, now)? {
            continue;
        }
        let duration = run
            .duration
            .as_ref()
            .map(to_timedelta)
            .ok_or_else(|| anyhow::anyhow!("run of {codebase}/{campaign} without duration"))?;
        durations.push(duration);
        total += 1;
        if run.result_code == "success" {
            success += 1;
        }
        let mut same_context = match context {
            Some(c) if !c.is_empty() => {
                run.instigated_context.as_deref() == Some(c) || run.context.as_deref() == Some(c)
            }
            _ => false,
        };
        if run.result_code == "install-deps-unsatisfied-dependencies" {
            let relations = match &run.failure_details {
                None | Some(Value::Null) => None,
                Some(Value::Object(m)) => m.get("relations"),
                Some(other) if crate::py::repr::truthy(other) => {
                    return Err(anyhow::anyhow!("failure_details is not an object").into())
                }
                Some(_) => None,
            };
            if let Some(rel) = relations.filter(|r| crate::py::repr::truthy(r)) {
                let rel = rel
                    .as_array()
                    .ok_or_else(|| anyhow::anyhow!("relations is not a list"))?;
                if deps_satisfied(conn, rel).await? {
                    success += 1;
                    same_context = false;
                }
            }
        }
        if same_context {
            multiplier = 0.1;
        }
    }
    let duration = if total == 0 {
        // Nothing ran yet: the context is irrelevant; borrow the duration
        // from other runs of the codebase, then of the campaign.
        multiplier = 1.0;
        match average(conn, Some(codebase), None).await? {
            Some(d) => d,
            None => average(conn, None, Some(campaign))
                .await?
                .unwrap_or_else(default_duration),
        }
    } else {
        let sum: f64 = durations.iter().map(|d| total_seconds(*d)).sum();
        let mean = sum / durations.len() as f64;
        from_seconds(mean)
            .ok_or_else(|| anyhow::anyhow!("average duration {mean} s is not a timedelta"))?
    };
    Ok(Estimate {
        probability: (success as f64 * 10.0 + 1.0) / (total as f64 * 10.0 + 1.0) * multiplier,
        duration,
        total_previous_runs: total,
    })
}

/// §8.6. Upstream's assertions become errors. `success_chance` does not
/// influence the result (as upstream).
pub fn calculate_offset(
    estimated_duration: TimeDelta,
    normalized_codebase_value: Option<f64>,
    estimated_probability_of_success: f64,
    candidate_value: Option<f64>,
    total_previous_runs: i64,
) -> anyhow::Result<f64> {
    let ncv = normalized_codebase_value
        .unwrap_or(DEFAULT_NORMALIZED_CODEBASE_VALUE)
        .max(MINIMUM_NORMALIZED_CODEBASE_VALUE);
    anyhow::ensure!(ncv > 0.0, "normalized codebase value is {ncv}");
    let value = match candidate_value {
        None => 1.0,
        Some(v) if total_previous_runs == 0 => v + FIRST_RUN_BONUS,
        Some(v) => v,
    };
    anyhow::ensure!(value > 0.0, "candidate value is {value}");
    let p = estimated_probability_of_success;
    anyhow::ensure!((0.0..=1.0).contains(&p), "Probability of success: {p}");
    // The sub-second part is counted twice, as upstream does (QI-18).
    let cost = MINIMUM_COST
        + (1000.0 * total_seconds(estimated_duration)
            + microseconds_part(estimated_duration) as f64 / 1000.0);
    anyhow::ensure!(cost > 0.0, "Estimated cost: {cost}");
    let estimated_value = ncv * p * value;
    anyhow::ensure!(
        estimated_value > 0.0,
        "Estimated value: {ncv} * {p} * {value}"
    );
    Ok(cost / estimated_value)
}

/// Arguments of [`do_schedule_regular`]; `None` means "look it up".
#[derive(Debug, Clone, Default)]
pub struct Regular<'a> {
    pub codebase: &'a str,
    pub campaign: &'a str,
    pub command: Option<&'a str>,
    pub candidate_value: Option<f64>,
    pub success_chance: Option<f64>,
    pub normalized_codebase_value: Option<f64>,
    pub requester: Option<&'a str>,
    pub default_offset: f64,
    pub context: Option<&'a str>,
    pub change_set: Option<&'a str>,
    pub refresh: bool,
    pub bucket: Option<QueueBucket>,
}

/// §8.3: queue a candidate with an offset computed from its value, the
/// codebase's value and the run history.
pub async fn do_schedule_regular(
    conn: &mut PgConnection,
    args: Regular<'_>,
    now: NaiveDateTime,
) -> Result<Scheduled, ScheduleError> {
    let mut candidate_value = args.candidate_value;
    let mut success_chance = args.success_chance;
    let mut context = args.context.map(str::to_owned);
    let mut command = args.command.map(str::to_owned);
    if candidate_value.is_none() || success_chance.is_none() || command.is_none() {
        let row =
            db::candidates::schedule_inputs(conn, args.codebase, args.campaign, args.change_set)
                .await?
                .ok_or_else(|| ScheduleError::CandidateUnavailable {
                    campaign: args.campaign.to_owned(),
                    codebase: args.codebase.to_owned(),
                })?;
        candidate_value = candidate_value.or(row.value.map(f64::from));
        success_chance = success_chance.or(row.success_chance);
        context = context.or(row.context);
        command = command.or(Some(row.command));
    }
    // Computed but without influence on the offset, as upstream.
    let _ = success_chance;
    let estimate = estimate_success_probability_and_duration(
        conn,
        args.codebase,
        args.campaign,
        context.as_deref(),
        now,
    )
    .await?;
    if estimate.duration < TimeDelta::zero() {
        return Err(anyhow::anyhow!("{}: estimated duration < 0.0", args.codebase).into());
    }
    let ncv = match args.normalized_codebase_value {
        Some(v) => Some(v),
        None => db::codebases::normalized_value(conn, args.codebase).await?,
    };
    let offset = calculate_offset(
        estimate.duration,
        ncv,
        estimate.probability,
        candidate_value,
        estimate.total_previous_runs,
    )
    .map_err(|e| anyhow::anyhow!("During {}/{}: {e}", args.campaign, args.codebase))?;
    if offset.is_nan() || offset <= 0.0 {
        return Err(anyhow::anyhow!("offset {offset} is not positive").into());
    }
    let offset = args.default_offset + offset;
    // asyncpg's int8 encoder: truncated, an OverflowError (500) beyond bigint.
    let priority_offset = crate::py::int::int_of_float(offset)
        .and_then(|i| i64::try_from(i).ok())
        .ok_or_else(|| anyhow::anyhow!("offset {offset} is out of range for bigint"))?;
    let command = command
        .filter(|c| !c.is_empty())
        .ok_or_else(|| anyhow::anyhow!("no command for {}/{}", args.campaign, args.codebase))?;
    let requester = args
        .requester
        .filter(|r| !r.is_empty())
        .unwrap_or("scheduler");
    let (queue_id, bucket) = db::queue::add(
        conn,
        &db::queue::NewItem {
            codebase: args.codebase,
            campaign: args.campaign,
            command: &command,
            change_set: args.change_set,
            offset: priority_offset,
            bucket: args.bucket.unwrap_or(QueueBucket::Default),
            context: context.as_deref(),
            estimated_duration: Some(estimate.duration),
            refresh: Some(args.refresh),
            requester: Some(requester),
        },
    )
    .await?;
    Ok(Scheduled {
        offset,
        estimated_duration: estimate.duration,
        queue_id,
        bucket,
    })
}

/// Arguments of [`do_schedule`].
#[derive(Debug, Clone, Default)]
pub struct Manual<'a> {
    pub campaign: &'a str,
    pub codebase: &'a str,
    pub bucket: Option<QueueBucket>,
    pub change_set: Option<&'a str>,
    /// The priority offset as asyncpg binds it (an int); `None` is -1.
    pub offset: Option<i64>,
    /// `None` stores NULL (a request may send `"refresh": null`).
    pub refresh: Option<bool>,
    pub requester: Option<&'a str>,
    pub estimated_duration: Option<TimeDelta>,
    pub command: Option<&'a str>,
}

/// §8.2: queue (codebase, campaign) at the front of its bucket (offset
/// relative to the smallest priority); wipes the row's context.
pub async fn do_schedule(
    conn: &mut PgConnection,
    args: Manual<'_>,
) -> Result<Scheduled, ScheduleError> {
    let offset = args.offset.unwrap_or(DEFAULT_SCHEDULE_OFFSET as i64);
    let command = match args.command {
        Some(c) => c.to_owned(),
        None => db::candidates::command_for(conn, args.codebase, args.campaign)
            .await?
            .ok_or_else(|| ScheduleError::CandidateUnavailable {
                campaign: args.campaign.to_owned(),
                codebase: args.codebase.to_owned(),
            })?,
    };
    let estimated_duration = match args.estimated_duration {
        Some(d) => d,
        None => estimate_duration(conn, args.codebase, args.campaign).await?,
    };
    let (queue_id, bucket) = db::queue::add(
        conn,
        &db::queue::NewItem {
            codebase: args.codebase,
            campaign: args.campaign,
            command: &command,
            change_set: args.change_set,
            offset,
            bucket: args.bucket.unwrap_or(QueueBucket::Default),
            context: None,
            estimated_duration: Some(estimated_duration),
            refresh: args.refresh,
            requester: args.requester,
        },
    )
    .await?;
    Ok(Scheduled {
        offset: offset as f64,
        estimated_duration,
        queue_id,
        bucket,
    })
}

/// Python's `shlex.quote`.
pub fn shell_quote(s: &str) -> String {
    if s.is_empty() {
        return "''".to_owned();
    }
    let safe = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if s.chars().all(safe) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\"'\"'"))
    }
}

/// The command of a control run: `brz up [--revision=<rev>]`, shell-quoted.
pub fn control_command(main_branch_revision: Option<&str>) -> String {
    let mut words = vec!["brz".to_owned(), "up".to_owned()];
    if let Some(rev) = main_branch_revision {
        words.push(format!("--revision={rev}"));
    }
    words
        .iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Arguments of [`do_schedule_control`].
#[derive(Debug, Clone, Default)]
pub struct Control<'a> {
    pub codebase: &'a str,
    pub change_set: Option<&'a str>,
    pub main_branch_revision: Option<&'a str>,
    pub offset: Option<i64>,
    pub refresh: Option<bool>,
    pub bucket: Option<QueueBucket>,
    pub requester: Option<&'a str>,
}

/// §8.7: queue a control run (`brz up` to the main branch revision) in the
/// `control` campaign; the duration is always estimated from history.
pub async fn do_schedule_control(
    conn: &mut PgConnection,
    args: Control<'_>,
) -> Result<Scheduled, ScheduleError> {
    let command = control_command(args.main_branch_revision);
    do_schedule(
        conn,
        Manual {
            campaign: "control",
            codebase: args.codebase,
            bucket: Some(args.bucket.unwrap_or(QueueBucket::Control)),
            change_set: args.change_set,
            offset: args.offset,
            refresh: args.refresh,
            requester: args.requester,
            estimated_duration: None,
            command: Some(&command),
        },
    )
    .await
}

/// §7.5: after a run is stored, queue its (codebase, campaign, change set)
/// again from its candidate. `change_set` is the queue item's change set
/// (not the run's, which defaults to the run id); `context` the result's.
/// Without a candidate nothing is queued. Uses its own connection, outside
/// the finish transaction.
pub async fn reschedule_after_run(
    app: &App,
    codebase: &str,
    campaign: &str,
    change_set: Option<&str>,
    context: Option<&str>,
) -> anyhow::Result<Option<Scheduled>> {
    let mut conn = app.db.acquire().await?;
    let args = Regular {
        codebase,
        campaign,
        change_set,
        context,
        requester: Some("after run schedule"),
        ..Default::default()
    };
    match do_schedule_regular(&mut conn, args, app.clock.now_naive()).await {
        Ok(s) => Ok(Some(s)),
        Err(ScheduleError::CandidateUnavailable { .. }) => {
            tracing::debug!(
                codebase,
                campaign,
                "not rescheduling: no candidate available"
            );
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// [`reschedule_after_run`] as a background job (at most two run at once,
/// as upstream's job scheduler); failures are logged. Waits while the job
/// queue is full (`background::MAX_QUEUED_JOBS`), so a finish is paced by
/// the reschedules it causes.
pub async fn spawn_reschedule_after_run(
    app: std::sync::Arc<App>,
    codebase: String,
    campaign: String,
    change_set: Option<String>,
    context: Option<String>,
) {
    let background = app.background.clone();
    background.spawn(async move {
        // A database or Redis blip must not drop the reschedule: retried
        // with back-off until it goes through (or the process stops). Any
        // other failure would fail again the same way, so it is logged.
        let mut delay = std::time::Duration::from_millis(200);
        loop {
            let outcome = reschedule_after_run(
                &app,
                &codebase,
                &campaign,
                change_set.as_deref(),
                context.as_deref(),
            )
            .await;
            let Err(e) = outcome else { return };
            match crate::dependency::unavailable(&e) {
                Some(reason) => {
                    tracing::warn!(%reason, codebase, campaign, retry_in = ?delay, "reschedule after run failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RESCHEDULE_MAX_DELAY);
                }
                None => {
                    tracing::error!(error = ?e, codebase, campaign, "reschedule after run failed");
                    return;
                }
            }
        }
    })
    .await;
}

/// The longest wait between two attempts of a failed reschedule.
const RESCHEDULE_MAX_DELAY: std::time::Duration = std::time::Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_of_a_fresh_candidate_is_35000() {
        let off = calculate_offset(TimeDelta::seconds(15), Some(1.0), 1.0, None, 0).unwrap();
        assert_eq!(off, 35000.0);
        // Unknown codebase value: 0.5.
        let off = calculate_offset(TimeDelta::seconds(15), None, 1.0, None, 0).unwrap();
        assert_eq!(off, 70000.0);
    }

    #[test]
    fn first_run_bonus_and_floor_of_the_codebase_value() {
        let off = calculate_offset(TimeDelta::seconds(15), Some(1.0), 1.0, Some(10.0), 0).unwrap();
        assert_eq!(off, 35000.0 / 110.0);
        let off = calculate_offset(TimeDelta::seconds(15), Some(1.0), 1.0, Some(10.0), 3).unwrap();
        assert_eq!(off, 3500.0);
        let off = calculate_offset(TimeDelta::seconds(15), Some(0.01), 1.0, None, 3).unwrap();
        assert_eq!(off, 35000.0 / 0.1);
    }

    #[test]
    fn sub_second_part_counts_twice() {
        let d = TimeDelta::milliseconds(1500);
        let off = calculate_offset(d, Some(1.0), 1.0, None, 1).unwrap();
        assert_eq!(off, 20000.0 + 1500.0 + 500.0);
    }

    #[test]
    fn offset_of_an_averaged_duration_matches_python() {
        // Runs of 2602.510383 s and 2606.193618 s average to 2604.3520005 s,
        // which Python's timedelta makes 0:43:24.352001 (not .352000).
        let d = from_seconds((2602.510383 + 2606.193618) / 2.0).unwrap();
        assert_eq!(total_seconds(d), 2604.352001);
        let off = calculate_offset(d, None, 1.0, Some(10.0), 2).unwrap();
        assert_eq!(off, 524940.8004000001);
    }

    #[test]
    fn assertions_become_errors() {
        assert!(calculate_offset(TimeDelta::seconds(15), Some(1.0), 0.0, None, 0).is_err());
        assert!(calculate_offset(TimeDelta::seconds(15), Some(1.0), 1.5, None, 0).is_err());
        assert!(calculate_offset(TimeDelta::seconds(15), Some(1.0), 1.0, Some(-200.0), 0).is_err());
        assert!(calculate_offset(TimeDelta::seconds(-100), Some(1.0), 1.0, None, 0).is_err());
    }

    #[test]
    fn control_commands_are_shell_quoted() {
        assert_eq!(
            control_command(Some("rev-main")),
            "brz up --revision=rev-main"
        );
        assert_eq!(control_command(None), "brz up");
        assert_eq!(control_command(Some("a b")), "brz up '--revision=a b'");
        assert_eq!(shell_quote("it's"), "'it'\"'\"'s'");
        assert_eq!(shell_quote(""), "''");
    }
}
