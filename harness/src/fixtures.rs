//! Per-scenario fixtures: a private directory standing in for
//! `/tmp/janitor-golden` (VCS store, logs, artifacts, local git repos) and the
//! fake worker that answers backchannel requests (FORMAT.md §2).

use crate::scenario::{RepoSpec, GOLDEN_ROOT};
use anyhow::{bail, Context};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// The scenario's stand-in for `/tmp/janitor-golden`.
#[derive(Debug)]
pub struct ScenarioDir {
    dir: tempfile::TempDir,
}

impl ScenarioDir {
    pub fn new() -> anyhow::Result<ScenarioDir> {
        // A short prefix free of anything the normaliser would rewrite.
        let dir = tempfile::Builder::new().prefix("jh-").tempdir()?;
        for sub in ["vcs/git", "vcs/bzr", "logs", "artifacts", "repos"] {
            std::fs::create_dir_all(dir.path().join(sub))?;
        }
        Ok(ScenarioDir { dir })
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn root_str(&self) -> String {
        self.dir.path().display().to_string()
    }

    /// A recorded path or URL with the recording's root replaced by ours.
    pub fn localize(&self, s: &str) -> String {
        s.replace(GOLDEN_ROOT, &self.root_str())
    }
}

/// Create the scenario's local git repositories (FORMAT.md §2, `repos`).
pub fn create_repos(dir: &ScenarioDir, repos: &[RepoSpec]) -> anyhow::Result<()> {
    for repo in repos {
        if repo.kind != "git" {
            bail!(
                "repository kind {:?} is not supported (only git)",
                repo.kind
            );
        }
        let path = PathBuf::from(dir.localize(&repo.path));
        std::fs::create_dir_all(&path)?;
        let first = repo
            .branches
            .first()
            .map(String::as_str)
            .unwrap_or("master");
        git(&path, &["init", "-q", "-b", first])?;
        std::fs::write(path.join("README"), "golden\n")?;
        git(&path, &["add", "README"])?;
        git(&path, &["commit", "-q", "-m", "initial"])?;
        for b in repo.branches.iter().skip(1) {
            git(&path, &["branch", b])?;
        }
    }
    Ok(())
}

fn git(cwd: &Path, args: &[&str]) -> anyhow::Result<()> {
    let date = "2020-01-01T00:00:00+00:00";
    let out = Command::new("git")
        .args(args)
        .current_dir(cwd)
        .env("GIT_AUTHOR_NAME", "Golden Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_NAME", "Golden Author")
        .env("GIT_COMMITTER_EMAIL", "author@example.com")
        .env("GIT_AUTHOR_DATE", date)
        .env("GIT_COMMITTER_DATE", date)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .context("running git")?;
    if !out.status.success() {
        bail!("git {:?}: {}", args, String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// The worker side of a backchannel: serves what FORMAT.md §2 lists and
/// remembers every request as `"METHOD /path"`.
pub struct FakeWorker {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeWorker {
    pub async fn start() -> anyhow::Result<FakeWorker> {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let log = log.clone();
            async move {
                let method = req.method().to_string();
                let path = req.uri().path().to_string();
                log.lock().unwrap().push(format!("{method} {path}"));
                fake_worker_answer(&method, &path)
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeWorker {
            addr,
            requests,
            task,
        })
    }

    /// The base URL in the form the recording used (`http://127.0.0.1:58123/`).
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeWorker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn fake_worker_answer(method: &str, path: &str) -> Response {
    let text = |status: StatusCode, body: &'static str| {
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response()
    };
    let json = |body: &'static str| {
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            body,
        )
            .into_response()
    };
    match (method, path) {
        ("GET", "/logs") => json(r#"["build.log", "worker.log"]"#),
        ("GET", "/logs/worker.log") => {
            text(StatusCode::OK, "worker log line 1\nworker log line 2\n")
        }
        ("GET", "/logs/build.log") => text(StatusCode::OK, "build output\n"),
        ("GET", p) if p.starts_with("/logs/") => text(StatusCode::NOT_FOUND, "404: Not Found"),
        ("POST", "/kill") => json("{}"),
        ("GET", "/log-id") => text(StatusCode::OK, "unknown"),
        ("GET", "/logText/progressiveText") => text(StatusCode::OK, "jenkins console output\n"),
        _ => text(StatusCode::NOT_FOUND, "404: Not Found"),
    }
}
