//! The backup directory (`--backup-directory D`, runner-internals.md §10)
//! and the task that moves what it holds to the primary stores.
//!
//! Upstream tries once, at start-up, to move backed-up artifacts (and always
//! fails, QI-16) and never moves logs. Here every backed-up log and artifact
//! is moved at start-up and then periodically; a backup copy is deleted only
//! after the primary accepted it, and failures are retried next pass.

use super::artifacts::{ArtifactError, ArtifactManager};
use super::logs::{LogError, LogManager, LogSource};
use super::Storage;
use futures::future::BoxFuture;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, RwLock};

/// How often the re-upload runs after the start-up pass.
pub const REUPLOAD_PERIOD: Duration = Duration::from_secs(600);

/// A backup manager whose writes hold the backup lock shared.
pub struct Guarded<M> {
    inner: M,
    lock: Arc<RwLock<()>>,
}

impl<M> Guarded<M> {
    pub fn new(inner: M, lock: Arc<RwLock<()>>) -> Self {
        Guarded { inner, lock }
    }
}

impl<M: LogManager> LogManager for Guarded<M> {
    fn import_log<'a>(
        &'a self,
        codebase: &'a str,
        run_id: &'a str,
        name: &'a str,
        src: &'a LogSource<'a>,
        mtime: u32,
    ) -> BoxFuture<'a, Result<(), LogError>> {
        Box::pin(async move {
            let _shared = self.lock.read().await;
            self.inner
                .import_log(codebase, run_id, name, src, mtime)
                .await
        })
    }
}

impl<M: ArtifactManager> ArtifactManager for Guarded<M> {
    fn store_artifacts<'a>(
        &'a self,
        run_id: &'a str,
        local_dir: &'a Path,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<(), ArtifactError>> {
        Box::pin(async move {
            let _shared = self.lock.read().await;
            self.inner.store_artifacts(run_id, local_dir, names).await
        })
    }
}

/// What one pass moved and what it left for the next.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reupload {
    pub logs_moved: usize,
    pub artifact_runs_moved: usize,
    pub failures: usize,
}

/// Why one item was not moved.
enum Failed {
    /// The backup copy is unusable (e.g. cut short): the others still go.
    Local(anyhow::Error),
    /// The primary refused it: it is probably still down, so the pass ends
    /// (it would only hold the backup lock through more timeouts).
    Primary(String),
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failed::Local(e) => write!(f, "{e:#}"),
            Failed::Primary(e) => write!(f, "primary store: {e}"),
        }
    }
}

/// Moves every backed-up log and artifact run to the primary stores.
pub async fn reupload(storage: &Storage) -> Reupload {
    let mut report = Reupload::default();
    if let Some(dir) = &storage.backup_dir {
        let _ = reupload_all(storage, dir, &mut report).await;
    }
    if report != Reupload::default() {
        tracing::info!(?report, "backup re-upload pass");
    }
    report
}

/// `Err` when a primary failure ended the pass early.
async fn reupload_all(storage: &Storage, dir: &Path, report: &mut Reupload) -> Result<(), ()> {
    let outcome = |r: Result<(), Failed>, what: &Path, moved: &mut usize| match r {
        Ok(()) => {
            *moved += 1;
            Ok(())
        }
        Err(e) => {
            tracing::warn!(backup = %what.display(), error = %e, "re-upload failed; retried next pass");
            match e {
                Failed::Local(_) => Ok(()),
                Failed::Primary(_) => Err(()),
            }
        }
    };
    for run in list_dirs(&dir.join("artifacts")) {
        let _exclusive = storage.backup_lock.write().await;
        let r = reupload_artifacts(storage.artifacts.as_ref(), &run).await;
        report.failures += r.is_err() as usize;
        outcome(r, &run, &mut report.artifact_runs_moved)?;
    }
    for codebase in list_dirs(&dir.join("logs")) {
        for run in list_dirs(&codebase) {
            let _exclusive = storage.backup_lock.write().await;
            for log in list_files(&run) {
                let r = reupload_log(storage.logs.as_ref(), &codebase, &run, &log).await;
                report.failures += r.is_err() as usize;
                outcome(r, &log, &mut report.logs_moved)?;
            }
            // Only removed once empty: what failed stays for the next pass.
            let _ = std::fs::remove_dir(&run);
        }
        let _ = std::fs::remove_dir(&codebase);
    }
    Ok(())
}

async fn reupload_artifacts(primary: &dyn ArtifactManager, run: &Path) -> Result<(), Failed> {
    let run_id = file_name(run).map_err(Failed::Local)?;
    let mut names: Vec<String> = list_files(run)
        .iter()
        .map(|p| file_name(p).map(str::to_string))
        .collect::<anyhow::Result<_>>()
        .map_err(Failed::Local)?;
    names.sort();
    primary
        .store_artifacts(run_id, run, &names)
        .await
        .map_err(|e| Failed::Primary(e.to_string()))?;
    tokio::fs::remove_dir_all(run)
        .await
        .map_err(|e| Failed::Local(e.into()))
}

/// A backup log is `<codebase>/<run_id>/<name>.gz`: decompressed again and
/// imported under its name with the mtime of its gzip header.
async fn reupload_log(
    primary: &dyn LogManager,
    codebase: &Path,
    run: &Path,
    log: &Path,
) -> Result<(), Failed> {
    let local = |e: anyhow::Error| Failed::Local(e);
    let (codebase, run_id) = (
        file_name(codebase).map_err(local)?,
        file_name(run).map_err(local)?,
    );
    let Some(name) = file_name(log).map_err(local)?.strip_suffix(".gz") else {
        return Err(Failed::Local(anyhow::anyhow!("not a gzip log")));
    };
    let src = log.to_path_buf();
    let (plain, mtime) = tokio::task::spawn_blocking(move || gunzip_to_temp(&src))
        .await
        .map_err(|e| Failed::Local(e.into()))?
        .map_err(|e| Failed::Local(e.into()))?;
    primary
        .import_log(
            codebase,
            run_id,
            name,
            &LogSource::path(plain.path()),
            mtime,
        )
        .await
        .map_err(|e| Failed::Primary(e.to_string()))?;
    tokio::fs::remove_file(log)
        .await
        .map_err(|e| Failed::Local(e.into()))
}

fn gunzip_to_temp(src: &Path) -> std::io::Result<(tempfile::NamedTempFile, u32)> {
    let mut d = flate2::read::GzDecoder::new(std::io::BufReader::new(std::fs::File::open(src)?));
    let mut out = tempfile::NamedTempFile::new()?;
    // Reading to the end checks the trailer: a truncated copy is an error.
    std::io::copy(&mut d, &mut out)?;
    let mtime = d.header().map(|h| h.mtime()).unwrap_or(0);
    let _ = d.read(&mut [0u8; 1])?;
    Ok((out, mtime))
}

fn file_name(p: &Path) -> anyhow::Result<&str> {
    p.file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow::anyhow!("unusable name {}", p.display()))
}

fn entries(dir: &Path, want_dir: bool) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_type()
                .map(|t| t.is_dir() == want_dir)
                .unwrap_or(false)
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

fn list_dirs(dir: &Path) -> Vec<PathBuf> {
    entries(dir, true)
}

fn list_files(dir: &Path) -> Vec<PathBuf> {
    entries(dir, false)
}

/// Re-uploads at once, then every `period`, until `shutdown` turns true.
pub fn spawn(
    storage: Storage,
    period: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = reupload(&storage) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::artifacts::LocalArtifactManager;
    use crate::storage::logs::FileSystemLogManager;

    fn storage(root: &Path) -> Storage {
        let backup = root.join("backup");
        Storage {
            logs: Arc::new(FileSystemLogManager::new(root.join("logs"))),
            artifacts: Arc::new(LocalArtifactManager::unchecked(root.join("artifacts"))),
            backup_logs: Some(Arc::new(FileSystemLogManager::new(backup.join("logs")))),
            backup_artifacts: Some(Arc::new(LocalArtifactManager::unchecked(
                backup.join("artifacts"),
            ))),
            backup_dir: Some(backup),
            backup_lock: Default::default(),
        }
    }

    #[tokio::test]
    async fn backed_up_logs_and_artifacts_move_and_broken_copies_stay() {
        let tmp = tempfile::tempdir().unwrap();
        let s = storage(tmp.path());
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("build.log"), "built\n").unwrap();
        std::fs::write(src.join("a.deb"), "deb").unwrap();
        let backup_logs = s.backup_logs.as_ref().unwrap();
        backup_logs
            .import_log(
                "c",
                "r1",
                "build.log",
                &LogSource::path(&src.join("build.log")),
                1234,
            )
            .await
            .unwrap();
        s.backup_artifacts
            .as_ref()
            .unwrap()
            .store_artifacts("r1", &src, &["a.deb".into()])
            .await
            .unwrap();
        // A copy cut short (e.g. the disk filled up) is not valid gzip.
        let broken = tmp.path().join("backup/logs/c/r2/worker.log.gz");
        std::fs::create_dir_all(broken.parent().unwrap()).unwrap();
        let whole = std::fs::read(tmp.path().join("backup/logs/c/r1/build.log.gz")).unwrap();
        std::fs::write(&broken, &whole[..whole.len() - 4]).unwrap();

        let report = reupload(&s).await;
        assert_eq!(
            report,
            Reupload {
                logs_moved: 1,
                artifact_runs_moved: 1,
                failures: 1
            }
        );
        let stored = std::fs::read(tmp.path().join("logs/c/r1/build.log.gz")).unwrap();
        let mut d = flate2::read::GzDecoder::new(&stored[..]);
        let mut text = String::new();
        d.read_to_string(&mut text).unwrap();
        assert_eq!(
            (text.as_str(), d.header().unwrap().mtime()),
            ("built\n", 1234)
        );
        assert_eq!(
            std::fs::read(tmp.path().join("artifacts/r1/a.deb")).unwrap(),
            b"deb"
        );
        assert!(!tmp.path().join("backup/logs/c/r1").exists());
        assert!(!tmp.path().join("backup/artifacts/r1").exists());
        assert!(broken.exists(), "a failed copy stays for the next pass");
        assert!(!tmp.path().join("logs/c/r2").exists());
    }

    #[tokio::test]
    async fn the_task_stops_on_shutdown() {
        let tmp = tempfile::tempdir().unwrap();
        let (tx, rx) = watch::channel(false);
        let task = spawn(storage(tmp.path()), REUPLOAD_PERIOD, rx);
        tx.send(true).unwrap();
        task.await.unwrap();
    }
}
