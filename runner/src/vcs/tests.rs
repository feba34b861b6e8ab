use super::git::parse_ls_remote;
use super::*;

#[test]
fn full_url_appends_the_branch_name_and_strips_slashes() {
    let b = OpenedBranch {
        user_url: "file:///tmp/r/".into(),
        name: Some("main".into()),
        vcs_type: "git".into(),
        colocated: BTreeSet::new(),
        handle: None,
    };
    assert_eq!(b.full_url(), "file:///tmp/r/,branch=main");
    let b = OpenedBranch {
        name: Some("debian/sid".into()),
        ..b
    };
    assert_eq!(b.full_url(), "file:///tmp/r/,branch=debian/sid");
    let b = OpenedBranch { name: None, ..b };
    assert_eq!(b.full_url(), "file:///tmp/r");
}

#[test]
fn ls_remote_listing_gives_head_and_branches() {
    let listing = "ref: refs/heads/main\tHEAD\nabc\tHEAD\nabc\trefs/heads/main\n\
                       def\trefs/heads/upstream\n123\trefs/tags/v1\n";
    let (head, branches) = parse_ls_remote(listing);
    assert_eq!(head.as_deref(), Some("main"));
    assert_eq!(
        branches.into_iter().collect::<Vec<_>>(),
        ["main", "upstream"]
    );
}

#[test]
fn debian_colocated_branches_keeps_only_existing_well_known_names() {
    let b = OpenedBranch {
        user_url: "file:///r/".into(),
        name: Some("debian/sid".into()),
        vcs_type: "git".into(),
        colocated: ["debian/sid", "upstream/sid", "pristine-tar", "feature"]
            .into_iter()
            .map(String::from)
            .collect(),
        handle: None,
    };
    assert_eq!(
        debian_colocated_branches(&b),
        ["pristine-tar", "upstream/sid"]
    );
}

#[test]
fn managers_from_a_plain_location_and_their_urls() {
    let m = parse_managers("/srv/vcs/").unwrap();
    assert_eq!(
        m[1],
        ("git".into(), VcsManager::LocalGit("/srv/vcs/git".into()))
    );
    assert_eq!(
        m[1].1.branch_url("foo", "debian/latest"),
        "file:///srv/vcs/git/foo,branch=debian/latest"
    );
    assert_eq!(
        m[0].1.branch_url("foo", "x/main"),
        "file:///srv/vcs/bzr/foo/x/main"
    );
    let r = parse_managers("git=https://h/git").unwrap();
    assert_eq!(
        r[0].1.branch_url("foo", "main"),
        "https://h/foo,branch=main"
    );
    assert_eq!(r[0].1.repository_url("foo").unwrap(), "https://h/foo");
    assert!(parse_managers("hg=/x").is_err());
    assert!(parse_managers("git=/x,bzr").is_err());
}

/// A repository with `main` checked out and an `upstream` branch.
fn local_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .args(args)
            .current_dir(dir.path())
            .env("GIT_AUTHOR_NAME", "a")
            .env("GIT_AUTHOR_EMAIL", "a@b")
            .env("GIT_COMMITTER_NAME", "a")
            .env("GIT_COMMITTER_EMAIL", "a@b")
            .status()
            .unwrap()
            .success();
        assert!(ok);
    };
    git(&["init", "-q", "-b", "main"]);
    git(&["commit", "-q", "--allow-empty", "-m", "x"]);
    git(&["branch", "upstream"]);
    dir
}

async fn check_opener(opener: &dyn BranchOpener) {
    let dir = local_repo();
    let url = format!("file://{}", dir.path().display());
    let b = opener.open(&url, Some("git")).await.unwrap();
    assert_eq!(b.vcs_type, "git");
    assert_eq!(b.full_url(), format!("{url}/,branch=main"));
    assert_eq!(debian_colocated_branches(&b), ["upstream"]);
    // The preferred type does not restrict the probers (upstream ignores it).
    assert!(opener.open(&url, Some("hg")).await.is_ok());
    let missing = format!("file://{}/nope", dir.path().display());
    assert!(opener.open(&missing, None).await.is_err());
}

#[tokio::test]
async fn git_cli_opens_a_local_git_repository() {
    check_opener(&GitCliOpener).await;
}

/// Both openers read a store branch's tip as the same Breezy revision id.
#[tokio::test]
async fn branch_tips_are_breezy_revision_ids() {
    let dir = local_repo();
    let sha = std::process::Command::new("git")
        .args(["rev-parse", "upstream"])
        .current_dir(dir.path())
        .output()
        .unwrap()
        .stdout;
    let rev = format!("git-v1:{}", String::from_utf8_lossy(&sha).trim());
    let url = format!("file://{},branch=upstream", dir.path().display());
    let breezy = BreezyOpener::new().expect("breezy");
    for opener in [&GitCliOpener as &dyn BranchOpener, &breezy] {
        let tip = opener.branch_tip(&url).await.expect("a tip");
        assert_eq!(tip.revision, rev);
        assert!(tip.url.contains(",branch=upstream"), "{}", tip.url);
        let missing = format!("file://{},branch=nope", dir.path().display());
        assert_eq!(opener.branch_tip(&missing).await, None);
    }
}

#[tokio::test]
async fn breezy_opens_a_local_git_repository() {
    let opener = BreezyOpener::new().expect("breezy importable (ci/setup.sh installs it)");
    check_opener(&opener).await;
}
