//! A private redis-server for the runner's unit tests that need Redis.

use std::time::Duration;

/// A private redis-server on a Unix socket, killed when dropped.
pub(crate) struct TestRedis {
    _dir: tempfile::TempDir,
    _proc: tokio::process::Child,
    pub(crate) url: String,
}

pub(crate) async fn test_redis() -> TestRedis {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("redis.sock");
    let proc = tokio::process::Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--save",
            "",
            "--appendonly",
            "no",
            "--unixsocket",
        ])
        .arg(&socket)
        .arg("--dir")
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server (ci/setup.sh installs it)");
    let url = format!("redis+unix://{}", socket.display());
    for _ in 0..1000 {
        if let Ok(c) = redis::Client::open(url.as_str()) {
            if c.get_multiplexed_async_connection().await.is_ok() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    TestRedis {
        _dir: dir,
        _proc: proc,
        url,
    }
}
