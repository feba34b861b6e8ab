//! Branch access with the `git` CLI (`git ls-remote`), where Breezy cannot
//! be loaded: non-git branches fail to open, as any unopenable branch does.

use super::{BranchOpener, OpenError, OpenedBranch, ResumeBranch, OPEN_TIMEOUT};
use futures::future::BoxFuture;
use std::collections::BTreeSet;
use tokio::process::Command;

/// Opens git branches with the git CLI.
#[derive(Debug, Clone, Default)]
pub struct GitCliOpener;

impl BranchOpener for GitCliOpener {
    fn open<'a>(
        &'a self,
        url: &'a str,
        vcs_type: Option<&'a str>,
    ) -> BoxFuture<'a, Result<OpenedBranch, OpenError>> {
        Box::pin(async move {
            // Upstream's binding ignores the preferred type and tries every
            // prober, so the codebase's vcs_type does not restrict anything.
            let _ = vcs_type;
            match tokio::time::timeout(OPEN_TIMEOUT, open_git(url)).await {
                Ok(r) => r,
                Err(_) => Err(OpenError::Timeout),
            }
        })
    }

    fn branch_tip<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Option<ResumeBranch>> {
        Box::pin(git_tip(url))
    }
}

/// The tip of a git branch URL (`<repo>,branch=<name>`) with `git ls-remote`.
async fn git_tip(url: &str) -> Option<ResumeBranch> {
    let (base, params) = crate::urlutils::split_segment_parameters(url).ok()?;
    let name = crate::urlutils::unescape(params.get("branch")?);
    let head = format!("refs/heads/{name}");
    let listing = git(&[
        "ls-remote".as_ref(),
        "--".as_ref(),
        base.as_ref(),
        head.as_ref(),
    ])
    .await
    .ok()?;
    let sha = listing.lines().find_map(|l| {
        let (sha, r) = l.split_once('\t')?;
        (r == head).then(|| sha.to_string())
    })?;
    let mut user_url = base;
    if !user_url.ends_with('/') {
        user_url.push('/');
    }
    Some(ResumeBranch {
        revision: format!("git-v1:{sha}"),
        url: format!("{user_url},branch={}", crate::urlutils::escape(&name)),
    })
}

/// `git ls-remote --symref` lists the branches and says where HEAD points.
async fn open_git(url: &str) -> Result<OpenedBranch, OpenError> {
    let (base, params) = crate::urlutils::split_segment_parameters(url)
        .map_err(|e| OpenError::Unavailable(e.to_string()))?;
    let listing = git(&[
        "ls-remote".as_ref(),
        "--symref".as_ref(),
        "--".as_ref(),
        base.as_ref(),
    ])
    .await
    .map_err(OpenError::Unavailable)?;
    let (head, branches) = parse_ls_remote(&listing);
    let name = match params.get("branch") {
        Some(b) => crate::urlutils::unescape(b),
        None => head.ok_or_else(|| OpenError::Unavailable("no HEAD".into()))?,
    };
    if !branches.contains(&name) {
        return Err(OpenError::Unavailable(format!("no branch {name}")));
    }
    let mut user_url = base;
    if !user_url.ends_with('/') {
        user_url.push('/');
    }
    Ok(OpenedBranch {
        user_url,
        name: Some(name),
        vcs_type: "git".into(),
        colocated: branches,
        handle: None,
    })
}

/// HEAD's branch (if symbolic) and every `refs/heads/*` name.
pub(super) fn parse_ls_remote(listing: &str) -> (Option<String>, BTreeSet<String>) {
    let mut head = None;
    let mut branches = BTreeSet::new();
    for line in listing.lines() {
        if let Some(rest) = line.strip_prefix("ref: ") {
            if let Some((target, "HEAD")) = rest.split_once('\t') {
                head = target.strip_prefix("refs/heads/").map(str::to_string);
            }
        } else if let Some((_, r)) = line.split_once('\t') {
            if let Some(b) = r.strip_prefix("refs/heads/") {
                branches.insert(b.to_string());
            }
        }
    }
    (head, branches)
}

/// Runs `git` without prompting for credentials: its output, or its error text.
async fn git(args: &[&std::ffi::OsStr]) -> Result<String, String> {
    let output = Command::new("git")
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "true")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).trim().to_string());
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
