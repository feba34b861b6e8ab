//! The public VCS stores (runner-internals.md §6.8): `--public-vcs-location`
//! parsed into managers, and the URLs of a codebase's branches in them.

use super::{BranchOpener, ResumeBranch};
use std::path::PathBuf;

/// A public VCS manager (§6.8).
#[derive(Debug, Clone, PartialEq)]
pub enum VcsManager {
    LocalGit(PathBuf),
    LocalBzr(PathBuf),
    RemoteGit(String),
    RemoteBzr(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error("unsupported vcs {0}")]
    UnsupportedVcs(String),
    #[error("invalid VCS location part {0:?}")]
    Malformed(String),
}

/// `get_vcs_managers(location)`: `(vcs type, manager)` pairs.
pub fn parse_managers(location: &str) -> Result<Vec<(String, VcsManager)>, ManagerError> {
    let make = |kind: &str, loc: &str| -> Result<VcsManager, ManagerError> {
        let remote = loc.contains(':');
        Ok(match (kind, remote) {
            ("git", false) => VcsManager::LocalGit(PathBuf::from(loc)),
            ("bzr", false) => VcsManager::LocalBzr(PathBuf::from(loc)),
            ("git", true) => VcsManager::RemoteGit(loc.trim_end_matches('/').to_string()),
            ("bzr", true) => VcsManager::RemoteBzr(loc.trim_end_matches('/').to_string()),
            (other, _) => return Err(ManagerError::UnsupportedVcs(other.to_string())),
        })
    };
    if !location.contains('=') {
        let base = location.trim_end_matches('/');
        return Ok(vec![
            ("bzr".into(), make("bzr", &format!("{base}/bzr"))?),
            ("git".into(), make("git", &format!("{base}/git"))?),
        ]);
    }
    location
        .split(',')
        .map(|part| {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| ManagerError::Malformed(part.to_string()))?;
            Ok((k.to_string(), make(k, v)?))
        })
        .collect()
}

/// RFC 3986 resolution of `reference` against `base` (the binding's `join`).
fn url_join(base: &str, reference: &str) -> String {
    match url::Url::parse(base).and_then(|b| b.join(reference)) {
        Ok(u) => u.to_string(),
        Err(_) => format!("{base}/{reference}"),
    }
}

impl VcsManager {
    /// URL of branch `branch` of `codebase` in this store.
    pub fn branch_url(&self, codebase: &str, branch: &str) -> String {
        match self {
            VcsManager::LocalGit(dir) => {
                format!("file://{}/{codebase},branch={branch}", dir.display())
            }
            VcsManager::LocalBzr(dir) => format!("file://{}/{codebase}/{branch}", dir.display()),
            // The binding's effective URLs (QI-11): the base's last segment is replaced.
            VcsManager::RemoteGit(base) => format!("{},branch={branch}", url_join(base, codebase)),
            VcsManager::RemoteBzr(base) => {
                url_join(&url_join(base, &format!("{codebase}/")), branch)
            }
        }
    }

    /// URL of the codebase's repository in this store. A local store whose
    /// directory does not exist is an error (upstream canonicalises it).
    pub fn repository_url(&self, codebase: &str) -> std::io::Result<String> {
        match self {
            VcsManager::LocalGit(dir) | VcsManager::LocalBzr(dir) => {
                let canonical = std::fs::canonicalize(dir)?;
                Ok(format!("file://{}/{codebase}", canonical.display()))
            }
            VcsManager::RemoteGit(base) | VcsManager::RemoteBzr(base) => {
                Ok(url_join(base, codebase))
            }
        }
    }

    /// The tip of branch `branch` of `codebase` in this store (§4.4), or
    /// `None` when the store has no such branch. A git store never gives
    /// one (divergence-policy §1: upstream's unescaped URL never finds it,
    /// and the real worker cannot open a `file://` store); bzr stores are
    /// opened by `opener` at the URL of §6.8.
    pub async fn branch_tip(
        &self,
        codebase: &str,
        branch: &str,
        opener: &dyn BranchOpener,
    ) -> Option<ResumeBranch> {
        match self {
            VcsManager::LocalGit(_) | VcsManager::RemoteGit(_) => None,
            VcsManager::LocalBzr(_) | VcsManager::RemoteBzr(_) => {
                opener.branch_tip(&self.branch_url(codebase, branch)).await
            }
        }
    }
}
