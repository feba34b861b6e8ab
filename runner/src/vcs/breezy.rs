//! Branch access through Breezy (breezyshim), as upstream does: opening a
//! branch with every prober, a store branch's tip, and the forge lookup.

use super::{BranchHandle, BranchOpener, ForgeResume, OpenError, OpenedBranch, ResumeBranch};
use super::{FORGE_TIMEOUT, OPEN_TIMEOUT};
use futures::future::BoxFuture;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Opens branches with Breezy (every prober, a fresh transport each time, as
/// upstream effectively does). Construct with [`BreezyOpener::new`].
#[derive(Debug, Clone)]
pub struct BreezyOpener {
    _loaded: (),
}

impl BreezyOpener {
    /// For openers that checked [`available`] already (a constant, so a
    /// borrow of it lives as long as the futures it is borrowed by).
    pub(super) const LOADED: BreezyOpener = BreezyOpener { _loaded: () };

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
                tokio::task::spawn_blocking(move || super::forge::find_resume(&handle.0, &names));
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

/// Whether Breezy loads (tried once per process).
pub(super) fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| match BreezyOpener::new() {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(error = %e, "Breezy unavailable; opening branches with the git CLI");
            false
        }
    })
}
