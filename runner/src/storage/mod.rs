//! Log and artifact storage (runner-internals.md §9, §10).
//!
//! Managers sit behind small object-safe traits so object-store backends
//! (GCS, S3) can be added next to the filesystem ones.

pub mod artifacts;
pub mod logs;

use crate::settings::Settings;
use artifacts::{ArtifactManager, LocalArtifactManager};
use logs::{FileSystemLogManager, LogManager};
use std::sync::Arc;

/// The primary managers and the optional backups (`--backup-directory`).
#[derive(Clone)]
pub struct Storage {
    pub logs: Arc<dyn LogManager>,
    pub artifacts: Arc<dyn ArtifactManager>,
    pub backup_logs: Option<Arc<dyn LogManager>>,
    pub backup_artifacts: Option<Arc<dyn ArtifactManager>>,
}

impl Storage {
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Storage> {
        let logs = logs::from_location(settings.logs_location.as_deref())?;
        let artifacts = artifacts::from_location(settings.artifact_location.as_deref())?;
        let (backup_logs, backup_artifacts) = match &settings.backup_directory {
            Some(dir) => {
                let (l, a) = (dir.join("logs"), dir.join("artifacts"));
                // Upstream creates these non-recursively.
                for d in [&l, &a] {
                    if !d.is_dir() {
                        std::fs::create_dir(d)?;
                    }
                }
                (
                    Some(Arc::new(FileSystemLogManager::new(l)) as Arc<dyn LogManager>),
                    Some(Arc::new(LocalArtifactManager::new(a)?) as Arc<dyn ArtifactManager>),
                )
            }
            None => (None, None),
        };
        Ok(Storage {
            logs,
            artifacts,
            backup_logs,
            backup_artifacts,
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
        }
    }
}

/// A name usable as one path component (no separators, not `.`/`..`).
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}
