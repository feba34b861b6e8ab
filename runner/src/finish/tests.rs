use super::*;

#[test]
fn log_filenames_follow_the_upstream_examples() {
    for yes in [
        "foo.log",
        "foo.log.1",
        "foo.1.log",
        "log",
        ".log",
        "foo.log.",
    ] {
        assert!(is_log_filename(yes), "{yes}");
    }
    for no in [
        "foo.1",
        "foo.1.log.1",
        "foo.log.notlog",
        "foo.deb",
        "a.b.log.1",
    ] {
        assert!(!is_log_filename(no), "{no}");
    }
}

const CHANGES: &str = "Format: 1.8\nSource: debpkg\nBinary: debpkg\nVersion: 1.0-1~jan+lint1\n\
Distribution: lintian-fixes\nDescription:\n debpkg - golden package\nFiles:\n \
00000000000000000000000000000000 12 devel optional debpkg_1.0-1~jan+lint1.dsc\n \
00000000000000000000000000000000 8 devel optional debpkg_1.0-1~jan+lint1_all.deb\n";

#[test]
fn changes_files_are_parsed_like_deb822() {
    let c = parse_changes(CHANGES);
    assert_eq!(c.source.as_deref(), Some("debpkg"));
    assert_eq!(c.version.as_deref(), Some("1.0-1~jan+lint1"));
    assert_eq!(c.distribution.as_deref(), Some("lintian-fixes"));
    assert_eq!(
        c.files,
        [
            "debpkg_1.0-1~jan+lint1.dsc",
            "debpkg_1.0-1~jan+lint1_all.deb"
        ]
    );
    let signed = format!(
            "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n{CHANGES}\n-----BEGIN PGP SIGNATURE-----\nxyz\n"
        );
    assert_eq!(parse_changes(&signed), c);
}

#[test]
fn debian_output_lists_artifacts_and_binaries() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("debpkg_1_amd64.changes"), CHANGES).unwrap();
    std::fs::write(dir.path().join("build.log"), "x").unwrap();
    let mut d = DebianResult::default();
    scan_debian_output(dir.path(), &mut d).unwrap();
    assert_eq!(d.binary_packages, Some(vec!["debpkg".to_string()]));
    assert_eq!(
        d.changes_filenames,
        Some(vec!["debpkg_1_amd64.changes".to_string()])
    );
    assert_eq!(
        d.artifact_names,
        [
            "debpkg_1.0-1~jan+lint1.dsc",
            "debpkg_1.0-1~jan+lint1_all.deb",
            "debpkg_1_amd64.changes"
        ]
    );
    let empty = tempfile::tempdir().unwrap();
    let mut d = DebianResult::default();
    scan_debian_output(empty.path(), &mut d).unwrap();
    assert_eq!(d.changes_filenames, None);
}

#[test]
fn changes_files_with_nul_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.changes"),
        CHANGES.replace("Source: debpkg", "Source: deb\0pkg"),
    )
    .unwrap();
    assert!(matches!(
        scan_debian_output(dir.path(), &mut DebianResult::default()),
        Err(FinishError::Invalid(_))
    ));
}

#[test]
fn inconsistent_changes_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.changes"), CHANGES).unwrap();
    std::fs::write(
        dir.path().join("b.changes"),
        CHANGES.replace("1.0-1~jan+lint1\n", "2.0\n"),
    )
    .unwrap();
    let mut d = DebianResult::default();
    assert!(matches!(
        scan_debian_output(dir.path(), &mut d),
        Err(FinishError::Invalid(_))
    ));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.changes"), "Source: x\n").unwrap();
    assert!(scan_debian_output(dir.path(), &mut DebianResult::default()).is_err());
}
