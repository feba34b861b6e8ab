//! The binary's subcommands, one module each; `main.rs` only parses and
//! dispatches.

pub mod diff;
pub mod fuzz;
pub mod load;
pub mod record;
pub mod replay;

use janitor_harness::compare::Difference;
use janitor_harness::golden_dir;
use janitor_harness::ledger::Ledger;
use janitor_harness::target::TargetSpec;
use std::path::PathBuf;
use std::time::Duration;

/// `in-process`, or a runner command with placeholders (settled after its
/// last step only, as the goldens were recorded).
pub fn target_spec(cmd: &str, settle_ms: u64) -> TargetSpec {
    if cmd == "in-process" {
        TargetSpec::InProcess
    } else {
        TargetSpec::Command {
            cmd: cmd.to_string(),
            settle: Duration::from_millis(settle_ms),
            step_settle: None,
        }
    }
}

/// The A and B of the commands that compare two runners.
pub fn two_targets(
    cmd: &str,
    target: &[String],
    settle_ms: u64,
) -> anyhow::Result<(TargetSpec, TargetSpec)> {
    // Each also settled after the steps that may reschedule in the
    // background: else the race between a reschedule and the next request
    // makes two runs of one runner differ (see `RunningTarget::after_step`).
    let spec = |t: &str| match target_spec(t, settle_ms) {
        TargetSpec::Command { cmd, settle, .. } => TargetSpec::Command {
            cmd,
            settle,
            step_settle: Some(settle),
        },
        in_process => in_process,
    };
    match target {
        [a, b] => Ok((spec(a), spec(b))),
        _ => anyhow::bail!("{cmd} takes exactly two --target options"),
    }
}

/// The ledger at `path`, or golden/divergences.toml.
pub fn load_ledger(path: Option<PathBuf>) -> anyhow::Result<Ledger> {
    Ledger::load(&path.unwrap_or(golden_dir().join("divergences.toml")))
}

/// The first differences between runner A and runner B, indented.
pub fn print_differences(differences: &[Difference]) {
    for d in differences.iter().take(8) {
        println!(
            "    {}",
            d.to_string()
                .replace("golden:", "A:     ")
                .replace("ours:  ", "B:     ")
        );
    }
}
