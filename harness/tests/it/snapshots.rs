//! Snapshots (insta) of what developers read: the replay report and its
//! difference rendering (text and JSON), ledger error messages and the
//! harness's `--help`. Review changes with `cargo insta review`.

use janitor_harness::check::check;
use janitor_harness::ledger::{Ledger, Pending};
use janitor_harness::report::{closing_line, json_report, scenario_lines, summarize};
use janitor_harness::scenario::Scenario;
use janitor_harness::target::TargetSpec;
use serde_json::json;

/// A real replay of a golden whose recording was altered in two places, so
/// the runner's true answers differ from it; one step is also ledgered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_of_a_failing_replay() {
    let dir = janitor_harness::golden_dir();
    let mut s = Scenario::load(&dir.join("queue-position.json")).unwrap();
    let passing = {
        let ledger = Ledger::load(&dir.join("divergences.toml")).unwrap();
        let pending = Pending::load(&dir.join("pending.toml")).unwrap();
        check(&s, &TargetSpec::InProcess, &ledger, &pending).await
    };
    s.steps[1].response.as_mut().unwrap()["json"]["queue_id"] = json!(99);
    s.db_after.as_mut().unwrap()["codebase"][0]["value"] = json!(5);
    let ledger = Ledger::load(&dir.join("divergences.toml")).unwrap();
    let pending = Pending::load(&dir.join("pending.toml")).unwrap();
    let failing = check(&s, &TargetSpec::InProcess, &ledger, &pending).await;
    let outcomes = [passing, failing];
    let summary = summarize(&outcomes, 0);
    let text = format!(
        "{}{}{}\n",
        scenario_lines(&outcomes[0]),
        scenario_lines(&outcomes[1]),
        closing_line(&summary)
    );
    insta::assert_snapshot!(text);
    let report = json_report(&outcomes, &summary, &[]);
    insta::assert_json_snapshot!(report, {
        ".scenarios[].setup_ms" => "[ms]",
        ".scenarios[].total_ms" => "[ms]",
        ".route_latency.*.median_ms" => "[ms]",
    });
}

/// Each way a ledger is refused at load, with its message.
#[test]
fn ledger_error_messages() {
    let entry = |extra: &str| {
        format!(
            "[[divergence]]\nid = \"e\"\nmethod = \"GET\"\nroute = \"/x\"\ngolden_status = 500\nreason = \"r\"\ndiffers = [\"response\"]\n{extra}"
        )
    };
    let cases = [
        ("not TOML", "[[divergence]\n".to_string()),
        ("duplicate id", format!("{}{}", entry(""), entry(""))),
        (
            "unknown kind",
            entry("[[divergence.request_when]]\npath = \"json\"\nis = \"strnig\"\n"),
        ),
        (
            "bad regex",
            entry("[[divergence.request_when]]\npath = \"json\"\nmatches = \"(\"\n"),
        ),
        ("unknown worker condition", entry("worker = \"someone\"\n")),
        ("unknown field", entry("colour = \"red\"\n")),
        (
            "bad later path",
            entry("").replace("[\"response\"]", "[\"later[x].response\"]"),
        ),
        (
            "no path",
            entry("").replace("differs = [\"response\"]\n", ""),
        ),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("divergences.toml");
    let mut out = String::new();
    for (what, text) in cases {
        std::fs::write(&path, &text).unwrap();
        let msg = match Ledger::load(&path) {
            Ok(_) => "(accepted)".to_string(),
            Err(e) => format!("{e:#}").replace(&path.display().to_string(), "<ledger>"),
        };
        out.push_str(&format!("{what}:\n  {msg}\n"));
    }
    insta::assert_snapshot!(out);
}

#[test]
fn harness_help() {
    let help = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_janitor-harness"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let mut text = help(&["--help"]);
    for sub in ["replay", "record", "diff", "load", "fuzz"] {
        text.push_str(&format!("\n=== {sub} --help ===\n"));
        text.push_str(&help(&[sub, "--help"]));
    }
    insta::assert_snapshot!(text);
}
