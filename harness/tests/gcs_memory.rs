//! A 200 MiB artifact and a 200 MiB log go to GCS (fake-gcs-server) streamed
//! from disk: the process's peak resident set grows by far less than the
//! file, and the objects arrive intact. Its own test binary, since the peak
//! is process-wide.

use janitor_harness::testing::{peak_rss_kib, write_random_file};
use janitor_runner::storage::artifacts::ArtifactManager;
use janitor_runner::storage::gcs::{client, GcsArtifactManager, GcsLogManager};
use janitor_runner::storage::logs::{LogManager, LogSource};
use sha2::{Digest, Sha256};
use std::io::Read;

const SIZE: usize = 200 << 20;
const MAX_GROWTH_KIB: u64 = 50 << 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_uploads_are_streamed_from_disk() {
    let gcs = janitor_harness::services::gcs().await.unwrap();
    gcs.create_bucket("mem-artifacts").await.unwrap();
    gcs.create_bucket("mem-logs").await.unwrap();
    let c = client(Some(&gcs.endpoint)).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let digest = write_random_file(&tmp.path().join("big_1_amd64.deb"), SIZE);

    let before = peak_rss_kib();
    GcsArtifactManager::new(c.clone(), "mem-artifacts")
        .store_artifacts("r1", tmp.path(), &["big_1_amd64.deb".to_string()])
        .await
        .unwrap();
    GcsLogManager::new(c, "mem-logs")
        .import_log(
            "c",
            "r1",
            "build.log",
            &LogSource::path(&tmp.path().join("big_1_amd64.deb")),
            7,
        )
        .await
        .unwrap();
    let growth = peak_rss_kib().saturating_sub(before);
    eprintln!("peak RSS growth for a 200 MiB artifact + log upload: {growth} KiB");
    assert!(growth < MAX_GROWTH_KIB, "grew by {growth} KiB");

    let art = gcs.objects("mem-artifacts").await.unwrap();
    assert_eq!(art[0].0, "r1/big_1_amd64.deb");
    assert_eq!(Sha256::digest(&art[0].1).to_vec(), digest);
    drop(art);
    let logs = gcs.objects("mem-logs").await.unwrap();
    assert_eq!(logs[0].0, "c/r1/build.log.gz");
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&logs[0].1[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(Sha256::digest(&plain).to_vec(), digest);
}
