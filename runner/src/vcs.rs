//! VCS access for the assignment (runner-internals.md §4.3, §4.4, §6.8):
//! opening a codebase's main branch, and the public VCS managers that give
//! `cached_url`, `target_repository.url` and the VCS-store resume branch.
//!
//! Branch access sits behind [`BranchOpener`] so the assignment logic can be
//! tested without repositories. [`DefaultOpener`] uses Breezy (through
//! breezyshim), as upstream does; where Breezy cannot be loaded it falls back
//! to the `git` CLI (`git ls-remote --symref`), with which non-git branches
//! fail to open, ending as any unopenable branch does upstream.

use futures::future::BoxFuture;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::process::Command;

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

// The resume outcome types live with the forge lookup, which produces
// them; re-exported so callers name them from here too.
pub use crate::forge::{ForgeResume, ResumeBranch};

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

/// Opens branches with Breezy (every prober, a fresh transport each time, as
/// upstream effectively does). Construct with [`BreezyOpener::new`].
#[derive(Debug, Clone)]
pub struct BreezyOpener {
    _loaded: (),
}

impl BreezyOpener {
    /// Load Breezy. If it is not importable as is, the project's virtualenv
    /// (`$JANITOR_VENV` or `.venv` in the workspace) is added to `sys.path`.
    pub fn new() -> Result<BreezyOpener, String> {
        use pyo3::types::PyAnyMethods;
        pyo3::Python::initialize();
        pyo3::Python::attach(|py| -> Result<(), String> {
            if py.import("breezy").is_ok() {
                return Ok(());
            }
            let sys = py.import("sys").map_err(|e| e.to_string())?;
            let path = sys.getattr("path").map_err(|e| e.to_string())?;
            for dir in venv_site_packages() {
                path.call_method1("insert", (0, dir.display().to_string()))
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        })?;
        breezyshim::try_init().map_err(|e| e.to_string())?;
        Ok(BreezyOpener { _loaded: () })
    }
}

/// `site-packages` folders of the candidate virtualenvs.
fn venv_site_packages() -> Vec<PathBuf> {
    let mut venvs: Vec<PathBuf> = Vec::new();
    if let Some(v) = std::env::var_os("JANITOR_VENV") {
        venvs.push(v.into());
    }
    venvs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv"));
    let mut out = Vec::new();
    for venv in venvs {
        let Ok(entries) = std::fs::read_dir(venv.join("lib")) else {
            continue;
        };
        for e in entries.flatten() {
            let site = e.path().join("site-packages");
            if e.file_name().to_string_lossy().starts_with("python3") && site.is_dir() {
                out.push(site);
            }
        }
    }
    out
}

fn breezy_open(url: &str) -> Result<OpenedBranch, OpenError> {
    use breezyshim::branch::Branch;
    use breezyshim::foreign::VcsType;
    let parsed = url::Url::parse(url).map_err(|e| OpenError::Unavailable(e.to_string()))?;
    let branch = breezyshim::branch::open_as_generic(&parsed)
        .map_err(|e| OpenError::Unavailable(format!("{e:?}")))?;
    let vcs_type = match branch.vcs_type() {
        VcsType::Git => "git",
        VcsType::Bazaar => "bzr",
        other => return Err(OpenError::UnsupportedVcs(format!("{other:?}"))),
    };
    let colocated = branch
        .controldir()
        .branch_names()
        .map(|names| names.into_iter().collect())
        .unwrap_or_default();
    Ok(OpenedBranch {
        user_url: branch.get_user_url().to_string(),
        name: branch.name(),
        vcs_type: vcs_type.to_string(),
        colocated,
        handle: Some(BranchHandle(Arc::new(branch))),
    })
}

/// `get_branch` of a store (§6.8) through Breezy: any failure to open is "no branch".
fn breezy_tip(url: &str) -> Option<ResumeBranch> {
    use breezyshim::branch::Branch;
    let parsed = url::Url::parse(url).ok()?;
    match breezyshim::branch::open_as_generic(&parsed) {
        Ok(branch) => Some(ResumeBranch {
            revision: String::from_utf8_lossy(branch.last_revision().as_bytes()).into_owned(),
            url: branch.get_user_url().to_string(),
        }),
        Err(e) => {
            tracing::debug!(%url, error = ?e, "no branch in the VCS store");
            None
        }
    }
}

impl BranchOpener for BreezyOpener {
    fn open<'a>(
        &'a self,
        url: &'a str,
        _vcs_type: Option<&'a str>,
    ) -> BoxFuture<'a, Result<OpenedBranch, OpenError>> {
        Box::pin(async move {
            let owned = url.to_string();
            // The thread goes on after a timeout, as Python's executor does.
            let job = tokio::task::spawn_blocking(move || breezy_open(&owned));
            match tokio::time::timeout(OPEN_TIMEOUT, job).await {
                Err(_) => Err(OpenError::Timeout),
                Ok(Err(join)) => Err(OpenError::Unavailable(join.to_string())),
                Ok(Ok(r)) => r,
            }
        })
    }

    fn forge_resume<'a>(
        &'a self,
        main: &'a OpenedBranch,
        names: &'a [String],
    ) -> BoxFuture<'a, anyhow::Result<ForgeResume>> {
        Box::pin(async move {
            let Some(handle) = main.handle.clone() else {
                return Ok(ForgeResume::None);
            };
            let names = names.to_vec();
            let job =
                tokio::task::spawn_blocking(move || crate::forge::find_resume(&handle.0, &names));
            match tokio::time::timeout(FORGE_TIMEOUT, job).await {
                Err(_) => Ok(ForgeResume::None),
                Ok(r) => r?,
            }
        })
    }

    fn branch_tip<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Option<ResumeBranch>> {
        Box::pin(async move {
            let owned = url.to_string();
            tokio::task::spawn_blocking(move || breezy_tip(&owned))
                .await
                .ok()
                .flatten()
        })
    }
}

/// The production opener: Breezy when it loads, else the git CLI. Breezy is
/// loaded on the first branch open, on a blocking thread (it starts Python).
#[derive(Debug, Clone, Default)]
pub struct DefaultOpener;

fn breezy_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| match BreezyOpener::new() {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(error = %e, "Breezy unavailable; opening branches with the git CLI");
            false
        }
    })
}

impl BranchOpener for DefaultOpener {
    fn open<'a>(
        &'a self,
        url: &'a str,
        vcs_type: Option<&'a str>,
    ) -> BoxFuture<'a, Result<OpenedBranch, OpenError>> {
        Box::pin(async move {
            let breezy = tokio::task::spawn_blocking(breezy_available)
                .await
                .unwrap_or(false);
            if breezy {
                BreezyOpener { _loaded: () }.open(url, vcs_type).await
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
        BreezyOpener { _loaded: () }.forge_resume(main, names)
    }

    fn branch_tip<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Option<ResumeBranch>> {
        Box::pin(async move {
            let breezy = tokio::task::spawn_blocking(breezy_available)
                .await
                .unwrap_or(false);
            if breezy {
                BreezyOpener { _loaded: () }.branch_tip(url).await
            } else {
                GitCliOpener.branch_tip(url).await
            }
        })
    }
}

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
fn parse_ls_remote(listing: &str) -> (Option<String>, BTreeSet<String>) {
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

#[cfg(test)]
mod tests;
