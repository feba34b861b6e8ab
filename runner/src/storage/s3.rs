//! S3-compatible log storage (runner-internals.md §9.1), as upstream's
//! `S3LogFileManager`: an `http://` or `https://` `logs_location` is the
//! endpoint, the bucket is always `debian-janitor`, a log is the object
//! `logs/<codebase>/<run_id>/<name>.gz` (gzip, level 9, the finish time as
//! mtime, no file name in the header: upstream uses `gzip.compress`),
//! written with the canned ACL `public-read` so the site can serve it.
//!
//! On the official AWS SDK: it speaks the canned ACL upstream writes (the
//! `object_store` crate cannot), and its credential chain is boto3's (the
//! environment, `~/.aws/credentials` and `config`, SSO and web identity,
//! container and instance metadata), so an operator's set-up carries over.
//! Addressing follows the same S3 endpoint rules as boto3: path-style for an
//! IP address endpoint, virtual-hosted for a DNS name.

use super::gcs::Compressed;
use super::logs::{LogError, LogManager, LogSource};
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ObjectCannedAcl;
use futures::future::BoxFuture;
use std::time::Duration;

/// Upstream's bucket, hard-wired.
pub const BUCKET: &str = "debian-janitor";

/// Upstream's default upload timeout for one log.
const LOG_TIMEOUT: Duration = Duration::from_secs(360);

// A setting (so `settings` need not depend on `storage`); named here too,
// where it is used.
pub use crate::settings::StaticCredentials;

/// The endpoint a location names: the location itself, without a trailing
/// `/` (upstream hands it to boto3 as `endpoint_url`).
pub fn endpoint_of(location: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(location)
        .map_err(|e| anyhow::anyhow!("invalid log location {location}: {e}"))?;
    if url.host_str().is_none_or(str::is_empty) {
        anyhow::bail!("invalid log location {location}: no host");
    }
    Ok(location.trim_end_matches('/').to_string())
}

/// A client for `endpoint`. The region comes from `AWS_REGION` /
/// `AWS_DEFAULT_REGION` or the profile, else `us-east-1` (boto3's default
/// for S3); it is never asked of instance metadata, so starting the runner
/// sends nothing anywhere.
pub async fn client(endpoint: &str, credentials: Option<&StaticCredentials>) -> aws_sdk_s3::Client {
    use aws_config::meta::region::RegionProviderChain;
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    crate::tls::install_crypto_provider();
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let region = RegionProviderChain::first_try(
        aws_config::environment::region::EnvironmentVariableRegionProvider::new(),
    )
    .or_else(aws_config::profile::ProfileFileRegionProvider::new())
    .or_else(aws_sdk_s3::config::Region::from_static("us-east-1"));
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .region(region)
        .endpoint_url(endpoint);
    if let Some(c) = credentials {
        loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
            c.access_key_id.clone(),
            c.secret_access_key.clone(),
            None,
            None,
            "janitor-runner settings",
        ));
    }
    let shared = loader.load().await;
    // Checksums only where S3 requires them, as boto3 before 1.36 (and what
    // every S3-compatible store accepts).
    let conf = aws_sdk_s3::config::Builder::from(&shared)
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// The object name of a log.
pub fn log_key(codebase: &str, run_id: &str, name: &str) -> String {
    format!("logs/{codebase}/{run_id}/{name}.gz")
}

pub struct S3LogManager {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3LogManager {
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        S3LogManager {
            client,
            bucket: BUCKET.to_string(),
        }
    }
}

impl LogManager for S3LogManager {
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
            // Kept until the upload is done: the body reads the file lazily.
            let gz = super::gcs::gzip_log(src, mtime).await?;
            let body = match &gz {
                Compressed::Memory(b) => ByteStream::from(b.clone()),
                // Streamed from the temporary file, never held in memory.
                Compressed::File(f) => ByteStream::from_path(f.path())
                    .await
                    .map_err(|e| LogError::Other(anyhow::anyhow!("{e}")))?,
            };
            let put = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(log_key(codebase, run_id, name))
                .acl(ObjectCannedAcl::PublicRead)
                .body(body)
                .send();
            match tokio::time::timeout(LOG_TIMEOUT, put).await {
                Err(_) => Err(LogError::Timeout),
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(classify(&e)),
            }
        })
    }
}

/// Upstream lets boto3's exceptions escape (the finish answers 500); here
/// they map onto the same cases as GCS, so `logs::import_log` falls back to
/// the backup store and no log is lost (divergence-policy §3).
fn classify(
    e: &SdkError<
        aws_sdk_s3::operation::put_object::PutObjectError,
        aws_sdk_s3::config::http::HttpResponse,
    >,
) -> LogError {
    match e {
        SdkError::TimeoutError(_) => return LogError::Timeout,
        SdkError::DispatchFailure(d) if d.is_timeout() => return LogError::Timeout,
        // Nothing answered (refused, reset, DNS): the store is unavailable.
        SdkError::DispatchFailure(_) => return LogError::ServiceUnavailable,
        _ => {}
    }
    let text = aws_sdk_s3::error::DisplayErrorContext(e).to_string();
    match e.raw_response().map(|r| r.status().as_u16()) {
        Some(403) => LogError::PermissionDenied(text),
        Some(500..=599) => LogError::ServiceUnavailable,
        _ => LogError::Other(anyhow::anyhow!("S3: {text}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_endpoints_as_upstream() {
        assert_eq!(
            log_key("cb", "r1", "worker.log"),
            "logs/cb/r1/worker.log.gz"
        );
        assert_eq!(
            endpoint_of("https://s3.example.com/").unwrap(),
            "https://s3.example.com"
        );
        assert_eq!(
            endpoint_of("http://127.0.0.1:9000").unwrap(),
            "http://127.0.0.1:9000"
        );
        assert!(endpoint_of("http://").is_err());
    }

    fn creds() -> StaticCredentials {
        StaticCredentials {
            access_key_id: "k".into(),
            secret_access_key: "s".into(),
        }
    }

    /// The store is an external peer here: a mock answering what S3 would.
    #[tokio::test]
    async fn a_forbidden_key_is_retried_under_the_dated_name_with_the_acl() {
        use wiremock::matchers::{method, path};
        use wiremock::{Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        Mock::given(method("PUT"))
            .and(path("/debian-janitor/logs/c/r/worker.log.gz"))
            .respond_with(ResponseTemplate::new(403).set_body_string(
                "<Error><Code>AccessDenied</Code><Message>exists</Message></Error>",
            ))
            .mount(&server)
            .await;
        Mock::given(method("PUT"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
        let m = S3LogManager::new(client(&server.uri(), Some(&creds())).await);
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("worker.log");
        std::fs::write(&src, "hello\n").unwrap();
        let metrics = crate::metrics::Metrics::new();
        let now = crate::types::time::parse_naive("2024-01-02T03:04:05").unwrap();
        super::super::logs::import_log(
            &m,
            None,
            &metrics,
            "c",
            "r",
            "worker.log",
            &LogSource::path(&src),
            7,
            now,
        )
        .await
        .unwrap();
        let reqs = server.received_requests().await.unwrap();
        // Keys are percent-encoded in the path (`:` as `%3A`), as boto3 does.
        let paths: Vec<String> = reqs
            .iter()
            .map(|r| r.url.path().replace("%3A", ":"))
            .collect();
        assert_eq!(
            paths,
            [
                "/debian-janitor/logs/c/r/worker.log.gz",
                "/debian-janitor/logs/c/r/worker.log.2024-01-02T03:04:05.gz"
            ]
        );
        for r in &reqs {
            assert_eq!(r.headers.get("x-amz-acl").unwrap(), "public-read");
            let mut d = flate2::read::GzDecoder::new(&r.body[..]);
            let mut text = String::new();
            std::io::Read::read_to_string(&mut d, &mut text).unwrap();
            assert_eq!(text, "hello\n");
            assert_eq!(d.header().unwrap().mtime(), 7);
            assert_eq!(d.header().unwrap().filename(), None);
        }
        assert_eq!(metrics.logfile_uploads.get(), 1);
    }

    #[tokio::test]
    async fn a_failing_or_absent_store_is_unavailable() {
        use wiremock::{matchers::any, Mock, MockServer, ResponseTemplate};
        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(ResponseTemplate::new(503))
            .mount(&server)
            .await;
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("worker.log");
        std::fs::write(&src, "x").unwrap();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        for endpoint in [server.uri(), closed] {
            let m = S3LogManager::new(client(&endpoint, Some(&creds())).await);
            let r = m
                .import_log("c", "r", "worker.log", &LogSource::path(&src), 0)
                .await;
            assert!(
                matches!(r, Err(LogError::ServiceUnavailable)),
                "{endpoint}: {r:?}"
            );
        }
    }
}
