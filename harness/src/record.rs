//! Recording: run scenario inputs against a live runner and write goldens;
//! and the black-box diff of two live runners.

use crate::compare::{compare_outputs, Difference};
use crate::replay;
use crate::scenario::Scenario;
use crate::target::TargetSpec;
use serde_json::Value;

/// The scenario with the target's (normalised) outputs filled in.
pub async fn record(scenario: &Scenario, target: &TargetSpec) -> anyhow::Result<Scenario> {
    let observed = replay::run(scenario, target).await?;
    let mut out = scenario.clone();
    let doc = observed.doc;
    for (step, got) in out
        .steps
        .iter_mut()
        .zip(doc["steps"].as_array().into_iter().flatten())
    {
        step.response = Some(got["response"].clone());
    }
    out.db_after = Some(doc["db_after"].clone());
    out.redis_after = Some(doc["redis_after"].clone());
    out.files_after = Some(doc["files_after"].clone());
    out.fake_worker_requests = Some(doc["fake_worker_requests"].clone());
    if out.source.is_none() {
        out.source = Some(format!(
            "recorded by janitor-harness from `{}`",
            target.label()
        ));
    }
    Ok(out)
}

/// Objects with sorted keys, as the goldens are written.
pub fn to_golden_json(s: &Scenario) -> anyhow::Result<String> {
    fn sort(v: Value) -> Value {
        match v {
            Value::Object(m) => {
                let sorted: std::collections::BTreeMap<String, Value> =
                    m.into_iter().map(|(k, v)| (k, sort(v))).collect();
                Value::Object(sorted.into_iter().collect())
            }
            Value::Array(a) => Value::Array(a.into_iter().map(sort).collect()),
            other => other,
        }
    }
    let mut text = serde_json::to_string_pretty(&sort(serde_json::to_value(s)?))?;
    text.push('\n');
    Ok(text)
}

/// Run one scenario against two live runners; differences of B against A.
pub async fn diff_targets(
    scenario: &Scenario,
    a: &TargetSpec,
    b: &TargetSpec,
) -> anyhow::Result<Vec<Difference>> {
    let left = replay::run(scenario, a).await?;
    let right = replay::run(scenario, b).await?;
    Ok(compare_outputs(&left.doc, &right.doc))
}
