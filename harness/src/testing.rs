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
    /// Fresh database and Redis, a private directory for logs, artifacts and
    /// the VCS store, and a runner with both apps on free ports.
    pub async fn start(config: &str) -> anyhow::Result<TestRunner> {
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
        let runner = Runner::start(s, janitor_runner::clock::system()).await?;
        Ok(TestRunner {
            runner,
            services,
            dir,
            http: janitor_runner::tls::http_client(),
        })
    }

    pub fn admin(&self, path: &str) -> String {
        format!("http://{}{path}", self.runner.admin_addr)
    }

    pub fn public(&self, path: &str) -> String {
        format!(
            "http://{}{path}",
            self.runner.public_addr.expect("public app")
        )
    }
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
