//! The keepalive watchdog against the real stack (in-process runner,
//! PostgreSQL, Redis, a worker's HTTP server), with a manual clock: a silent
//! run without backchannel is stored as a transient `worker-timeout`, a
//! worker that moved on to another run as `run-disappeared`.

use chrono::TimeDelta;
use janitor_harness::fixtures::FakeWorker;
use janitor_harness::testing::{self, TestRunner};
use janitor_runner::clock::{Clock, ManualClock};
use janitor_runner::types::{ActiveRun, Backchannel};
use janitor_runner::{state, watchdog};
use sqlx::{Connection, PgConnection};
use std::sync::Arc;

fn active_run(queue_id: i32, codebase: &str, clock: &ManualClock, bc: Backchannel) -> ActiveRun {
    testing::active_run(
        queue_id.into(),
        codebase,
        "fix",
        "true",
        clock.now_naive(),
        bc,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_vanished_runs_are_aborted_and_stored() {
    let start = chrono::DateTime::parse_from_rfc3339("2020-02-02T10:00:00Z")
        .expect("date")
        .into();
    let clock = Arc::new(ManualClock::new(start));
    let t = TestRunner::start_with_clock("", clock.clone(), |s, _| {
        s.public_port = None;
        s.db_max_connections = 3;
    })
    .await
    .expect("runner");
    let app = t.runner.app.clone();

    let mut conn = PgConnection::connect(&t.services.db.url)
        .await
        .expect("connect");
    testing::seed::worker(&mut conn, "w1", "pw1")
        .await
        .expect("seed");
    // Queue items 1 and 2, the ids the runs below are of.
    for codebase in ["silent", "moved"] {
        testing::seed::queued(&mut conn, codebase, "fix", "true")
            .await
            .expect("seed");
    }

    // The fake worker's /log-id answers `unknown`: it moved on to another run.
    let worker = FakeWorker::start().await.expect("fake worker");
    let silent = active_run(1, "silent", &clock, Backchannel::None);
    let moved = active_run(
        2,
        "moved",
        &clock,
        Backchannel::Polling {
            my_url: worker.url(),
        },
    );
    state::register(&app.runs, &silent).await.expect("register");
    state::register(&app.runs, &moved).await.expect("register");

    // Within the timeout: nothing happens (the moved worker is not even due).
    clock.advance(TimeDelta::minutes(19));
    assert!(watchdog::sweep(&app).await.expect("sweep").is_empty());
    assert!(worker.requests().is_empty());

    clock.advance(TimeDelta::minutes(42));
    let aborts = watchdog::sweep(&app).await.expect("sweep");
    assert_eq!(aborts.len(), 2, "{aborts:?}");
    assert_eq!(worker.requests(), vec!["GET /log-id"]);
    for (run, abort) in &aborts {
        watchdog::abort_run(&app, run, abort).await.expect("abort");
    }
    t.runner.background_idle().await;

    let rows: Vec<(String, String, Option<String>, Option<bool>)> = sqlx::query_as(
        "SELECT codebase, result_code, description, failure_transient FROM run ORDER BY codebase",
    )
    .fetch_all(&mut conn)
    .await
    .expect("runs");
    let moved_reason = format!(
        "Worker started processing new run unknown rather than {}",
        moved.log_id
    );
    assert_eq!(
        rows,
        vec![
            (
                "moved".into(),
                "run-disappeared".into(),
                Some(moved_reason),
                Some(true)
            ),
            (
                "silent".into(),
                "worker-timeout".into(),
                Some("No keepalives received in 1:01:00.".into()),
                Some(true)
            ),
        ]
    );
    assert_eq!(state::active_run_count(&app.runs).await.expect("count"), 0);

    // Aborting again finds the runs stored: logged, not an error.
    for (run, abort) in &aborts {
        watchdog::abort_run(&app, run, abort)
            .await
            .expect("second abort");
    }
    t.runner.shutdown().await.expect("shutdown");
}
