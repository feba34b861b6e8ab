//! An in-process runner on fresh services, for integration tests (the
//! counterpart of zero-to-production's `spawn_app`).

use crate::services::TestServices;
use janitor_runner::server::Runner;
use janitor_runner::settings::Settings;

pub struct TestRunner {
    pub runner: Runner,
    pub services: TestServices,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

impl TestRunner {
    /// Settings for another runner process on this one's database, Redis
    /// and directories: admin app only, on a free port, no watchdog.
    pub fn second_runner_settings(&self, config: &str) -> Settings {
        let mut s = Settings::new(&self.services.db.url, &self.services.redis.url);
        s.listen_address = "127.0.0.1".into();
        s.port = 0;
        s.public_port = None;
        s.config_text = config.into();
        let dir = |name: &str| Some(self.dir.path().join(name).display().to_string());
        s.public_vcs_location = dir("vcs");
        s.logs_location = dir("logs");
        s.artifact_location = dir("artifacts");
        s.watchdog = false;
        s
    }

    /// Fresh database and Redis, a private directory for logs, artifacts and
    /// the VCS store, and a runner with both apps on free ports.
    pub async fn start(config: &str) -> anyhow::Result<TestRunner> {
        Self::start_with(config, |_, _| {}).await
    }

    /// [`TestRunner::start`] with settings adjusted by `customize`, which
    /// also gets the private directory.
    pub async fn start_with(
        config: &str,
        customize: impl FnOnce(&mut Settings, &std::path::Path),
    ) -> anyhow::Result<TestRunner> {
        Self::start_with_clock(config, janitor_runner::clock::system(), customize).await
    }

    /// [`TestRunner::start_with`] on the given clock (e.g. a `ManualClock`).
    pub async fn start_with_clock(
        config: &str,
        clock: janitor_runner::clock::SharedClock,
        customize: impl FnOnce(&mut Settings, &std::path::Path),
    ) -> anyhow::Result<TestRunner> {
        Self::start_full(
            config,
            clock,
            std::sync::Arc::new(janitor_runner::vcs::DefaultOpener),
            customize,
        )
        .await
    }

    /// [`TestRunner::start_with_clock`] with a branch opener of the test's
    /// own (a double standing in for Breezy and the forges).
    pub async fn start_full(
        config: &str,
        clock: janitor_runner::clock::SharedClock,
        opener: std::sync::Arc<dyn janitor_runner::vcs::BranchOpener>,
        customize: impl FnOnce(&mut Settings, &std::path::Path),
    ) -> anyhow::Result<TestRunner> {
        let services = TestServices::start().await?;
        let dir = tempfile::tempdir()?;
        for sub in ["vcs/git", "vcs/bzr", "logs", "artifacts"] {
            std::fs::create_dir_all(dir.path().join(sub))?;
        }
        let path = |p: &str| dir.path().join(p).display().to_string();
        let mut s = Settings::new(&services.db.url, &services.redis.url);
        s.listen_address = "127.0.0.1".into();
        s.port = 0;
        s.public_port = Some(0);
        s.config_text = config.to_string();
        s.public_vcs_location = Some(path("vcs"));
        s.logs_location = Some(path("logs"));
        s.artifact_location = Some(path("artifacts"));
        s.watchdog = false;
        s.db_max_connections = 5;
        customize(&mut s, dir.path());
        let runner = Runner::start_with_opener(s, clock, opener).await?;
        Ok(TestRunner {
            runner,
            services,
            dir,
            http: http_client(),
        })
    }

    pub fn admin(&self, path: &str) -> String {
        format!("http://{}{path}", self.runner.admin_addr)
    }

    /// `GET` on the admin app, answered with JSON (panics otherwise, naming
    /// the status and body).
    pub async fn get_admin_json(&self, path: &str) -> serde_json::Value {
        json_of(self.http.get(self.admin(path)).send().await).await
    }

    /// `POST` of `body` as JSON to the admin app, answered with JSON.
    pub async fn post_admin_json(&self, path: &str, body: &serde_json::Value) -> serde_json::Value {
        json_of(self.http.post(self.admin(path)).json(body).send().await).await
    }

    pub fn public(&self, path: &str) -> String {
        format!(
            "http://{}{path}",
            self.runner.public_addr.expect("public app")
        )
    }
}

/// A successful answer's JSON body; a test helper's failure says what came instead.
async fn json_of(sent: reqwest::Result<reqwest::Response>) -> serde_json::Value {
    let resp = sent.expect("request sent");
    let status = resp.status();
    let text = resp.text().await.expect("body read");
    assert!(status.is_success(), "{status}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The `janitor-runner` binary next to the running test executable
/// (`target/<profile>/deps/<test>` → `target/<profile>/janitor-runner`);
/// `cargo test --workspace` builds it because the runner crate has
/// integration tests.
pub fn runner_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let bin = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory")
        .join("janitor-runner");
    assert!(
        bin.exists(),
        "{} not built: run `cargo test --workspace`",
        bin.display()
    );
    bin
}

/// An active run of queue item `queue_id` by worker `w1`, shaped as the
/// assignment builds it.
pub fn active_run(
    queue_id: i64,
    codebase: &str,
    campaign: &str,
    command: &str,
    start_time: chrono::NaiveDateTime,
    backchannel: janitor_runner::types::Backchannel,
) -> janitor_runner::types::ActiveRun {
    janitor_runner::types::ActiveRun {
        queue_id,
        log_id: uuid::Uuid::new_v4().to_string(),
        codebase: Some(codebase.into()),
        change_set: None,
        campaign: campaign.into(),
        command: command.into(),
        estimated_duration: None,
        start_time,
        worker_name: Some("w1".into()),
        worker_link: None,
        vcs_info: serde_json::Map::new(),
        backchannel,
        instigated_context: serde_json::Value::Null,
        resume_from: None,
    }
}

impl TestRunner {
    /// Worker `w1` (password `pw1`), codebase `codebase` with one queue item
    /// of `campaign`, and a run of it registered as if just assigned.
    pub async fn queue_and_register(
        &self,
        codebase: &str,
        campaign: &str,
        command: &str,
    ) -> anyhow::Result<janitor_runner::types::ActiveRun> {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.services.db.url).await?;
        seed::worker(&mut conn, "w1", "pw1").await?;
        let queue_id = seed::queued(&mut conn, codebase, campaign, command).await?;
        let run = active_run(
            queue_id,
            codebase,
            campaign,
            command,
            self.runner.app.clock.now_naive(),
            janitor_runner::types::Backchannel::None,
        );
        janitor_runner::state::register(&self.runner.app.runs, &run).await?;
        Ok(run)
    }
}

/// Seed rows several tests need, written as the goldens' seeds write them.
pub mod seed {
    use sqlx::PgConnection;

    /// Worker `name` with `password` hashed as the goldens hash it (md5
    /// crypt, fixed salt); nothing if the worker exists already.
    pub async fn worker(conn: &mut PgConnection, name: &str, password: &str) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO worker (name, password) VALUES ($1, crypt($2, '$1$goldsal3')) \
             ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(password)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// A new git codebase `codebase` with one queue item of `campaign` in
    /// the default bucket; the item's id.
    pub async fn queued(
        conn: &mut PgConnection,
        codebase: &str,
        campaign: &str,
        command: &str,
    ) -> sqlx::Result<i64> {
        sqlx::query("INSERT INTO codebase (name, vcs_type) VALUES ($1, 'git')")
            .bind(codebase)
            .execute(&mut *conn)
            .await?;
        let (queue_id,): (i32,) = sqlx::query_as(
            "INSERT INTO queue (codebase, suite, command, bucket) \
             VALUES ($1, $2, $3, 'default') RETURNING id",
        )
        .bind(codebase)
        .bind(campaign)
        .bind(command)
        .fetch_one(conn)
        .await?;
        Ok(queue_id.into())
    }
}

/// How long one request of a test may take: past it the request fails
/// rather than hanging the test (every test's answers come in seconds).
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// The HTTP client of tests: requests time out after [`REQUEST_TIMEOUT`].
pub fn http_client() -> reqwest::Client {
    janitor_runner::tls::client_builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("building the HTTP client")
}

/// Peak resident set size of this process so far (VmHWM), in KiB: the
/// memory tests compare it before and after a large upload.
pub fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// Writes `size` pseudo-random bytes (incompressible, so no store can cheat
/// by compressing) in 1 MiB chunks; returns their sha256.
pub fn write_random_file(path: &std::path::Path, size: usize) -> Vec<u8> {
    use sha2::Digest;
    use std::io::Write;
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut h = sha2::Sha256::new();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut chunk = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for b in chunk.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b.copy_from_slice(&state.to_le_bytes()[..b.len()]);
        }
        let n = left.min(chunk.len());
        f.write_all(&chunk[..n]).expect("write");
        h.update(&chunk[..n]);
        left -= n;
    }
    f.flush().expect("flush");
    h.finalize().to_vec()
}

/// A finish upload as the worker sends it: `result.json` first, then one
/// part per file. Returns the content type and the body.
pub fn finish_body(result: &serde_json::Value, files: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let b = "janitor-test-boundary-7d1f";
    let mut body = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"metadata\"; filename=\"result.json\"\r\n\
         Content-Type: application/json\r\n\r\n{result}\r\n"
    )
    .into_bytes();
    for (name, data) in files {
        body.extend_from_slice(
            format!(
                "--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{b}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={b}"), body)
}

/// Every message published on `channel` from now on, collected in the
/// background (the test reads them with [`Messages::taken`]).
pub struct Messages {
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Messages {
    pub async fn subscribe(redis_url: &str, channel: &str) -> anyhow::Result<Messages> {
        use futures::StreamExt;
        let mut pubsub = redis::Client::open(redis_url)?.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            let mut stream = pubsub.into_on_message();
            while let Some(msg) = stream.next().await {
                let text: String = msg.get_payload().unwrap_or_default();
                log.lock().unwrap().push(text);
            }
        });
        Ok(Messages { seen, task })
    }

    /// The messages so far, after a short pause for any still in flight
    /// (a PUBLISH reaches subscribers before the publisher's reply, so
    /// this only covers the subscriber task's own scheduling).
    pub async fn taken(&self) -> Vec<String> {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Messages {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Print a test's report table and keep it in `target/test-reports/<name>.txt`
/// of the project, which `ci/test` shows at the end (cargo test hides a
/// passing test's output).
pub fn report(name: &str, text: &str) {
    println!("{text}");
    let dir = crate::project_dir().join("target/test-reports");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(format!("{name}.txt")), text);
}
