//! `janitor-harness`: replay goldens, record new ones, diff live runners.

use clap::{Parser, Subcommand};
use futures::StreamExt;
use janitor_harness::check::{check_with, Outcome};
use janitor_harness::ledger::{Ledger, Pending};
use janitor_harness::replay::StorageKind;
use janitor_harness::scenario::{collect, Scenario};
use janitor_harness::target::TargetSpec;
use janitor_harness::{golden_dir, record, report};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "janitor-harness", about = "Parity harness for janitor-runner")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Replay recorded goldens against the in-process Rust runner (or --target).
    Replay {
        /// Scenario files or directories (default: golden/).
        paths: Vec<PathBuf>,
        /// Write a machine-readable report here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Replay against a live runner command instead of the in-process one.
        #[arg(long)]
        target: Option<String>,
        /// Scenarios run at once.
        #[arg(long, default_value_t = 4)]
        jobs: usize,
        /// Time given an external target to finish background work.
        #[arg(long, default_value_t = 1000)]
        settle_ms: u64,
        #[arg(long)]
        ledger: Option<PathBuf>,
        #[arg(long)]
        pending: Option<PathBuf>,
        /// Where the runner stores logs and artifacts: the scenario's
        /// directories, or fresh buckets of the GCS emulator (`gs://`).
        #[arg(long, value_enum, default_value = "filesystem")]
        storage: StorageKind,
    },
    /// Run scenario inputs against a live runner and write goldens.
    Record {
        /// Runner command with placeholders: {config} {port} {public_port} {vcs}
        /// {logs} {artifacts} {run_timeout} {avoid_hosts} {dep_server_url} {apt_archive_url}.
        #[arg(long)]
        target: String,
        #[arg(long, default_value = "golden")]
        out: PathBuf,
        #[arg(long, default_value_t = 1000)]
        settle_ms: u64,
        /// Scenario files or directories (default: scenarios/).
        scenarios: Vec<PathBuf>,
    },
    /// Simulated workers looping assign → finish against a live runner.
    Load {
        #[command(subcommand)]
        action: Option<LoadAction>,
        /// Runner base URL (the admin app, or the public app with --public).
        #[arg(long)]
        url: Option<String>,
        /// Use the public (worker) routes with Basic auth.
        #[arg(long)]
        public: bool,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        password: Option<String>,
        #[arg(long, default_value_t = 8)]
        workers: usize,
        /// Seconds.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Open loop: cycles per second (default: closed loop).
        #[arg(long)]
        rate: Option<f64>,
        /// The runner's pid, for CPU per cycle and peak RSS.
        #[arg(long)]
        pid: Option<u32>,
        #[arg(long)]
        out: Option<PathBuf>,
        /// Count double hand-outs in this database afterwards.
        #[arg(long)]
        check_db: Option<String>,
        /// Behave like janitor-worker (public app, needs --user/--password):
        /// retry 5xx and connection errors with back-off, treat 404 as
        /// final, record every run id; --url may list several runners
        /// separated by commas (a worker moves on after a connection error).
        /// Fails if any result was lost or any item handed out twice.
        #[arg(long)]
        worker_like: bool,
    },
    /// Run the same scenarios against two live runners and show differences.
    Diff {
        #[arg(long, num_args = 1, required = true)]
        target: Vec<String>,
        #[arg(long, default_value_t = 1000)]
        settle_ms: u64,
        scenarios: Vec<PathBuf>,
    },
}

#[derive(Subcommand)]
enum LoadAction {
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

fn target_spec(cmd: &str, settle_ms: u64) -> TargetSpec {
    if cmd == "in-process" {
        TargetSpec::InProcess
    } else {
        TargetSpec::Command {
            cmd: cmd.to_string(),
            settle: Duration::from_millis(settle_ms),
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match rt.block_on(run(cli)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("janitor-harness: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        Cmd::Replay {
            paths,
            json,
            target,
            jobs,
            settle_ms,
            ledger,
            pending,
            storage,
        } => {
            let paths = if paths.is_empty() {
                vec![golden_dir()]
            } else {
                paths
            };
            let files = collect(&paths)?;
            let mut scenarios = Vec::new();
            for f in &files {
                let s = Scenario::load(f)?;
                if !s.is_recorded() {
                    anyhow::bail!(
                        "{}: has no recorded outputs; use `record` first",
                        f.display()
                    );
                }
                scenarios.push(s);
            }
            let ledger = Ledger::load(&ledger.unwrap_or(golden_dir().join("divergences.toml")))?;
            let pending = Pending::load(&pending.unwrap_or(golden_dir().join("pending.toml")))?;
            let target = target
                .map(|t| target_spec(&t, settle_ms))
                .unwrap_or(TargetSpec::InProcess);
            println!(
                "replaying {} scenarios against {}",
                scenarios.len(),
                target.label()
            );
            let outcomes = replay_all(&scenarios, &target, storage, &ledger, &pending, jobs).await;
            let mut global = Vec::new();
            // The ledger is strict across the whole set: an entry that
            // applies nowhere has rotted.
            if paths == [golden_dir()] {
                for id in ledger.unused(&scenarios) {
                    global.push(format!(
                        "ledger entry {id:?} applies to no scenario: remove it"
                    ));
                }
                for p in &pending.pending {
                    if !scenarios.iter().any(|s| s.name == p.scenario) {
                        global.push(format!(
                            "pending.toml names {:?}, which is not a golden",
                            p.scenario
                        ));
                    }
                }
            }
            for e in &global {
                println!("FAILED: {e}");
            }
            let summary = report::summarize(&outcomes, global.len());
            if let Ok(pg) = janitor_harness::services::postgres().await {
                println!(
                    "postgres ({:?}): ready with the migrated template in {:.0} ms",
                    pg.provider,
                    pg.startup.as_secs_f64() * 1e3
                );
            }
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
            if let Some(path) = json {
                let doc = report::json_report(&outcomes, &summary, &global);
                std::fs::write(&path, serde_json::to_string_pretty(&doc)?)?;
                println!("report written to {}", path.display());
            }
            println!("{}", report::closing_line(&summary));
            Ok(summary.failed == 0)
        }
        Cmd::Record {
            target,
            out,
            settle_ms,
            scenarios,
        } => {
            let paths = if scenarios.is_empty() {
                vec![janitor_harness::project_dir().join("scenarios")]
            } else {
                scenarios
            };
            let target = target_spec(&target, settle_ms);
            std::fs::create_dir_all(&out)?;
            let mut ok = true;
            for f in collect(&paths)? {
                let s = Scenario::load(&f)?;
                match record::record(&s, &target).await {
                    Ok(recorded) => {
                        let dest = out.join(format!("{}.json", s.name));
                        std::fs::write(&dest, record::to_golden_json(&recorded)?)?;
                        println!("{:<45} recorded -> {}", s.name, dest.display());
                    }
                    Err(e) => {
                        ok = false;
                        println!("{:<45} FAILED: {e:#}", s.name);
                    }
                }
            }
            Ok(ok)
        }
        Cmd::Load {
            action:
                Some(LoadAction::Seed {
                    db,
                    items,
                    campaign,
                }),
            ..
        } => {
            janitor_harness::load::seed(&db, items, &campaign).await?;
            println!("seeded {items} queue items for campaign {campaign}");
            Ok(true)
        }
        Cmd::Load {
            action: None,
            url,
            public,
            user,
            password,
            workers,
            duration,
            rate,
            pid,
            out,
            check_db,
            worker_like,
        } => {
            let url = url.ok_or_else(|| anyhow::anyhow!("load needs --url"))?;
            let since = chrono::Utc::now().naive_utc();
            if worker_like {
                let load = janitor_harness::worker_load::WorkerLoad {
                    urls: url
                        .split(',')
                        .map(|u| u.trim_end_matches('/').to_string())
                        .collect(),
                    user: user.ok_or_else(|| anyhow::anyhow!("--worker-like needs --user"))?,
                    password: password
                        .ok_or_else(|| anyhow::anyhow!("--worker-like needs --password"))?,
                    workers,
                    duration: Duration::from_secs_f64(duration),
                    // A finish is retried this long past the end before the
                    // run counts as lost.
                    give_up: Duration::from_secs_f64(duration + 60.0),
                };
                let started = std::time::Instant::now();
                let o = janitor_harness::worker_load::run(load).await;
                let elapsed = started.elapsed().as_secs_f64();
                let mut report = serde_json::json!({
                    "workers": workers,
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
                let mut ok = o.refused.is_empty()
                    && o.abandoned.is_empty()
                    && o.unexpected.is_empty()
                    && o.doubles() == 0;
                if let Some(db) = check_db {
                    let (items, extra) = janitor_harness::load::check_db(&db, since).await?;
                    report["db_double_handouts"] =
                        serde_json::json!({"items": items, "extra_runs": extra});
                    ok &= items == 0;
                }
                let text = serde_json::to_string_pretty(&report)?;
                println!("{text}");
                if let Some(out) = out {
                    std::fs::write(out, &text)?;
                }
                return Ok(ok);
            }
            let opts = janitor_harness::load::LoadOptions {
                url,
                public,
                user,
                password,
                workers,
                duration: Duration::from_secs_f64(duration),
                rate,
                pid,
            };
            let mut report = janitor_harness::load::run(opts).await?;
            let mut ok = report["errors"].as_object().is_none_or(|e| e.is_empty());
            if let Some(db) = check_db {
                let (items, extra) = janitor_harness::load::check_db(&db, since).await?;
                report["db_double_handouts"] =
                    serde_json::json!({"items": items, "extra_runs": extra});
                ok &= items == 0;
            }
            ok &= report["double_handouts_seen_by_clients"].as_u64() == Some(0);
            let text = serde_json::to_string_pretty(&report)?;
            println!("{text}");
            if let Some(out) = out {
                std::fs::write(out, &text)?;
            }
            Ok(ok)
        }
        Cmd::Diff {
            target,
            settle_ms,
            scenarios,
        } => {
            if target.len() != 2 {
                anyhow::bail!("diff takes exactly two --target options");
            }
            let a = target_spec(&target[0], settle_ms);
            let b = target_spec(&target[1], settle_ms);
            let paths = if scenarios.is_empty() {
                vec![golden_dir()]
            } else {
                scenarios
            };
            let (mut same, mut differ, mut errors) = (0, 0, 0);
            for f in collect(&paths)? {
                // A scenario that cannot be run (unreadable, a target that
                // does not start) is reported and the next one runs.
                let s = match Scenario::load(&f) {
                    Ok(s) => s,
                    Err(e) => {
                        errors += 1;
                        println!("{:<45} ERROR {e:#}", f.display());
                        continue;
                    }
                };
                let diffs = match record::diff_targets(&s, &a, &b).await {
                    Ok(d) => d,
                    Err(e) => {
                        errors += 1;
                        println!("{:<45} ERROR {e:#}", s.name);
                        continue;
                    }
                };
                if diffs.is_empty() {
                    same += 1;
                    println!("{:<45} same", s.name);
                } else {
                    differ += 1;
                    println!("{:<45} DIFFERS", s.name);
                    for d in diffs.iter().take(8) {
                        println!(
                            "    {}",
                            d.to_string()
                                .replace("golden:", "A:     ")
                                .replace("ours:  ", "B:     ")
                        );
                    }
                }
            }
            println!("{same} same, {differ} differ, {errors} errors");
            Ok(differ == 0 && errors == 0)
        }
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
