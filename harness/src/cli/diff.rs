//! `diff`: the same scenarios against two live runners, differences shown.

use janitor_harness::scenario::{collect, Scenario};
use janitor_harness::{golden_dir, record};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, num_args = 1, required = true)]
    pub target: Vec<String>,
    /// Time given an external target to finish background work: after the
    /// last step, and after each assign, finish or kill (their reschedules
    /// race with the next request).
    #[arg(long, default_value_t = 1000)]
    pub settle_ms: u64,
    pub scenarios: Vec<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<bool> {
    let (a, b) = super::two_targets("diff", &args.target, args.settle_ms)?;
    let paths = if args.scenarios.is_empty() {
        vec![golden_dir()]
    } else {
        args.scenarios
    };
    let (mut same, mut differ, mut errors) = (0, 0, 0);
    for f in collect(&paths)? {
        // A scenario that cannot be run (unreadable, a target that does not
        // start) is reported and the next one runs.
        let s = match Scenario::load(&f) {
            Ok(s) => s,
            Err(e) => {
                errors += 1;
                println!("{:<45} ERROR {e:#}", f.display());
                continue;
            }
        };
        match record::diff_targets(&s, &a, &b).await {
            Ok(diffs) if diffs.is_empty() => {
                same += 1;
                println!("{:<45} same", s.name);
            }
            Ok(diffs) => {
                differ += 1;
                println!("{:<45} DIFFERS", s.name);
                super::print_differences(&diffs);
            }
            Err(e) => {
                errors += 1;
                println!("{:<45} ERROR {e:#}", s.name);
            }
        }
    }
    println!("{same} same, {differ} differ, {errors} errors");
    Ok(differ == 0 && errors == 0)
}
