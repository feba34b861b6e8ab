//! Black-box recording: `record` against our own binary (started with the
//! Python runner's flags and a janitor.conf) writes goldens that replay
//! cleanly in process, and `diff` of two live runners finds no difference.

use janitor_harness::check::judge;
use janitor_harness::ledger::Ledger;
use janitor_harness::record::{diff_targets, record, to_golden_json};
use janitor_harness::scenario::Scenario;
use janitor_harness::target::TargetSpec;
use std::time::Duration;

fn binary_target() -> TargetSpec {
    TargetSpec::Command {
        cmd: format!(
            "{} --config {{config}} --port {{port}} --public-port {{public_port}} \
             --listen-address 127.0.0.1 --public-vcs-location {{vcs}} --run-timeout {{run_timeout}} {{avoid_hosts}}",
            janitor_harness::testing::runner_binary().display()
        ),
        settle: Duration::from_millis(200),
        step_settle: None,
    }
}

/// A golden with its recorded outputs removed: a scenario input.
fn input(name: &str) -> Scenario {
    let mut s =
        Scenario::load(&janitor_harness::golden_dir().join(format!("{name}.json"))).unwrap();
    for step in &mut s.steps {
        step.response = None;
    }
    s.db_after = None;
    s.redis_after = None;
    s.files_after = None;
    s.fake_worker_requests = None;
    s
}

#[tokio::test]
async fn recording_our_binary_round_trips_through_replay() {
    let ledger = Ledger::default();
    for name in ["health", "wrong-method", "public-root-and-unknown"] {
        let recorded = record(&input(name), &binary_target()).await.unwrap();
        assert!(recorded.is_recorded());
        // Written and read back as a golden file.
        let text = to_golden_json(&recorded).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(&path, text).unwrap();
        let reloaded = Scenario::load(&path).unwrap();
        let replayed = janitor_harness::replay::run(&reloaded, &TargetSpec::InProcess)
            .await
            .unwrap();
        let verdict = judge(&reloaded, &replayed.doc, &ledger);
        assert!(verdict.passed(), "{name}: {:?}", verdict.unexplained);
        // And what our binary answers is what the Python runner answered.
        let python =
            Scenario::load(&janitor_harness::golden_dir().join(format!("{name}.json"))).unwrap();
        for (ours, theirs) in reloaded.steps.iter().zip(&python.steps) {
            assert_eq!(ours.response, theirs.response, "{name}");
        }
    }
}

#[tokio::test]
async fn diff_of_two_live_runners_is_empty_for_the_same_code() {
    let diffs = diff_targets(
        &input("unknown-path"),
        &binary_target(),
        &TargetSpec::InProcess,
    )
    .await
    .unwrap();
    assert!(diffs.is_empty(), "{diffs:?}");
}

#[tokio::test]
async fn diff_reports_a_runner_that_answers_differently() {
    // A "runner" that is not one: a plain HTTP server answering 200 to everything
    // would differ; use our binary against the in-process runner on a scenario
    // whose recorded request we alter for one side only.
    let mut other = input("health");
    other.steps[0].request["path"] = serde_json::json!("/nonexistent");
    let a = janitor_harness::replay::run(&input("health"), &binary_target())
        .await
        .unwrap();
    let b = janitor_harness::replay::run(&other, &TargetSpec::InProcess)
        .await
        .unwrap();
    let diffs = janitor_harness::compare::compare_outputs(&a.doc, &b.doc);
    assert!(
        diffs.iter().any(|d| d.path == "steps[0].response.status"),
        "{diffs:?}"
    );
}

/// An external target's process dies with its guard: a scenario step that
/// fails (an early return) leaves no runner behind.
#[test]
fn a_dropped_target_process_is_killed() {
    let child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    drop(janitor_harness::target::ChildGuard::new(child));
    // Reaped, so the pid no longer names a process (or zombie) of ours.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    assert!(!alive, "pid {pid} still exists");
}

/// `diff` reports a scenario it cannot run and goes on with the next one,
/// then summarises; the exit code says something went wrong.
#[test]
fn diff_goes_on_past_a_scenario_that_cannot_run() {
    let golden = janitor_harness::golden_dir();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_janitor-harness"))
        .args(["diff", "--target", "in-process", "--target", "false"])
        .arg(golden.join("health.json"))
        .arg(golden.join("unknown-path.json"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches(" ERROR ").count(), 2, "{text}");
    assert!(text.contains("0 same, 0 differ, 2 errors"), "{text}");
    assert!(!out.status.success());
}

/// A target that fails to start (as when a parallel job took its port) is
/// started again on other ports: here the first start exits at once.
#[tokio::test]
async fn a_target_that_exits_at_start_is_started_again() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("first-start");
    let cmd = format!(
        "sh -c 'if [ -e {m} ]; then exec {runner} --config {{config}} --port {{port}} \
         --public-port {{public_port}} --listen-address 127.0.0.1 --public-vcs-location {{vcs}}; \
         else touch {m}; exit 1; fi'",
        m = marker.display(),
        runner = janitor_harness::testing::runner_binary().display()
    );
    let target = TargetSpec::Command {
        cmd,
        settle: Duration::from_millis(200),
        step_settle: None,
    };
    let recorded = record(&input("health"), &target).await.unwrap();
    assert!(recorded.is_recorded());
    assert!(marker.exists());
}
