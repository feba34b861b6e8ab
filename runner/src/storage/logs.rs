//! Run logs (runner-internals.md §9): stored gzip-compressed (level 9) with
//! the gzip mtime set to the run's finish time.

use super::is_plain_name;
use crate::metrics::Metrics;
use futures::future::BoxFuture;
use std::borrow::Cow;
use std::io::Read;
use std::path::{Path, PathBuf};

/// What a log is read from: a file, or bytes a small upload kept in memory.
#[derive(Debug, Clone)]
pub enum LogSource<'a> {
    File(Cow<'a, Path>),
    Bytes(Cow<'a, [u8]>),
}

impl<'a> LogSource<'a> {
    pub fn path(path: &'a Path) -> Self {
        LogSource::File(Cow::Borrowed(path))
    }

    pub fn owned_path(path: PathBuf) -> Self {
        LogSource::File(Cow::Owned(path))
    }

    pub fn bytes(data: &'a [u8]) -> Self {
        LogSource::Bytes(Cow::Borrowed(data))
    }

    /// Small enough to compress on the async thread: that costs less than
    /// the hand-off to the blocking pool and back.
    pub fn is_small(&self) -> bool {
        match self {
            LogSource::Bytes(b) => b.len() as u64 <= SMALL_LOG,
            LogSource::File(p) => std::fs::metadata(p).is_ok_and(|m| m.len() <= SMALL_LOG),
        }
    }

    pub fn reader(&self) -> std::io::Result<Box<dyn Read + '_>> {
        Ok(match self {
            LogSource::Bytes(b) => Box::new(b.as_ref()),
            LogSource::File(p) => Box::new(std::fs::File::open(p)?),
        })
    }

    /// The whole content.
    pub async fn read_all(&self) -> std::io::Result<Cow<'_, [u8]>> {
        Ok(match self {
            LogSource::Bytes(b) => Cow::Borrowed(b.as_ref()),
            LogSource::File(p) => Cow::Owned(tokio::fs::read(p).await?),
        })
    }

    /// The same source with no borrow left, for the blocking pool.
    pub fn into_owned(self) -> LogSource<'static> {
        match self {
            LogSource::File(p) => LogSource::File(Cow::Owned(p.into_owned())),
            LogSource::Bytes(b) => LogSource::Bytes(Cow::Owned(b.into_owned())),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The store answered "service unavailable" (GCS 503).
    #[error("Service unavailable")]
    ServiceUnavailable,
    #[error("Timeout")]
    Timeout,
    #[error("Permission denied: {0}")]
    PermissionDenied(String),
    #[error("Invalid path")]
    InvalidPath,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

pub trait LogManager: Send + Sync {
    /// Store `src` as log `name` of run `run_id` of `codebase`.
    fn import_log<'a>(
        &'a self,
        codebase: &'a str,
        run_id: &'a str,
        name: &'a str,
        src: &'a LogSource<'a>,
        mtime: u32,
    ) -> BoxFuture<'a, Result<(), LogError>>;
}

/// Logs up to this size are compressed inline (see `import_log`).
const SMALL_LOG: u64 = 64 << 10;

/// Every log store names its objects after these three: none may hold a
/// separator or be `.`/`..`.
pub(crate) fn check_log_path(codebase: &str, run_id: &str, name: &str) -> Result<(), LogError> {
    if [codebase, run_id, name].iter().all(|c| is_plain_name(c)) {
        Ok(())
    } else {
        Err(LogError::InvalidPath)
    }
}

/// Longest file-name component the usual filesystems hold (ext4, xfs, tmpfs).
const MAX_COMPONENT: usize = 255;

/// A codebase name as a directory name: itself when a filesystem can hold
/// it, else its first 200 bytes, `-` and the first 16 hex digits of its
/// SHA-256, so a codebase with a longer name still has its logs stored
/// (the name comes from the database, not the request, so refusing it
/// would lose the result). Upstream fails with ENAMETOOLONG there.
pub fn fitting_component(name: &str) -> std::borrow::Cow<'_, str> {
    if name.len() <= MAX_COMPONENT {
        return name.into();
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(name.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{hex}", crate::validate::prefix_within(name, 200)).into()
}

/// `<root>/<codebase>/<run_id>/<name>.gz` (a codebase name too long for
/// the filesystem shortened by [`fitting_component`]).
pub struct FileSystemLogManager {
    root: PathBuf,
}

impl FileSystemLogManager {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FileSystemLogManager { root: root.into() }
    }
}

impl LogManager for FileSystemLogManager {
    fn import_log<'a>(
        &'a self,
        codebase: &'a str,
        run_id: &'a str,
        name: &'a str,
        src: &'a LogSource<'a>,
        mtime: u32,
    ) -> BoxFuture<'a, Result<(), LogError>> {
        Box::pin(async move {
            check_log_path(codebase, run_id, name)?;
            let fitting = fitting_component(codebase);
            if fitting != codebase {
                tracing::warn!(codebase, directory = %fitting, "codebase name too long for a directory; logs stored under a shortened name");
            }
            let dir = self.root.join(fitting.as_ref()).join(run_id);
            if src.is_small() {
                return write_gzip(src, &dir, name, mtime);
            }
            let (src, name) = (src.clone().into_owned(), name.to_string());
            tokio::task::spawn_blocking(move || write_gzip(&src, &dir, &name, mtime))
                .await
                .map_err(|e| LogError::Other(e.into()))?
        })
    }
}

/// Streams `src` into `<dir>/<name>.gz`; the header names the file as
/// Python's `gzip.open` does. The file appears whole or not at all: it is
/// written under a temporary name and renamed, so a full disk or a failed
/// write leaves no partial or empty `.gz` behind.
fn write_gzip(src: &LogSource<'_>, dir: &Path, name: &str, mtime: u32) -> Result<(), LogError> {
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::PermissionDenied => LogError::PermissionDenied(e.to_string()),
        _ => LogError::Other(e.into()),
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut input = src.reader().map_err(io)?;
    let tmp = tempfile::Builder::new()
        .prefix(".partial-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(dir)
        .map_err(io)?;
    let w = super::gzip::gzip(
        &mut input,
        std::io::BufWriter::new(tmp),
        Some(name.as_bytes()),
        mtime,
    )
    .map_err(io)?;
    let tmp = w.into_inner().map_err(|e| io(e.into_error()))?;
    tmp.persist(dir.join(format!("{name}.gz")))
        .map_err(|e| io(e.error))?;
    Ok(())
}

/// `import_log` with the fallbacks of §9.2: an unavailable or slow primary
/// goes to the backup; permission denied retries under a dated name first.
#[allow(clippy::too_many_arguments)]
pub async fn import_log(
    primary: &dyn LogManager,
    backup: Option<&dyn LogManager>,
    metrics: &Metrics,
    codebase: &str,
    run_id: &str,
    name: &str,
    src: &LogSource<'_>,
    mtime: u32,
    now: chrono::NaiveDateTime,
) -> Result<(), LogError> {
    // Any failure of the primary goes to the backup when there is one: no
    // result is lost to a storage fault (divergence-policy §3).
    let to_backup = |e: LogError| async move {
        metrics.primary_logfile_upload_failed.inc();
        match backup {
            Some(b) => {
                tracing::warn!(run_id, log = name, error = %e, "primary log store failed; keeping the log in the backup store");
                b.import_log(codebase, run_id, name, src, mtime).await
            }
            None => Err(e),
        }
    };
    match primary.import_log(codebase, run_id, name, src, mtime).await {
        Ok(()) => {}
        Err(LogError::PermissionDenied(_)) => {
            let alt = format!("{name}.{}", crate::types::time::isoformat_seconds(&now));
            match primary.import_log(codebase, run_id, &alt, src, mtime).await {
                Ok(()) => {}
                Err(e) => to_backup(e).await?,
            }
        }
        Err(e) => to_backup(e).await?,
    }
    metrics.logfile_uploads.inc();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[tokio::test]
    async fn filesystem_logs_are_gzipped_under_codebase_and_run() {
        let root = tempfile::tempdir().unwrap();
        let src = root.path().join("worker.log");
        std::fs::write(&src, "hello\n").unwrap();
        let m = FileSystemLogManager::new(root.path().join("logs"));
        m.import_log(
            "fin",
            "r1",
            "worker.log",
            &LogSource::path(&src),
            1_580_638_230,
        )
        .await
        .unwrap();
        let stored = root.path().join("logs/fin/r1/worker.log.gz");
        let gz = std::fs::read(&stored).unwrap();
        let mut d = flate2::read::GzDecoder::new(&gz[..]);
        let mut text = String::new();
        d.read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello\n");
        let header = d.header().unwrap();
        assert_eq!(header.mtime(), 1_580_638_230);
        assert_eq!(header.filename(), Some(&b"worker.log"[..]));
        // A log held in memory is stored byte for byte the same.
        m.import_log(
            "fin",
            "r2",
            "worker.log",
            &LogSource::bytes(b"hello\n"),
            1_580_638_230,
        )
        .await
        .unwrap();
        assert_eq!(
            std::fs::read(root.path().join("logs/fin/r2/worker.log.gz")).unwrap(),
            gz
        );
    }

    #[test]
    fn long_codebase_names_fit_a_directory() {
        assert_eq!(fitting_component("short"), "short");
        let long = "é".repeat(200);
        let fit = fitting_component(&long);
        assert!(fit.len() <= MAX_COMPONENT, "{}", fit.len());
        assert!(fit.starts_with(&"é".repeat(100)));
        // Stable, and distinct for names sharing the first 200 bytes.
        assert_eq!(fit, fitting_component(&long));
        assert_ne!(fit, fitting_component(&format!("{long}x")));
    }

    #[tokio::test]
    async fn path_components_cannot_escape_the_root() {
        let root = tempfile::tempdir().unwrap();
        let src = root.path().join("x.log");
        std::fs::write(&src, "x").unwrap();
        let m = FileSystemLogManager::new(root.path());
        for (c, r, n) in [
            ("..", "r", "x.log"),
            ("a/b", "r", "x.log"),
            ("c", "r", "../x.log"),
        ] {
            assert!(matches!(
                m.import_log(c, r, n, &LogSource::path(&src), 0).await,
                Err(LogError::InvalidPath)
            ));
        }
    }

    /// Always fails: unavailable (`true`) or permission denied (`false`).
    struct Flaky(bool);
    impl LogManager for Flaky {
        fn import_log<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            _: &'a str,
            _: &'a LogSource<'a>,
            _: u32,
        ) -> BoxFuture<'a, Result<(), LogError>> {
            let e = if self.0 {
                LogError::ServiceUnavailable
            } else {
                LogError::PermissionDenied("no".into())
            };
            Box::pin(async move { Err(e) })
        }
    }

    #[tokio::test]
    async fn an_unavailable_primary_falls_back_to_the_backup() {
        let root = tempfile::tempdir().unwrap();
        let src = root.path().join("b.log");
        std::fs::write(&src, "b").unwrap();
        let backup = FileSystemLogManager::new(root.path().join("backup"));
        let metrics = Metrics::new();
        let now = crate::types::time::parse_naive("2024-01-02T03:04:05").unwrap();
        for primary in [Flaky(true), Flaky(false)] {
            import_log(
                &primary,
                Some(&backup),
                &metrics,
                "c",
                "r",
                "b.log",
                &LogSource::path(&src),
                0,
                now,
            )
            .await
            .unwrap();
        }
        assert!(root.path().join("backup/c/r/b.log.gz").exists());
        assert_eq!(metrics.primary_logfile_upload_failed.get(), 2);
        assert_eq!(metrics.logfile_uploads.get(), 2);
        let none = import_log(
            &Flaky(true),
            None,
            &metrics,
            "c",
            "r",
            "b.log",
            &LogSource::path(&src),
            0,
            now,
        )
        .await;
        assert!(matches!(none, Err(LogError::ServiceUnavailable)));
    }
}
