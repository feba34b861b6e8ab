//! Shrinking a differing sequence: drop steps, then seed rows, then body
//! fields, keeping each change while the two runners still differ for the
//! same cause (signatures overlap). Greedy and bounded: a few passes, a
//! fixed number of attempts.

use super::{compare_with, signature};
use crate::compare::Difference;
use crate::ledger::Ledger;
use crate::scenario::Scenario;
use crate::target::TargetSpec;
use serde_json::Value;
use std::collections::BTreeSet;

/// Most candidate scenarios tried for one finding.
const MAX_ATTEMPTS: usize = 150;

/// The smallest scenario found that still differs for `cause`, recorded
/// against A, with its differences.
pub async fn shrink(
    s: &Scenario,
    cause: &BTreeSet<String>,
    a: &TargetSpec,
    b: &TargetSpec,
    ledger: &Ledger,
) -> (Scenario, Vec<Difference>) {
    let mut k = Shrinker {
        best: s.clone(),
        best_out: None,
        attempts: 0,
        cause,
        a,
        b,
        ledger,
    };
    for _pass in 0..3 {
        let mut changed = false;
        for i in (0..k.best.steps.len()).rev() {
            if k.best.steps.len() == 1 {
                break;
            }
            let mut c = k.best.clone();
            c.steps.remove(i);
            changed |= k.attempt(c).await;
        }
        for i in (0..k.best.seed_sql.len()).rev() {
            let mut c = k.best.clone();
            c.seed_sql.remove(i);
            changed |= k.attempt(c).await;
        }
        for i in (0..k.best.seed_redis.len()).rev() {
            let mut c = k.best.clone();
            c.seed_redis.remove(i);
            changed |= k.attempt(c).await;
        }
        for i in 0..k.best.steps.len() {
            let keys: Vec<String> = match &k.best.steps[i].request["json"] {
                Value::Object(m) => m.keys().cloned().collect(),
                _ => continue,
            };
            for key in keys {
                let mut c = k.best.clone();
                if let Some(m) = c.steps[i].request["json"].as_object_mut() {
                    m.remove(&key);
                }
                changed |= k.attempt(c).await;
            }
        }
        if !changed || k.exhausted() {
            break;
        }
    }
    match k.best_out {
        Some((rec, d)) => (named(rec, &s.name), d),
        // Nothing could go: the original, recorded.
        None => match compare_with(s, a, b, ledger, false).await {
            Ok((rec, d)) => (named(rec, &s.name), d),
            Err(_) => (s.clone(), Vec::new()),
        },
    }
}

/// The smallest scenario so far and what trying smaller ones has cost.
struct Shrinker<'a> {
    best: Scenario,
    /// The best scenario's recording against A, and its differences.
    best_out: Option<(Scenario, Vec<Difference>)>,
    attempts: usize,
    cause: &'a BTreeSet<String>,
    a: &'a TargetSpec,
    b: &'a TargetSpec,
    ledger: &'a Ledger,
}

impl Shrinker<'_> {
    fn exhausted(&self) -> bool {
        self.attempts >= MAX_ATTEMPTS
    }

    /// Keeps `c` as the best if it still differs for the cause; false once
    /// the attempts are spent.
    async fn attempt(&mut self, c: Scenario) -> bool {
        if self.exhausted() {
            return false;
        }
        self.attempts += 1;
        match differs_for(c, self.cause, self.a, self.b, self.ledger).await {
            Some((c, rec, d)) => {
                self.best = c;
                self.best_out = Some((rec, d));
                true
            }
            None => false,
        }
    }
}

/// Does `c` still differ for the cause? Errors (a seed row another needs)
/// count as no.
async fn differs_for(
    c: Scenario,
    cause: &BTreeSet<String>,
    a: &TargetSpec,
    b: &TargetSpec,
    ledger: &Ledger,
) -> Option<(Scenario, Scenario, Vec<Difference>)> {
    match compare_with(&c, a, b, ledger, false).await {
        Ok((rec, d)) if !d.is_empty() && !signature(&c, &d).is_disjoint(cause) => Some((c, rec, d)),
        _ => None,
    }
}

fn named(mut s: Scenario, name: &str) -> Scenario {
    s.name = name.to_string();
    s
}
