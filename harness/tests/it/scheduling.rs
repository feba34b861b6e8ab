//! The scheduling helpers (runner-internals.md §8, §7.5) against a real,
//! migrated database: estimators, offsets and the queue upsert.

use chrono::{NaiveDate, NaiveDateTime, TimeDelta};
use janitor_harness::services::TestServices;
use janitor_runner::db;
use janitor_runner::schedule::{self, Manual, Regular, ScheduleError};
use sqlx::{Connection, Executor, PgConnection, Row};

fn at(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
    NaiveDate::from_ymd_opt(y, m, d)
        .and_then(|d| d.and_hms_opt(h, min, 0))
        .expect("valid date")
}

async fn setup() -> (TestServices, PgConnection) {
    let services = TestServices::start().await.expect("test services");
    let mut conn = PgConnection::connect(&services.db.url)
        .await
        .expect("connect");
    conn.execute(
        "INSERT INTO codebase (name, branch_url, url, vcs_type, value) VALUES \
         ('alpha', 'https://h/alpha', 'https://h/alpha', 'git', 10), \
         ('beta', 'https://h/beta', 'https://h/beta', 'git', 40), \
         ('gamma', NULL, NULL, 'git', NULL)",
    )
    .await
    .expect("seed codebases");
    (services, conn)
}

/// A finished run of `codebase`/`campaign` lasting `minutes`.
#[allow(clippy::too_many_arguments)] // one column per argument keeps the seed rows readable
async fn add_run(
    conn: &mut PgConnection,
    id: &str,
    codebase: &str,
    campaign: &str,
    code: &str,
    start: NaiveDateTime,
    minutes: i64,
    context: Option<&str>,
) {
    sqlx::query("INSERT INTO change_set (id, campaign) VALUES ($1, $2)")
        .bind(id)
        .bind(campaign)
        .execute(&mut *conn)
        .await
        .expect("change set");
    sqlx::query(
        "INSERT INTO run (id, command, result_code, start_time, finish_time, suite, codebase, \
         logfilenames, change_set, context) VALUES ($1, 'cmd', $2, $3, $4, $5, $6, '{}', $1, $7)",
    )
    .bind(id)
    .bind(code)
    .bind(start)
    .bind(start + TimeDelta::minutes(minutes))
    .bind(campaign)
    .bind(codebase)
    .bind(context)
    .execute(&mut *conn)
    .await
    .expect("run");
}

async fn queue_row(conn: &mut PgConnection, id: i32) -> (i64, String, Option<String>, f64) {
    let row = sqlx::query(
        "SELECT priority, bucket::text, requester, \
         extract(epoch from estimated_duration)::float8 FROM queue WHERE id = $1",
    )
    .bind(id)
    .fetch_one(conn)
    .await
    .expect("queue row");
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

const NOW: (i32, u32, u32) = (2020, 6, 1);

fn now() -> NaiveDateTime {
    at(NOW.0, NOW.1, NOW.2, 12, 0)
}

#[tokio::test]
async fn duration_estimate_falls_back_from_pair_to_codebase_to_campaign_to_15s() {
    let (_s, mut conn) = setup().await;
    let d = schedule::estimate_duration(&mut conn, "alpha", "fix")
        .await
        .unwrap();
    assert_eq!(d, TimeDelta::seconds(15));

    add_run(
        &mut conn,
        "r1",
        "beta",
        "fix",
        "success",
        at(2020, 1, 1, 10, 0),
        4,
        None,
    )
    .await;
    let d = schedule::estimate_duration(&mut conn, "alpha", "fix")
        .await
        .unwrap();
    assert_eq!(d, TimeDelta::minutes(4), "campaign average");

    add_run(
        &mut conn,
        "r2",
        "alpha",
        "other",
        "success",
        at(2020, 1, 1, 10, 0),
        8,
        None,
    )
    .await;
    let d = schedule::estimate_duration(&mut conn, "alpha", "fix")
        .await
        .unwrap();
    assert_eq!(d, TimeDelta::minutes(8), "codebase average");

    add_run(
        &mut conn,
        "r3",
        "alpha",
        "fix",
        "success",
        at(2020, 1, 1, 10, 0),
        1,
        None,
    )
    .await;
    add_run(
        &mut conn,
        "r4",
        "alpha",
        "fix",
        "failed",
        at(2020, 1, 2, 10, 0),
        2,
        None,
    )
    .await;
    let d = schedule::estimate_duration(&mut conn, "alpha", "fix")
        .await
        .unwrap();
    assert_eq!(d, TimeDelta::seconds(90), "(codebase, campaign) average");

    // Transient failures are left out.
    sqlx::query("UPDATE run SET failure_transient = true WHERE id = 'r4'")
        .execute(&mut conn)
        .await
        .unwrap();
    let d = schedule::estimate_duration(&mut conn, "alpha", "fix")
        .await
        .unwrap();
    assert_eq!(d, TimeDelta::minutes(1));
}

#[tokio::test]
async fn success_probability_follows_the_formula_over_kept_runs() {
    let (_s, mut conn) = setup().await;
    // No history: probability 1, duration borrowed from the codebase.
    add_run(
        &mut conn,
        "o1",
        "alpha",
        "other",
        "success",
        at(2020, 1, 1, 10, 0),
        6,
        None,
    )
    .await;
    let e =
        schedule::estimate_success_probability_and_duration(&mut conn, "alpha", "fix", None, now())
            .await
            .unwrap();
    assert_eq!(
        (e.probability, e.duration, e.total_previous_runs),
        (1.0, TimeDelta::minutes(6), 0)
    );

    add_run(
        &mut conn,
        "s1",
        "alpha",
        "fix",
        "success",
        at(2020, 5, 1, 10, 0),
        10,
        Some("c1"),
    )
    .await;
    add_run(
        &mut conn,
        "f1",
        "alpha",
        "fix",
        "build-failed",
        at(2020, 5, 2, 10, 0),
        5,
        Some("c2"),
    )
    .await;
    // A worker failure more than a day old is ignored; a recent one counts.
    add_run(
        &mut conn,
        "w1",
        "alpha",
        "fix",
        "worker-failure",
        at(2020, 5, 3, 10, 0),
        1,
        None,
    )
    .await;
    add_run(
        &mut conn,
        "w2",
        "alpha",
        "fix",
        "worker-failure",
        at(2020, 6, 1, 11, 0),
        3,
        None,
    )
    .await;

    let e =
        schedule::estimate_success_probability_and_duration(&mut conn, "alpha", "fix", None, now())
            .await
            .unwrap();
    // Without a context the multiplier is 0.5; 1 success out of 3 kept runs.
    assert_eq!(e.total_previous_runs, 3);
    assert_eq!(e.probability, 11.0 / 31.0 * 0.5);
    assert_eq!(
        e.duration,
        TimeDelta::minutes(6),
        "mean of 10, 5 and 3 minutes"
    );

    let e = schedule::estimate_success_probability_and_duration(
        &mut conn,
        "alpha",
        "fix",
        Some("new"),
        now(),
    )
    .await
    .unwrap();
    assert_eq!(
        e.probability,
        11.0 / 31.0,
        "a new context keeps the full multiplier"
    );

    let e = schedule::estimate_success_probability_and_duration(
        &mut conn,
        "alpha",
        "fix",
        Some("c2"),
        now(),
    )
    .await
    .unwrap();
    assert_eq!(
        e.probability,
        11.0 / 31.0 * 0.1,
        "a context already tried is unlikely to help"
    );
}

#[tokio::test]
async fn regular_schedule_offsets_use_value_history_and_codebase_value() {
    let (_s, mut conn) = setup().await;
    conn.execute(
        "INSERT INTO candidate (codebase, suite, command, value, context) VALUES \
         ('gamma', 'fix', 'fixit', NULL, NULL), \
         ('alpha', 'fix', 'fixit', 5, 'ctx'), \
         ('beta', 'fix', 'fixit', NULL, NULL)",
    )
    .await
    .unwrap();

    // Never run, no value anywhere: 35000 ms of cost over value 1.
    let s = schedule::do_schedule_regular(
        &mut conn,
        Regular {
            codebase: "gamma",
            campaign: "fix",
            ..Default::default()
        },
        now(),
    )
    .await
    .unwrap();
    assert_eq!(
        (s.offset, s.estimated_duration, s.bucket.as_str()),
        (35000.0, TimeDelta::seconds(15), "default")
    );
    assert_eq!(
        queue_row(&mut conn, s.queue_id).await,
        (
            35000,
            "default".to_owned(),
            Some("scheduler".to_owned()),
            15.0
        )
    );

    // alpha: value 5 + first-run bonus, codebase value 10/40; the context
    // comes from the candidate.
    let a = schedule::do_schedule_regular(
        &mut conn,
        Regular {
            codebase: "alpha",
            campaign: "fix",
            requester: Some("me"),
            ..Default::default()
        },
        now(),
    )
    .await
    .unwrap();
    assert_eq!(a.offset, 35000.0 / (0.25 * 1.0 * 105.0));
    let (priority, _, requester, _) = queue_row(&mut conn, a.queue_id).await;
    // Priority = smallest priority in the queue + truncated offset.
    assert_eq!(priority, 35000 + a.offset.trunc() as i64);
    assert_eq!(requester.as_deref(), Some("me"));
    let ctx: Option<String> = sqlx::query("SELECT context FROM queue WHERE id = $1")
        .bind(a.queue_id)
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    assert_eq!(ctx.as_deref(), Some("ctx"));

    // beta has history: one failure of 10 minutes, candidate value NULL.
    add_run(
        &mut conn,
        "b1",
        "beta",
        "fix",
        "failed",
        at(2020, 5, 1, 10, 0),
        10,
        None,
    )
    .await;
    let b = schedule::do_schedule_regular(
        &mut conn,
        Regular {
            codebase: "beta",
            campaign: "fix",
            default_offset: 7.0,
            ..Default::default()
        },
        now(),
    )
    .await
    .unwrap();
    let probability = 1.0 / 11.0 * 0.5;
    assert_eq!(b.offset, 7.0 + 620000.0 / (1.0 * probability * 1.0));
    assert_eq!(b.estimated_duration, TimeDelta::minutes(10));

    // No candidate: nothing is queued.
    let e = schedule::do_schedule_regular(
        &mut conn,
        Regular {
            codebase: "beta",
            campaign: "nope",
            ..Default::default()
        },
        now(),
    )
    .await;
    assert!(
        matches!(e, Err(ScheduleError::CandidateUnavailable { .. })),
        "{e:?}"
    );
}

#[tokio::test]
async fn queue_add_keeps_more_urgent_buckets_and_updates_same_bucket_rows() {
    let (_s, mut conn) = setup().await;
    let manual = |bucket: &'static str, offset: i64| Manual {
        bucket: Some(bucket.parse().unwrap()),
        campaign: "fix",
        codebase: "alpha",
        offset: Some(offset),
        refresh: Some(false),
        command: Some("fixit"),
        ..Default::default()
    };
    let first = schedule::do_schedule(&mut conn, manual("hook", 100))
        .await
        .unwrap();
    assert_eq!(first.offset, 100.0);
    assert_eq!(
        queue_row(&mut conn, first.queue_id).await.0,
        100,
        "MIN(priority) of an empty queue is 0"
    );
    assert_eq!(
        queue_row(&mut conn, first.queue_id).await.3,
        15.0,
        "estimated from history"
    );

    // A less urgent bucket leaves the row alone.
    let second = schedule::do_schedule(&mut conn, manual("default", -50))
        .await
        .unwrap();
    assert_eq!(
        (second.queue_id, second.bucket.as_str()),
        (first.queue_id, "hook")
    );
    assert_eq!(queue_row(&mut conn, first.queue_id).await.0, 100);

    // The same bucket updates even to a later priority (QI-14).
    let third = schedule::do_schedule(&mut conn, manual("hook", 5))
        .await
        .unwrap();
    assert_eq!(third.queue_id, first.queue_id);
    assert_eq!(queue_row(&mut conn, first.queue_id).await.0, 105);

    // A more urgent bucket moves it.
    let fourth = schedule::do_schedule(&mut conn, manual("manual", -1))
        .await
        .unwrap();
    assert_eq!(fourth.bucket.as_str(), "manual");
    assert_eq!(queue_row(&mut conn, first.queue_id).await.0, 104);
    let n: i64 = sqlx::query("SELECT count(*) FROM queue")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);

    // Control runs quote the revision into a brz command.
    let c = schedule::do_schedule_control(
        &mut conn,
        schedule::Control {
            codebase: "beta",
            main_branch_revision: Some("rev 1"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(c.bucket.as_str(), "control");
    let command: String = sqlx::query("SELECT command FROM queue WHERE id = $1")
        .bind(c.queue_id)
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get(0);
    assert_eq!(command, "brz up '--revision=rev 1'");
}

#[tokio::test]
async fn reschedule_after_run_requeues_from_the_candidate_or_does_nothing() {
    let (services, mut conn) = setup().await;
    conn.execute(
        "INSERT INTO candidate (codebase, suite, command) VALUES ('gamma', 'fix', 'fixit')",
    )
    .await
    .unwrap();
    let mut settings =
        janitor_runner::settings::Settings::new(&services.db.url, &services.redis.url);
    settings.listen_address = "127.0.0.1".into();
    settings.port = 0;
    settings.public_port = None;
    settings.watchdog = false;
    settings.db_max_connections = 2;
    let dir = tempfile::tempdir().unwrap();
    settings.logs_location = Some(dir.path().join("logs").display().to_string());
    settings.artifact_location = Some(dir.path().join("artifacts").display().to_string());
    let runner = janitor_runner::server::Runner::start(settings, janitor_runner::clock::system())
        .await
        .expect("runner");

    let s = schedule::reschedule_after_run(&runner.app, "gamma", "fix", None, Some("ctx"))
        .await
        .unwrap()
        .expect("scheduled");
    let (_, bucket, requester, _) = queue_row(&mut conn, s.queue_id).await;
    assert_eq!(
        (bucket.as_str(), requester.as_deref()),
        ("default", Some("after run schedule"))
    );

    assert!(
        schedule::reschedule_after_run(&runner.app, "beta", "fix", None, None)
            .await
            .unwrap()
            .is_none()
    );

    schedule::spawn_reschedule_after_run(
        runner.app.clone(),
        "alpha".into(),
        "fix".into(),
        None,
        None,
    )
    .await;
    runner.background_idle().await;
    let rows = db::queue::list(&mut conn, None).await.unwrap();
    assert_eq!(rows.len(), 1, "no candidate for alpha: {rows:?}");
    runner.shutdown().await.unwrap();
}
