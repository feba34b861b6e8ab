//! Build artifacts (runner-internals.md §10), stored per run.

use super::is_plain_name;
use futures::future::BoxFuture;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("Service unavailable")]
    ServiceUnavailable,
    #[error("Artifacts missing")]
    ArtifactsMissing,
    #[error("Invalid path")]
    InvalidPath,
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

pub trait ArtifactManager: Send + Sync {
    /// Store the files `names` of `local_dir` as the artifacts of `run_id`.
    fn store_artifacts<'a>(
        &'a self,
        run_id: &'a str,
        local_dir: &'a Path,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<(), ArtifactError>>;
}

/// Artifact names come from worker-uploaded `.changes` files: no store may
/// let one (or the run id) name anything outside the run's place.
pub(crate) fn check_artifact_path(run_id: &str, names: &[String]) -> Result<(), ArtifactError> {
    if is_plain_name(run_id) && names.iter().all(|n| is_plain_name(n)) {
        Ok(())
    } else {
        Err(ArtifactError::InvalidPath)
    }
}

/// Files copied to `<root>/<run_id>/<name>`.
pub struct LocalArtifactManager {
    root: PathBuf,
}

impl LocalArtifactManager {
    /// The root is created if missing, as upstream does.
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(LocalArtifactManager { root })
    }

    /// Without creating the root now (it is created when storing).
    pub fn unchecked(root: impl Into<PathBuf>) -> Self {
        LocalArtifactManager { root: root.into() }
    }
}

impl ArtifactManager for LocalArtifactManager {
    fn store_artifacts<'a>(
        &'a self,
        run_id: &'a str,
        local_dir: &'a Path,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<(), ArtifactError>> {
        Box::pin(async move {
            // Names come from worker-uploaded .changes files: never let one
            // read or write outside the two directories.
            check_artifact_path(run_id, names)?;
            let dir = self.root.join(run_id);
            let io = |e: std::io::Error| ArtifactError::Io(e.to_string());
            tokio::fs::create_dir_all(&dir).await.map_err(io)?;
            for name in names {
                let src = local_dir.join(name);
                // The error text becomes the run's description: the OS error
                // alone, as upstream's (never a server temp path); the name
                // goes to the log.
                if let Err(e) = tokio::fs::copy(&src, dir.join(name)).await {
                    tracing::warn!(run_id, artifact = %name, error = %e, "copying an artifact failed");
                    return Err(io(e));
                }
            }
            Ok(())
        })
    }
}

/// Primary, then backup on failure. The primary's error is returned even
/// when the backup succeeded (QI-15), so the run is marked
/// `artifact-upload-failed` either way; a backup failure replaces it.
pub async fn store_with_backup(
    primary: &dyn ArtifactManager,
    backup: Option<&dyn ArtifactManager>,
    local_dir: &Path,
    run_id: &str,
    names: &[String],
) -> Result<(), ArtifactError> {
    let Err(e) = primary.store_artifacts(run_id, local_dir, names).await else {
        return Ok(());
    };
    tracing::warn!(run_id, error = %e, "storing artifacts failed");
    if let Some(b) = backup {
        b.store_artifacts(run_id, local_dir, names).await?;
    }
    Err(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn artifacts_are_copied_per_run_and_names_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("a.deb"), "deb").unwrap();
        let m = LocalArtifactManager::new(tmp.path().join("artifacts")).unwrap();
        m.store_artifacts("r1", &src, &["a.deb".into()])
            .await
            .unwrap();
        assert_eq!(
            std::fs::read(tmp.path().join("artifacts/r1/a.deb")).unwrap(),
            b"deb"
        );
        m.store_artifacts("r2", &src, &[]).await.unwrap();
        assert!(tmp.path().join("artifacts/r2").is_dir());
        let bad = m
            .store_artifacts("r3", &src, &["../src/a.deb".into()])
            .await;
        assert!(matches!(bad, Err(ArtifactError::InvalidPath)));
        let missing = m.store_artifacts("r4", &src, &["b.deb".into()]).await;
        assert!(matches!(missing, Err(ArtifactError::Io(_))));
    }

    #[tokio::test]
    async fn a_backup_success_still_reports_the_primary_error() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("x"), "x").unwrap();
        let backup = LocalArtifactManager::new(tmp.path().join("backup")).unwrap();
        let primary = LocalArtifactManager::new(tmp.path().join("primary")).unwrap();
        let names = vec!["x".to_string(), "missing".to_string()];
        let r = store_with_backup(&primary, Some(&backup), tmp.path(), "r", &names[..1]).await;
        assert!(r.is_ok());
        let r = store_with_backup(&primary, Some(&backup), tmp.path(), "r", &names).await;
        assert!(matches!(r, Err(ArtifactError::Io(_))));
    }
}
