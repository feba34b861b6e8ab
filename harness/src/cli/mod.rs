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

/// `in-process`, or a runner command with placeholders.
pub fn target_spec(cmd: &str, settle_ms: u64) -> TargetSpec {
    if cmd == "in-process" {
        TargetSpec::InProcess
    } else {
        TargetSpec::Command {
            cmd: cmd.to_string(),
            settle: Duration::from_millis(settle_ms),
        }
    }
}

/// The A and B of the commands that compare two runners.
pub fn two_targets(
    cmd: &str,
    target: &[String],
    settle_ms: u64,
) -> anyhow::Result<(TargetSpec, TargetSpec)> {
    match target {
        [a, b] => Ok((target_spec(a, settle_ms), target_spec(b, settle_ms))),
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
