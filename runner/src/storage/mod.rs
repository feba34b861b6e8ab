//! Log and artifact storage (runner-internals.md §9, §10).
//!
//! Managers sit behind small object-safe traits: filesystem, GCS and (for
//! logs, as upstream) S3-compatible stores. The back-ends implement the
//! traits of `logs` and `artifacts`; which one a location names is decided
//! here, so those two modules do not depend on the back-ends.

pub mod artifacts;
pub mod backup;
pub mod gcs;
pub mod gzip;
pub mod logs;
pub mod s3;

use crate::settings::Settings;
use artifacts::{ArtifactManager, LocalArtifactManager};
use logs::{FileSystemLogManager, LogManager};
use std::path::PathBuf;
use std::sync::Arc;

/// The primary managers and the optional backups (`--backup-directory`).
#[derive(Clone)]
pub struct Storage {
    pub logs: Arc<dyn LogManager>,
    pub artifacts: Arc<dyn ArtifactManager>,
    pub backup_logs: Option<Arc<dyn LogManager>>,
    pub backup_artifacts: Option<Arc<dyn ArtifactManager>>,
    /// `--backup-directory`, for the re-upload task.
    pub backup_dir: Option<PathBuf>,
    /// Held shared by every write to the backup, exclusively by the re-upload
    /// while it moves one run, so it never moves a half-written copy.
    pub backup_lock: Arc<tokio::sync::RwLock<()>>,
}

/// One GCS client for both managers, built on first need.
pub struct GcsClient {
    emulator_host: Option<String>,
    client: tokio::sync::OnceCell<google_cloud_storage::client::Storage>,
}

impl GcsClient {
    pub fn new(emulator_host: Option<String>) -> Self {
        GcsClient {
            emulator_host,
            client: tokio::sync::OnceCell::new(),
        }
    }

    pub async fn get(&self) -> anyhow::Result<google_cloud_storage::client::Storage> {
        let c = self
            .client
            .get_or_try_init(|| gcs::client(self.emulator_host.as_deref()))
            .await?;
        Ok(c.clone())
    }
}

impl Storage {
    pub async fn from_settings(settings: &Settings) -> anyhow::Result<Storage> {
        let gcs = GcsClient::new(settings.storage_emulator_host.clone());
        let logs = log_manager(
            settings.logs_location.as_deref(),
            &gcs,
            settings.s3_credentials.as_ref(),
        )
        .await?;
        let artifacts = artifact_manager(settings.artifact_location.as_deref(), &gcs).await?;
        let backup_lock = Arc::new(tokio::sync::RwLock::new(()));
        let (backup_logs, backup_artifacts) = match &settings.backup_directory {
            Some(dir) => {
                let (l, a) = (dir.join("logs"), dir.join("artifacts"));
                // Upstream creates these non-recursively.
                for d in [&l, &a] {
                    if !d.is_dir() {
                        std::fs::create_dir(d)?;
                    }
                }
                let lock = backup_lock.clone();
                (
                    Some(Arc::new(backup::Guarded::new(
                        FileSystemLogManager::new(l),
                        lock.clone(),
                    )) as Arc<dyn LogManager>),
                    Some(
                        Arc::new(backup::Guarded::new(LocalArtifactManager::new(a)?, lock))
                            as Arc<dyn ArtifactManager>,
                    ),
                )
            }
            None => (None, None),
        };
        Ok(Storage {
            logs,
            artifacts,
            backup_logs,
            backup_artifacts,
            backup_dir: settings.backup_directory.clone(),
            backup_lock,
        })
    }
}

/// Filesystem managers under the system temporary directory, with no
/// backups: for tests and tools that never store a run.
impl Default for Storage {
    fn default() -> Self {
        let tmp = std::env::temp_dir();
        Storage {
            logs: Arc::new(FileSystemLogManager::new(tmp.join("janitor-logs"))),
            artifacts: Arc::new(LocalArtifactManager::unchecked(
                tmp.join("janitor-artifacts"),
            )),
            backup_logs: None,
            backup_artifacts: None,
            backup_dir: None,
            backup_lock: Default::default(),
        }
    }
}

/// The primary log manager for `logs_location` (§9.1). `gcs` builds the GCS
/// client when the location asks for one; an S3 store uses the standard AWS
/// credential chain unless `s3_credentials` are given.
pub async fn log_manager(
    location: Option<&str>,
    gcs: &GcsClient,
    s3_credentials: Option<&s3::StaticCredentials>,
) -> anyhow::Result<Arc<dyn LogManager>> {
    match location {
        None => Ok(Arc::new(FileSystemLogManager::new("/tmp"))),
        Some(l) if l.starts_with("gs://") => {
            let bucket = gcs::bucket_of(l)?;
            Ok(Arc::new(gcs::GcsLogManager::new(gcs.get().await?, bucket)))
        }
        Some(l) if l.starts_with("http:") || l.starts_with("https:") => {
            let endpoint = s3::endpoint_of(l)?;
            let client = s3::client(&endpoint, s3_credentials).await;
            Ok(Arc::new(s3::S3LogManager::new(client)))
        }
        Some(l) => Ok(Arc::new(FileSystemLogManager::new(l))),
    }
}

/// The primary artifact manager for `artifact_location` (§10).
pub async fn artifact_manager(
    location: Option<&str>,
    gcs: &GcsClient,
) -> anyhow::Result<Arc<dyn ArtifactManager>> {
    match location {
        None => anyhow::bail!("no artifact location configured"),
        Some(l) if l.starts_with("gs://") => {
            let bucket = gcs::bucket_of(l)?;
            Ok(Arc::new(gcs::GcsArtifactManager::new(
                gcs.get().await?,
                bucket,
            )))
        }
        Some(l) => Ok(Arc::new(LocalArtifactManager::new(l)?)),
    }
}

/// A name usable as one path component (no separators, not `.`/`..`).
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn locations_select_managers_as_upstream() {
        let gcs = GcsClient::new(Some("127.0.0.1:9".into()));
        let logs = |l: Option<&'static str>| {
            let gcs = &gcs;
            async move { log_manager(l, gcs, None).await }
        };
        // Building an S3 client sends nothing: no store needs to answer.
        assert!(logs(Some("https://s3.example.com")).await.is_ok());
        assert!(logs(Some("http://")).await.is_err());
        assert!(logs(None).await.is_ok());
        assert!(logs(Some("gs://b")).await.is_ok());
        assert!(logs(Some("gs://")).await.is_err());
        assert!(artifact_manager(None, &gcs).await.is_err());
        assert!(artifact_manager(Some("gs://b"), &gcs).await.is_ok());
        let tmp = tempfile::tempdir().unwrap();
        let local = tmp.path().join("a").display().to_string();
        assert!(artifact_manager(Some(&local), &gcs).await.is_ok());
        assert!(tmp.path().join("a").is_dir());
    }
}
