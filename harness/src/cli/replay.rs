//! `replay`: the golden gate (scenarios against the in-process runner or a
//! command, compared with their recordings through the ledger).

use futures::StreamExt;
use janitor_harness::check::{check_with, Outcome};
use janitor_harness::ledger::{Ledger, Pending};
use janitor_harness::replay::StorageKind;
use janitor_harness::scenario::{collect, Scenario};
use janitor_harness::target::TargetSpec;
use janitor_harness::{golden_dir, report};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Scenario files or directories (default: golden/).
    pub paths: Vec<PathBuf>,
    /// Write a machine-readable report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Replay against a live runner command instead of the in-process one.
    #[arg(long)]
    pub target: Option<String>,
    /// Scenarios run at once.
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
    /// Time given an external target to finish background work.
    #[arg(long, default_value_t = 1000)]
    pub settle_ms: u64,
    #[arg(long)]
    pub ledger: Option<PathBuf>,
    #[arg(long)]
    pub pending: Option<PathBuf>,
    /// Where the runner stores logs and artifacts: the scenario's
    /// directories, or fresh buckets of the GCS emulator (`gs://`).
    #[arg(long, value_enum, default_value = "filesystem")]
    pub storage: StorageKind,
    /// The scenarios were recorded from a runner other than the goldens'
    /// Python: a ledger entry whose difference is gone is no error.
    #[arg(long)]
    pub reference_may_agree: bool,
}

pub async fn run(args: Args) -> anyhow::Result<bool> {
    let paths = if args.paths.is_empty() {
        vec![golden_dir()]
    } else {
        args.paths
    };
    let scenarios = recorded_scenarios(&paths)?;
    let mut ledger = super::load_ledger(args.ledger)?;
    ledger.reference_may_agree = args.reference_may_agree;
    let pending = Pending::load(&args.pending.unwrap_or(golden_dir().join("pending.toml")))?;
    let target = args
        .target
        .map(|t| super::target_spec(&t, args.settle_ms))
        .unwrap_or(TargetSpec::InProcess);
    println!(
        "replaying {} scenarios against {}",
        scenarios.len(),
        target.label()
    );
    let outcomes = replay_all(
        &scenarios,
        &target,
        args.storage,
        &ledger,
        &pending,
        args.jobs,
    )
    .await;
    // The ledger is strict across the whole set: an entry that applies
    // nowhere has rotted.
    let global = if paths == [golden_dir()] {
        whole_set_errors(&ledger, &pending, &scenarios)
    } else {
        Vec::new()
    };
    for e in &global {
        println!("FAILED: {e}");
    }
    let summary = report::summarize(&outcomes, global.len());
    print_services().await;
    print!("{}", report::timing_lines(&outcomes));
    println!("route latency (median over the replay):");
    for (route, (n, d)) in report::route_latencies(&outcomes) {
        println!("    {route:<40} {:>7.2} ms  (n={n})", d.as_secs_f64() * 1e3);
    }
    println!(
        "pending: {} scenarios listed in golden/pending.toml ({} still failing as expected)",
        pending.len(),
        summary.pending
    );
    if let Some(path) = args.json {
        let doc = report::json_report(&outcomes, &summary, &global);
        std::fs::write(&path, serde_json::to_string_pretty(&doc)?)?;
        println!("report written to {}", path.display());
    }
    println!("{}", report::closing_line(&summary));
    Ok(summary.failed == 0)
}

/// Every scenario under `paths`; one without recorded outputs is an error.
fn recorded_scenarios(paths: &[PathBuf]) -> anyhow::Result<Vec<Scenario>> {
    let mut scenarios = Vec::new();
    for f in &collect(paths)? {
        let s = Scenario::load(f)?;
        if !s.is_recorded() {
            anyhow::bail!(
                "{}: has no recorded outputs; use `record` first",
                f.display()
            );
        }
        scenarios.push(s);
    }
    Ok(scenarios)
}

/// Ledger entries that apply to no golden, and pending entries that name none.
fn whole_set_errors(ledger: &Ledger, pending: &Pending, scenarios: &[Scenario]) -> Vec<String> {
    let mut errors: Vec<String> = ledger
        .unused(scenarios)
        .into_iter()
        .map(|id| format!("ledger entry {id:?} applies to no scenario: remove it"))
        .collect();
    for p in &pending.pending {
        if !scenarios.iter().any(|s| s.name == p.scenario) {
            errors.push(format!(
                "pending.toml names {:?}, which is not a golden",
                p.scenario
            ));
        }
    }
    errors
}

/// Where each service came from (a spawned process, a URL, a container).
async fn print_services() {
    use janitor_harness::services::{self, containers};
    if let Ok(pg) = services::postgres().await {
        println!(
            "postgres ({}): ready with the migrated template in {:.0} ms",
            services::describe(&pg.provider, containers::POSTGRES_IMAGE),
            pg.startup.as_secs_f64() * 1e3
        );
    }
    println!(
        "redis ({}): one server per scenario",
        services::describe(
            &services::provider_for(services::redis::REDIS_URL_ENV),
            containers::REDIS_IMAGE
        )
    );
    if let Some(gcs) = services::gcs_started() {
        println!(
            "gcs ({}): {}",
            services::describe(&gcs.provider, containers::GCS_IMAGE),
            gcs.endpoint
        );
    }
}

async fn replay_all(
    scenarios: &[Scenario],
    target: &TargetSpec,
    storage: StorageKind,
    ledger: &Ledger,
    pending: &Pending,
    jobs: usize,
) -> Vec<Outcome> {
    let tty = std::io::stderr().is_terminal();
    let total = scenarios.len();
    let mut done = 0;
    let mut outcomes: Vec<Outcome> = futures::stream::iter(scenarios.iter())
        .map(|s| check_with(s, target, storage, ledger, pending))
        .buffer_unordered(jobs.max(1))
        .inspect(|o| {
            done += 1;
            if tty {
                eprint!("\r\x1b[K[{done}/{total}] {}", o.name);
            }
        })
        .collect()
        .await;
    if tty {
        eprint!("\r\x1b[K");
    }
    outcomes.sort_by(|a, b| a.name.cmp(&b.name));
    for o in &outcomes {
        print!("{}", report::scenario_lines(o));
    }
    outcomes
}
