//! The binary takes the Python runner's command line.

use std::process::Command;

fn runner() -> Command {
    Command::new(env!("CARGO_BIN_EXE_janitor-runner"))
}

#[test]
fn a_missing_config_is_a_usage_error_naming_the_path() {
    let out = runner()
        .args([
            "--config",
            "/nonexistent/janitor.conf",
            "--public-vcs-location",
            "/tmp/x",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("config path /nonexistent/janitor.conf does not exist"),
        "{err}"
    );
}

#[test]
fn public_vcs_location_is_required() {
    let out = runner().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--public-vcs-location"));
}

#[test]
fn every_python_flag_is_accepted() {
    let out = runner().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--port",
        "--public-port",
        "--listen-address",
        "--config",
        "--pre-check",
        "--post-check",
        "--use-cached-only",
        "--backup-directory",
        "--public-apt-archive-location",
        "--public-dep-server-url",
        "--public-vcs-location",
        "--run-timeout",
        "--avoid-host",
        "--gcp-logging",
        "--debug",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn a_config_without_database_location_is_refused_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("janitor.conf");
    std::fs::write(&conf, "committer: \"x\"\n").unwrap();
    let out = runner()
        .args([
            "--config",
            conf.to_str().unwrap(),
            "--public-vcs-location",
            "/tmp/x",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("janitor.conf") && err.contains("database_location"),
        "{err}"
    );
}
