//! The testcontainers path: used when a Docker engine answers a ping and the
//! harness was built with the `containers` feature. No Docker engine runs on
//! the machines this project is developed on, so this path is compiled (with
//! `--features containers`) but unverified; see README.

#[cfg(feature = "containers")]
mod imp {
    use anyhow::Context;
    use testcontainers::runners::AsyncRunner;
    use testcontainers::ImageExt;

    pub type ContainerGuard = Box<dyn std::any::Any + Send + Sync>;

    fn image(env: &str, default: &str) -> (String, String) {
        let spec = std::env::var(env).unwrap_or_else(|_| default.to_string());
        match spec.rsplit_once(':') {
            Some((n, t)) => (n.to_string(), t.to_string()),
            None => (spec, "latest".to_string()),
        }
    }

    pub async fn postgres() -> anyhow::Result<(url::Url, ContainerGuard)> {
        // Needs debversion: the default image is expected to carry it.
        let (name, tag) = image("JANITOR_TEST_POSTGRES_IMAGE", "postgres:15");
        let c = testcontainers_modules::postgres::Postgres::default()
            .with_name(name)
            .with_tag(tag)
            .start()
            .await
            .context("starting the postgres container")?;
        let port = c.get_host_port_ipv4(5432).await?;
        let url = url::Url::parse(&format!(
            "postgres://postgres:postgres@127.0.0.1:{port}/postgres"
        ))?;
        Ok((url, Box::new(c)))
    }

    pub async fn redis() -> anyhow::Result<(String, ContainerGuard)> {
        let (name, tag) = image("JANITOR_TEST_REDIS_IMAGE", "redis:7");
        let c = testcontainers_modules::redis::Redis::default()
            .with_name(name)
            .with_tag(tag)
            .start()
            .await
            .context("starting the redis container")?;
        let port = c.get_host_port_ipv4(6379).await?;
        Ok((format!("redis://127.0.0.1:{port}"), Box::new(c)))
    }
}

#[cfg(not(feature = "containers"))]
mod imp {
    pub type ContainerGuard = ();

    pub async fn postgres() -> anyhow::Result<(url::Url, ContainerGuard)> {
        anyhow::bail!("built without the `containers` feature")
    }

    pub async fn redis() -> anyhow::Result<(String, ContainerGuard)> {
        anyhow::bail!("built without the `containers` feature")
    }
}

pub use imp::*;

/// Does a Docker engine answer `GET /_ping` on its socket?
pub fn docker_answers() -> bool {
    use std::io::{Read, Write};
    let path = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(str::to_string))
        .unwrap_or_else(|| "/var/run/docker.sock".to_string());
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(path) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(2)));
    if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(n) if n > 12 && buf[..n].starts_with(b"HTTP/1.") && &buf[9..12] == b"200")
}
