//! Human-readable and JSON reports of a replay.

use crate::check::{Outcome, Status};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

const SHOWN_DIFFERENCES: usize = 8;

/// The line (and, for failures, the first differences) for one scenario.
pub fn scenario_lines(o: &Outcome) -> String {
    let mut s = String::new();
    let ledgered = o.verdict.ledgered.len();
    let tag = match o.status {
        Status::Passed if ledgered > 0 => format!("ok (ledgered: {})", ledgered_ids(o)),
        Status::Passed => "ok".into(),
        Status::Failed => "FAILED".into(),
        Status::Pending => format!(
            "pending ({})",
            o.pending_reason
                .as_deref()
                .unwrap_or("listed in golden/pending.toml")
        ),
        Status::PendingPassed => {
            "FAILED: passes but is listed in golden/pending.toml; remove it from the list".into()
        }
    };
    let _ = writeln!(s, "{:<45} {tag}", o.name);
    if matches!(o.status, Status::Failed) {
        if let Some(e) = &o.error {
            let _ = writeln!(s, "    error: {e}");
        }
        for e in &o.verdict.ledger_errors {
            let _ = writeln!(s, "    {e}");
        }
        for d in o.verdict.unexplained.iter().take(SHOWN_DIFFERENCES) {
            let _ = writeln!(s, "    {d}");
        }
        let more = o
            .verdict
            .unexplained
            .len()
            .saturating_sub(SHOWN_DIFFERENCES);
        if more > 0 {
            let _ = writeln!(s, "    … and {more} more differences (see --json)");
        }
    }
    s
}

fn ledgered_ids(o: &Outcome) -> String {
    let mut ids: Vec<&str> = o
        .verdict
        .ledgered
        .iter()
        .map(|(id, _)| id.as_str())
        .collect();
    ids.sort();
    ids.dedup();
    ids.join(", ")
}

pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub pending: usize,
    pub ledgered: usize,
}

pub fn summarize(outcomes: &[Outcome], extra_failures: usize) -> Summary {
    let mut s = Summary {
        passed: 0,
        failed: extra_failures,
        pending: 0,
        ledgered: 0,
    };
    for o in outcomes {
        match o.status {
            Status::Passed => {
                s.passed += 1;
                if !o.verdict.ledgered.is_empty() {
                    s.ledgered += 1;
                }
            }
            Status::Pending => s.pending += 1,
            Status::Failed | Status::PendingPassed => s.failed += 1,
        }
    }
    s
}

pub fn closing_line(s: &Summary) -> String {
    let mut line = format!("{} passed, {} failed", s.passed, s.failed);
    if s.ledgered > 0 {
        let _ = write!(line, ", {} ledgered", s.ledgered);
    }
    line
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Median latency per route over all scenarios.
pub fn route_latencies(outcomes: &[Outcome]) -> BTreeMap<String, (usize, Duration)> {
    let mut by: BTreeMap<String, Vec<Duration>> = BTreeMap::new();
    for o in outcomes {
        for (route, d) in &o.latencies {
            by.entry(route.clone()).or_default().push(*d);
        }
    }
    by.into_iter()
        .map(|(k, v)| (k, (v.len(), median(v))))
        .collect()
}

pub fn timing_lines(outcomes: &[Outcome]) -> String {
    let setups: Vec<Duration> = outcomes
        .iter()
        .filter(|o| o.error.is_none())
        .map(|o| o.setup)
        .collect();
    if setups.is_empty() {
        return String::new();
    }
    let max = setups.iter().max().copied().unwrap_or_default();
    format!(
        "scenario setup (database clone + Redis + fixtures): median {:.0} ms, max {:.0} ms over {} scenarios\n",
        median(setups.clone()).as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3,
        setups.len()
    )
}

pub fn json_report(outcomes: &[Outcome], summary: &Summary, global_errors: &[String]) -> Value {
    let scenarios: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            json!({
                "name": o.name,
                "status": format!("{:?}", o.status),
                "error": o.error,
                "pending_reason": o.pending_reason,
                "setup_ms": o.setup.as_secs_f64() * 1e3,
                "total_ms": o.total.as_secs_f64() * 1e3,
                "ledger_errors": o.verdict.ledger_errors,
                "differences": o.verdict.unexplained.iter().map(|d| json!({"path": d.path, "golden": d.expected, "ours": d.actual})).collect::<Vec<_>>(),
                "ledgered": o.verdict.ledgered.iter().map(|(id, d)| json!({"entry": id, "path": d.path, "golden": d.expected, "ours": d.actual})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let latencies: serde_json::Map<String, Value> = route_latencies(outcomes)
        .into_iter()
        .map(|(k, (n, d))| (k, json!({"count": n, "median_ms": d.as_secs_f64() * 1e3})))
        .collect();
    json!({
        "summary": {"passed": summary.passed, "failed": summary.failed, "pending": summary.pending, "ledgered": summary.ledgered},
        "errors": global_errors,
        "scenarios": scenarios,
        "route_latency": latencies,
    })
}
