//! Snapshots (insta) of what operators read: janitor.conf error texts, the
//! `--help` text and the Prometheus exposition. Review changes with
//! `cargo insta review`; CI refuses a snapshot that differs or is missing.

use janitor_runner::config::parse_config;
use janitor_runner::metrics::{Metrics, NONE_LABEL};
use std::fmt::Write;

/// Every kind of janitor.conf error, one line per input: the input (escaped)
/// and the message the runner prints.
#[test]
fn janitor_conf_error_messages() {
    let inputs = [
        "committer: \"x\"\n\ncampain {\n  name: \"y\"\n}\n",
        "campaign {\n  name: \"y\"\n  debian_build {\n    suffix: \"x\"\n  }\n}",
        "bogus \"x\"",
        "campaign {\n  name: \"x\"\n  force_build: yes\n}",
        "campaign { force_build: \"true\" }",
        "committer: unquoted",
        "committer: 12",
        "committer { }",
        "campaign: \"x\"",
        "campaign { merge_proposal { value_threshold: 2147483648 } }",
        "campaign { merge_proposal { value_threshold: 1.5 } }",
        "bugtracker { kind: gitea }",
        "bugtracker { kind: 7 }",
        "committer: \"\\377\"",
        "committer: \"a\"\ncommitter: \"b\"",
        "oauth2_provider {}\noauth2_provider {}",
        "campaign {\n debian_build {}\n generic_build {}\n}",
        "campaign { debian_build {} debian_build {} }",
        "committer: [\"a\"]",
        "campaign {\n  name: \"x\"\n",
        "campaign <\n name: \"x\" }",
        "committer \"x\"",
        "\n  committer: \"abc\n\"",
        "committer: ",
        "committer: \"\\q\"",
        "distribution { component: [\"a\" \"b\" 'c'; ] }",
        "}",
        "[ext.field]: 1",
        "committer: \"a\";;",
    ];
    let mut out = String::new();
    for input in inputs {
        let msg = match parse_config(input) {
            Ok(_) => "(accepted)".to_string(),
            Err(e) => e.to_string(),
        };
        let _ = writeln!(out, "{input:?}\n  => {msg}");
    }
    insta::assert_snapshot!(out);
}

#[test]
fn runner_help() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_janitor-runner"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    insta::assert_snapshot!(String::from_utf8(out.stdout).unwrap());
}

/// The names, help texts, label names and bucket bounds Python's dashboards
/// rely on, after one of each kind of observation.
#[test]
fn prometheus_exposition() {
    let m = Metrics::new();
    m.assignments.with_label_values(&[NONE_LABEL]).inc();
    m.run_count.inc();
    m.build_duration.with_label_values(&["c"]).observe(1.0);
    m.logfile_uploads.inc();
    m.primary_logfile_upload_failed.inc();
    insta::assert_snapshot!(String::from_utf8(m.render()).unwrap());
}
