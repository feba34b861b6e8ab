//! Google Cloud Storage backends (runner-internals.md §9.1, §10) on the
//! official `google-cloud-storage` client, over its JSON API (what
//! fake-gcs-server speaks too).

use super::artifacts::{ArtifactError, ArtifactManager};
use super::logs::{LogError, LogManager, LogSource};
use futures::future::BoxFuture;
use google_cloud_storage::client::Storage;
use google_cloud_storage::streaming_source::{Seek, StreamingSource};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

/// Upstream's upload timeout for one log (§9.2).
const LOG_TIMEOUT: Duration = Duration::from_secs(300);
/// Upstream's `DEFAULT_GCS_TIMEOUT` for one artifact upload.
const ARTIFACT_TIMEOUT: Duration = Duration::from_secs(60);

/// A GCS client: the emulator named by `STORAGE_EMULATOR_HOST` with anonymous
/// credentials (as gcloud-aio does), else Google with Application Default
/// Credentials.
pub async fn client(emulator_host: Option<&str>) -> anyhow::Result<Storage> {
    crate::tls::install_crypto_provider();
    // Upstream does not retry an upload: a 503 must reach `import_log` at
    // once so the log goes to the backup instead of waiting out backoffs.
    let builder = Storage::builder().with_retry_policy(google_cloud_gax::retry_policy::NeverRetry);
    let builder = match emulator_host.filter(|h| !h.trim().is_empty()) {
        Some(host) => builder
            .with_endpoint(emulator_endpoint(host))
            .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build()),
        None => builder,
    };
    Ok(builder.build().await?)
}

/// `host:port` → `http://host:port`; a URL is kept as given.
pub fn emulator_endpoint(host: &str) -> String {
    let host = host.trim().trim_end_matches('/');
    if host.starts_with("http://") || host.starts_with("https://") {
        host.to_string()
    } else {
        format!("http://{host}")
    }
}

/// The bucket of `gs://bucket[/path]` (the path is ignored, as upstream).
pub fn bucket_of(location: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(location)
        .map_err(|e| anyhow::anyhow!("invalid location {location}: {e}"))?;
    match url.host_str() {
        Some(h) if !h.is_empty() => Ok(h.to_string()),
        _ => anyhow::bail!("invalid location missing bucket name: {location}"),
    }
}

fn bucket_path(bucket: &str) -> String {
    format!("projects/_/buckets/{bucket}")
}

/// What went wrong with one GCS call, before each manager maps it.
enum Failure {
    Unavailable,
    Forbidden(String),
    Timeout,
    Other(String),
}

fn classify(e: &google_cloud_storage::Error) -> Failure {
    match e.http_status_code() {
        Some(503) => Failure::Unavailable,
        Some(403) => Failure::Forbidden(e.to_string()),
        _ if e.is_timeout() => Failure::Timeout,
        _ => Failure::Other(e.to_string()),
    }
}

/// What an upload sends: a file, streamed from disk (never held in
/// memory), or bytes already in memory (a small log).
enum Body<'a> {
    File(&'a Path),
    Bytes(bytes::Bytes),
}

/// Uploads `body` as `object` within `timeout`.
///
/// Always one multipart request with the CRC32C given up front (computed
/// here in a first pass over the file). What the crate does otherwise fails
/// against fake-gcs-server: a single-shot upload sends its checksum in a
/// trailing third part, which the emulator stores as part of the object;
/// a resumable upload is sent with `Host: 127.0.0.1` (no port), from which
/// the emulator builds an unusable session URL.
async fn upload_file(
    client: &Storage,
    bucket: &str,
    object: &str,
    body: Body<'_>,
    timeout: Duration,
) -> Result<(), Failure> {
    // gcloud-aio names the type after the object (Python's mimetypes);
    // without a guess the store's default (application/octet-stream) stays.
    let content_type = guess_content_type(object, system_mime_types());
    let path = match body {
        Body::Bytes(b) => {
            let crc = crc32c::crc32c(&b);
            let upload = client.write_object(bucket_path(bucket), object.to_string(), b);
            return send(upload, content_type, crc, timeout).await;
        }
        Body::File(path) => path,
    };
    // An error names no path: it ends up in the run's stored description,
    // which must not show a server's temporary directory (and reads as
    // upstream's, `No such file or directory (os error 2)`).
    let src = path.to_path_buf();
    let crc = tokio::task::spawn_blocking(move || crc32c_of(&src))
        .await
        .map_err(|e| Failure::Other(e.to_string()))?
        .map_err(|e| Failure::Other(e.to_string()))?;
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| Failure::Other(e.to_string()))?;
    let upload = client.write_object(bucket_path(bucket), object.to_string(), file);
    send(upload, content_type, crc, timeout).await
}

/// Sends a prepared upload as [`upload_file`] describes.
async fn send<T>(
    mut upload: google_cloud_storage::builder::storage::WriteObject<T>,
    content_type: Option<String>,
    crc: u32,
    timeout: Duration,
) -> Result<(), Failure>
where
    T: StreamingSource + Seek + Send + Sync + 'static,
    <T as StreamingSource>::Error: std::error::Error + Send + Sync + 'static,
    <T as Seek>::Error: std::error::Error + Send + Sync + 'static,
{
    if let Some(ct) = content_type {
        upload = upload.set_content_type(ct);
    }
    let upload = upload
        .with_known_crc32c(crc)
        .with_resumable_upload_threshold(usize::MAX)
        .send_unbuffered();
    match tokio::time::timeout(timeout, upload).await {
        Err(_) => Err(Failure::Timeout),
        Ok(Err(e)) => Err(classify(&e)),
        Ok(Ok(_)) => Ok(()),
    }
}

/// `/etc/mime.types` as an extension → type map (Python's mimetypes reads
/// it on Debian, where its built-in table adds nothing the file lacks).
fn system_mime_types() -> &'static HashMap<String, String> {
    static TYPES: OnceLock<HashMap<String, String>> = OnceLock::new();
    TYPES.get_or_init(|| {
        std::fs::read_to_string("/etc/mime.types")
            .map(|t| parse_mime_types(&t))
            .unwrap_or_default()
    })
}

/// A mime.types file: `type ext ext…` per line, `#` comments; a later line
/// wins for an extension, as in Python.
pub fn parse_mime_types(text: &str) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        if let Some(ty) = words.next() {
            for ext in words {
                map.insert(format!(".{ext}"), ty.to_string());
            }
        }
    }
    map
}

/// `mimetypes.guess_type(name)[0]`: suffix aliases expanded (`.tgz`), one
/// compression suffix (`.gz`, `.xz`, …) set aside, then the extension looked
/// up exactly, then lower-cased.
pub fn guess_content_type(name: &str, types: &HashMap<String, String>) -> Option<String> {
    fn splitext(p: &str) -> (String, String) {
        let start = p.rfind('/').map_or(0, |i| i + 1);
        let file = &p[start..];
        let lead = file.len() - file.trim_start_matches('.').len();
        match file[lead..].rfind('.') {
            Some(i) => {
                let at = start + lead + i;
                (p[..at].to_string(), p[at..].to_string())
            }
            None => (p.to_string(), String::new()),
        }
    }
    let suffixes = |e: &str| match e {
        ".svgz" => Some(".svg.gz"),
        ".tgz" | ".taz" | ".tz" => Some(".tar.gz"),
        ".tbz2" => Some(".tar.bz2"),
        ".txz" => Some(".tar.xz"),
        _ => None,
    };
    let encodings = [".gz", ".Z", ".bz2", ".xz", ".br"];
    let (mut base, mut ext) = splitext(name);
    while let Some(s) = suffixes(&ext.to_lowercase()) {
        (base, ext) = splitext(&format!("{base}{s}"));
    }
    if encodings.contains(&ext.as_str()) || encodings.contains(&ext.to_lowercase().as_str()) {
        (_, ext) = splitext(&base);
    }
    types
        .get(&ext)
        .or_else(|| types.get(&ext.to_lowercase()))
        .cloned()
}

fn crc32c_of(path: &Path) -> std::io::Result<u32> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut crc = 0u32;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(crc);
        }
        crc = crc32c::crc32c_append(crc, &buf[..n]);
    }
}

/// Logs as objects `<codebase>/<run_id>/<name>.gz` of one bucket.
pub struct GcsLogManager {
    client: Storage,
    bucket: String,
}

impl GcsLogManager {
    pub fn new(client: Storage, bucket: impl Into<String>) -> Self {
        GcsLogManager {
            client,
            bucket: bucket.into(),
        }
    }

    /// Upstream's 403 check: the existing object equal to the *uncompressed*
    /// data counts as stored (never true in practice, kept for parity).
    async fn existing_equals(&self, object: &str, src: &LogSource<'_>) -> bool {
        let read = async {
            let mut resp = self
                .client
                .read_object(bucket_path(&self.bucket), object.to_string())
                .send()
                .await
                .ok()?;
            let plain = src.read_all().await.ok()?;
            let mut stored = Vec::new();
            while let Some(chunk) = resp.next().await {
                stored.extend_from_slice(&chunk.ok()?);
                if stored.len() > plain.len() {
                    return Some(false);
                }
            }
            Some(stored[..] == plain[..])
        };
        matches!(
            tokio::time::timeout(LOG_TIMEOUT, read).await,
            Ok(Some(true))
        )
    }
}

impl LogManager for GcsLogManager {
    fn import_log<'a>(
        &'a self,
        codebase: &'a str,
        run_id: &'a str,
        name: &'a str,
        src: &'a LogSource<'a>,
        mtime: u32,
    ) -> BoxFuture<'a, Result<(), LogError>> {
        Box::pin(async move {
            super::logs::check_log_path(codebase, run_id, name)?;
            let object = format!("{codebase}/{run_id}/{name}.gz");
            let gz = gzip_log(src, mtime).await?;
            let body = match &gz {
                Compressed::Memory(b) => Body::Bytes(b.clone()),
                Compressed::File(f) => Body::File(f.path()),
            };
            match upload_file(&self.client, &self.bucket, &object, body, LOG_TIMEOUT).await {
                Ok(()) => Ok(()),
                Err(Failure::Unavailable) => Err(LogError::ServiceUnavailable),
                Err(Failure::Timeout) => Err(LogError::Timeout),
                Err(Failure::Forbidden(msg)) => {
                    if self.existing_equals(&object, src).await {
                        Ok(())
                    } else {
                        Err(LogError::PermissionDenied(msg))
                    }
                }
                Err(Failure::Other(msg)) => Err(LogError::Other(anyhow::anyhow!(msg))),
            }
        })
    }
}

/// A compressed log for an object store.
pub enum Compressed {
    /// From a log held in memory: compressed in memory too.
    Memory(bytes::Bytes),
    /// From a file: compressed into a temporary file, so a large log is
    /// streamed both ways instead of held in memory.
    File(tempfile::NamedTempFile),
}

/// Gzip (level 9, header mtime, no file name: upstream compresses in memory
/// with `gzip.compress`) a log for an object store.
pub async fn gzip_log(src: &LogSource<'_>, mtime: u32) -> Result<Compressed, LogError> {
    let compressed = match src {
        LogSource::Bytes(b) => gzip_bytes(b, mtime).map(|v| Compressed::Memory(v.into())),
        LogSource::File(p) => {
            let p = p.to_path_buf();
            tokio::task::spawn_blocking(move || gzip_to_temp(&p, mtime))
                .await
                .map_err(|e| LogError::Other(e.into()))?
                .map(Compressed::File)
        }
    };
    compressed.map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => LogError::PermissionDenied(e.to_string()),
        _ => LogError::Other(e.into()),
    })
}

fn gzip_bytes(data: &[u8], mtime: u32) -> std::io::Result<Vec<u8>> {
    super::gzip::gzip(data, Vec::with_capacity(data.len() / 2 + 64), None, mtime)
}

/// [`gzip_log`] of a file, into a temporary file.
pub fn gzip_to_temp(src: &Path, mtime: u32) -> std::io::Result<tempfile::NamedTempFile> {
    let input = std::fs::File::open(src)?;
    let out = tempfile::NamedTempFile::new()?;
    let mut w = super::gzip::gzip(input, std::io::BufWriter::new(out.reopen()?), None, mtime)?;
    std::io::Write::flush(&mut w)?;
    Ok(out)
}

/// Artifacts as objects `<run_id>/<name>` of one bucket, uploaded in parallel.
pub struct GcsArtifactManager {
    client: Storage,
    bucket: String,
}

impl GcsArtifactManager {
    pub fn new(client: Storage, bucket: impl Into<String>) -> Self {
        GcsArtifactManager {
            client,
            bucket: bucket.into(),
        }
    }
}

impl ArtifactManager for GcsArtifactManager {
    fn store_artifacts<'a>(
        &'a self,
        run_id: &'a str,
        local_dir: &'a Path,
        names: &'a [String],
    ) -> BoxFuture<'a, Result<(), ArtifactError>> {
        Box::pin(async move {
            super::artifacts::check_artifact_path(run_id, names)?;
            // A run stores the same files whichever store holds them: the
            // filesystem store (upstream's) copies in order and stops at a
            // missing file, so only the names before it are uploaded here
            // (in parallel), and the missing one is the error.
            let missing = names.iter().position(|n| !local_dir.join(n).is_file());
            let present = &names[..missing.unwrap_or(names.len())];
            let uploads = present.iter().map(|name| async move {
                let object = format!("{run_id}/{name}");
                upload_file(
                    &self.client,
                    &self.bucket,
                    &object,
                    Body::File(&local_dir.join(name)),
                    ARTIFACT_TIMEOUT,
                )
                .await
            });
            // Every upload runs to its end (as `asyncio.gather` leaves the
            // others running when one fails).
            let mut results = futures::future::join_all(uploads).await;
            if let Some(i) = missing {
                let e = std::fs::metadata(local_dir.join(&names[i]))
                    .err()
                    .map_or_else(|| "not a file".to_string(), |e| e.to_string());
                results.push(Err(Failure::Other(e)));
            }
            match results.into_iter().collect::<Result<Vec<()>, Failure>>() {
                Ok(_) => {
                    tracing::info!(run_id, ?names, bucket = %self.bucket, "uploaded artifacts");
                    Ok(())
                }
                Err(Failure::Unavailable) => Err(ArtifactError::ServiceUnavailable),
                Err(Failure::Timeout) => Err(ArtifactError::Io("timeout".into())),
                Err(Failure::Forbidden(m) | Failure::Other(m)) => Err(ArtifactError::Io(m)),
            }
        })
    }
}

/// Reads a gzip header's mtime (for tests and tools comparing stores).
pub fn gzip_mtime(raw: &[u8]) -> Option<u32> {
    let mut d = flate2::read::GzDecoder::new(raw);
    let mut sink = [0u8; 1];
    let _ = d.read(&mut sink);
    d.header().map(|h| h.mtime())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_come_from_the_host() {
        assert_eq!(bucket_of("gs://janitor-logs").unwrap(), "janitor-logs");
        assert_eq!(bucket_of("gs://b/ignored/path").unwrap(), "b");
        assert!(bucket_of("gs://").is_err());
    }

    #[test]
    fn content_types_are_guessed_as_python_does() {
        let types = parse_mime_types(
            "# comment\napplication/vnd.debian.binary-package deb udeb\n\
             text/prs.lines.tag tag dsc\napplication/x-tar tar\ntext/plain txt\n",
        );
        let guess = |n: &str| guess_content_type(n, &types);
        assert_eq!(
            guess("r/p_1_all.deb").as_deref(),
            Some("application/vnd.debian.binary-package")
        );
        assert_eq!(guess("r/p_1.dsc").as_deref(), Some("text/prs.lines.tag"));
        assert_eq!(
            guess("r/p_1.orig.tar.gz").as_deref(),
            Some("application/x-tar")
        );
        assert_eq!(guess("r/p_1.tgz").as_deref(), Some("application/x-tar"));
        assert_eq!(guess("r/NOTES.TXT").as_deref(), Some("text/plain"));
        assert_eq!(guess("c/r/build.log.gz"), None);
        assert_eq!(guess("r/p_1_amd64.changes"), None);
        assert_eq!(guess("r/.txt"), None);
        assert_eq!(guess("r.d/noext"), None);
    }

    #[test]
    fn emulator_hosts_get_a_scheme() {
        assert_eq!(emulator_endpoint("127.0.0.1:4443"), "http://127.0.0.1:4443");
        assert_eq!(emulator_endpoint("https://h:1/"), "https://h:1");
    }

    #[test]
    fn compressed_logs_carry_the_mtime_and_no_name() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("build.log");
        std::fs::write(&src, "line\n").unwrap();
        let gz = gzip_to_temp(&src, 1_600_000_000).unwrap();
        let raw = std::fs::read(gz.path()).unwrap();
        let mut d = flate2::read::GzDecoder::new(&raw[..]);
        let mut text = String::new();
        d.read_to_string(&mut text).unwrap();
        assert_eq!(text, "line\n");
        assert_eq!(d.header().unwrap().filename(), None);
        assert_eq!(gzip_mtime(&raw), Some(1_600_000_000));
        // A log held in memory compresses to the same bytes.
        assert_eq!(gzip_bytes(b"line\n", 1_600_000_000).unwrap(), raw);
    }
}
