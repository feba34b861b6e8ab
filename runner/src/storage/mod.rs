//! Log and artifact storage (runner-internals.md §9, §10).
//!
//! Managers sit behind small object-safe traits: filesystem and GCS today
//! (S3 is refused at start-up).

pub mod artifacts;
pub mod backup;
pub mod gcs;
pub mod logs;

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
        let logs = logs::from_location(settings.logs_location.as_deref(), &gcs).await?;
        let artifacts =
            artifacts::from_location(settings.artifact_location.as_deref(), &gcs).await?;
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
        let err = logs::from_location(Some("https://s3.example.com"), &gcs)
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("https://s3.example.com"), "{err}");
        assert!(logs::from_location(None, &gcs).await.is_ok());
        assert!(logs::from_location(Some("gs://b"), &gcs).await.is_ok());
        assert!(logs::from_location(Some("gs://"), &gcs).await.is_err());
        assert!(artifacts::from_location(None, &gcs).await.is_err());
        assert!(artifacts::from_location(Some("gs://b"), &gcs).await.is_ok());
        let tmp = tempfile::tempdir().unwrap();
        let local = tmp.path().join("a").display().to_string();
        assert!(artifacts::from_location(Some(&local), &gcs).await.is_ok());
        assert!(tmp.path().join("a").is_dir());
    }
}
