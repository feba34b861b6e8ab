//! VCS access for the assignment (runner-internals.md §4.3, §4.4, §6.8):
//! opening a codebase's main branch, and the public VCS managers that give
//! `cached_url`, `target_repository.url` and the VCS-store resume branch.
//!
//! Branch access sits behind [`BranchOpener`] so the assignment logic can be
//! tested without repositories. [`DefaultOpener`] uses Breezy (through
//! breezyshim), as upstream does; where Breezy cannot be loaded it falls back
//! to the `git` CLI (`git ls-remote --symref`), with which non-git branches
//! fail to open, ending as any unopenable branch does upstream.

mod breezy;
pub mod forge;
mod git;
mod store;

pub use breezy::BreezyOpener;
pub use git::GitCliOpener;
pub use store::{parse_managers, ManagerError, VcsManager};

use futures::future::BoxFuture;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// How long opening a branch may take before it counts as a failure (§4.3).
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a VCS-store lookup may take before it counts as "no resume" (§4.4).
pub const STORE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the forge lookup may take before it counts as "no resume" (§4.3).
pub const FORGE_TIMEOUT: Duration = Duration::from_secs(10);

/// A successfully opened branch.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenedBranch {
    /// The URL of the branch's control directory, without segment
    /// parameters (Breezy's `user_url`, trailing `/` included).
    pub user_url: String,
    /// The colocated branch name (`None`: the repository has no notion of one).
    pub name: Option<String>,
    /// Detected VCS type, lower-case (`git`, `bzr`).
    pub vcs_type: String,
    /// Names of every branch colocated in the same control directory.
    pub colocated: BTreeSet<String>,
    /// Breezy's branch object, kept so the forge lookup (§6.6) asks about
    /// the very branch the assignment opened (`None` for the git CLI).
    pub handle: Option<BranchHandle>,
}

/// A Breezy branch object shared between blocking tasks.
#[derive(Clone)]
pub struct BranchHandle(pub Arc<breezyshim::branch::GenericBranch>);

impl std::fmt::Debug for BranchHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BranchHandle")
    }
}

impl PartialEq for BranchHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// A branch an assignment may resume from (§4.3 forge, §4.4 VCS store).
#[derive(Debug, Clone, PartialEq)]
pub struct ResumeBranch {
    /// The tip as a Breezy revision id (`git-v1:<sha>` for git).
    pub revision: String,
    /// The branch's user URL, as ResumeInfo's `branch_url`.
    pub url: String,
}

/// Outcome of the forge lookup (§6.6).
#[derive(Debug, Clone, PartialEq)]
pub enum ForgeResume {
    None,
    Found(ResumeBranch),
    /// The forge answered 429: `host` is rate limited, `reason` the error text.
    RateLimited {
        host: String,
        reason: String,
    },
}

impl OpenedBranch {
    /// silver-platter `full_branch_url`, trailing `/` stripped as the runner does.
    pub fn full_url(&self) -> String {
        let url = match self.name.as_deref() {
            None => self.user_url.clone(),
            Some(name) => {
                let (base, mut params) = crate::urlutils::split_segment_parameters(&self.user_url)
                    .unwrap_or_else(|_| (self.user_url.clone(), Default::default()));
                // Breezy's `escape`: `/` stays as it is (`,branch=ubuntu/devel`),
                // as the recordings show upstream writing it.
                if !name.is_empty() {
                    params.insert("branch".into(), crate::urlutils::escape(name));
                }
                crate::urlutils::join_segment_parameters(&base, &params).unwrap_or(base)
            }
        };
        url.trim_end_matches('/').to_string()
    }
}

/// Why a branch could not be opened. Every variant ends the same way in the
/// assignment (no colocated branches, raw URL kept); the distinction is for logs.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("branch open timed out")]
    Timeout,
    #[error("branch unavailable: {0}")]
    Unavailable(String),
    /// A branch of a type the runner cannot hand out (upstream raises: 500).
    #[error("unsupported vcs type {0}")]
    UnsupportedVcs(String),
}

pub trait BranchOpener: Send + Sync {
    /// Open the branch at `url`, preferring probers for `vcs_type`.
    fn open<'a>(
        &'a self,
        url: &'a str,
        vcs_type: Option<&'a str>,
    ) -> BoxFuture<'a, Result<OpenedBranch, OpenError>>;

    /// The bot's derived branch named after one of `names` (tried in
    /// order) with an open merge proposal against `main` (§6.6). Openers
    /// that cannot talk to forges find none.
    fn forge_resume<'a>(
        &'a self,
        main: &'a OpenedBranch,
        names: &'a [String],
    ) -> BoxFuture<'a, anyhow::Result<ForgeResume>> {
        let _ = (main, names);
        Box::pin(async { Ok(ForgeResume::None) })
    }

    /// The tip of the branch at `url` in a VCS store (`get_branch` of
    /// §6.8); `None` when it is not a branch or cannot be reached.
    fn branch_tip<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Option<ResumeBranch>> {
        let _ = url;
        Box::pin(async { None })
    }
}

/// The production opener: Breezy when it loads, else the git CLI. Breezy is
/// loaded on the first branch open, on a blocking thread (it starts Python).
#[derive(Debug, Clone, Default)]
pub struct DefaultOpener;

impl BranchOpener for DefaultOpener {
    fn open<'a>(
        &'a self,
        url: &'a str,
        vcs_type: Option<&'a str>,
    ) -> BoxFuture<'a, Result<OpenedBranch, OpenError>> {
        Box::pin(async move {
            let breezy = tokio::task::spawn_blocking(breezy::available)
                .await
                .unwrap_or(false);
            if breezy {
                BreezyOpener::LOADED.open(url, vcs_type).await
            } else {
                GitCliOpener.open(url, vcs_type).await
            }
        })
    }

    fn forge_resume<'a>(
        &'a self,
        main: &'a OpenedBranch,
        names: &'a [String],
    ) -> BoxFuture<'a, anyhow::Result<ForgeResume>> {
        // Only Breezy-opened branches carry a handle; without Breezy there is no forge support.
        BreezyOpener::LOADED.forge_resume(main, names)
    }

    fn branch_tip<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Option<ResumeBranch>> {
        Box::pin(async move {
            let breezy = tokio::task::spawn_blocking(breezy::available)
                .await
                .unwrap_or(false);
            if breezy {
                BreezyOpener::LOADED.branch_tip(url).await
            } else {
                GitCliOpener.branch_tip(url).await
            }
        })
    }
}

/// silver-platter `pick_additional_colocated_branches`: the well-known
/// Debian packaging branches that exist next to the main branch.
pub fn debian_colocated_branches(branch: &OpenedBranch) -> Vec<String> {
    let main = branch.name.clone().unwrap_or_default();
    let mut wanted = vec![
        "pristine-tar".to_string(),
        "pristine-lfs".to_string(),
        "upstream".to_string(),
        format!("patch-queue/{main}"),
    ];
    if let Some(rest) = main.strip_prefix("debian/") {
        wanted.push(format!("upstream/{rest}"));
    }
    let mut out: Vec<String> = wanted
        .into_iter()
        .filter(|n| branch.colocated.contains(n))
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests;
