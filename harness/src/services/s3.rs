//! An S3-compatible store for tests and replays: moto's server
//! (`moto_server`, from the PyPI package `moto[server]` that `ci/setup.sh`
//! installs into the venv). The runner's bucket name is hard-wired
//! (`debian-janitor`, as upstream), so each user gets a server of its own
//! (it starts in under a second) instead of a bucket of a shared one.

use super::process::{free_port, OwnedProcess};
use anyhow::{bail, Context};
use janitor_runner::storage::s3::StaticCredentials;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct S3Server {
    /// e.g. `http://127.0.0.1:5000`: what a runner takes as `logs_location`.
    pub endpoint: String,
    process: Option<OwnedProcess>,
}

/// What the runners and the harness sign with (moto accepts any).
pub fn credentials() -> StaticCredentials {
    StaticCredentials {
        access_key_id: "testing".into(),
        secret_access_key: "testing".into(),
    }
}

pub fn find_binary() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("MOTO_SERVER") {
        return Ok(PathBuf::from(p));
    }
    let top = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = std::env::var("JANITOR_VENV")
        .map(PathBuf::from)
        .unwrap_or(top.join(".venv"));
    let bin = venv.join("bin/moto_server");
    if bin.exists() {
        return Ok(bin);
    }
    bail!("moto_server not found: run ci/setup.sh (it installs moto[server] into .venv), or set MOTO_SERVER")
}

impl S3Server {
    /// A server on a free loopback port.
    pub async fn start() -> anyhow::Result<S3Server> {
        let mut last = None;
        for _ in 0..5 {
            match Self::start_on(free_port()?).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("could not start moto_server")))
    }

    /// A server on `port` (e.g. where a runner was told a store would be).
    pub async fn start_on(port: u16) -> anyhow::Result<S3Server> {
        let bin = find_binary()?;
        let mut cmd = Command::new(&bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut proc = OwnedProcess::spawn(cmd, None, libc::SIGTERM)
            .with_context(|| format!("starting {}", bin.display()))?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let client = janitor_runner::tls::http_client();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = client.get(format!("{endpoint}/")).send().await {
                if r.status().is_success() {
                    return Ok(S3Server {
                        endpoint,
                        process: Some(proc),
                    });
                }
            }
            if let Some(status) = proc.exited() {
                proc.disarm();
                bail!("moto_server exited at start ({status})");
            }
            if Instant::now() > deadline {
                bail!("moto_server did not answer within 20 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stop the server now (a store going down under a runner).
    pub fn stop(&mut self) {
        self.process.take();
    }

    pub async fn client(&self) -> aws_sdk_s3::Client {
        janitor_runner::storage::s3::client(&self.endpoint, Some(&credentials())).await
    }

    pub async fn create_bucket(&self, name: &str) -> anyhow::Result<()> {
        self.client()
            .await
            .create_bucket()
            .bucket(name)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(())
    }

    /// Every object of a bucket with its bytes, by name.
    pub async fn objects(&self, bucket: &str) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let client = self.client().await;
        let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("S3 {bucket}: {e}");
        let mut out = Vec::new();
        let mut pages = client
            .list_objects_v2()
            .bucket(bucket)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| err(&aws_sdk_s3::error::DisplayErrorContext(e)))?;
            for obj in page.contents() {
                let key = obj.key().unwrap_or_default().to_string();
                let body = client
                    .get_object()
                    .bucket(bucket)
                    .key(&key)
                    .send()
                    .await
                    .map_err(|e| err(&aws_sdk_s3::error::DisplayErrorContext(e)))?
                    .body
                    .collect()
                    .await?
                    .into_bytes();
                out.push((key, body.to_vec()));
            }
        }
        out.sort();
        Ok(out)
    }
}
