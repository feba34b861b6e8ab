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

/// An upload of `files`, held in memory.
fn upload(files: &[(&str, &str)]) -> UploadFiles {
    let mut up = UploadFiles::default();
    for (name, text) in files {
        up.put(name, text.as_bytes().to_vec()).unwrap();
    }
    up
}

#[test]
fn debian_output_lists_artifacts_and_binaries() {
    let files = [("debpkg_1_amd64.changes", CHANGES), ("build.log", "x")];
    let mut in_memory = DebianResult::default();
    scan_debian_output(&upload(&files), &mut in_memory).unwrap();
    let d = in_memory;
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
    // The same files on disk give the same result.
    let mut on_disk = upload(&files);
    on_disk.dir().unwrap();
    assert!(!on_disk.in_memory());
    let mut d2 = DebianResult::default();
    scan_debian_output(&on_disk, &mut d2).unwrap();
    assert_eq!(d2, d);
    assert_eq!(gather_logs(&on_disk).unwrap(), ["build.log"]);
    assert_eq!(gather_logs(&upload(&files)).unwrap(), ["build.log"]);

    let mut d = DebianResult::default();
    scan_debian_output(&upload(&[]), &mut d).unwrap();
    assert_eq!(d.changes_filenames, None);
}

#[test]
fn changes_files_with_nul_are_refused() {
    let nul = CHANGES.replace("Source: debpkg", "Source: deb\0pkg");
    assert!(matches!(
        scan_debian_output(
            &upload(&[("a.changes", &nul)]),
            &mut DebianResult::default()
        ),
        Err(FinishError::Invalid(_))
    ));
}

#[test]
fn inconsistent_changes_files_are_refused() {
    let other = CHANGES.replace("1.0-1~jan+lint1\n", "2.0\n");
    let files = upload(&[("a.changes", CHANGES), ("b.changes", &other)]);
    let mut d = DebianResult::default();
    assert!(matches!(
        scan_debian_output(&files, &mut d),
        Err(FinishError::Invalid(_))
    ));
    let files = upload(&[("a.changes", "Source: x\n")]);
    assert!(scan_debian_output(&files, &mut DebianResult::default()).is_err());
}
