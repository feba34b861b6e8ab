//! The parity gate: every golden is its own named test (`golden::<name>`),
//! plus the harness's self-tests, which prove a broken judge cannot look green.
//!
//! A custom test harness (libtest-mimic) so the list follows golden/*.json.

use janitor_harness::check::{check, golden_outputs, judge, Status};
use janitor_harness::compare::compare_outputs;
use janitor_harness::ledger::{Ledger, Pending};
use janitor_harness::normalize::{normalize_document, Normalizer};
use janitor_harness::scenario::{collect, Scenario};
use janitor_harness::target::TargetSpec;
use janitor_harness::{golden_dir, report};
use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;
use std::sync::Arc;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn test_name(scenario: &str) -> String {
    scenario.replace('-', "_")
}

fn main() {
    let args = Arguments::from_args();
    let files = collect(&[golden_dir()]).expect("golden/");
    let scenarios: Arc<Vec<Scenario>> = Arc::new(
        files
            .iter()
            .map(|f| Scenario::load(f).expect("scenario"))
            .collect(),
    );
    let ledger = Arc::new(Ledger::load(&golden_dir().join("divergences.toml")).expect("ledger"));
    let pending = Arc::new(Pending::load(&golden_dir().join("pending.toml")).expect("pending"));
    let mut trials = Vec::new();

    for (i, s) in scenarios.iter().enumerate() {
        let (scenarios, ledger, pending) = (scenarios.clone(), ledger.clone(), pending.clone());
        trials.push(Trial::test(
            format!("golden::{}", test_name(&s.name)),
            move || {
                let scenario = &scenarios[i];
                let outcome =
                    runtime().block_on(check(scenario, &TargetSpec::InProcess, &ledger, &pending));
                let text = report::scenario_lines(&outcome);
                match outcome.status {
                    Status::Passed | Status::Pending => Ok(()),
                    _ => Err(Failed::from(text)),
                }
            },
        ));
    }

    for (i, s) in scenarios.iter().enumerate() {
        let all = scenarios.clone();
        trials.push(Trial::test(
            format!(
                "selftest::normalizing_is_identity_on::{}",
                test_name(&s.name)
            ),
            move || normalizing_is_identity(&all[i]),
        ));
        let (scenarios, ledger) = (scenarios.clone(), ledger.clone());
        trials.push(Trial::test(
            format!("selftest::mutations_are_caught_in::{}", test_name(&s.name)),
            move || mutations_are_caught(&scenarios[i], &ledger),
        ));
    }

    {
        let (scenarios, ledger) = (scenarios.clone(), ledger.clone());
        trials.push(Trial::test(
            "ledger::every_entry_applies_to_some_golden",
            move || {
                let unused = ledger.unused(&scenarios);
                if unused.is_empty() {
                    Ok(())
                } else {
                    Err(format!("ledger entries that apply to no golden: {unused:?}").into())
                }
            },
        ));
    }
    {
        let (scenarios, pending) = (scenarios.clone(), pending.clone());
        trials.push(Trial::test(
            "ledger::pending_names_only_goldens",
            move || {
                let unknown: Vec<&str> = pending
                    .pending
                    .iter()
                    .map(|p| p.scenario.as_str())
                    .filter(|n| !scenarios.iter().any(|s| s.name == *n))
                    .collect();
                if unknown.is_empty() {
                    Ok(())
                } else {
                    Err(
                        format!("pending.toml names scenarios that are not goldens: {unknown:?}")
                            .into(),
                    )
                }
            },
        ));
    }
    trials.push(Trial::test(
        "selftest::goldens_match_shared_ground_truth",
        goldens_match_shared,
    ));
    trials.push(Trial::test(
        "selftest::scenarios_are_the_goldens_inputs",
        scenarios_are_the_goldens_inputs,
    ));

    libtest_mimic::run(&args, trials).exit();
}

/// Rule 7 applied to a golden's own (already normalised) output changes nothing.
fn normalizing_is_identity(s: &Scenario) -> Result<(), Failed> {
    let doc = golden_outputs(s);
    let mut norm = Normalizer::new(chrono::Utc::now());
    let again = normalize_document(&mut norm, &doc);
    let diffs = compare_outputs(&doc, &again);
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(format!("re-normalising changed: {}", diffs[0]).into())
    }
}

fn mutate(v: &mut Value) {
    *v = match v {
        Value::String(s) => Value::String(format!("{s}~mutated")),
        Value::Number(n) if n.is_f64() => serde_json::json!(n.as_f64().unwrap() + 1.5),
        Value::Number(n) => serde_json::json!(n.as_i64().unwrap_or(0) + 1),
        Value::Bool(b) => Value::Bool(!*b),
        Value::Null => Value::String("mutated".into()),
        Value::Array(a) => {
            a.push(Value::String("mutated".into()));
            return;
        }
        Value::Object(m) => {
            m.insert("mutated".into(), Value::Bool(true));
            return;
        }
    };
}

/// First leaf under `v`, as (path suffix, pointer).
fn first_leaf(v: &Value, path: String) -> Option<(String, String)> {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let k = keys.first()?;
            first_leaf(
                &m[*k],
                format!("{path}/{}", k.replace('~', "~0").replace('/', "~1")),
            )
        }
        Value::Array(a) if !a.is_empty() => first_leaf(&a[0], format!("{path}/0")),
        _ => Some((path.clone(), path)),
    }
}

/// For every part of a golden that the judge compares, an injected change is
/// reported as a failure at that part's path.
fn mutations_are_caught(s: &Scenario, ledger: &Ledger) -> Result<(), Failed> {
    let golden = golden_outputs(s);
    let sections: Vec<(&str, String)> = vec![
        ("response", "/steps/0/response".to_string()),
        ("db_after", "/db_after".to_string()),
        ("redis keys", "/redis_after/keys".to_string()),
        ("published", "/redis_after/published".to_string()),
        ("files_after", "/files_after".to_string()),
    ];
    let mut checked = 0;
    for (label, base) in sections {
        let Some(section) = golden.pointer(&base) else {
            continue;
        };
        if section.as_object().is_some_and(|m| m.is_empty()) || section.is_null() {
            continue;
        }
        // Mutate the recorded status for responses (always present), a leaf elsewhere.
        let pointer = if label == "response" {
            format!("{base}/status")
        } else {
            first_leaf(section, base.clone())
                .map(|(_, p)| p)
                .unwrap_or(base.clone())
        };
        let mut ours = golden.clone();
        let Some(target) = ours.pointer_mut(&pointer) else {
            continue;
        };
        mutate(target);
        let diffs = compare_outputs(&golden, &ours);
        if diffs.is_empty() {
            return Err(format!("{label}: a change at {pointer} went unnoticed").into());
        }
        // The reported path names the same place (tables are multisets, so a
        // row is found by content: compare the table name and the field).
        let want: Vec<String> = pointer
            .trim_start_matches('/')
            .split('/')
            .map(|p| p.replace("~1", "/").replace("~0", "~"))
            .filter(|p| p.parse::<usize>().is_err())
            .collect();
        let hit = diffs
            .iter()
            .any(|d| want.iter().all(|w| d.path.contains(w.as_str())));
        if !hit {
            return Err(format!(
                "{label}: change at {pointer} reported at {:?}",
                diffs[0].path
            )
            .into());
        }
        let verdict = judge(s, &ours, ledger);
        if verdict.passed() && label != "response" {
            return Err(format!("{label}: the judge let a change at {pointer} pass").into());
        }
        checked += 1;
    }
    if checked == 0 {
        return Err("nothing to mutate".into());
    }
    Ok(())
}

/// golden/ holds the recordings of ../shared/golden unchanged.
fn goldens_match_shared() -> Result<(), Failed> {
    let shared = janitor_harness::project_dir().join("../shared/golden");
    if !shared.exists() {
        return Ok(()); // a clone without the shared tree beside it: nothing to compare
    }
    for f in collect(&[shared]).map_err(|e| e.to_string())? {
        let ours = golden_dir().join(f.file_name().unwrap());
        let a = std::fs::read(&f).map_err(|e| e.to_string())?;
        let b = std::fs::read(&ours)
            .map_err(|_| format!("{} is missing from golden/", ours.display()))?;
        if a != b {
            return Err(
                format!("{} differs from the recording in ../shared", ours.display()).into(),
            );
        }
    }
    Ok(())
}

/// `scenarios/<name>.json` is the request-only input of `golden/<name>.json`
/// (what `janitor-harness record scenarios/ --out golden/` records from):
/// the golden without its recorded outputs.
fn scenarios_are_the_goldens_inputs() -> Result<(), Failed> {
    let scenarios = janitor_harness::project_dir().join("scenarios");
    for f in collect(&[golden_dir()]).map_err(|e| e.to_string())? {
        let read = |p: &std::path::Path| -> Result<serde_json::Value, Failed> {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            Ok(serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?)
        };
        let mut golden = read(&f)?;
        if let Some(doc) = golden.as_object_mut() {
            for key in [
                "db_after",
                "redis_after",
                "files_after",
                "fake_worker_requests",
            ] {
                doc.remove(key);
            }
            for step in doc
                .get_mut("steps")
                .and_then(|s| s.as_array_mut())
                .into_iter()
                .flatten()
            {
                if let Some(step) = step.as_object_mut() {
                    step.remove("response");
                }
            }
        }
        let input = scenarios.join(f.file_name().unwrap());
        if read(&input)? != golden {
            return Err(format!(
                "{} is not the input of {}: regenerate it from the golden",
                input.display(),
                f.display()
            )
            .into());
        }
    }
    Ok(())
}
