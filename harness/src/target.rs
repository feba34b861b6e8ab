//! What a scenario runs against: our runner in this process, or any runner
//! started as an external command (the Python runner, or our own binary).

use crate::fixtures::ScenarioDir;
use crate::scenario::Scenario;
use anyhow::{bail, Context};
use janitor_runner::server::Runner;
use janitor_runner::settings::Settings;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub enum TargetSpec {
    /// `janitor_runner::server::Runner` started in this process.
    InProcess,
    /// A command line with placeholders (`{config}`, `{port}`, `{public_port}`,
    /// `{vcs}`, `{logs}`, `{artifacts}`, `{run_timeout}`, `{avoid_hosts}`,
    /// `{dep_server_url}`, `{apt_archive_url}`), run with `sh -c`. It gets
    /// `settle` after the last step; with `step_settle`, also after each
    /// step that may store a run (see [`RunningTarget::after_step`]).
    Command {
        cmd: String,
        settle: Duration,
        step_settle: Option<Duration>,
    },
}

impl TargetSpec {
    pub fn label(&self) -> String {
        match self {
            TargetSpec::InProcess => "in-process janitor-runner".into(),
            TargetSpec::Command { cmd, .. } => cmd.clone(),
        }
    }
}

/// Where the scenario's services and fixtures are, in the scenario's own terms.
pub struct Environment<'a> {
    pub scenario: &'a Scenario,
    pub dir: &'a ScenarioDir,
    pub database_url: &'a str,
    pub redis_url: &'a str,
    /// The recorded config, with fixture locations localised.
    pub config_text: String,
    /// Store logs and artifacts in these emulator buckets instead of the
    /// scenario's directories (in-process targets only).
    pub gcs: Option<&'a GcsBuckets>,
    /// Store logs in this S3 endpoint's `debian-janitor` bucket.
    pub s3_endpoint: Option<&'a str>,
}

/// Two buckets of a GCS emulator standing in for the log and artifact stores.
#[derive(Debug, Clone)]
pub struct GcsBuckets {
    pub endpoint: String,
    pub logs: String,
    pub artifacts: String,
}

/// An external target's process, killed (SIGKILL) and reaped when dropped,
/// so a scenario step that fails (an early `?`) leaves no runner behind.
pub struct ChildGuard(Child);

impl ChildGuard {
    pub fn new(child: Child) -> Self {
        ChildGuard(child)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

pub enum RunningTarget {
    InProcess(Box<Runner>),
    External {
        child: ChildGuard,
        admin: String,
        public: String,
        settle: Duration,
        step_settle: Option<Duration>,
        _config: std::sync::Arc<tempfile::NamedTempFile>,
    },
}

impl RunningTarget {
    pub async fn start(spec: &TargetSpec, env: &Environment<'_>) -> anyhow::Result<RunningTarget> {
        let r = &env.scenario.runner;
        match spec {
            TargetSpec::InProcess => {
                let mut s = Settings::new(env.database_url, env.redis_url);
                s.listen_address = "127.0.0.1".into();
                s.port = 0;
                s.public_port = Some(0);
                s.config_text = env.config_text.clone();
                s.public_vcs_location = Some(env.dir.localize(&r.public_vcs_location));
                s.logs_location = Some(env.dir.localize(&r.logs_location));
                s.artifact_location = Some(env.dir.localize(&r.artifact_location));
                if let Some(g) = env.gcs {
                    s.logs_location = Some(format!("gs://{}", g.logs));
                    s.artifact_location = Some(format!("gs://{}", g.artifacts));
                    s.storage_emulator_host = Some(g.endpoint.clone());
                }
                if let Some(endpoint) = env.s3_endpoint {
                    s.logs_location = Some(endpoint.to_string());
                    s.s3_credentials = Some(crate::services::s3::credentials());
                }
                s.run_timeout_minutes = r.run_timeout_minutes;
                s.avoid_hosts = r.avoid_hosts.clone();
                s.dep_server_url = r.dep_server_url.clone();
                s.apt_archive_url = r.apt_archive_url.clone();
                // As recorded: the keepalive watchdog was not started.
                s.watchdog = false;
                s.db_max_connections = 5;
                let runner = Runner::start(s, janitor_runner::clock::system()).await?;
                Ok(RunningTarget::InProcess(Box::new(runner)))
            }
            TargetSpec::Command {
                cmd,
                settle,
                step_settle,
            } => {
                if env.gcs.is_some() {
                    bail!("GCS storage is only wired up for the in-process target");
                }
                let mut config = tempfile::Builder::new().suffix(".conf").tempfile()?;
                let logs = match env.s3_endpoint {
                    Some(endpoint) => endpoint.to_string(),
                    None => env.dir.localize(&r.logs_location),
                };
                let full = format!(
                    "{}\ndatabase_location: {:?}\nredis_location: {:?}\nlogs_location: {:?}\nartifact_location: {:?}\n",
                    env.config_text,
                    env.database_url,
                    env.redis_url,
                    logs,
                    env.dir.localize(&r.artifact_location)
                );
                std::io::Write::write_all(&mut config, full.as_bytes())?;
                let config = std::sync::Arc::new(config);
                // A free port may be taken by a parallel job (`--jobs N`)
                // before the target binds it: the target then exits, or
                // another job's runner answers on it while ours dies. Either
                // way, start again on other ports.
                let mut last_error = None;
                for _attempt in 0..3 {
                    let port = crate::services::process::free_port()?;
                    let public_port = crate::services::process::free_port()?;
                    let avoid: Vec<String> = r
                        .avoid_hosts
                        .iter()
                        .map(|h| format!("--avoid-host={h}"))
                        .collect();
                    let line = cmd
                        .replace("{config}", &config.path().display().to_string())
                        .replace("{port}", &port.to_string())
                        .replace("{public_port}", &public_port.to_string())
                        .replace("{vcs}", &env.dir.localize(&r.public_vcs_location))
                        .replace("{logs}", &logs)
                        .replace("{artifacts}", &env.dir.localize(&r.artifact_location))
                        .replace("{run_timeout}", &r.run_timeout_minutes.to_string())
                        .replace("{avoid_hosts}", &avoid.join(" "))
                        // Whole flags, or nothing when the scenario has no URL
                        // (an empty flag value would be taken as a URL).
                        .replace(
                            "{dep_server_url_flag}",
                            &r.dep_server_url
                                .as_ref()
                                .map(|u| format!("--public-dep-server-url={u}"))
                                .unwrap_or_default(),
                        )
                        .replace(
                            "{apt_archive_url_flag}",
                            &r.apt_archive_url
                                .as_ref()
                                .map(|u| format!("--public-apt-archive-location={u}"))
                                .unwrap_or_default(),
                        )
                        .replace(
                            "{dep_server_url}",
                            r.dep_server_url.as_deref().unwrap_or(""),
                        )
                        .replace(
                            "{apt_archive_url}",
                            r.apt_archive_url.as_deref().unwrap_or(""),
                        );
                    let mut command = Command::new("sh");
                    command.args(["-c", &format!("exec {line}")]);
                    if env.s3_endpoint.is_some() {
                        // Through the standard chain, as an operator's would be.
                        let creds = crate::services::s3::credentials();
                        command
                            .env("AWS_ACCESS_KEY_ID", &creds.access_key_id)
                            .env("AWS_SECRET_ACCESS_KEY", &creds.secret_access_key);
                    }
                    let child = command
                        .stdin(Stdio::null())
                        .spawn()
                        .with_context(|| format!("starting target {line}"))?;
                    let mut target = RunningTarget::External {
                        child: ChildGuard(child),
                        admin: format!("http://127.0.0.1:{port}"),
                        public: format!("http://127.0.0.1:{public_port}"),
                        settle: *settle,
                        step_settle: *step_settle,
                        _config: config.clone(),
                    };
                    match target.wait_healthy().await {
                        Ok(()) => {
                            tokio::time::sleep(Duration::from_millis(300)).await;
                            if target.exited()? {
                                last_error = Some(anyhow::anyhow!(
                                    "target exited after another process answered on its port"
                                ));
                                continue;
                            }
                            return Ok(target);
                        }
                        Err(e) if target.exited()? => last_error = Some(e),
                        Err(e) => return Err(e),
                    }
                }
                Err(last_error.unwrap_or_else(|| anyhow::anyhow!("target did not start")))
            }
        }
    }

    async fn wait_healthy(&mut self) -> anyhow::Result<()> {
        let url = format!("{}/health", self.admin_url());
        let client = janitor_runner::tls::http_client();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client.get(&url).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if let RunningTarget::External { child, .. } = self {
                if let Some(status) = child.0.try_wait()? {
                    bail!("target exited before answering /health ({status})");
                }
            }
            if Instant::now() > deadline {
                bail!("target did not answer {url} within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether an external target's process has exited.
    fn exited(&mut self) -> anyhow::Result<bool> {
        Ok(match self {
            RunningTarget::InProcess(_) => false,
            RunningTarget::External { child, .. } => child.0.try_wait()?.is_some(),
        })
    }

    /// The external target's pid (tests check nothing is left behind).
    pub fn pid(&self) -> Option<u32> {
        match self {
            RunningTarget::InProcess(_) => None,
            RunningTarget::External { child, .. } => Some(child.0.id()),
        }
    }

    pub fn admin_url(&self) -> String {
        match self {
            RunningTarget::InProcess(r) => format!("http://{}", r.admin_addr),
            RunningTarget::External { admin, .. } => admin.clone(),
        }
    }

    pub fn public_url(&self) -> String {
        match self {
            RunningTarget::InProcess(r) => {
                format!("http://{}", r.public_addr.expect("public app enabled"))
            }
            RunningTarget::External { public, .. } => public.clone(),
        }
    }

    /// Wait until the runner's background work has finished. In process we
    /// can ask; an external runner gets a fixed settling time.
    pub async fn settle(&self) {
        match self {
            RunningTarget::InProcess(r) => r.background_idle().await,
            RunningTarget::External { settle, .. } => tokio::time::sleep(*settle).await,
        }
    }

    /// Between two steps: a step that may have stored a run (an assignment
    /// that aborts, a finish, a kill) reschedules its item in the
    /// background, and that races with the next request: one run sees the
    /// new queue row, another not. In process we wait for the background
    /// work; an external runner gets its `step_settle`, if any (the
    /// fuzzer's, so that two runs of one runner agree).
    pub async fn after_step(&self, step: &crate::scenario::Step) {
        if !may_store_a_run(step) {
            return;
        }
        match self {
            RunningTarget::InProcess(r) => r.background_idle().await,
            RunningTarget::External {
                step_settle: Some(d),
                ..
            } => tokio::time::sleep(*d).await,
            RunningTarget::External { .. } => {}
        }
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        match self {
            RunningTarget::InProcess(r) => r.shutdown().await,
            RunningTarget::External { mut child, .. } => {
                unsafe {
                    libc::kill(child.0.id() as i32, libc::SIGTERM);
                }
                let deadline = Instant::now() + Duration::from_secs(10);
                while child.0.try_wait()?.is_none() {
                    if Instant::now() > deadline {
                        break; // the guard kills it
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(())
            }
        }
    }
}

/// Assignments (which abort on failure), finishes and kills: the requests
/// after which a runner may reschedule in the background.
fn may_store_a_run(step: &crate::scenario::Step) -> bool {
    let path = step.path();
    step.method().eq_ignore_ascii_case("POST")
        && (path.contains("active-runs") || path.starts_with("/kill/"))
}
