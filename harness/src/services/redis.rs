//! Redis for tests. Every scenario gets its own server, because pub/sub is
//! not scoped by database number and the goldens pin channel names. With
//! `JANITOR_TEST_REDIS_URL` set, scenarios share that one server and take
//! turns (a process-wide lock), each starting with FLUSHALL.

use super::process::{server_dir, OwnedProcess};
use anyhow::{bail, Context};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const REDIS_URL_ENV: &str = "JANITOR_TEST_REDIS_URL";

static SHARED_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Debug)]
pub struct RedisServer {
    pub url: String,
    _process: Option<OwnedProcess>,
    _turn: Option<tokio::sync::MutexGuard<'static, ()>>,
    container: Option<super::containers::ContainerGuard>,
}

impl RedisServer {
    pub async fn start(provider: &super::Provider) -> anyhow::Result<RedisServer> {
        let server = match provider {
            super::Provider::Env(url) => {
                let turn = SHARED_LOCK.lock().await;
                RedisServer {
                    url: url.clone(),
                    _process: None,
                    _turn: Some(turn),
                    container: None,
                }
            }
            super::Provider::Container => {
                let (url, guard) = super::containers::redis().await?;
                RedisServer {
                    url,
                    _process: None,
                    _turn: None,
                    container: Some(guard),
                }
            }
            super::Provider::Spawn => spawn_redis().await?,
        };
        let mut conn = server.connection().await?;
        redis::cmd("FLUSHALL").query_async::<()>(&mut conn).await?;
        Ok(server)
    }

    /// The engine's id of the container this server runs in, if it does.
    pub fn container_id(&self) -> Option<String> {
        self.container
            .as_ref()
            .and_then(|c| c.id().map(str::to_string))
    }

    pub async fn connection(&self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        let client = redis::Client::open(self.url.as_str())?;
        client
            .get_multiplexed_async_connection()
            .await
            .with_context(|| format!("connecting to Redis at {}", self.url))
    }
}

async fn spawn_redis() -> anyhow::Result<RedisServer> {
    let bin = std::env::var("JANITOR_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
    let dir = server_dir("janitor-harness-redis-")?;
    let socket = dir.join("redis.sock");
    // A Unix socket, not a port: no port races between parallel scenarios.
    let mut cmd = Command::new(&bin);
    cmd.args(["--port", "0", "--unixsocket"])
        .arg(&socket)
        .args([
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
        ])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut proc =
        OwnedProcess::spawn(cmd, Some(dir.clone()), libc::SIGKILL).with_context(|| {
            format!("starting {bin}: install redis-server (ci/setup.sh) or set {REDIS_URL_ENV}")
        })?;
    let url = format!("redis+unix://{}", socket.display());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if socket.exists() {
            if let Ok(client) = redis::Client::open(url.as_str()) {
                if let Ok(mut c) = client.get_multiplexed_async_connection().await {
                    if redis::cmd("PING")
                        .query_async::<String>(&mut c)
                        .await
                        .is_ok()
                    {
                        break;
                    }
                }
            }
        }
        if let Some(status) = proc.exited() {
            bail!("redis-server exited at start ({status})");
        }
        if Instant::now() > deadline {
            bail!("redis-server did not answer within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(RedisServer {
        url,
        _process: Some(proc),
        _turn: None,
        container: None,
    })
}
