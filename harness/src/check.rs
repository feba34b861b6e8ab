//! Judging one scenario: replay it, compare with the golden, apply the
//! ledger and the pending ratchet.

use crate::compare::{compare_outputs, Difference};
use crate::ledger::{Ledger, Pending, Verdict};
use crate::replay::{self, Observed};
use crate::scenario::Scenario;
// Where it was first defined; the ledger uses it too, so it lives with the
// scenario (no check <-> ledger cycle).
pub use crate::scenario::golden_outputs;
use crate::target::TargetSpec;
use serde_json::Value;
use std::time::Duration;

#[derive(Debug)]
pub enum Status {
    Passed,
    Failed,
    /// Listed in pending.toml and still failing: expected.
    Pending,
    /// Listed in pending.toml but passing: the list must shrink.
    PendingPassed,
}

#[derive(Debug)]
pub struct Outcome {
    pub name: String,
    pub status: Status,
    pub verdict: Verdict,
    /// Set when the scenario could not be run at all.
    pub error: Option<String>,
    pub pending_reason: Option<String>,
    pub setup: Duration,
    pub total: Duration,
    pub latencies: Vec<(String, Duration)>,
}

impl Outcome {
    /// Does this outcome keep the gate green?
    pub fn ok(&self) -> bool {
        matches!(self.status, Status::Passed | Status::Pending)
    }
}

pub fn judge(scenario: &Scenario, observed: &Value, ledger: &Ledger) -> Verdict {
    let diffs: Vec<Difference> = compare_outputs(&golden_outputs(scenario), observed);
    ledger.judge(scenario, observed, diffs)
}

pub async fn check(
    scenario: &Scenario,
    target: &TargetSpec,
    ledger: &Ledger,
    pending: &Pending,
) -> Outcome {
    check_with(
        scenario,
        target,
        replay::StorageKind::Filesystem,
        ledger,
        pending,
    )
    .await
}

/// [`check`] with the runner storing logs and artifacts in `storage`.
pub async fn check_with(
    scenario: &Scenario,
    target: &TargetSpec,
    storage: replay::StorageKind,
    ledger: &Ledger,
    pending: &Pending,
) -> Outcome {
    let pending_entry = pending.get(&scenario.name).cloned();
    let (verdict, error, obs) = match replay::run_with(scenario, target, storage).await {
        Ok(obs) => (judge(scenario, &obs.doc, ledger), None, Some(obs)),
        Err(e) => (Verdict::default(), Some(format!("{e:#}")), None),
    };
    let passed = error.is_none() && verdict.passed();
    let status = match (passed, pending_entry.is_some()) {
        (true, false) => Status::Passed,
        (false, false) => Status::Failed,
        (false, true) => Status::Pending,
        (true, true) => Status::PendingPassed,
    };
    let (setup, total, latencies) = match obs {
        Some(Observed {
            setup,
            total,
            latencies,
            ..
        }) => (setup, total, latencies),
        None => (Duration::ZERO, Duration::ZERO, vec![]),
    };
    Outcome {
        name: scenario.name.clone(),
        status,
        verdict,
        error,
        pending_reason: pending_entry.map(|p| p.missing),
        setup,
        total,
        latencies,
    }
}
