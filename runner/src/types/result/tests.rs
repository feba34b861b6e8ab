use super::*;
use serde_json::json;

fn ts(s: &str) -> NaiveDateTime {
    parse_naive(s).unwrap()
}

#[test]
fn worker_times_accept_rfc3339_and_naive_forms() {
    let t = WorkerTime::parse("2026-11-22T15:37:58.138703466Z").unwrap();
    assert_eq!(t.utc(), ts("2026-11-22T15:37:58.138703"));
    assert_eq!(t.isoformat(), "2026-11-22T15:37:58.138703+00:00");
    let t = WorkerTime::parse("2020-02-02T12:10:30+02:00").unwrap();
    assert_eq!(t.utc(), ts("2020-02-02T10:10:30"));
    assert_eq!(t.isoformat(), "2020-02-02T12:10:30+02:00");
    let t = WorkerTime::parse("2020-02-02T05:10:30.5-0500").unwrap();
    assert_eq!(t.utc(), ts("2020-02-02T10:10:30.5"));
    let t = WorkerTime::parse("2020-02-02T10:10:30").unwrap();
    assert_eq!(
        (t.offset, t.isoformat().as_str()),
        (None, "2020-02-02T10:10:30")
    );
    assert!(WorkerTime::parse("yesterday").is_none());
    assert!(WorkerTime::parse("2020-02-02T10:10:30+25:00").is_none());
}

fn minimal() -> Value {
    json!({"start_time": "2020-02-02T10:00:00", "finish_time": "2020-02-02T10:10:30"})
}

fn with(extra: Value) -> Value {
    let mut v = minimal();
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    v
}

#[test]
fn absent_or_null_code_is_a_success() {
    assert_eq!(WorkerResult::from_json(&minimal()).unwrap().code, None);
    assert_eq!(
        WorkerResult::from_json(&with(json!({"code": null})))
            .unwrap()
            .code,
        None
    );
    let r = WorkerResult::from_json(&with(json!({"code": "build-failed"}))).unwrap();
    assert_eq!(r.code.as_deref(), Some("build-failed"));
}

#[test]
fn values_too_long_for_their_index_are_refused() {
    let long = "x".repeat(MAX_INDEXED_TEXT + 1);
    for field in ["code", "stage", "revision", "main_branch_revision"] {
        let err = WorkerResult::from_json(&with(json!({ field: long }))).unwrap_err();
        assert!(err.0.contains(field), "{field}: {}", err.0);
    }
    let ok = "x".repeat(MAX_INDEXED_TEXT);
    assert!(WorkerResult::from_json(&with(json!({"code": ok}))).is_ok());
    assert!(WorkerResult::from_slice(br#"{"start_time": "2020-02-02T10:00:00", "finish_time": "2020-02-02T10:00:00", "description": "a\u0000b"}"#).is_err());
}

#[test]
fn request_errors_are_refused_while_parsing() {
    let bad = [
        json!({"start_time": "2020-02-02T10:00:00"}),
        json!([1]),
        with(json!({"context": {"applied": ["x"]}})),
        with(json!({"target": {"name": "rpm", "details": {}}})),
        with(json!({"target": {"details": {}}})),
        with(json!({"vcs_type": "cvsnt"})),
        with(json!({"tags": [["v1", null]]})),
        with(json!({"branches": [["main", null, "a", "b"], ["main", null, "c", "d"]]})),
        with(json!({"value": "many"})),
        with(json!({"finish_time": "2020-02-02T09:00:00"})),
    ];
    for b in bad {
        assert!(WorkerResult::from_json(&b).is_err(), "{b}");
    }
    let e = WorkerResult::from_json(&with(json!({"target": {"name": "rpm", "details": {}}})));
    assert_eq!(e.unwrap_err().0, "unsupported build target 'rpm'");
}

#[test]
fn values_follow_python_int_and_truthiness() {
    let r = WorkerResult::from_json(&with(json!({"value": 4.9}))).unwrap();
    assert_eq!(r.value, Some(4));
    let r = WorkerResult::from_json(&with(json!({"value": "12"}))).unwrap();
    assert_eq!(r.value, Some(12));
    let r = WorkerResult::from_json(&with(json!({"value": 0}))).unwrap();
    assert_eq!(r.value, None);
}

#[test]
fn any_queue_id_python_int_takes_is_accepted() {
    // Unused upstream, where `int()` takes any number or bool: refusing one
    // would lose the result.
    for (v, want) in [
        (json!(7), 7),
        (json!(1.5), 1),
        (json!(3.0), 3),
        (json!(true), 1),
        (json!(-0), 0),
        // int(1e30) in Python too.
        (json!(1e30), 1_000_000_000_000_000_019_884_624_838_656),
        (json!(9223372036854775808u64), 9_223_372_036_854_775_808),
    ] {
        let r = WorkerResult::from_json(&with(json!({ "queue_id": v.clone() })))
            .unwrap_or_else(|e| panic!("queue_id {v}: {e:?}"));
        assert_eq!(r.queue_id, Some(want), "queue_id {v}");
    }
    // `int(None)` and `int([])` raise.
    assert!(WorkerResult::from_json(&with(json!({"queue_id": null}))).is_err());
    assert!(WorkerResult::from_json(&with(json!({"queue_id": []}))).is_err());
}

#[test]
fn value_strings_follow_python_int() {
    for (v, want) in [(" 4_2 ", 42), ("\u{665}", 5), ("0", 0)] {
        let r = WorkerResult::from_json(&with(json!({ "value": v }))).unwrap();
        assert_eq!(r.value, Some(want), "value {v:?}");
    }
    // ValueError upstream (a 500 after the logs are stored): refused here.
    for v in ["_5", "5_", "5__0", "5.0", "2147483648"] {
        assert!(
            WorkerResult::from_json(&with(json!({ "value": v }))).is_err(),
            "value {v:?}"
        );
    }
    let r = WorkerResult::from_json(&with(json!({"queue_id": "1_0"}))).unwrap();
    assert_eq!(r.queue_id, Some(10));
}

#[test]
fn times_with_surrounding_whitespace_are_refused() {
    // `datetime.fromisoformat(" 2020-…")` raises.
    assert!(WorkerTime::parse(" 2020-02-02T10:10:30").is_none());
    assert!(WorkerTime::parse("2020-02-02T10:10:30\n").is_none());
    let padded = with(json!({"start_time": " 2020-02-02T10:00:00"}));
    assert!(WorkerResult::from_json(&padded).is_err());
}

fn run() -> ActiveRun {
    let mut vcs = Map::new();
    vcs.insert("vcs_type".into(), json!("git"));
    ActiveRun {
        queue_id: 1,
        log_id: "run-1".into(),
        codebase: Some("fin".into()),
        change_set: None,
        campaign: "scratch".into(),
        command: "true".into(),
        estimated_duration: None,
        start_time: ts("2020-02-02T09:00:00"),
        worker_name: Some("w1".into()),
        worker_link: None,
        vcs_info: vcs,
        backchannel: crate::types::Backchannel::None,
        instigated_context: Value::Null,
        resume_from: Some("old".into()),
    }
}

#[test]
fn json_matches_the_pinned_example_key_order_and_values() {
    let w = WorkerResult::from_json(&with(json!({
        "branches": [["main", null, "git-v1:a", ""]],
        "tags": [["v1.0", "git-v1:c"]],
        "refreshed": true,
        "target": {"name": "generic", "details": {}}
    })))
    .unwrap();
    let r = JanitorResult::from_worker(&run(), w, vec!["worker.log".into()]);
    let j = r.to_json();
    let keys: Vec<&str> = j.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "codebase",
            "campaign",
            "change_set",
            "log_id",
            "description",
            "code",
            "failure_details",
            "failure_stage",
            "duration",
            "finish_time",
            "start_time",
            "transient",
            "target",
            "logfilenames",
            "codemod",
            "value",
            "remotes",
            "branch_url",
            "resume",
            "branches",
            "tags",
            "revision",
            "main_branch_revision"
        ]
    );
    assert_eq!(crate::py::json::to_string(&j["duration"]), "630.0");
    assert_eq!(j["code"], "success");
    assert_eq!(j["resume"], Value::Null);
    assert_eq!(j["branches"], json!([["main", null, "git-v1:a", null]]));
    assert_eq!(j["tags"], json!([["v1.0", "git-v1:c"]]));
    assert_eq!(j["target"], json!({"name": "generic", "details": {}}));
}

#[test]
fn a_debian_result_without_changes_serialises_as_empty_target() {
    let w = WorkerResult::from_json(&with(json!({
        "target": {"name": "debian", "details": {"lintian": {"tags": []}}}
    })))
    .unwrap();
    let r = JanitorResult::from_worker(&run(), w, vec![]);
    assert_eq!(r.to_json()["target"], json!({}));
    assert_eq!(r.to_json()["resume"], json!({"run_id": "old"}));
}

#[test]
fn aborted_results_carry_no_worker_data() {
    let r = JanitorResult::aborted(
        &run(),
        "worker-timeout",
        Some("x".into()),
        Some(true),
        ts("2020-02-02T10:00:00"),
    );
    let j = r.to_json();
    assert_eq!(j["remotes"], json!({}));
    assert_eq!(j["resume"], Value::Null);
    assert_eq!(j["duration"], json!(3600.0));
    assert_eq!(r.vcs_type.as_deref(), Some("git"));
}
