//! `load`: simulated workers looping assign → finish against a live
//! runner (closed or open loop, or worker-like with retries), and `load
//! seed` to prepare a queue.

use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Option<LoadAction>,
    /// Runner base URL (the admin app, or the public app with --public).
    #[arg(long)]
    pub url: Option<String>,
    /// Use the public (worker) routes with Basic auth.
    #[arg(long)]
    pub public: bool,
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long)]
    pub password: Option<String>,
    #[arg(long, default_value_t = 8)]
    pub workers: usize,
    /// Seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Open loop: cycles per second (default: closed loop).
    #[arg(long)]
    pub rate: Option<f64>,
    /// The runner's pid, for CPU per cycle and peak RSS.
    #[arg(long)]
    pub pid: Option<u32>,
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Count double hand-outs in this database afterwards.
    #[arg(long)]
    pub check_db: Option<String>,
    /// Behave like janitor-worker (public app, needs --user/--password):
    /// retry 5xx and connection errors with back-off, treat 404 as
    /// final, record every run id; --url may list several runners
    /// separated by commas (a worker moves on after a connection error).
    /// Fails if any result was lost or any item handed out twice.
    #[arg(long)]
    pub worker_like: bool,
}

#[derive(clap::Subcommand)]
pub enum LoadAction {
    /// Prepare a queue of N items (varied priorities, every bucket) and a worker `load`/`load`.
    Seed {
        #[arg(long)]
        db: String,
        #[arg(long, default_value_t = 100_000)]
        items: u64,
        #[arg(long, default_value = "lintian-fixes")]
        campaign: String,
    },
}

pub async fn run(args: Args) -> anyhow::Result<bool> {
    if let Some(LoadAction::Seed {
        db,
        items,
        campaign,
    }) = &args.action
    {
        janitor_harness::load::seed(db, *items, campaign).await?;
        println!("seeded {items} queue items for campaign {campaign}");
        return Ok(true);
    }
    let since = chrono::Utc::now().naive_utc();
    let (mut report, mut ok) = if args.worker_like {
        worker_like(&args).await?
    } else {
        closed_or_open_loop(&args).await?
    };
    if let Some(db) = &args.check_db {
        let (items, extra) = janitor_harness::load::check_db(db, since).await?;
        report["db_double_handouts"] = serde_json::json!({"items": items, "extra_runs": extra});
        ok &= items == 0;
    }
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(out) = &args.out {
        std::fs::write(out, &text)?;
    }
    Ok(ok)
}

fn url(args: &Args) -> anyhow::Result<String> {
    args.url
        .clone()
        .ok_or_else(|| anyhow::anyhow!("load needs --url"))
}

/// Workers that behave like janitor-worker; fails on any lost result,
/// unexpected answer or double hand-out seen.
async fn worker_like(args: &Args) -> anyhow::Result<(serde_json::Value, bool)> {
    let load = janitor_harness::worker_load::WorkerLoad {
        urls: url(args)?
            .split(',')
            .map(|u| u.trim_end_matches('/').to_string())
            .collect(),
        user: args
            .user
            .clone()
            .ok_or_else(|| anyhow::anyhow!("--worker-like needs --user"))?,
        password: args
            .password
            .clone()
            .ok_or_else(|| anyhow::anyhow!("--worker-like needs --password"))?,
        workers: args.workers,
        duration: Duration::from_secs_f64(args.duration),
        // A finish is retried this long past the end before the run counts
        // as lost.
        give_up: Duration::from_secs_f64(args.duration + 60.0),
    };
    let started = std::time::Instant::now();
    let o = janitor_harness::worker_load::run(load).await;
    let elapsed = started.elapsed().as_secs_f64();
    let report = serde_json::json!({
        "workers": args.workers,
        "seconds": elapsed,
        "assigned": o.assigned.len(),
        "finished": o.finished.len(),
        "finished_per_second": o.finished.len() as f64 / elapsed,
        "refused_404": o.refused,
        "abandoned": o.abandoned,
        "requests": o.requests,
        "retried_errors": o.errors,
        "unexpected": o.unexpected,
        "double_handouts_seen_by_clients": o.doubles(),
    });
    let ok = o.refused.is_empty()
        && o.abandoned.is_empty()
        && o.unexpected.is_empty()
        && o.doubles() == 0;
    Ok((report, ok))
}

/// The throughput load: fails on errors or a double hand-out seen.
async fn closed_or_open_loop(args: &Args) -> anyhow::Result<(serde_json::Value, bool)> {
    let opts = janitor_harness::load::LoadOptions {
        url: url(args)?,
        public: args.public,
        user: args.user.clone(),
        password: args.password.clone(),
        workers: args.workers,
        duration: Duration::from_secs_f64(args.duration),
        rate: args.rate,
        pid: args.pid,
    };
    let report = janitor_harness::load::run(opts).await?;
    let ok = report["errors"].as_object().is_none_or(|e| e.is_empty())
        && report["double_handouts_seen_by_clients"].as_u64() == Some(0);
    Ok((report, ok))
}
