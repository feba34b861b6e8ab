//! `fuzz`: seeded random request sequences against two runners,
//! differences shrunk and written as scenarios.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, num_args = 1, required = true)]
    pub target: Vec<String>,
    #[arg(long, default_value_t = 200)]
    pub sequences: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = 8)]
    pub max_steps: usize,
    /// Where the shrunk scenarios and fuzz-report.json go.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Sequences run at once.
    #[arg(long, default_value_t = 4)]
    pub jobs: usize,
    /// Time given an external target to finish background work: after the
    /// last step, and after each assign, finish or kill (their reschedules
    /// race with the next request).
    #[arg(long, default_value_t = 1000)]
    pub settle_ms: u64,
    #[arg(long)]
    pub ledger: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<bool> {
    let (a, b) = super::two_targets("fuzz", &args.target, args.settle_ms)?;
    let ledger = super::load_ledger(args.ledger)?;
    let opts = janitor_harness::fuzz::Options {
        sequences: args.sequences,
        seed: args.seed,
        max_steps: args.max_steps,
        out: args.out,
        jobs: args.jobs,
    };
    let report = janitor_harness::fuzz::run(&a, &b, &ledger, &opts).await?;
    for f in &report.findings {
        println!(
            "{}: {} steps → {} (also in {} other sequences){}",
            f.sequence,
            f.steps_before,
            f.scenario.steps.len(),
            f.also_in.len(),
            f.file
                .as_ref()
                .map(|p| format!(", written to {}", p.display()))
                .unwrap_or_default()
        );
        super::print_differences(&f.differences);
    }
    for e in &report.errors {
        println!("ERROR {e}");
    }
    println!("{}", report.closing_line());
    Ok(report.findings.is_empty() && report.errors.is_empty())
}
