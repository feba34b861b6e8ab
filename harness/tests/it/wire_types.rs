//! Wire types against the goldens' own JSON: every ActiveRun the Python runner
//! stored or published parses and re-serialises to the same JSON — same keys
//! in the same order, null vs absent, int vs float — and every result.json the
//! goldens upload parses. Plus property tests of the round trips.

use janitor_harness::scenario::{collect, Scenario};
use janitor_runner::types::time::parse_naive;
use janitor_runner::types::ActiveRun;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

fn goldens() -> Vec<Scenario> {
    collect(&[janitor_harness::golden_dir()])
        .unwrap()
        .iter()
        .map(|f| Scenario::load(f).unwrap())
        .collect()
}

/// Concrete stand-ins for the normalised placeholders, so values parse.
fn concretize(v: &Value) -> Value {
    match v {
        Value::String(s) if s == "<timestamp>" => json!("2026-01-01T00:00:00.250000"),
        Value::String(s) if s == "<duration>" => json!(1.5),
        Value::String(s) => Value::String(s.replace("<uuid:", "uuid-").replace('>', "")),
        Value::Array(a) => Value::Array(a.iter().map(concretize).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), concretize(v))).collect())
        }
        other => other.clone(),
    }
}

/// Every ActiveRun JSON in a golden: stored in Redis, in published status
/// documents (minus the three status keys), and single-run GET answers.
fn active_runs(s: &Scenario) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    if let Some(h) = s
        .redis_after
        .as_ref()
        .and_then(|r| r["keys"]["active-runs"]["value"].as_object())
    {
        for (k, v) in h {
            out.push((
                format!("{}: redis active-runs[{k}]", s.name),
                v["json"].clone(),
            ));
        }
    }
    if let Some(msgs) = s
        .redis_after
        .as_ref()
        .and_then(|r| r["published"]["queue"].as_array())
    {
        for (i, m) in msgs.iter().enumerate() {
            for run in m["json"]["processing"].as_array().into_iter().flatten() {
                let mut run = run.as_object().cloned().unwrap_or_default();
                for k in ["last-keepalive", "keepalive_age", "mia"] {
                    run.remove(k);
                }
                out.push((format!("{}: queue message {i}", s.name), Value::Object(run)));
            }
        }
    }
    for (i, st) in s.steps.iter().enumerate() {
        let resp = st.response.as_ref().unwrap();
        if st.method() == "GET"
            && st.path().contains("/active-runs/<uuid:")
            && resp["status"] == 200
        {
            out.push((format!("{}: steps[{i}]", s.name), resp["json"].clone()));
        }
    }
    out
}

/// Same keys, same values, same number kinds (`15` is not `15.0`). Key order
/// is not compared here: the golden files store objects with sorted keys; the
/// upstream order is pinned by the unit tests of the types.
fn same_json(a: &Value, b: &Value) -> bool {
    a == b
}

#[test]
fn every_recorded_active_run_round_trips() {
    let mut seen = 0;
    for s in goldens() {
        for (label, recorded) in active_runs(&s) {
            let recorded = concretize(&recorded);
            let run = ActiveRun::from_json(&recorded).unwrap_or_else(|e| panic!("{label}: {e}"));
            // `current_duration` is recomputed; pick the "now" that reproduces it.
            let start = run.start_time;
            let now = start + chrono::Duration::microseconds(1_500_000);
            let mut ours = run.to_json(&now);
            if recorded["current_duration"].is_number() {
                ours["current_duration"] = recorded["current_duration"].clone();
            }
            assert!(
                same_json(&ours, &recorded),
                "{label}\n golden: {}\n ours:   {}",
                janitor_runner::py::json::to_string(&recorded),
                janitor_runner::py::json::to_string(&ours)
            );
            seen += 1;
        }
    }
    assert!(
        seen >= 10,
        "only {seen} recorded active runs found: is golden/ complete?"
    );
}

#[test]
fn every_result_json_a_golden_uploads_with_success_parses() {
    let mut seen = 0;
    for s in goldens() {
        for st in &s.steps {
            let Some(parts) = st.request["multipart"].as_array() else {
                continue;
            };
            let status = st.response.as_ref().unwrap()["status"].as_u64();
            for p in parts.iter().filter(|p| p["filename"] == "result.json") {
                let parsed = janitor_runner::types::result::WorkerResult::from_json(&p["json"]);
                if status == Some(201) {
                    parsed.unwrap_or_else(|e| panic!("{}: {e}", s.name));
                    seen += 1;
                }
            }
        }
    }
    assert!(seen >= 3, "only {seen} accepted uploads found");
}

fn vcs_info() -> impl Strategy<Value = Map<String, Value>> {
    (
        proptest::option::of("[a-z:/.]{1,20}"),
        proptest::option::of("[a-z/]{0,8}"),
        proptest::option::of(prop_oneof![Just("git"), Just("bzr"), Just("hg")]),
    )
        .prop_map(|(url, subpath, vcs)| {
            let mut m = Map::new();
            if let Some(u) = url {
                m.insert("branch_url".into(), json!(u));
            }
            if let Some(s) = subpath {
                m.insert("subpath".into(), json!(s));
            }
            if let Some(v) = vcs {
                m.insert("vcs_type".into(), json!(v));
            }
            m
        })
}

proptest! {
    #[test]
    fn active_runs_round_trip(
        queue_id in 1i64..i64::from(i32::MAX),
        codebase in proptest::option::of("[a-z0-9-]{1,12}"),
        change_set in proptest::option::of("[a-z0-9-]{1,12}"),
        campaign in "[a-z-]{1,12}",
        command in "\\PC{0,20}",
        estimated in proptest::option::of(1u32..100_000),
        micros in 0u32..1_000_000,
        worker in proptest::option::of("[a-z0-9]{1,8}"),
        vcs in vcs_info(),
        backchannel in 0u8..3,
        context in proptest::option::of("\\PC{0,10}"),
    ) {
        let start = parse_naive("2026-01-01T00:00:00").unwrap() + chrono::Duration::microseconds(micros.into());
        let run = ActiveRun {
            queue_id,
            log_id: uuid::Uuid::new_v4().to_string(),
            codebase,
            change_set,
            campaign,
            command,
            estimated_duration: estimated.map(f64::from),
            start_time: start,
            worker_name: worker,
            worker_link: None,
            vcs_info: vcs,
            backchannel: match backchannel {
                0 => janitor_runner::types::Backchannel::None,
                1 => janitor_runner::types::Backchannel::Polling { my_url: "http://w/".into() },
                _ => janitor_runner::types::Backchannel::Jenkins { my_url: "http://j/1/".into() },
            },
            instigated_context: context.map(Value::String).unwrap_or(Value::Null),
            resume_from: None,
        };
        // Through the bytes Redis holds, and back.
        let text = janitor_runner::py::json::to_string(&run.to_json(&start));
        let back = ActiveRun::from_json(&serde_json::from_str(&text).unwrap()).unwrap();
        prop_assert_eq!(back, run);
    }

    #[test]
    fn python_json_bytes_are_valid_json_with_the_same_value(
        v in proptest::arbitrary::any::<u8>().prop_flat_map(|_| arb_json())
    ) {
        let text = janitor_runner::py::json::to_string(&v);
        prop_assert!(text.is_ascii(), "json.dumps escapes non-ASCII: {}", text);
        let back: Value = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(back, v);
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        (-1e12f64..1e12).prop_map(|f| json!(f)),
        "\\PC{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(("[a-zé]{1,5}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}
