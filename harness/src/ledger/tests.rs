use super::*;
use serde_json::json;

fn scenario(steps: Value) -> Scenario {
    serde_json::from_value(json!({"name": "t", "steps": steps, "db_after": {}})).unwrap()
}

fn queue_entry() -> Divergence {
    toml::from_str::<Ledger>(
        r#"
[[divergence]]
id = "queue-500"
method = "GET"
route = "/queue"
golden_status = 500
differs = ["response"]
expect = [{ path = "status", equals = 200 }, { path = "json", is = "array" }]
reason = "upstream awaits an async generator"
"#,
    )
    .unwrap()
    .divergence
    .remove(0)
}

#[test]
fn multipart_requests_are_matched_on_their_result_json() {
    let entry: Divergence = toml::from_str::<Ledger>(
        r#"
[[divergence]]
id = "finish-context"
method = "POST"
route = "/active-runs/{run_id}/finish"
request_when = [{ path = "context", is = "object" }]
golden_status = 500
differs = ["response"]
reason = "r"
"#,
    )
    .unwrap()
    .divergence
    .remove(0);
    let step = |ctx: Value| {
        scenario(
            json!([{"request": {"method": "POST", "path": "/active-runs/<uuid:1>/finish",
                "multipart": [{"name": "f", "filename": "result.json", "json": {"context": ctx}},
                              {"name": "w", "filename": "worker.log", "text": "x"}]},
                "response": {"status": 500, "text": "500"}}]),
        )
    };
    assert!(entry.applies(&step(json!({"a": 1})), 0));
    assert!(!entry.applies(&step(json!("text")), 0));
}

#[test]
fn routes_match_segment_patterns() {
    assert!(route_matches(
        "/active-runs/{id}/finish",
        "/active-runs/<uuid:1>/finish"
    ));
    assert!(!route_matches(
        "/active-runs/{id}/finish",
        "/active-runs/finish"
    ));
    assert!(!route_matches("/queue", "/queue/"));
}

#[test]
fn a_ledgered_difference_passes_when_we_answer_as_promised() {
    let ledger = Ledger {
        divergence: vec![queue_entry()],
        ..Default::default()
    };
    let s = scenario(
        json!([{"request": {"method": "GET", "path": "/queue"}, "response": {"status": 500, "text": "500"}}]),
    );
    let ours = json!({"steps": [{"response": {"status": 200, "json": []}}]});
    let diffs = crate::compare::compare_outputs(
        &json!({"steps": [{"response": s.steps[0].response}]}),
        &ours,
    );
    let v = ledger.judge(&s, &ours, diffs);
    assert!(v.passed(), "{v:?}");
    assert!(!v.ledgered.is_empty());
}

#[test]
fn a_broken_promise_fails() {
    let ledger = Ledger {
        divergence: vec![queue_entry()],
        ..Default::default()
    };
    let s = scenario(
        json!([{"request": {"method": "GET", "path": "/queue"}, "response": {"status": 500, "text": "500"}}]),
    );
    let ours = json!({"steps": [{"response": {"status": 404, "text": "no"}}]});
    let diffs = crate::compare::compare_outputs(
        &json!({"steps": [{"response": s.steps[0].response}]}),
        &ours,
    );
    let v = ledger.judge(&s, &ours, diffs);
    assert!(!v.passed());
    assert!(v.ledger_errors.iter().any(|e| e.contains("promises")));
}

#[test]
fn an_entry_whose_difference_vanished_fails() {
    let ledger = Ledger {
        divergence: vec![queue_entry()],
        ..Default::default()
    };
    let s = scenario(
        json!([{"request": {"method": "GET", "path": "/queue"}, "response": {"status": 500, "text": "500"}}]),
    );
    let ours = json!({"steps": [{"response": {"status": 500, "text": "500"}}]});
    let v = ledger.judge(&s, &ours, vec![]);
    assert!(!v.passed());
    assert!(v
        .ledger_errors
        .iter()
        .any(|e| e.contains("nothing differs")));
}

/// Recordings of another runner (`replay --reference-may-agree`): that it
/// answers as we do is no error; a promise about our answer still is.
#[test]
fn a_reference_may_agree_with_us_but_promises_still_hold() {
    let ledger = Ledger {
        divergence: vec![queue_entry()],
        reference_may_agree: true,
    };
    let s = scenario(
        json!([{"request": {"method": "GET", "path": "/queue"}, "response": {"status": 500, "text": "500"}}]),
    );
    let ours = json!({"steps": [{"response": {"status": 500, "text": "500"}}]});
    let v = ledger.judge(&s, &ours, vec![]);
    assert!(
        !v.ledger_errors
            .iter()
            .any(|e| e.contains("nothing differs")),
        "{v:?}"
    );
    let promised = !queue_entry().expect.is_empty();
    assert_eq!(v.passed(), !promised, "{v:?}");
}

#[test]
fn differences_outside_the_entry_stay_unexplained() {
    let ledger = Ledger {
        divergence: vec![queue_entry()],
        ..Default::default()
    };
    let s = scenario(
        json!([{"request": {"method": "GET", "path": "/queue"}, "response": {"status": 500, "text": "500"}}]),
    );
    let ours = json!({"steps": [{"response": {"status": 200, "json": []}}]});
    let mut diffs = crate::compare::compare_outputs(
        &json!({"steps": [{"response": s.steps[0].response}]}),
        &ours,
    );
    diffs.push(Difference {
        path: "db_after.queue[0]".into(),
        expected: None,
        actual: Some(json!({})),
    });
    let v = ledger.judge(&s, &ours, diffs);
    assert_eq!(v.unexplained.len(), 1);
    assert!(!v.passed());
}

#[test]
fn a_superset_entry_allows_extra_rows_but_not_changed_ones() {
    let ledger: Ledger = toml::from_str(
        r#"
[[divergence]]
id = "keep-all"
method = "POST"
route = "/codebases"
golden_status = 200
superset = ["db_after.codebase"]
reason = "we keep every row"
"#,
    )
    .unwrap();
    let s: Scenario = serde_json::from_value(json!({"name": "t", "steps": [
            {"request": {"method": "POST", "path": "/codebases"}, "response": {"status": 200}}],
            "db_after": {"codebase": [{"name": "c3"}]}}))
    .unwrap();
    let golden = crate::scenario::golden_outputs(&s);
    let judge = |ours: Value| {
        let diffs = crate::compare::compare_outputs(&golden, &ours);
        ledger.judge(&s, &ours, diffs)
    };
    let more = json!({"steps": [{"response": {"status": 200}}], "db_after": {"codebase": [{"name": "c1"}, {"name": "c3"}]}});
    assert!(judge(more).passed());
    let changed = json!({"steps": [{"response": {"status": 200}}], "db_after": {"codebase": [{"name": "c1"}, {"name": "c4"}]}});
    assert!(!judge(changed).passed());
    let same = json!({"steps": [{"response": {"status": 200}}], "db_after": {"codebase": [{"name": "c3"}]}});
    assert!(!judge(same).passed());
}

#[test]
fn unused_entries_are_reported() {
    let ledger = Ledger {
        divergence: vec![queue_entry()],
        ..Default::default()
    };
    let s = scenario(
        json!([{"request": {"method": "GET", "path": "/health"}, "response": {"status": 200}}]),
    );
    assert_eq!(ledger.unused(&[s]), vec!["queue-500"]);
}

#[test]
fn lookup_follows_dots_and_indices() {
    let v = json!({"a": {"b": [1, {"c": 2}]}});
    assert_eq!(lookup(&v, "a.b[1].c"), Some(&json!(2)));
    assert_eq!(lookup(&v, "a.x"), None);
}

/// Issue 15 item 5: each entry matches its cause only. Steps of other
/// causes that share route and recorded status must not match it.
#[test]
fn entries_match_only_their_cause_in_the_recordings() {
    let ledger = Ledger::load(&crate::golden_dir().join("divergences.toml")).unwrap();
    let entry = |id: &str| {
        ledger
            .divergence
            .iter()
            .find(|d| d.id == id)
            .unwrap_or_else(|| panic!("no entry {id}"))
    };
    let golden =
        |name: &str| Scenario::load(&crate::golden_dir().join(format!("{name}.json"))).unwrap();
    let cases: &[(&str, &str, usize, bool)] = &[
        // The unregistered-worker 500 vs a too-long upload name and Z times.
        (
            "finish-unregistered-worker-stored",
            "finish-unregistered-worker",
            1,
            true,
        ),
        (
            "finish-unregistered-worker-stored",
            "finish-long-upload-filename",
            1,
            false,
        ),
        (
            "finish-unregistered-worker-stored",
            "finish-result-without-code",
            1,
            false,
        ),
        (
            "finish-name-too-long-400",
            "finish-long-upload-filename",
            1,
            true,
        ),
        (
            "finish-name-too-long-400",
            "finish-unregistered-worker",
            1,
            false,
        ),
        (
            "finish-zoned-times-accepted",
            "finish-result-without-code",
            1,
            true,
        ),
        (
            "finish-zoned-times-accepted",
            "finish-unregistered-worker",
            1,
            false,
        ),
        // Malformed codebases vs the empty list.
        (
            "codebases-upload-malformed-400",
            "codebases-empty-list",
            0,
            false,
        ),
        (
            "codebases-upload-malformed-400",
            "codebases-upload-malformed",
            0,
            true,
        ),
        ("codebases-empty-list-200", "codebases-empty-list", 0, true),
        (
            "codebases-empty-list-200",
            "codebases-upload-malformed",
            0,
            false,
        ),
        // A retry of a stored run vs a finish of an unknown run.
        (
            "finish-retry-answers-stored",
            "finish-retried-after-success",
            2,
            true,
        ),
        (
            "finish-retry-answers-stored",
            "finish-unknown-run",
            0,
            false,
        ),
        // Another worker's finish vs the run's own worker.
        (
            "public-finish-by-other-worker-403",
            "public-finish-by-other-worker",
            1,
            true,
        ),
        (
            "public-finish-by-other-worker-403",
            "public-finish-good-creds",
            1,
            false,
        ),
        // NUL in credentials vs other malformed worker-facing assigns.
        ("nul-in-credentials-401", "nul-characters", 0, true),
        ("public-assign-malformed-400", "nul-characters", 0, false),
        (
            "public-assign-malformed-400",
            "public-malformed-bodies",
            0,
            true,
        ),
        (
            "public-assign-malformed-400",
            "public-assign-campaign-filter",
            0,
            false,
        ),
        // The unregistered worker's abort vs the campaign filter's 500.
        (
            "assign-abort-unregistered-worker-goes-on",
            "assign-abort-unregistered-worker-other",
            0,
            true,
        ),
        (
            "assign-abort-unregistered-worker-goes-on",
            "assign-campaign-filter",
            0,
            false,
        ),
        // A log of a run without a backchannel vs one the worker lacks.
        ("log-file-no-backchannel-501", "log-no-backchannel", 2, true),
        (
            "log-file-no-backchannel-501",
            "log-index-and-download",
            3,
            false,
        ),
        (
            "log-file-missing-on-worker-404",
            "log-index-and-download",
            3,
            true,
        ),
        (
            "log-file-missing-on-worker-404",
            "log-no-backchannel",
            2,
            false,
        ),
        // A non-http backchannel vs an http one.
        (
            "public-backchannel-scheme-400",
            "public-assign-backchannel-urls",
            2,
            true,
        ),
        (
            "public-backchannel-scheme-400",
            "public-assign-backchannel-urls",
            0,
            false,
        ),
    ];
    for (id, name, step, expected) in cases {
        assert_eq!(
            entry(id).applies(&golden(name), *step),
            *expected,
            "{id} at {name} steps[{step}]"
        );
    }
}

#[test]
fn conditions_read_nul_regexes_and_the_raw_request() {
    let nul = Check {
        path: String::new(),
        equals: None,
        is: Some("has-nul".into()),
        matches: None,
    };
    assert!(nul.holds(&json!({"a": ["x\u{0}y"]})));
    assert!(nul.holds(&json!("Basic d29ya2VyLTE6czNjcmV0AA==")));
    assert!(!nul.holds(&json!("Basic d29ya2VyLTE6czNjcmV0")));
    assert!(!nul.holds(&json!({"a": 1})));
    let re = Check {
        path: "t".into(),
        equals: None,
        is: None,
        matches: Some("Z$".into()),
    };
    assert!(re.holds(&json!({"t": "2026-01-01T00:00:00Z"})));
    assert!(!re.holds(&json!({"t": "2026-01-01T00:00:00"})));
    assert!(!re.holds(&json!({"t": 5})));
}
