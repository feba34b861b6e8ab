//! Faults under a worker-like load (issue 16): simulated workers that retry
//! 5xx and connection errors with back-off and treat 404 as final run
//! against the public app while a fault is injected; afterwards every 201
//! must have its run row (and its `result` message), no queue item may have
//! been handed out twice, and no claim may be left behind.

use super::*;
use janitor_harness::worker_load::{self, Outcome, WorkerLoad};

/// One line of the printed table.
struct FaultReport {
    fault: &'static str,
    outcome: Outcome,
    lost: usize,
    orphans: usize,
    recovery: Option<Duration>,
}

/// The per-fault table.
fn table(title: &str, rows: &[FaultReport]) -> String {
    let mut out = format!(
        "{title}\n{:<34} {:>8} {:>7} {:>6} {:>8} {:>8} {:>9} {:>10}\n",
        "fault", "assigned", "req", "errors", "lost", "doubles", "orphans", "recovery"
    );
    for r in rows {
        out += &format!(
            "{:<34} {:>8} {:>7} {:>6} {:>8} {:>8} {:>9} {:>10}\n",
            r.fault,
            r.outcome.assigned.len(),
            r.outcome.requests,
            r.outcome.errors,
            r.lost,
            r.outcome.doubles(),
            r.orphans,
            r.recovery
                .map_or("-".to_string(), |d| format!("{:.2} s", d.as_secs_f64()))
        );
    }
    out
}

/// Checks one fault's outcome against the database and Redis; returns the
/// number of lost results and orphan claims.
async fn audit(
    db_url: &str,
    app: &janitor_runner::app::App,
    out: &Outcome,
    messages: Option<&janitor_harness::testing::Messages>,
) -> (usize, usize) {
    use sqlx::Connection;
    let mut db = sqlx::PgConnection::connect(db_url).await.unwrap();
    let stored: Vec<String> = sqlx::query_scalar("SELECT id FROM run WHERE id = ANY($1)")
        .bind(&out.finished)
        .fetch_all(&mut db)
        .await
        .unwrap();
    let mut lost = out.refused.len() + out.abandoned.len() + out.finished.len() - stored.len();
    if let Some(m) = messages {
        let published: std::collections::HashSet<String> = m
            .taken()
            .await
            .iter()
            .filter_map(|t| serde_json::from_str::<Value>(t).ok())
            .filter_map(|v| v["log_id"].as_str().map(str::to_string))
            .collect();
        lost += out
            .finished
            .iter()
            .filter(|id| !published.contains(*id))
            .count();
    }
    // Claims of failed or abandoned assignments are released in the
    // background once Redis answers, and looked at again two seconds later:
    // an orphan is a claim still held after those jobs, bounded in time.
    let _ = tokio::time::timeout(Duration::from_secs(20), app.background.idle()).await;
    let orphans = janitor_runner::state::active_run_count(&app.runs)
        .await
        .unwrap() as usize;
    if lost > 0 || orphans > 0 {
        let mut redis = app.runs.connection();
        let active: Vec<String> = redis::AsyncCommands::hkeys(&mut redis, "active-runs")
            .await
            .unwrap();
        let assigned: std::collections::HashSet<&String> =
            out.assigned.iter().map(|(id, _)| id).collect();
        eprintln!(
            "refused {:?}, abandoned {:?}, finished without a row {}, orphans {:?} (assigned to a worker: {})",
            out.refused,
            out.abandoned,
            out.finished.len() - stored.len(),
            active,
            active.iter().filter(|a| assigned.contains(a)).count()
        );
    }
    (lost, orphans)
}

/// Audit one fault's outcome and make its line of the table; `since` is
/// when the fault ended (recovery is measured from there).
async fn fault_report(
    fault: &'static str,
    (db_url, app): (&str, &janitor_runner::app::App),
    outcome: Outcome,
    since: Instant,
    messages: Option<&janitor_harness::testing::Messages>,
) -> FaultReport {
    let (lost, orphans) = audit(db_url, app, &outcome, messages).await;
    FaultReport {
        fault,
        recovery: outcome.recovery_after(since),
        outcome,
        lost,
        orphans,
    }
}

/// Every fault of the list, each under 8 workers for a few seconds: Redis
/// killed and restarted (with its append-only file), Redis hung, PostgreSQL
/// refusing connections, and one of two runner processes stopping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_under_worker_load_lose_no_result() {
    let redis = Redis::start_persistent(free_port(), tempfile::tempdir().unwrap());
    let redis_url = redis.url();
    let url = redis_url.clone();
    let t = TestRunner::start_with(CONFIG, |s, _| s.redis_url = url)
        .await
        .expect("runner");
    janitor_harness::load::seed(&t.services.db.url, 20_000, "fix")
        .await
        .unwrap();
    let load = |urls: Vec<String>| WorkerLoad {
        urls,
        user: "load".into(),
        password: "load".into(),
        workers: 8,
        duration: Duration::from_secs(7),
        give_up: Duration::from_secs(20),
    };
    let public = t.public("");
    let target = (t.services.db.url.as_str(), &*t.runner.app);
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let mut check = |r: &FaultReport| {
        if r.lost > 0 || r.orphans > 0 || r.outcome.doubles() > 0 {
            failures.push(format!(
                "{}: {} lost, {} orphan claims, {} doubles",
                r.fault,
                r.lost,
                r.orphans,
                r.outcome.doubles()
            ));
        }
        if !r.outcome.unexpected.is_empty() {
            failures.push(format!(
                "{}: unexpected {:?}",
                r.fault,
                &r.outcome.unexpected[..r.outcome.unexpected.len().min(3)]
            ));
        }
        match r.recovery {
            Some(d) if d <= Duration::from_secs(5) => {}
            other => failures.push(format!("{}: recovery {other:?}", r.fault)),
        }
    };

    // 1. Redis killed (a crash) for 3 s, back with its data.
    let workers = tokio::spawn(worker_load::run(load(vec![public.clone()])));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (port, dir) = redis.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let redis = Redis::start_persistent(port, dir);
    let back = Instant::now();
    let outcome = workers.await.unwrap();
    // The subscriber would miss what is published while it reconnects, so
    // this fault checks run rows only.
    let r = fault_report("Redis killed 3 s", target, outcome, back, None).await;
    check(&r);
    rows.push(r);

    // 2. Redis hung (SIGSTOP) for 3 s: connections stay open, nothing answers.
    let messages = janitor_harness::testing::Messages::subscribe(&redis_url, "result")
        .await
        .unwrap();
    let workers = tokio::spawn(worker_load::run(load(vec![public.clone()])));
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.signal(libc::SIGSTOP);
    tokio::time::sleep(Duration::from_secs(3)).await;
    redis.signal(libc::SIGCONT);
    let back = Instant::now();
    let outcome = workers.await.unwrap();
    let r = fault_report("Redis hung 3 s", target, outcome, back, Some(&messages)).await;
    check(&r);
    rows.push(r);

    // 3. PostgreSQL refusing the runner for 3 s: the database closed to new
    // connections and every open one terminated, again and again.
    let db_name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&t.runner.app.db)
        .await
        .unwrap();
    let mut maint_url = url::Url::parse(&t.services.db.url).unwrap();
    maint_url.set_path("/postgres");
    let workers = tokio::spawn(worker_load::run(load(vec![public.clone()])));
    tokio::time::sleep(Duration::from_secs(2)).await;
    {
        use sqlx::Connection;
        let mut maint = sqlx::PgConnection::connect(maint_url.as_str())
            .await
            .unwrap();
        sqlx::query(&format!(
            "ALTER DATABASE \"{db_name}\" ALLOW_CONNECTIONS false"
        ))
        .execute(&mut maint)
        .await
        .unwrap();
        let outage = Instant::now();
        while outage.elapsed() < Duration::from_secs(3) {
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            )
            .bind(&db_name)
            .execute(&mut maint)
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        sqlx::query(&format!(
            "ALTER DATABASE \"{db_name}\" ALLOW_CONNECTIONS true"
        ))
        .execute(&mut maint)
        .await
        .unwrap();
    }
    let back = Instant::now();
    let outcome = workers.await.unwrap();
    let r = fault_report(
        "PostgreSQL refusing 3 s",
        target,
        outcome,
        back,
        Some(&messages),
    )
    .await;
    check(&r);
    rows.push(r);

    // 4. Two runner processes on one database and Redis, workers spread
    // over both; one stops (SIGTERM's graceful shutdown) mid-load and its
    // workers move to the other.
    let mut settings = t.runner.app.settings.clone();
    settings.port = 0;
    settings.public_port = Some(0);
    let second = janitor_runner::server::Runner::start(settings, janitor_runner::clock::system())
        .await
        .unwrap();
    let second_public = format!("http://{}", second.public_addr.unwrap());
    let workers = tokio::spawn(worker_load::run(load(vec![public.clone(), second_public])));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stopped = Instant::now();
    second.shutdown().await.unwrap();
    let outcome = workers.await.unwrap();
    let r = fault_report(
        "one of two runners stopped",
        target,
        outcome,
        stopped,
        Some(&messages),
    )
    .await;
    check(&r);
    rows.push(r);

    // Across all faults, in the database: no (codebase, campaign) stored twice.
    let doubles: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(n - 1), 0)::bigint FROM (SELECT count(*) AS n FROM run \
         GROUP BY codebase, suite HAVING count(*) > 1) d",
    )
    .fetch_one(&t.runner.app.db)
    .await
    .unwrap();
    janitor_harness::testing::report(
        "chaos-dependency-faults",
        &format!(
            "{}runs stored twice for one item, in the database: {doubles}\n",
            table("dependency faults under 8 worker-like clients", &rows)
        ),
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(doubles, 0);
    for r in &rows {
        assert!(
            r.outcome.finished.len() > 10,
            "{}: too little load to mean anything",
            r.fault
        );
    }
    drop(redis);
    t.runner.shutdown().await.unwrap();
}

/// Two runner processes' watchdogs on the same overdue runs: each run is
/// aborted once (one `worker-timeout` row, `result_total` counted once
/// across both), and the `active_runs` gauges sum to zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_watchdogs_abort_each_run_once() {
    use janitor_runner::clock::ManualClock;
    let start = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
        .unwrap()
        .into();
    let clock = std::sync::Arc::new(ManualClock::new(start));
    let t = TestRunner::start_with_clock(CONFIG, clock.clone(), |_, _| {})
        .await
        .expect("runner");
    let mut settings = t.runner.app.settings.clone();
    settings.port = 0;
    settings.public_port = None;
    let second = janitor_runner::server::Runner::start(settings, clock.clone())
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(
            t.queue_and_register(&format!("dead{i}"), "fix", "true")
                .await
                .unwrap()
                .log_id,
        );
    }
    clock.advance(chrono::TimeDelta::minutes(61));
    let pass = |app: std::sync::Arc<janitor_runner::app::App>| async move {
        let aborts = janitor_runner::watchdog::sweep(&app).await.unwrap();
        let n = aborts.len();
        futures::future::join_all(
            aborts
                .iter()
                .map(|(run, abort)| janitor_runner::watchdog::abort_run(&app, run, abort)),
        )
        .await
        .into_iter()
        .for_each(|r| r.unwrap());
        n
    };
    let (a, b) = tokio::join!(pass(t.runner.app.clone()), pass(second.app.clone()));
    assert!(a + b >= 6, "both sweeps saw the overdue runs: {a} + {b}");
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT id, result_code FROM run ORDER BY id")
        .fetch_all(&t.runner.app.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 6, "{rows:?}");
    assert!(
        rows.iter().all(|(_, code)| code == "worker-timeout"),
        "{rows:?}"
    );
    let counted = |app: &janitor_runner::app::App, metric: &str| -> f64 {
        String::from_utf8(app.metrics.render())
            .unwrap()
            .lines()
            .filter(|l| l.starts_with(metric))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    assert_eq!(
        counted(&t.runner.app, "result_total") + counted(&second.app, "result_total"),
        6.0
    );
    assert_eq!(
        counted(&t.runner.app, "active_runs") + counted(&second.app, "active_runs"),
        0.0
    );
    assert_eq!(
        janitor_runner::state::active_run_count(&t.runner.app.runs)
            .await
            .unwrap(),
        0
    );
    second.shutdown().await.unwrap();
    t.runner.shutdown().await.unwrap();
}

/// A codebase whose name no directory can hold (300 bytes): the finish is
/// stored, its log under the shortened name (before: ENAMETOOLONG, every
/// retry a 503 and the result lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_codebase_name_too_long_for_a_directory_still_stores_its_logs() {
    let t = TestRunner::start(CONFIG).await.expect("runner");
    let codebase = "c".repeat(300);
    let run = t
        .queue_and_register(&codebase, "fix", "true")
        .await
        .unwrap();
    let resp = post_finish(&t, &run.log_id, b"long\n").await;
    assert_eq!(
        resp.status().as_u16(),
        201,
        "{}",
        resp.text().await.unwrap()
    );
    let dir = janitor_runner::storage::logs::fitting_component(&codebase);
    assert!(dir.len() <= 255);
    let stored = t
        .dir
        .path()
        .join(format!("logs/{dir}/{}/worker.log.gz", run.log_id));
    assert!(stored.exists(), "no log at {}", stored.display());
    t.runner.shutdown().await.unwrap();
}

/// Mount a tmpfs of `size` at `dir` (root only). Unmounted on drop.
struct Mount(std::path::PathBuf);

impl Mount {
    fn tmpfs(dir: &std::path::Path, size: &str) -> Option<Mount> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Mount(dir.to_path_buf()))
    }

    fn read_only(&self) {
        let ok = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount read-only");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Every file under `dir`, recursively.
fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(walkdir(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// The log store failing under load, with `--backup-directory`: a full
/// disk, a read-only filesystem, and GCS refusing connections. Every
/// finish is stored (201), its log in the backup, and nothing is lost.
/// The filesystem faults need root (to mount a small tmpfs); without it
/// they are skipped with a printed reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_faults_under_worker_load_lose_no_result() {
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    for fault in [
        "log disk full",
        "log disk read-only",
        "GCS refusing connections",
    ] {
        let scratch = tempfile::tempdir().unwrap();
        let logs = scratch.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        let mount = if fault.starts_with("log disk") {
            if !janitor_harness::services::process::is_root() {
                println!("{fault}: skipped, mounting a small filesystem needs root");
                continue;
            }
            let m = Mount::tmpfs(&logs, "64k").expect("mount tmpfs");
            if fault.ends_with("full") {
                // Fill it: the write fails with ENOSPC at some point.
                let _ = std::fs::write(logs.join("filler"), vec![0u8; 128 << 10]);
            } else {
                m.read_only();
            }
            Some(m)
        } else {
            None
        };
        let backup = scratch.path().join("backup");
        std::fs::create_dir_all(&backup).unwrap();
        let (logs_location, emulator) = if fault.starts_with("GCS") {
            (
                "gs://refusing-logs".to_string(),
                Some(format!("http://127.0.0.1:{}", free_port())),
            )
        } else {
            (logs.display().to_string(), None)
        };
        let b = backup.clone();
        let t = TestRunner::start_with(CONFIG, move |s, _| {
            s.logs_location = Some(logs_location);
            s.storage_emulator_host = emulator;
            s.backup_directory = Some(b);
        })
        .await
        .expect("runner");
        janitor_harness::load::seed(&t.services.db.url, 2000, "fix")
            .await
            .unwrap();
        let started = Instant::now();
        let outcome = worker_load::run(WorkerLoad {
            urls: vec![t.public("")],
            user: "load".into(),
            password: "load".into(),
            workers: 8,
            duration: Duration::from_secs(3),
            give_up: Duration::from_secs(20),
        })
        .await;
        let (lost, orphans) = audit(&t.services.db.url, &t.runner.app, &outcome, None).await;
        let backed_up = walkdir(&backup.join("logs")).len();
        // Neither store keeps a partial or empty log.
        for store in [&logs, &backup] {
            for f in walkdir(store) {
                let name = f.file_name().unwrap().to_string_lossy().into_owned();
                let len = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
                if name.starts_with(".partial-") || (name.ends_with(".gz") && len == 0) {
                    failures.push(format!("{fault}: left behind {}", f.display()));
                }
            }
        }
        if lost > 0 || orphans > 0 || outcome.doubles() > 0 || !outcome.unexpected.is_empty() {
            failures.push(format!(
                "{fault}: {lost} lost, {orphans} orphans, {} doubles, unexpected {:?}",
                outcome.doubles(),
                &outcome.unexpected[..outcome.unexpected.len().min(3)]
            ));
        }
        if backed_up < outcome.finished.len() {
            failures.push(format!(
                "{fault}: {} finished but {backed_up} logs in the backup",
                outcome.finished.len()
            ));
        }
        if outcome.finished.len() < 10 {
            failures.push(format!(
                "{fault}: too little load ({} finished)",
                outcome.finished.len()
            ));
        }
        println!(
            "{fault}: {} finished in {:.1} s, {backed_up} logs in the backup, {lost} lost",
            outcome.finished.len(),
            started.elapsed().as_secs_f64()
        );
        rows.push(FaultReport {
            fault,
            recovery: outcome.recovery_after(started),
            outcome,
            lost,
            orphans,
        });
        t.runner.shutdown().await.unwrap();
        drop(mount);
    }
    janitor_harness::testing::report(
        "chaos-storage-faults",
        &table(
            "log store faults under 8 worker-like clients, with --backup-directory",
            &rows,
        ),
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// PostgreSQL killed (SIGKILL, as a crash) and restarted 3 s later under
/// 8 worker-like clients, on a private server (the shared one serves the
/// other tests): no result lost, nothing handed out twice, no claim left,
/// service back within 5 s of the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_restart_under_worker_load_loses_no_result() {
    use janitor_harness::services::postgres::PostgresServer;
    use janitor_harness::services::Provider;
    let mut server = PostgresServer::start(Provider::Spawn)
        .await
        .expect("a private PostgreSQL");
    let db = server.create_database().await.unwrap();
    {
        use sqlx::Connection;
        // Commits acknowledged before a crash must survive it (the harness's
        // servers otherwise trade that for speed).
        let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::query(&format!(
            "ALTER DATABASE \"{}\" SET synchronous_commit = on",
            db.name
        ))
        .execute(&mut c)
        .await
        .unwrap();
    }
    janitor_harness::load::seed(&db.url, 5000, "fix")
        .await
        .unwrap();
    let url = db.url.clone();
    let t = TestRunner::start_with(CONFIG, move |s, _| s.database_url = url)
        .await
        .expect("runner");
    let messages = janitor_harness::testing::Messages::subscribe(&t.services.redis.url, "result")
        .await
        .unwrap();
    let workers = tokio::spawn(worker_load::run(WorkerLoad {
        urls: vec![t.public("")],
        user: "load".into(),
        password: "load".into(),
        workers: 8,
        duration: Duration::from_secs(8),
        give_up: Duration::from_secs(30),
    }));
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.restart(Duration::from_secs(3)).await.unwrap();
    let back = Instant::now();
    let outcome = workers.await.unwrap();
    let r = fault_report(
        "PostgreSQL killed, back after 3 s",
        (&db.url, &t.runner.app),
        outcome,
        back,
        Some(&messages),
    )
    .await;
    janitor_harness::testing::report(
        "chaos-postgres-restart",
        &table(
            "PostgreSQL restart under 8 worker-like clients",
            std::slice::from_ref(&r),
        ),
    );
    assert_eq!((r.lost, r.orphans, r.outcome.doubles()), (0, 0, 0));
    assert!(
        r.outcome.unexpected.is_empty(),
        "{:?}",
        r.outcome.unexpected
    );
    assert!(
        r.recovery.is_some_and(|d| d <= Duration::from_secs(5)),
        "recovery {:?}",
        r.recovery
    );
    assert!(r.outcome.finished.len() > 10);
    t.runner.shutdown().await.unwrap();
    drop(db);
}
