//! Assignment latency against real PostgreSQL and Redis (`cargo bench -p
//! janitor-harness --bench assign_latency`), for 1,000 and 100,000 queued items and
//! 0, 100 and 1,000 active runs:
//!
//! - `claim`: selection (claims read from Redis, one indexed query) and the
//!   atomic claim, released again untimed so the queue stays the same;
//! - `assign`: the whole assignment, codebases without a VCS URL;
//! - `assign-git`: the whole assignment, codebases on a local git branch
//!   opened through Breezy (the git CLI when Breezy cannot be loaded);
//! - `finish`: `POST /active-runs/{id}/finish` with a small multipart body
//!   after an untimed assignment; the consumed queue row is put back untimed;
//! - `concurrent=64/assign`: 64 assignments at once (20 rounds), each timed,
//!   with the claims they took per assignment (issue 13);
//! - `step:…`: the claim's steps timed one by one (claims read, selection,
//!   claim script, announce), to show which of them grows with active runs.
//!
//! Active runs are claims on extra queue items placed at the head of the
//! queue, where real active runs are: the selection must step over them.
//! Criterion reports means; p50/p99 come from our own histogram of every
//! timed iteration, printed as a table at the end.
//!
//! `JANITOR_BENCH_SIZES` and `JANITOR_BENCH_ACTIVE` (comma-separated) narrow
//! the matrix, e.g. for a quick dry run. `JANITOR_BENCH_ACTIVE_AT=tail` puts
//! the active runs' items at the end of the queue instead, so the selection
//! never steps over them: what then still grows with the active runs is the
//! rest of the assignment (claims read, status publications).

use criterion::{BenchmarkId, Criterion};
use hdrhistogram::Histogram;
use janitor_harness::testing::TestRunner;
use janitor_runner::app::App;
use janitor_runner::assign::{self, Mode, Request};
use janitor_runner::db::queue::{self, NextItemFilter};
use janitor_runner::state;
use janitor_runner::types::{ActiveRun, Backchannel};
use janitor_runner::vcs::{self, BranchOpener};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

const CAMPAIGN: &str = "lintian-fixes";
const CONFIG: &str = r#"
committer: "Janitor Bot <janitor@example.com>"
distribution {
  name: "unstable"
  vendor: "Debian"
}
campaign {
  name: "lintian-fixes"
  command: "lintian-brush"
  branch_name: "lintian-fixes"
  default_empty: true
  generic_build {
    chroot: "bookworm-amd64"
  }
}
"#;

/// Every timed iteration, per benchmark id, in microseconds.
static SAMPLES: Mutex<BTreeMap<String, Histogram<u64>>> = Mutex::new(BTreeMap::new());

fn record(id: &str, d: Duration) {
    let mut all = SAMPLES.lock().expect("samples");
    all.entry(id.to_string())
        .or_insert_with(|| Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram"))
        .saturating_record(d.as_micros().max(1) as u64);
}

/// `JANITOR_BENCH_ACTIVE_AT=tail`: active runs' items behind every other one.
fn at_tail() -> bool {
    std::env::var("JANITOR_BENCH_ACTIVE_AT").is_ok_and(|v| v == "tail")
}

fn list_env(name: &str, default: &[u64]) -> Vec<u64> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .split(',')
            .map(|s| s.trim().parse().unwrap_or_else(|_| panic!("{name}: {s:?}")))
            .collect(),
        _ => default.to_vec(),
    }
}

/// One runner over one seeded database.
struct Bed {
    t: TestRunner,
    db: sqlx::PgPool,
    http: reqwest::Client,
}

impl Bed {
    async fn start(items: u64) -> anyhow::Result<Bed> {
        let t = TestRunner::start_with(CONFIG, |s, _| {
            s.public_port = None;
            s.db_max_connections = 10;
        })
        .await?;
        janitor_harness::load::seed(&t.services.db.url, items, CAMPAIGN).await?;
        std::fs::create_dir_all(t.dir.path().join("branches"))?;
        let db = sqlx::PgPool::connect(&t.services.db.url).await?;
        sqlx::query("ANALYZE").execute(&db).await?;
        let http = t.http.clone();
        Ok(Bed { t, db, http })
    }

    fn app(&self) -> &Arc<App> {
        &self.t.runner.app
    }

    /// `n` queue items ahead of every seeded one, each claimed by a fake
    /// active run; returns their run ids.
    async fn add_active(&self, n: u64) -> anyhow::Result<Vec<String>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        sqlx::query(
            "INSERT INTO codebase (name, vcs_type) SELECT 'active-' || i, 'git' \
             FROM generate_series(1, $1::bigint) i ON CONFLICT DO NOTHING",
        )
        .bind(n as i64)
        .execute(&self.db)
        .await?;
        let ids: Vec<(i32, String)> = sqlx::query_as(
            "INSERT INTO queue (codebase, suite, command, priority, bucket, estimated_duration) \
             SELECT 'active-' || i, $2, 'true', $3 + i, \
                    (enum_range(NULL::queue_bucket))[$4], make_interval(secs => 60) \
             FROM generate_series(1, $1::bigint) i RETURNING id, codebase",
        )
        .bind(n as i64)
        .bind(CAMPAIGN)
        .bind(if at_tail() { 100_000i64 } else { -100_000 })
        .bind(if at_tail() { 8i32 } else { 1 })
        .fetch_all(&self.db)
        .await?;
        let mut runs = Vec::new();
        for (id, codebase) in ids {
            let run = fake_run(self.app(), i64::from(id), &codebase);
            state::register(&self.app().runs, &run).await?;
            runs.push(run.log_id);
        }
        sqlx::query("ANALYZE queue").execute(&self.db).await?;
        Ok(runs)
    }

    async fn drop_active(&self, runs: &[String]) -> anyhow::Result<()> {
        for id in runs {
            state::unclaim(&self.app().runs, id).await?;
        }
        sqlx::query("DELETE FROM queue WHERE codebase LIKE 'active-%'")
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// Point every seeded codebase at one local git repository (or back at nothing).
    async fn set_branch_url(&self, url: Option<&str>) -> anyhow::Result<()> {
        sqlx::query("UPDATE codebase SET branch_url = $1, url = $1 WHERE name LIKE 'load-%'")
            .bind(url)
            .execute(&self.db)
            .await?;
        Ok(())
    }
}

fn fake_run(app: &App, queue_id: i64, codebase: &str) -> ActiveRun {
    ActiveRun {
        queue_id,
        log_id: uuid::Uuid::new_v4().to_string(),
        codebase: Some(codebase.to_string()),
        change_set: None,
        campaign: CAMPAIGN.into(),
        command: "true".into(),
        estimated_duration: Some(60.0),
        start_time: app.clock.now_naive(),
        worker_name: Some("bench".into()),
        worker_link: None,
        vcs_info: serde_json::Map::new(),
        backchannel: Backchannel::None,
        instigated_context: serde_json::Value::Null,
        resume_from: None,
    }
}

/// Selection + atomic claim, as the assignment does it.
async fn claim_once(app: &App) -> anyhow::Result<(Duration, String)> {
    let t = Instant::now();
    let assigned: Vec<i32> = state::assigned_queue_items(&app.runs)
        .await?
        .into_keys()
        .filter_map(|k| i32::try_from(k).ok())
        .collect();
    let mut conn = app.db.acquire().await?;
    let filter = NextItemFilter {
        assigned: &assigned,
        ..Default::default()
    };
    let item = queue::next_item(&mut conn, &filter)
        .await?
        .ok_or_else(|| anyhow::anyhow!("queue empty"))?;
    drop(conn);
    let run = fake_run(app, i64::from(item.id), &item.codebase);
    state::register(&app.runs, &run).await?;
    Ok((t.elapsed(), run.log_id))
}

/// The claim's steps timed one by one (`<prefix>/step:…`), 2,000 times:
/// what grows with the active runs. The claim is released again untimed.
async fn steps(app: &Arc<App>, prefix: &str) {
    for _ in 0..2_000 {
        let t = Instant::now();
        let (claimed, _limits) = state::selection_inputs(&app.runs).await.expect("inputs");
        record(&format!("{prefix}/step:claims-read"), t.elapsed());
        let assigned: Vec<i32> = claimed
            .into_iter()
            .filter_map(|k| i32::try_from(k).ok())
            .collect();
        let mut conn = app.db.acquire().await.expect("connection");
        let filter = NextItemFilter {
            assigned: &assigned,
            ..Default::default()
        };
        let t = Instant::now();
        let item = queue::next_item(&mut conn, &filter)
            .await
            .expect("select")
            .expect("queue empty");
        record(&format!("{prefix}/step:select"), t.elapsed());
        drop(conn);
        let run = fake_run(app, i64::from(item.id), &item.codebase);
        let t = Instant::now();
        let snapshot = state::claim(&app.runs, &run).await.expect("claim");
        record(&format!("{prefix}/step:claim-script"), t.elapsed());
        let t = Instant::now();
        state::announce(&app.runs, &run, snapshot)
            .await
            .expect("announce");
        record(&format!("{prefix}/step:announce"), t.elapsed());
        state::unclaim(&app.runs, &run.log_id)
            .await
            .expect("unclaim");
    }
}

async fn assign_once(
    app: &Arc<App>,
    opener: &dyn BranchOpener,
) -> anyhow::Result<(Duration, assign::Assignment)> {
    let t = Instant::now();
    let a = assign::next_item(app, opener, Mode::Assign, &Request::default())
        .await
        .map_err(|e| anyhow::anyhow!("assign: {e}"))?;
    Ok((t.elapsed(), a))
}

/// Assign (untimed), finish over HTTP (timed), then put the consumed queue
/// row back as it was and let the background reschedule settle (untimed).
async fn finish_once(bed: &Bed) -> anyhow::Result<Duration> {
    let (_, a) = assign_once(bed.app(), &vcs::GitCliOpener).await?;
    type Row = (
        String,
        String,
        Option<String>,
        i64,
        String,
        Option<sqlx::postgres::types::PgInterval>,
    );
    let row: Row = sqlx::query_as(
        "SELECT codebase, suite, command, priority, bucket::text, estimated_duration \
         FROM queue WHERE id = $1",
    )
    .bind(a.queue_id as i32)
    .fetch_one(&bed.db)
    .await?;
    let (ct, body) = janitor_harness::load::finish_body();
    let url = format!(
        "http://{}/active-runs/{}/finish",
        bed.t.runner.admin_addr, a.id
    );
    let t = Instant::now();
    let resp = bed
        .http
        .post(url)
        .header("content-type", ct)
        .body(body)
        .send()
        .await?;
    let status = resp.status();
    resp.bytes().await?;
    let took = t.elapsed();
    anyhow::ensure!(status.as_u16() == 201, "finish answered {status}");
    bed.t.runner.background_idle().await;
    sqlx::query(
        "INSERT INTO queue (id, codebase, suite, command, priority, bucket, estimated_duration, refresh) \
         VALUES ($1, $2, $3, $4, $5, $6::queue_bucket, $7, false)",
    )
    .bind(a.queue_id as i32)
    .bind(&row.0)
    .bind(&row.1)
    .bind(&row.2)
    .bind(row.3)
    .bind(&row.4)
    .bind(row.5)
    .execute(&bed.db)
    .await?;
    Ok(took)
}

fn bench_all(c: &mut Criterion, rt: &Runtime) {
    let sizes = list_env("JANITOR_BENCH_SIZES", &[1_000, 100_000]);
    let actives = list_env("JANITOR_BENCH_ACTIVE", &[0, 100, 1_000]);
    let breezy: Option<Box<dyn BranchOpener>> = match vcs::BreezyOpener::new() {
        Ok(b) => Some(Box::new(b)),
        Err(e) => {
            eprintln!("Breezy not loadable ({e}); assign-git uses the git CLI opener");
            None
        }
    };
    let git_opener: &dyn BranchOpener = breezy.as_deref().unwrap_or(&vcs::GitCliOpener);
    for &items in &sizes {
        let t = Instant::now();
        let bed = rt.block_on(Bed::start(items)).expect("bench services");
        eprintln!("seeded {items} items in {:.1?}", t.elapsed());
        let repo = bed.t.dir.path().join("branches/repo");
        make_git_repo(&repo);
        let repo_url = format!("file://{}", repo.display());
        for &active in &actives {
            let runs = rt.block_on(bed.add_active(active)).expect("active runs");
            let prefix = format!(
                "items={items}/active={active}{}",
                if at_tail() { "@tail" } else { "" }
            );
            let mut g = c.benchmark_group(prefix.clone());
            g.sample_size(10)
                .warm_up_time(Duration::from_millis(500))
                .measurement_time(Duration::from_secs(2));

            let id = format!("{prefix}/claim");
            g.bench_function(BenchmarkId::from_parameter("claim"), |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let (d, run) = claim_once(bed.app()).await.expect("claim");
                            record(&id, d);
                            total += d;
                            state::unclaim(&bed.app().runs, &run)
                                .await
                                .expect("unclaim");
                        }
                        total
                    })
                })
            });

            let id = format!("{prefix}/assign");
            g.bench_function(BenchmarkId::from_parameter("assign"), |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let (d, a) = assign_once(bed.app(), &vcs::GitCliOpener)
                                .await
                                .expect("assign");
                            assert!(a.branch.url.is_none());
                            record(&id, d);
                            total += d;
                            state::unclaim(&bed.app().runs, &a.id)
                                .await
                                .expect("unclaim");
                        }
                        total
                    })
                })
            });

            rt.block_on(bed.set_branch_url(Some(&repo_url)))
                .expect("branch url");
            let id = format!("{prefix}/assign-git");
            g.bench_function(BenchmarkId::from_parameter("assign-git"), |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let (d, a) = assign_once(bed.app(), git_opener).await.expect("assign");
                            // Opened: the URL gained the branch parameter.
                            assert!(
                                a.branch
                                    .url
                                    .as_deref()
                                    .is_some_and(|u| u.contains("branch=")),
                                "branch not opened: {:?}",
                                a.branch.url
                            );
                            record(&id, d);
                            total += d;
                            state::unclaim(&bed.app().runs, &a.id)
                                .await
                                .expect("unclaim");
                        }
                        total
                    })
                })
            });
            rt.block_on(bed.set_branch_url(None)).expect("branch url");

            let id = format!("{prefix}/finish");
            g.bench_function(BenchmarkId::from_parameter("finish"), |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let d = finish_once(&bed).await.expect("finish");
                            record(&id, d);
                            total += d;
                        }
                        total
                    })
                })
            });
            g.finish();
            rt.block_on(steps(bed.app(), &prefix));
            rt.block_on(bed.drop_active(&runs))
                .expect("drop active runs");
        }
        rt.block_on(concurrent_assigns(&bed, items));
        rt.block_on(bed.t.runner.shutdown()).expect("shutdown");
    }
}

/// Assigns issued this many at once (`JANITOR_BENCH_CONCURRENT`).
const CONCURRENT: u64 = 64;

/// Issue 13: `CONCURRENT` assigns at once on one runner, every one timed
/// (`items=N/concurrent=C/assign`), then released untimed; prints how many
/// claims (calls of the claim script) each assignment took.
async fn concurrent_assigns(bed: &Bed, items: u64) {
    let n = list_env("JANITOR_BENCH_CONCURRENT", &[CONCURRENT])[0];
    if n == 0 {
        return;
    }
    let id = format!("items={items}/concurrent={n}/assign");
    let mut redis = bed.app().runs.connection();
    let mut claims = 0;
    let mut assigned = 0;
    for _ in 0..20 {
        let before = claim_calls(&mut redis).await;
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let app = bed.app().clone();
                tokio::spawn(async move { assign_once(&app, &vcs::GitCliOpener).await })
            })
            .collect();
        let mut runs = Vec::new();
        for t in tasks {
            let (d, a) = t.await.expect("task").expect("assign");
            record(&id, d);
            runs.push(a.id);
        }
        claims += claim_calls(&mut redis).await - before;
        assigned += runs.len() as u64;
        for run in runs {
            state::unclaim(&bed.app().runs, &run)
                .await
                .expect("unclaim");
        }
    }
    println!(
        "{id}: {:.2} claims per assignment ({claims} claims, {assigned} assignments)",
        claims as f64 / assigned.max(1) as f64
    );
}

/// Calls of Lua scripts so far (the claim is the only script an assign runs).
async fn claim_calls(redis: &mut redis::aio::ConnectionManager) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(redis)
        .await
        .expect("INFO");
    info.lines()
        .filter(|l| l.starts_with("cmdstat_evalsha:") || l.starts_with("cmdstat_eval:"))
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

fn make_git_repo(path: &std::path::Path) {
    let git = |args: &[&str]| {
        let st = std::process::Command::new("git")
            .args(args)
            .current_dir(path)
            .env("GIT_AUTHOR_NAME", "b")
            .env("GIT_AUTHOR_EMAIL", "b@example.com")
            .env("GIT_COMMITTER_NAME", "b")
            .env("GIT_COMMITTER_EMAIL", "b@example.com")
            .status()
            .expect("git");
        assert!(st.success(), "git {args:?}");
    };
    std::fs::create_dir_all(path).expect("repo dir");
    git(&["init", "-q", "-b", "master"]);
    std::fs::write(path.join("README"), "bench\n").expect("file");
    git(&["add", "README"]);
    git(&["commit", "-q", "-m", "init"]);
    git(&["branch", "upstream"]);
}

fn print_table() {
    let all = SAMPLES.lock().expect("samples");
    println!(
        "\n{:<40} {:>8} {:>10} {:>10} {:>10}",
        "benchmark", "n", "p50 ms", "p99 ms", "max ms"
    );
    for (id, h) in all.iter() {
        let ms = |v: u64| v as f64 / 1000.0;
        println!(
            "{:<40} {:>8} {:>10.3} {:>10.3} {:>10.3}",
            id,
            h.len(),
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.99)),
            ms(h.max())
        );
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut c = Criterion::default().configure_from_args();
    bench_all(&mut c, &rt);
    c.final_summary();
    print_table();
}
