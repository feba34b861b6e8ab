//! Dependency faults against an in-process runner (issue 16): the test owns
//! a Redis server of its own on a loopback port, kills it and brings it back
//! on the same port. Each loop below is bounded in count and time.

use janitor_harness::testing::{finish_body, seed, TestRunner};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CONFIG: &str =
    "campaign {\n  name: \"fix\"\n  default_empty: true\n  generic_build {\n  }\n}\n";

/// A redis-server on 127.0.0.1:`port` without persistence, killed on drop.
struct Redis {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    fn start(port: u16, dir: tempfile::TempDir) -> Redis {
        Self::spawn(port, dir, false)
    }

    /// With an append-only file synced on every write, as the README asks
    /// of production: a killed server comes back with its data.
    fn start_persistent(port: u16, dir: tempfile::TempDir) -> Redis {
        Self::spawn(port, dir, true)
    }

    fn spawn(port: u16, dir: tempfile::TempDir, persist: bool) -> Redis {
        let aof = if persist { "yes" } else { "no" };
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", aof, "--appendfsync", "always"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (ci/setup.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { child, port, dir }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stop (SIGSTOP) or continue (SIGCONT) it: a hung server whose
    /// connections stay open.
    fn signal(&self, sig: libc::c_int) {
        // SAFETY: a signal to a child this test spawned and still owns.
        unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
    }

    /// Kill it (SIGKILL, as a crash) and give its directory back.
    fn kill(mut self) -> (u16, tempfile::TempDir) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        (self.port, dir)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn seed(t: &TestRunner, items: usize) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&t.services.db.url)
        .await
        .unwrap();
    seed::worker(&mut conn, "w1", "pw1").await.unwrap();
    for i in 0..items {
        seed::queued(&mut conn, &format!("cb{i}"), "fix", "true")
            .await
            .unwrap();
    }
}

/// A successful finish of `run_id` with one log.
async fn post_finish(t: &TestRunner, run_id: &str, log: &[u8]) -> reqwest::Response {
    let (ct, body) = finish_body(
        &json!({"code": "success", "start_time": "2020-02-02T10:00:00", "finish_time": "2020-02-02T10:00:01"}),
        &[("worker.log", log)],
    );
    t.http
        .post(t.admin(&format!("/active-runs/{run_id}/finish")))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn assign(t: &TestRunner) -> (u16, Value, Duration) {
    let started = Instant::now();
    let resp = t
        .http
        .post(t.admin("/active-runs"))
        .json(&json!({"worker": "w1"}))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("an answer");
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body, started.elapsed())
}

/// Redis killed for 3 s: requests answer 503 `{"reason"}` within 2 s and
/// `/ready` says why; once Redis is back an assign succeeds within 5 s, and
/// a run assigned before the outage is finished normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_fails_fast_and_recovers_within_seconds() {
    let redis = Redis::start(free_port(), tempfile::tempdir().unwrap());
    let url = redis.url();
    let t = TestRunner::start_with(CONFIG, |s, _| s.redis_url = url)
        .await
        .expect("runner");
    seed(&t, 3).await;
    let (status, before, _) = assign(&t).await;
    assert_eq!(status, 201, "{before}");
    let ready = t.http.get(t.admin("/ready")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);

    let (port, dir) = redis.kill();
    let outage = Instant::now();
    let mut seen = 0;
    while outage.elapsed() < Duration::from_secs(3) {
        let (status, body, took) = assign(&t).await;
        assert_eq!(status, 503, "{body}");
        assert!(
            body["reason"].as_str().is_some_and(|r| r.contains("Redis")),
            "{body}"
        );
        assert!(took < Duration::from_secs(2), "answered after {took:?}");
        seen += 1;
        let ready = t.http.get(t.admin("/ready")).send().await.unwrap();
        assert_eq!(ready.status().as_u16(), 503);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(seen >= 2);

    // Back on the same port, empty (no persistence): the runner reconnects.
    let redis = Redis::start(port, dir);
    let back = Instant::now();
    let recovered = loop {
        let (status, body, _) = assign(&t).await;
        if status == 201 {
            break back.elapsed();
        }
        assert_eq!(status, 503, "{body}");
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "not recovered 5 s after Redis returned"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("redis outage: {seen} requests answered 503 during it; recovered {recovered:?} after Redis returned");
    let ready = t.http.get(t.admin("/ready")).send().await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    drop(redis);
    t.runner.shutdown().await.unwrap();
}

/// Without a backup store, a finish whose log store fails answers a
/// retryable 5xx, stores nothing and leaves no file; with one, the log goes
/// to the backup and the result is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_log_store_goes_to_the_backup() {
    let t = TestRunner::start_with(CONFIG, |s, dir| {
        // A log location that cannot be a directory: every import fails.
        std::fs::write(dir.join("not-a-dir"), "").unwrap();
        s.logs_location = Some(dir.join("not-a-dir").display().to_string());
        std::fs::create_dir_all(dir.join("backup")).unwrap();
        s.backup_directory = Some(dir.join("backup"));
    })
    .await
    .expect("runner");
    let run = t.queue_and_register("fail", "fix", "true").await.unwrap();
    let resp = post_finish(&t, &run.log_id, b"kept\n").await;
    assert_eq!(
        resp.status().as_u16(),
        201,
        "{}",
        resp.text().await.unwrap()
    );
    let backed_up = t
        .dir
        .path()
        .join(format!("backup/logs/fail/{}/worker.log.gz", run.log_id));
    assert!(
        backed_up.exists(),
        "no backup copy at {}",
        backed_up.display()
    );
    t.runner.shutdown().await.unwrap();
}

/// Without a backup store the same failure is a retryable 503 with the
/// reason; no run is stored and the run stays active for the retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_backup_a_failing_log_store_is_a_503() {
    let t = TestRunner::start_with(CONFIG, |s, dir| {
        std::fs::write(dir.join("not-a-dir"), "").unwrap();
        s.logs_location = Some(dir.join("not-a-dir").display().to_string());
    })
    .await
    .expect("runner");
    let run = t
        .queue_and_register("nobackup", "fix", "true")
        .await
        .unwrap();
    let resp = post_finish(&t, &run.log_id, b"lost?\n").await;
    assert_eq!(resp.status().as_u16(), 503);
    let reason: Value = resp.json().await.unwrap();
    assert!(
        reason["reason"]
            .as_str()
            .is_some_and(|r| r.contains("worker.log")),
        "{reason}"
    );
    assert!(janitor_runner::state::get(&t.runner.app.runs, &run.log_id)
        .await
        .unwrap()
        .is_some());
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&t.services.db.url)
        .await
        .unwrap();
    let runs: i64 = sqlx::query_scalar("SELECT count(*) FROM run")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(runs, 0);
    t.runner.shutdown().await.unwrap();
}

/// An assign that fails after its claim (here: the campaign's distribution
/// is missing from janitor.conf, found only once the item is claimed)
/// releases the claim before it answers: no orphan claim, no active run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assign_failing_after_its_claim_releases_it() {
    let config = "campaign {\n  name: \"fix\"\n  default_empty: true\n  debian_build {\n    base_distribution: \"nowhere\"\n  }\n}\n";
    let t = TestRunner::start(config).await.expect("runner");
    seed(&t, 1).await;
    let (status, body, _) = assign(&t).await;
    assert_eq!(status, 500, "{body}");
    let app = &t.runner.app;
    assert_eq!(
        janitor_runner::state::active_run_count(&app.runs)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        janitor_runner::state::claim_holder(&app.runs, 1)
            .await
            .unwrap(),
        None
    );
    // The item is still queued and can be claimed again at once.
    let (status, _, _) = assign(&t).await;
    assert_eq!(status, 500);
    assert_eq!(
        janitor_runner::state::claim_holder(&app.runs, 1)
            .await
            .unwrap(),
        None
    );
    t.runner.shutdown().await.unwrap();
}

/// Half-sent requests and idle connections cannot hold the runner: a client
/// that does not finish its headers is closed after the header-read
/// timeout, and connections past the limit are closed at once while the
/// ones within it are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_surplus_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = TestRunner::start_with(CONFIG, |s, _| {
        s.header_read_timeout = Duration::from_secs(1);
        s.max_connections = 2;
    })
    .await
    .expect("runner");
    let addr = t.runner.admin_addr;
    // Half a request: closed by the runner after about a second.
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    // A third connection while two are open: closed at once.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(1), third.read(&mut buf))
        .await
        .expect("the surplus connection is closed at once")
        .unwrap_or(0);
    assert_eq!(n, 0, "the surplus connection was served");
    let started = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(5), slow.read(&mut buf))
        .await
        .expect("the half-sent request is closed by the header-read timeout")
        .unwrap_or(0);
    let closed_after = started.elapsed();
    assert!(n == 0 || String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"));
    assert!(closed_after < Duration::from_secs(3), "{closed_after:?}");
    let _ = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf)).await;
    // Both slots are free again: a normal request is served.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let resp = t.http.get(t.admin("/health")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    t.runner.shutdown().await.unwrap();
}

mod load;
