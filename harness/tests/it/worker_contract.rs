//! Contract tests: the runner serves the real `janitor-worker`. The requests
//! are the worker's own, captured on the wire (tests/data/worker, see
//! /work/shared/worker/README.md); the assignment is read back through a mirror
//! of the worker's types. Everything goes through the real stack: in-process
//! runner, PostgreSQL, Redis, a real git repository.

#[path = "worker_contract/mirror.rs"]
mod mirror;

use chrono::NaiveDateTime;
use futures::StreamExt;
use janitor_harness::services::TestServices;
use janitor_runner::server::Runner;
use janitor_runner::settings::Settings;
use serde_json::{json, Value};
use sqlx::PgPool;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/worker");
/// The fixture root the captured requests name.
const RECORDED_ROOT: &str = "/srv/janitor-e2e";
const CAMPAIGN: &str = "append-line";
const CODEBASE: &str = "gitpkg";
/// The command of the captured run (result.json `command`, as a shell line).
const COMMAND: &str = "sh -c 'echo changed >> README && echo Append a line to README'";
const LOGS: [&str; 4] = ["build.log", "codemod.log", "test.log", "worker.log"];

fn data(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(DATA).join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn content_type(name: &str) -> String {
    String::from_utf8(data(name))
        .expect("utf-8 content type")
        .trim()
        .to_string()
}

fn naive(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").expect("timestamp literal")
}

/// A git repository with one commit on `head`, like the worker's fixture,
/// and `others` branches at the same commit.
fn git_repo(path: &Path, head: &str, others: &[&str]) {
    std::fs::create_dir_all(path).expect("repo dir");
    std::fs::write(path.join("README"), "hello\n").expect("README");
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=T", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(path)
            .output()
            .expect("git");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&["init", "-q", "-b", head]);
    git(&["add", "README"]);
    git(&["commit", "-q", "-m", "initial"]);
    for b in others {
        git(&["branch", b]);
    }
}

/// What one test's runner serves: a campaign of its janitor.conf and the
/// branches of the codebase's repository.
struct Setup {
    campaign: &'static str,
    config: String,
    head: &'static str,
    other_branches: &'static [&'static str],
}

impl Setup {
    /// The captured run: a generic build appending a line to README.
    fn generic() -> Setup {
        Setup {
            campaign: CAMPAIGN,
            config: format!(
                "committer: \"Janitor Bot <janitor@example.com>\"\n\
                 campaign {{\n  name: \"{CAMPAIGN}\"\n  command: {COMMAND:?}\n  \
                 branch_name: \"{CAMPAIGN}\"\n  generic_build {{\n  }}\n}}\n"
            ),
            head: "main",
            other_branches: &[],
        }
    }

    /// A Debian packaging branch with colocated branches, some well known.
    fn debian() -> Setup {
        Setup {
            campaign: "lintian-fixes",
            config: "committer: \"Janitor Bot <janitor@example.com>\"\n\
                     distribution {\n  name: \"unstable\"\n  vendor: \"Debian\"\n  \
                     lintian_profile: \"debian\"\n}\n\
                     campaign {\n  name: \"lintian-fixes\"\n  command: \"lintian-brush\"\n  \
                     branch_name: \"lintian-fixes\"\n  debian_build {\n    \
                     base_distribution: \"unstable\"\n  }\n}\n"
                .to_string(),
            head: "debian/sid",
            other_branches: &["upstream/sid", "pristine-tar", "feature"],
        }
    }
}

/// The parts of a multipart body: (filename, content).
fn multipart_files(body: &str, boundary: &str) -> Vec<(String, String)> {
    let delimiter = format!("--{boundary}");
    body.split(delimiter.as_str())
        .filter(|chunk| chunk.starts_with("\r\n"))
        .map(|chunk| {
            let (head, content) = chunk[2..].split_once("\r\n\r\n").expect("part headers");
            let filename = head
                .split("filename=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .expect("filename")
                .to_string();
            let content = content.strip_suffix("\r\n").expect("part ends with CRLF");
            (filename, content.to_string())
        })
        .collect()
}

struct Contract {
    _services: TestServices,
    tmp: tempfile::TempDir,
    runner: Runner,
    db: PgPool,
    redis_url: String,
    client: reqwest::Client,
    queue_id: Option<i32>,
}

impl Contract {
    /// Fresh services, a worker `w`/`pw`, the codebase and (if `queued`) one
    /// queue item for the captured run's campaign.
    async fn start(queued: bool) -> Contract {
        Contract::start_with(queued, Setup::generic()).await
    }

    async fn start_with(queued: bool, setup: Setup) -> Contract {
        let services = TestServices::start().await.expect("test services");
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        git_repo(
            &root.join("repos").join(CODEBASE),
            setup.head,
            setup.other_branches,
        );
        // A deployment's public VCS store has its per-kind directories.
        for kind in ["git", "bzr"] {
            std::fs::create_dir_all(root.join("vcs").join(kind)).expect("vcs dir");
        }

        let db = PgPool::connect(&services.db.url).await.expect("connect");
        sqlx::query(
            "INSERT INTO worker (name, password) VALUES ('w', crypt('pw', gen_salt('md5')))",
        )
        .execute(&db)
        .await
        .expect("seed worker");
        sqlx::query(
            "INSERT INTO codebase (name, branch_url, url, vcs_type, subpath) \
             VALUES ($1, $2, $2, 'git', NULL)",
        )
        .bind(CODEBASE)
        .bind(format!("file://{}/repos/{CODEBASE}", root.display()))
        .execute(&db)
        .await
        .expect("seed codebase");
        let queue_id = if queued {
            let (id,): (i32,) = sqlx::query_as(
                "INSERT INTO queue (codebase, suite, command, bucket) \
                 VALUES ($1, $2, $3, 'default') RETURNING id",
            )
            .bind(CODEBASE)
            .bind(setup.campaign)
            .bind(COMMAND)
            .fetch_one(&db)
            .await
            .expect("seed queue");
            Some(id)
        } else {
            None
        };

        let mut s = Settings::new(services.db.url.as_str(), services.redis.url.as_str());
        s.listen_address = "127.0.0.1".into();
        s.port = 0;
        s.public_port = Some(0);
        s.config_text = setup.config;
        s.public_vcs_location = Some(root.join("vcs").display().to_string());
        s.logs_location = Some(root.join("logs").display().to_string());
        s.artifact_location = Some(root.join("artifacts").display().to_string());
        s.watchdog = false;
        s.db_max_connections = 3;
        let runner = Runner::start(s, janitor_runner::clock::system())
            .await
            .expect("runner");
        let redis_url = services.redis.url.clone();
        Contract {
            _services: services,
            tmp,
            runner,
            db,
            redis_url,
            client: janitor_harness::testing::http_client(),
            queue_id,
        }
    }

    fn root(&self) -> PathBuf {
        self.tmp.path().to_path_buf()
    }

    fn public(&self, path: &str) -> String {
        format!(
            "http://{}{path}",
            self.runner.public_addr.expect("public app")
        )
    }

    /// The captured assign request, with the given credentials.
    async fn assign_as(&self, user: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.public("/runner/active-runs"))
            .basic_auth(user, Some(password))
            .header("content-type", "application/json")
            .header("user-agent", "janitor/worker (0.0.0)")
            .body(data("assign-request.json"))
            .send()
            .await
            .expect("assign request")
    }

    /// Assigns, checks the answer is one the worker accepts; returns the raw
    /// JSON and the worker's parse of it.
    async fn assign(&self) -> (Value, mirror::Assignment) {
        let resp = self.assign_as("w", "pw").await;
        let status = resp.status();
        let bytes = resp.bytes().await.expect("assign body");
        assert_eq!(status, 201, "assign: {}", String::from_utf8_lossy(&bytes));
        let raw: Value = serde_json::from_slice(&bytes).expect("assignment is JSON");
        let parsed: mirror::Assignment = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("the worker cannot parse the assignment: {e}\n{raw:#}"));
        (raw, parsed)
    }

    /// A captured finish body, its fixture paths and queue id localised.
    fn finish_body(&self, name: &str) -> (String, String) {
        let ct = content_type(&format!("{name}.content-type"));
        let body = String::from_utf8(data(&format!("{name}.multipart"))).expect("utf-8 body");
        let queue_id = self.queue_id.expect("a queued item");
        let body = body
            .replace(RECORDED_ROOT, &self.root().display().to_string())
            .replace("{\"queue_id\":1,", &format!("{{\"queue_id\":{queue_id},"));
        (ct, body)
    }

    async fn finish(&self, run_id: &str, ct: &str, body: String) -> Value {
        let resp = self
            .client
            .post(self.public(&format!("/runner/active-runs/{run_id}/finish")))
            .basic_auth("w", Some("pw"))
            .header("content-type", ct)
            .header("user-agent", "janitor/worker (0.0.0)")
            .body(body)
            .send()
            .await
            .expect("finish request");
        let status = resp.status();
        let text = resp.text().await.expect("finish body");
        assert_eq!(status, 201, "finish: {text}");
        self.runner.background_idle().await;
        serde_json::from_str(&text).expect("finish answer is JSON")
    }

    async fn stop(self) {
        self.db.close().await;
        self.runner.shutdown().await.expect("shutdown");
    }
}

#[derive(sqlx::FromRow)]
struct StoredRun {
    result_code: String,
    failure_stage: Option<String>,
    start_time: NaiveDateTime,
    finish_time: NaiveDateTime,
    worker: Option<String>,
    logfilenames: Vec<String>,
    revision: Option<String>,
}

/// `new_result_branch`: role, remote_name, base_revision, revision.
type BranchRow = (String, Option<String>, Option<String>, Option<String>);

fn boundary(ct: &str) -> &str {
    ct.split("boundary=").nth(1).expect("boundary")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_captured_assign_request_gets_an_assignment_the_worker_parses() {
    let c = Contract::start(true).await;
    let (raw, a) = c.assign().await;

    // The shapes the Python runner got wrong (worker README, items 1 and 2).
    assert_eq!(
        raw["branch"]["subpath"],
        json!(""),
        "codebase without subpath"
    );
    let colocated = &raw["branch"]["additional_colocated_branches"];
    assert!(colocated.is_array() || colocated.is_null(), "{colocated}");
    assert_eq!(a.branch.subpath, PathBuf::from(""));

    assert_eq!(a.queue_id, c.queue_id.expect("queued") as u64);
    assert_eq!(
        (a.campaign.as_str(), a.codebase.as_str()),
        (CAMPAIGN, CODEBASE)
    );
    assert_eq!(a.codemod.command, COMMAND);
    assert_eq!(a.branch.vcs_type, mirror::VcsType::Git);
    let branch_url = a.branch.url.as_ref().expect("the repository was opened");
    assert_eq!(
        branch_url.0.as_str(),
        format!(
            "file://{}/repos/{CODEBASE}/,branch=main",
            c.root().display()
        )
    );
    assert!(a.target_repository.url.0.as_str().starts_with("file://"));
    assert!(a.resume.is_none());
    assert_eq!(a.build.target, "generic");
    let build: mirror::GenericBuildConfig = serde_json::from_value(a.build.config.clone())
        .unwrap_or_else(|e| panic!("generic build config: {e}: {}", a.build.config));
    assert!(build.dep_server_url.is_none());

    // The run is active under the id the worker will finish with.
    let resp = c
        .client
        .get(c.public(&format!("/runner/active-runs/{}", a.id)))
        .send()
        .await
        .expect("get active run");
    assert_eq!(resp.status(), 200);
    let active: Value = resp.json().await.expect("active run JSON");
    assert_eq!(active["worker"], json!("w"));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_captured_success_upload_is_stored_as_a_success() {
    let c = Contract::start(true).await;
    let (_, a) = c.assign().await;
    let (ct, body) = c.finish_body("finish-success");
    // The upload names no run id: the URL's id is the only link to the run.
    assert!(!body.contains(&a.id));

    let mut pubsub = redis::Client::open(c.redis_url.as_str())
        .expect("redis client")
        .get_async_pubsub()
        .await
        .expect("pubsub");
    pubsub.subscribe("result").await.expect("subscribe");
    let mut messages = pubsub.into_on_message();

    let answer = c.finish(&a.id, &ct, body.clone()).await;
    assert_eq!(answer["id"], json!(a.id));
    assert_eq!(answer["artifacts"], json!([]));
    let mut logs: Vec<String> = serde_json::from_value(answer["logs"].clone()).expect("logs list");
    logs.sort();
    assert_eq!(logs, LOGS);
    assert_eq!(answer["result"]["code"], json!("success"));

    let mut run: StoredRun = sqlx::query_as(
        "SELECT result_code, failure_stage, start_time, finish_time, worker, logfilenames, \
         revision FROM run WHERE id = $1",
    )
    .bind(&a.id)
    .fetch_one(&c.db)
    .await
    .expect("the run is stored");
    // No `code` in result.json: a success (worker README, item 4).
    assert_eq!(
        (run.result_code.as_str(), run.failure_stage),
        ("success", None)
    );
    // `Z` with nanoseconds: naive UTC, microseconds truncated (item 3).
    assert_eq!(run.start_time, naive("2026-11-22T15:37:58.138703"));
    assert_eq!(run.finish_time, naive("2026-11-22T15:37:58.208173"));
    assert_eq!(run.worker.as_deref(), Some("w"));
    run.logfilenames.sort();
    assert_eq!(run.logfilenames, LOGS);
    assert_eq!(
        run.revision.as_deref(),
        Some("git-v1:1c0545600bd8f71b9c0aaa08fc773f9f059e8a39")
    );

    let branches: Vec<BranchRow> = sqlx::query_as(
        "SELECT role, remote_name, base_revision, revision FROM new_result_branch WHERE run_id = $1",
    )
    .bind(&a.id)
    .fetch_all(&c.db)
    .await
    .expect("result branches");
    assert_eq!(
        branches,
        vec![(
            "main".to_string(),
            Some("main".to_string()),
            Some("git-v1:ca2628d285e9a117eefb19d86f3764d1b97d8eb9".to_string()),
            Some("git-v1:1c0545600bd8f71b9c0aaa08fc773f9f059e8a39".to_string()),
        )]
    );

    let (left,): (i64,) = sqlx::query_as("SELECT count(*) FROM queue WHERE id = $1")
        .bind(c.queue_id)
        .fetch_one(&c.db)
        .await
        .expect("queue count");
    assert_eq!(left, 0, "the queue item is removed");

    // Each log is stored gzip-compressed, byte for byte what was uploaded.
    let uploaded = multipart_files(&body, boundary(&ct));
    for name in LOGS {
        let sent = &uploaded
            .iter()
            .find(|(f, _)| f == name)
            .expect("uploaded log")
            .1;
        let path = c
            .root()
            .join("logs")
            .join(CODEBASE)
            .join(&a.id)
            .join(format!("{name}.gz"));
        let gz = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut stored = String::new();
        flate2::read::GzDecoder::new(gz.as_slice())
            .read_to_string(&mut stored)
            .expect("gzip");
        assert_eq!(&stored, sent, "{name}");
    }

    let msg = tokio::time::timeout(Duration::from_secs(10), messages.next())
        .await
        .expect("a result message within 10 s")
        .expect("pubsub open");
    let payload: String = msg.get_payload().expect("payload");
    let published: Value = serde_json::from_str(&payload).expect("result message JSON");
    assert_eq!(published["log_id"], json!(a.id));
    assert_eq!(published["code"], json!("success"));
    assert_eq!(published["codebase"], json!(CODEBASE));
    drop(messages);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_captured_failure_upload_is_stored_as_command_failed_at_codemod() {
    let c = Contract::start(true).await;
    let (_, a) = c.assign().await;
    let (ct, body) = c.finish_body("finish-failure");
    let answer = c.finish(&a.id, &ct, body).await;
    assert_eq!(answer["result"]["code"], json!("command-failed"));

    let (code, stage, mut names): (String, Option<String>, Vec<String>) =
        sqlx::query_as("SELECT result_code, failure_stage, logfilenames FROM run WHERE id = $1")
            .bind(&a.id)
            .fetch_one(&c.db)
            .await
            .expect("the run is stored");
    assert_eq!(code, "command-failed");
    assert_eq!(stage.as_deref(), Some("codemod"));
    names.sort();
    assert_eq!(names, ["codemod.log", "worker.log"]);
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_timestamps_are_stored_as_naive_utc() {
    let c = Contract::start(true).await;
    let (_, a) = c.assign().await;
    let (ct, body) = c.finish_body("finish-success");
    // The same instants, written with offsets and other precisions.
    let body = body
        .replace(
            "2026-11-22T15:37:58.138703466Z",
            "2026-11-22T17:37:58.1387039+02:00",
        )
        .replace(
            "2026-11-22T15:37:58.208173152Z",
            "2026-11-22T14:37:58.208173152-01:00",
        );
    c.finish(&a.id, &ct, body).await;
    let (start, finish): (NaiveDateTime, NaiveDateTime) =
        sqlx::query_as("SELECT start_time, finish_time FROM run WHERE id = $1")
            .bind(&a.id)
            .fetch_one(&c.db)
            .await
            .expect("the run is stored");
    assert_eq!(start, naive("2026-11-22T15:37:58.138703"));
    assert_eq!(finish, naive("2026-11-22T15:37:58.208173"));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_queue_answers_503_queue_empty() {
    let c = Contract::start(false).await;
    let resp = c.assign_as("w", "pw").await;
    assert_eq!(resp.status(), 503);
    let ct = resp.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(ct.starts_with("application/json"), "{ct}");
    let body: Value = resp.json().await.expect("JSON");
    assert_eq!(body, json!({"reason": "queue empty"}));
    c.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_answer_401_with_a_basic_challenge() {
    let c = Contract::start(true).await;
    for (user, password) in [("w", "wrong"), ("nobody", "pw")] {
        let resp = c.assign_as(user, password).await;
        assert_eq!(resp.status(), 401, "{user}");
        assert_eq!(
            resp.headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Basic Realm=\"Janitor\"")
        );
        assert_eq!(resp.text().await.expect("body"), "worker login required");
    }
    let (left,): (i64,) = sqlx::query_as("SELECT count(*) FROM queue")
        .fetch_one(&c.db)
        .await
        .expect("queue count");
    assert_eq!(left, 1, "nothing was assigned");
    c.stop().await;
}

/// The mirror is as strict as the worker: the assignment the Python runner
/// recorded (public-assign-good-creds) is rejected for the two shapes the
/// real worker cannot read, and accepted once both are fixed.
#[test]
fn the_mirror_rejects_the_python_runners_assignment_shapes() {
    let golden = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../golden/public-assign-good-creds.json"
    );
    let golden: Value =
        serde_json::from_slice(&std::fs::read(golden).expect("golden")).expect("golden JSON");
    let mut recorded = golden["steps"][0]["response"]["json"].clone();
    let parse = |v: &Value| serde_json::from_value::<mirror::Assignment>(v.clone());

    assert_eq!(recorded["branch"]["subpath"], Value::Null);
    let err = parse(&recorded).expect_err("null subpath");
    assert!(err.to_string().contains("invalid type: null"), "{err}");

    recorded["branch"]["subpath"] = json!("");
    recorded["branch"]["additional_colocated_branches"] = json!({});
    let err = parse(&recorded).expect_err("colocated branches as a map");
    assert!(err.to_string().contains("invalid type: map"), "{err}");

    recorded["branch"]["additional_colocated_branches"] = json!([]);
    parse(&recorded).expect("the fixed shapes parse");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colocated_branches_of_a_debian_assignment_are_a_list_of_names() {
    let c = Contract::start_with(true, Setup::debian()).await;
    let (raw, a) = c.assign().await;
    assert_eq!(
        raw["branch"]["additional_colocated_branches"],
        json!(["pristine-tar", "upstream/sid"])
    );
    assert_eq!(
        a.branch.additional_colocated_branches.as_deref(),
        Some(&["pristine-tar".to_string(), "upstream/sid".to_string()][..])
    );
    assert_eq!(a.branch.subpath, PathBuf::from(""));
    assert_eq!(a.build.target, "debian");
    c.stop().await;
}
