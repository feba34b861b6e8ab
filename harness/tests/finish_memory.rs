//! A finish uploading a large Debian artifact goes through the real stack
//! (in-process runner, PostgreSQL, Redis) without holding the upload in
//! memory, and the artifact is stored intact.

use bytes::Bytes;
use janitor_harness::testing::{peak_rss_kib, write_random_file, TestRunner};
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection};
use std::path::Path;
use tokio::io::AsyncReadExt;

const ARTIFACT_SIZE: usize = 200 << 20;
const MAX_GROWTH_KIB: u64 = 50 << 10;

async fn sha256_of(path: &Path) -> (u64, String) {
    let mut f = tokio::fs::File::open(path)
        .await
        .expect("open stored artifact");
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).await.expect("read");
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    (size, hex::encode(h.finalize()))
}

fn part_header(boundary: &str, filename: &str, content_type: &str) -> String {
    format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: {content_type}\r\n\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mib_debian_artifact_is_streamed_to_storage() {
    let t = TestRunner::start_with("", |s, _| {
        s.public_port = None;
        s.db_max_connections = 3;
    })
    .await
    .expect("runner");
    let tmp = &t.dir;
    let artifacts = tmp.path().join("artifacts");

    let mut conn = PgConnection::connect(&t.services.db.url)
        .await
        .expect("connect");
    let run = t
        .queue_and_register("debpkg", "lintian-fixes", "lintian-brush")
        .await
        .expect("run");
    let run_id = run.log_id.clone();

    let deb_name = "debpkg_1.0-1_all.deb";
    let deb_path = tmp.path().join(deb_name);
    let sha = hex::encode(write_random_file(&deb_path, ARTIFACT_SIZE));
    let changes = format!(
        "Format: 1.8\nSource: debpkg\nBinary: debpkg\nVersion: 1.0-1\nDistribution: lintian-fixes\n\
         Files:\n 00000000000000000000000000000000 {ARTIFACT_SIZE} devel optional {deb_name}\n"
    );
    let result = serde_json::json!({
        "code": "success",
        "start_time": "2026-11-22T15:37:58.138703466Z",
        "finish_time": "2026-11-22T15:39:58.208173152Z",
        "target": {"name": "debian", "details": {"lintian": {"tags": []}}},
    });

    let boundary = "b2a0fdbba2f1b5bc-733e0e2ba675e225";
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"; filename=\"result.json\"\r\n\
         Content-Type: application/json\r\n\r\n{result}\r\n{}{changes}\r\n{}",
        part_header(boundary, "debpkg_1.0-1_amd64.changes", "application/octet-stream"),
        part_header(boundary, deb_name, "application/octet-stream"),
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    let file = tokio::fs::File::open(&deb_path)
        .await
        .expect("open artifact");
    let file_chunks = futures::stream::unfold(file, |mut f| async move {
        let mut buf = vec![0u8; 256 << 10];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    use futures::StreamExt;
    let body = futures::stream::once(async move { Ok(Bytes::from(head)) })
        .chain(file_chunks)
        .chain(futures::stream::once(async move { Ok(Bytes::from(tail)) }));

    let client = janitor_runner::tls::http_client();
    let before = peak_rss_kib();
    let resp = client
        .post(format!(
            "http://{}/active-runs/{run_id}/finish",
            t.runner.admin_addr
        ))
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .expect("finish request");
    let status = resp.status();
    let json: serde_json::Value = resp.json().await.expect("finish answer");
    let after = peak_rss_kib();
    assert_eq!(status.as_u16(), 201, "{json}");
    assert_eq!(
        json["artifacts"],
        serde_json::json!([deb_name, "debpkg_1.0-1_amd64.changes"])
    );
    assert_eq!(json["result"]["code"], "success");
    eprintln!("peak RSS {before} KiB before the upload, {after} KiB after");
    assert!(
        after.saturating_sub(before) < MAX_GROWTH_KIB,
        "peak RSS grew by {} KiB during a {} MiB upload",
        after.saturating_sub(before),
        ARTIFACT_SIZE >> 20
    );

    let (size, stored_sha) = sha256_of(&artifacts.join(&run_id).join(deb_name)).await;
    assert_eq!(size, ARTIFACT_SIZE as u64);
    assert_eq!(stored_sha, sha);
    let (version,): (String,) =
        sqlx::query_as("SELECT version::text FROM debian_build WHERE run_id = $1")
            .bind(&run_id)
            .fetch_one(&mut conn)
            .await
            .expect("debian_build row");
    assert_eq!(version, "1.0-1");
    t.runner.shutdown().await.expect("shutdown");
}
