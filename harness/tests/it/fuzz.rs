//! The differential fuzzer against a runner with one deliberate difference
//! (our binary started with `--public-dep-server-url`, which changes every
//! assignment's `build.config.dep_server_url`): it finds it, shrinks it to
//! at most 3 steps and writes a scenario that `replay --target` reproduces.
//! (Two runners that agree: `ci/diff-python` with our runner standing in for
//! Python fuzzes 200 sequences in `ci/test`.)

use janitor_harness::check::{check, Status};
use janitor_harness::fuzz::{self, Options};
use janitor_harness::ledger::{Ledger, Pending};
use janitor_harness::scenario::Scenario;
use janitor_harness::target::TargetSpec;
use std::time::Duration;

fn binary(extra: &str) -> TargetSpec {
    TargetSpec::Command {
        cmd: format!(
            "{} --config {{config}} --port {{port}} --public-port {{public_port}} \
             --listen-address 127.0.0.1 --public-vcs-location {{vcs}} --run-timeout {{run_timeout}} \
             {{avoid_hosts}} --no-watchdog {extra}",
            janitor_harness::testing::runner_binary().display()
        ),
        settle: Duration::from_millis(200),
        step_settle: Some(Duration::from_millis(200)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deliberate_difference_is_found_shrunk_and_reproduced() {
    let changed = binary("--public-dep-server-url http://dep.example/");
    let out = tempfile::tempdir().unwrap();
    let opts = Options {
        sequences: 12,
        seed: 3,
        max_steps: 5,
        out: Some(out.path().to_path_buf()),
        jobs: 4,
    };
    let ledger = Ledger::default();
    let report = fuzz::run(&TargetSpec::InProcess, &changed, &ledger, &opts)
        .await
        .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(!report.findings.is_empty(), "{}", report.closing_line());
    assert!(out.path().join("fuzz-report.json").exists());
    for f in &report.findings {
        assert!(f.scenario.steps.len() <= 3, "{f:?}");
        assert!(
            f.differences
                .iter()
                .any(|d| d.path.ends_with("build.config.dep_server_url")),
            "{:?}",
            f.differences
        );
        // The written scenario holds A's answers: the runner with the
        // difference fails it, a runner without passes it.
        let s = Scenario::load(f.file.as_ref().unwrap()).unwrap();
        let pending = Pending::default();
        let b = check(&s, &changed, &ledger, &pending).await;
        assert!(matches!(b.status, Status::Failed), "{:?}", b.verdict);
        let a = check(&s, &binary(""), &ledger, &pending).await;
        assert!(matches!(a.status, Status::Passed), "{:?}", a.verdict);
    }
    // Deterministic for a seed: the same sequences again find the same.
    let again = fuzz::run(
        &TargetSpec::InProcess,
        &changed,
        &ledger,
        &Options { out: None, ..opts },
    )
    .await
    .unwrap();
    assert_eq!(again.differing, report.differing);
    let names = |r: &fuzz::Report| {
        r.findings
            .iter()
            .map(|f| f.sequence.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&again), names(&report));
}

/// A runner that differs only on every other start (as a race with
/// background work does) is not reported: a difference counts only when B
/// shows it again on a second run. The same sequence against a runner that
/// always differs is reported (the control).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_difference_b_does_not_repeat_is_not_reported() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("alternating.sh");
    let runner = janitor_harness::testing::runner_binary();
    std::fs::write(
        &script,
        format!(
            "n=$(cat '{count}' 2>/dev/null || echo 0); n=$((n + 1)); echo $n > '{count}'\n\
             if [ $((n % 2)) = 1 ]; then exec '{bin}' \"$@\" --public-dep-server-url http://dep.example/; fi\n\
             exec '{bin}' \"$@\"\n",
            count = dir.path().join("count").display(),
            bin = runner.display()
        ),
    )
    .unwrap();
    let args = "--config {config} --port {port} --public-port {public_port} \
                --listen-address 127.0.0.1 --public-vcs-location {vcs} --run-timeout {run_timeout} \
                {avoid_hosts} --no-watchdog";
    let alternating = TargetSpec::Command {
        cmd: format!("sh '{}' {args}", script.display()),
        settle: Duration::from_millis(200),
        step_settle: Some(Duration::from_millis(200)),
    };
    let s =
        Scenario::load(&janitor_harness::golden_dir().join("assign-codebase-filter.json")).unwrap();
    let ledger = Ledger::default();
    let a = TargetSpec::InProcess;
    let (_, diffs) = fuzz::compare(&s, &a, &alternating, &ledger).await.unwrap();
    assert!(diffs.is_empty(), "{diffs:?}");
    let always = binary("--public-dep-server-url http://dep.example/");
    let (_, diffs) = fuzz::compare(&s, &a, &always, &ledger).await.unwrap();
    assert!(
        diffs
            .iter()
            .any(|d| d.path.ends_with("build.config.dep_server_url")),
        "{diffs:?}"
    );
}
