//! The scenario file format of golden/FORMAT.md. Requests and recorded
//! outputs stay `serde_json::Value`s: the harness compares them
//! structurally and must not lose anything a typed model would drop.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The recording's fixed locations (FORMAT.md §2). Each replay substitutes its
/// own directory and port for them and maps them back before comparing.
pub const GOLDEN_ROOT: &str = "/tmp/janitor-golden";
pub const GOLDEN_FAKE_WORKER: &str = "http://127.0.0.1:58123/";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
    #[serde(default)]
    pub config: String,
    #[serde(default)]
    pub runner: RunnerEnv,
    #[serde(default)]
    pub seed_sql: Vec<String>,
    #[serde(default)]
    pub seed_redis: Vec<Vec<String>>,
    pub steps: Vec<Step>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_after: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_after: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_after: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fake_worker_requests: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunnerEnv {
    #[serde(default = "default_vcs")]
    pub public_vcs_location: String,
    #[serde(default = "default_logs")]
    pub logs_location: String,
    #[serde(default = "default_artifacts")]
    pub artifact_location: String,
    #[serde(default = "default_timeout")]
    pub run_timeout_minutes: u64,
    #[serde(default)]
    pub avoid_hosts: Vec<String>,
    #[serde(default)]
    pub dep_server_url: Option<String>,
    #[serde(default)]
    pub apt_archive_url: Option<String>,
    #[serde(default = "default_fake_worker")]
    pub fake_worker: String,
    #[serde(default)]
    pub repos: Vec<RepoSpec>,
    /// Storage backend for logs and artifacts: `local` (the recordings) or `gcs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
}

impl Default for RunnerEnv {
    fn default() -> Self {
        serde_json::from_value(serde_json::json!({})).expect("defaults")
    }
}

fn default_vcs() -> String {
    format!("{GOLDEN_ROOT}/vcs")
}
fn default_logs() -> String {
    format!("{GOLDEN_ROOT}/logs")
}
fn default_artifacts() -> String {
    format!("{GOLDEN_ROOT}/artifacts")
}
fn default_timeout() -> u64 {
    60
}
fn default_fake_worker() -> String {
    GOLDEN_FAKE_WORKER.to_string()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepoSpec {
    pub path: String,
    pub kind: String,
    pub branches: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub request: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
}

impl Step {
    pub fn method(&self) -> &str {
        self.request["method"].as_str().unwrap_or("GET")
    }
    pub fn path(&self) -> &str {
        self.request["path"].as_str().unwrap_or("/")
    }
    pub fn is_public(&self) -> bool {
        self.request["app"].as_str() == Some("public")
    }
}

impl Scenario {
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let scenario: Scenario = serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}: not a scenario: {e}", path.display()))?;
        Ok(scenario)
    }

    /// True when the file carries recorded outputs (a golden), not only inputs.
    pub fn is_recorded(&self) -> bool {
        self.steps.iter().all(|s| s.response.is_some()) && self.db_after.is_some()
    }
}

/// The scenario files under PATHs (directories are scanned for `*.json`,
/// sorted by name); `FORMAT.md` and other non-JSON files are skipped.
pub fn collect(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "json") && f.is_file())
                .collect();
            files.sort();
            out.extend(files);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            anyhow::bail!("{}: no such scenario file or directory", p.display());
        }
    }
    Ok(out)
}

/// The golden's outputs in the shape `compare_outputs` takes.
pub fn golden_outputs(s: &Scenario) -> Value {
    json!({
        "steps": s.steps.iter().map(|st| json!({"request": st.request, "response": st.response})).collect::<Vec<_>>(),
        "db_after": s.db_after,
        "redis_after": s.redis_after,
        "files_after": s.files_after,
        "fake_worker_requests": s.fake_worker_requests,
    })
}
