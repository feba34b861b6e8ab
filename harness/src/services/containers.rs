//! The testcontainers path: used when a Docker engine answers a ping and the
//! harness was built with the `containers` feature (`ci/containers.sh` starts
//! a private engine and builds the images; README "Test services").
//!
//! Containers use the host's network only (the engine runs with
//! `--bridge=none`; traffic off loopback is not allowed from tests): each
//! server is told a free loopback port in its command and listens on
//! 127.0.0.1, and readiness is the server answering its own protocol there.
//! The command each server gets is the one the official images' entry points
//! take too (`postgres ARGS…`, `redis-server ARGS…`, fake-gcs-server's flags),
//! so images built `FROM` them work as well as the locally built ones.

/// Default images: the names `ci/containers.sh` builds.
pub const POSTGRES_IMAGE: (&str, &str) =
    ("JANITOR_TEST_POSTGRES_IMAGE", "janitor-test-postgres:15");
pub const REDIS_IMAGE: (&str, &str) = ("JANITOR_TEST_REDIS_IMAGE", "janitor-test-redis:7");
pub const GCS_IMAGE: (&str, &str) = ("JANITOR_TEST_GCS_IMAGE", "janitor-test-fake-gcs:latest");

/// The label every harness container carries (`ci/containers.sh stop`
/// removes leftovers of a harness that was killed).
pub const LABEL: &str = "org.janitor.harness";

/// The image an environment variable names, or the default.
pub fn image((env, default): (&str, &str)) -> String {
    std::env::var(env)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// `name[:tag]` as testcontainers takes it; a `:` before the last `/` is a
/// registry's port, not a tag.
pub fn split_image(spec: &str) -> (String, String) {
    match spec.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n.to_string(), t.to_string()),
        _ => (spec.to_string(), "latest".to_string()),
    }
}

#[cfg(feature = "containers")]
mod imp {
    use super::{image, LABEL};
    use crate::services::process::free_port;
    use anyhow::{bail, Context};
    use sqlx::Connection;
    use std::future::Future;
    use std::sync::{Mutex, Once};
    use std::time::{Duration, Instant};
    use testcontainers::runners::AsyncRunner;
    use testcontainers::{GenericImage, ImageExt};

    /// A running container, removed (synchronously, through the engine's
    /// API) when dropped, and at exit if it was never dropped (the
    /// process-wide PostgreSQL lives in a static).
    pub struct ContainerGuard {
        id: String,
        pub image: String,
        pub port: u16,
    }

    impl ContainerGuard {
        /// The engine's id of the container.
        pub fn id(&self) -> Option<&str> {
            Some(&self.id)
        }
    }

    impl std::fmt::Debug for ContainerGuard {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(
                f,
                "container {} ({}, 127.0.0.1:{})",
                &self.id[..12.min(self.id.len())],
                self.image,
                self.port
            )
        }
    }

    impl Drop for ContainerGuard {
        fn drop(&mut self) {
            remove(&self.id);
            LIVE.lock().unwrap().retain(|id| *id != self.id);
        }
    }

    static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

    extern "C" fn remove_live_at_exit() {
        if let Ok(mut live) = LIVE.lock() {
            for id in live.drain(..) {
                remove(&id);
            }
        }
    }

    fn remove(id: &str) {
        if let Err(e) =
            super::engine_request("DELETE", &format!("/containers/{id}?force=true&v=true"))
        {
            tracing::warn!("removing container {id}: {e}");
        }
    }

    /// Start `image_spec` on the host network with `cmd(port)` for a free
    /// loopback port, until `ready(port)` (another port if the container
    /// exits first, e.g. on a port clash; five attempts).
    async fn start<F, Fut>(
        image_spec: &str,
        env: &[(&str, &str)],
        cmd: impl Fn(u16) -> Vec<String>,
        ready: F,
        timeout: Duration,
    ) -> anyhow::Result<ContainerGuard>
    where
        F: Fn(u16) -> Fut,
        Fut: Future<Output = bool>,
    {
        static AT_EXIT: Once = Once::new();
        AT_EXIT.call_once(|| unsafe {
            libc::atexit(remove_live_at_exit);
        });
        let (name, tag) = super::split_image(image_spec);
        for attempt in 0..5 {
            let port = free_port()?;
            let mut req = GenericImage::new(name.clone(), tag.clone())
                .with_network("host")
                .with_label(LABEL, std::process::id().to_string())
                .with_cmd(cmd(port));
            for (k, v) in env {
                req = req.with_env_var(*k, *v);
            }
            let c = req
                .start()
                .await
                .with_context(|| format!("starting a container of {image_spec}"))?;
            let id = c.id().to_string();
            // Removal is ours (synchronous, also at exit), not testcontainers'
            // asynchronous drop, which needs a runtime.
            std::mem::forget(c);
            LIVE.lock().unwrap().push(id.clone());
            let guard = ContainerGuard {
                id,
                image: image_spec.to_string(),
                port,
            };
            let deadline = Instant::now() + timeout;
            loop {
                if ready(port).await {
                    return Ok(guard);
                }
                if !running(&guard.id) {
                    tracing::warn!(
                        attempt,
                        "{image_spec} exited at start; retrying on another port"
                    );
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "{image_spec} did not answer on 127.0.0.1:{port} within {} s",
                        timeout.as_secs()
                    );
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        }
        bail!("could not start a container of {image_spec} (5 attempts)")
    }

    fn running(id: &str) -> bool {
        match super::engine_request("GET", &format!("/containers/{id}/json")) {
            Ok(body) => body.contains("\"Running\":true"),
            Err(_) => false,
        }
    }

    /// PostgreSQL with trust authentication for `postgres` on 127.0.0.1.
    pub async fn postgres() -> anyhow::Result<(url::Url, ContainerGuard)> {
        let spec = image(super::POSTGRES_IMAGE);
        let url_for = |port: u16| format!("postgres://postgres@127.0.0.1:{port}/postgres");
        let guard = start(
            &spec,
            // The official image's entry point: no password, trust.
            &[("POSTGRES_HOST_AUTH_METHOD", "trust")],
            |port| {
                let mut c = vec!["postgres".to_string(), "-p".into(), port.to_string()];
                for setting in [
                    "listen_addresses=127.0.0.1",
                    "fsync=off",
                    "synchronous_commit=off",
                    "full_page_writes=off",
                    "timezone=UTC",
                    "max_connections=300",
                    "shared_buffers=128MB",
                ] {
                    c.extend(["-c".to_string(), setting.to_string()]);
                }
                c
            },
            |port| async move { sqlx::PgConnection::connect(&url_for(port)).await.is_ok() },
            Duration::from_secs(60),
        )
        .await?;
        Ok((url::Url::parse(&url_for(guard.port))?, guard))
    }

    /// One Redis server (no persistence) on 127.0.0.1.
    pub async fn redis() -> anyhow::Result<(String, ContainerGuard)> {
        let spec = image(super::REDIS_IMAGE);
        let url_for = |port: u16| format!("redis://127.0.0.1:{port}");
        let guard = start(
            &spec,
            &[],
            |port| {
                [
                    "redis-server",
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ]
                .map(String::from)
                .to_vec()
            },
            |port| async move {
                let Ok(client) = redis::Client::open(url_for(port)) else {
                    return false;
                };
                let Ok(mut c) = client.get_multiplexed_async_connection().await else {
                    return false;
                };
                redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .is_ok()
            },
            Duration::from_secs(30),
        )
        .await?;
        Ok((url_for(guard.port), guard))
    }

    /// fake-gcs-server (HTTP, in-memory) on 127.0.0.1.
    pub async fn gcs() -> anyhow::Result<(String, ContainerGuard)> {
        let spec = image(super::GCS_IMAGE);
        let endpoint = |port: u16| format!("http://127.0.0.1:{port}");
        let guard = start(
            &spec,
            &[],
            crate::services::gcs::server_args,
            |port| async move {
                janitor_runner::tls::http_client()
                    .get(format!("{}/storage/v1/b", endpoint(port)))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            },
            Duration::from_secs(30),
        )
        .await?;
        Ok((endpoint(guard.port), guard))
    }
}

#[cfg(not(feature = "containers"))]
mod imp {
    #[derive(Debug)]
    pub struct ContainerGuard;

    impl ContainerGuard {
        pub fn id(&self) -> Option<&str> {
            None
        }
    }

    pub async fn postgres() -> anyhow::Result<(url::Url, ContainerGuard)> {
        anyhow::bail!("built without the `containers` feature")
    }

    pub async fn redis() -> anyhow::Result<(String, ContainerGuard)> {
        anyhow::bail!("built without the `containers` feature")
    }

    pub async fn gcs() -> anyhow::Result<(String, ContainerGuard)> {
        anyhow::bail!("built without the `containers` feature")
    }
}

pub use imp::*;

/// The Docker engine's socket: `DOCKER_HOST` (`unix://…`) or the default.
fn engine_socket() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(str::to_string))
        .unwrap_or_else(|| "/var/run/docker.sock".to_string())
}

/// One HTTP/1.0 request to the engine's API, synchronously (usable in
/// `Drop` and at exit); the body of a 2xx answer.
fn engine_request(method: &str, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(engine_socket())?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))?;
    s.write_all(format!("{method} {path} HTTP/1.0\r\nHost: docker\r\n\r\n").as_bytes())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let ok = text.len() > 12 && text.starts_with("HTTP/1.") && text.as_bytes()[9] == b'2';
    if !ok {
        return Err(std::io::Error::other(
            text.lines().next().unwrap_or("no answer").to_string(),
        ));
    }
    Ok(text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}

/// Does the engine know a container with this id (running or not)?
pub fn container_exists(id: &str) -> bool {
    engine_request("GET", &format!("/containers/{id}/json")).is_ok()
}

/// Does a Docker engine answer `GET /_ping` on its socket?
pub fn docker_answers() -> bool {
    engine_request("GET", "/_ping").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_split_into_name_and_tag() {
        assert_eq!(
            split_image("janitor-test-postgres:15"),
            ("janitor-test-postgres".into(), "15".into())
        );
        assert_eq!(
            split_image("fsouza/fake-gcs-server"),
            ("fsouza/fake-gcs-server".into(), "latest".into())
        );
        assert_eq!(
            split_image("registry.local:5000/redis"),
            ("registry.local:5000/redis".into(), "latest".into())
        );
        assert_eq!(
            split_image("registry.local:5000/redis:7"),
            ("registry.local:5000/redis".into(), "7".into())
        );
    }
}
