//! Resuming from an earlier run (runner-internals.md §4.3–§4.5, §6.6–§6.8),
//! through the in-process runner's HTTP app: the campaign branch in a local
//! git store, a local bzr store and a remote git store served over HTTP, and
//! the forge lookup against a fake forge registered in Breezy's registry
//! (the forge is an external peer, like the workers wiremock stands in for).

use janitor_harness::testing::TestRunner;
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection};
use std::path::{Path, PathBuf};
use std::process::Command;

const CONFIG: &str = r#"
campaign {
  name: "lintian-fixes"
  branch_name: "lintian-fixes"
  generic_build {
  }
}
"#;

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .env("GIT_AUTHOR_NAME", "a")
        .env("GIT_AUTHOR_EMAIL", "a@b")
        .env("GIT_COMMITTER_NAME", "a")
        .env("GIT_COMMITTER_EMAIL", "a@b")
        .env("BRZ_EMAIL", "a <a@b>")
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn git(dir: &Path, args: &[&str]) -> String {
    run(Command::new("git").args(args).current_dir(dir))
}

/// A git repository at `dir` with one commit on `branch`; returns the sha.
fn git_repo(dir: &Path, branch: &str) -> String {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q", "-b", branch]);
    git(dir, &["commit", "-q", "--allow-empty", "-m", "x"]);
    git(dir, &["rev-parse", "HEAD"])
}

fn brz() -> PathBuf {
    let venv = std::env::var_os("JANITOR_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv"));
    venv.join("bin/brz")
}

/// A bzr branch at `dir` with one commit; returns its revision id.
fn bzr_branch(dir: &Path) -> String {
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    run(Command::new(brz()).arg("init").arg("-q").arg(dir));
    run(Command::new(brz())
        .args(["commit", "-q", "--unchanged", "-m", "x"])
        .current_dir(dir));
    let info = run(Command::new(brz()).args(["revision-info", "-d"]).arg(dir));
    info.split_whitespace().nth(1).unwrap().to_string()
}

struct Env {
    t: TestRunner,
    conn: PgConnection,
}

impl Env {
    async fn start(customize: impl FnOnce(&mut janitor_runner::settings::Settings, &Path)) -> Env {
        let t = TestRunner::start_with(CONFIG, customize)
            .await
            .expect("runner");
        let conn = PgConnection::connect(&t.services.db.url).await.unwrap();
        Env { t, conn }
    }

    fn dir(&self) -> &Path {
        self.t.dir.path()
    }

    /// Codebase `foo` at `branch_url`, a successful run `r0` at `revision`
    /// with one result branch, and a queue item.
    async fn seed(&mut self, branch_url: &str, vcs_type: &str, revision: &str) {
        let sql = format!(
            "INSERT INTO codebase (name, branch_url, url, vcs_type) VALUES ('foo', '{branch_url}', '{branch_url}', '{vcs_type}');
             INSERT INTO change_set (id, campaign) VALUES ('cs0', 'lintian-fixes');
             INSERT INTO run (id, command, result_code, suite, logfilenames, change_set, codebase,
                              revision, result, start_time, finish_time)
             VALUES ('r0', 'true', 'success', 'lintian-fixes', '{{}}', 'cs0', 'foo', '{revision}',
                     '{{\"fixed\": 2}}', '2024-01-01 00:00:00', '2024-01-01 00:01:00');
             INSERT INTO new_result_branch (run_id, role, remote_name, base_revision, revision)
             VALUES ('r0', 'main', NULL, 'git-v1:base', '{revision}');
             INSERT INTO queue (codebase, suite, command) VALUES ('foo', 'lintian-fixes', 'true');"
        );
        self.conn.execute(sql.as_str()).await.expect("seed");
    }

    async fn assign(&self) -> reqwest::Response {
        self.t
            .http
            .post(self.t.admin("/active-runs"))
            .json(&json!({"worker": "w"}))
            .send()
            .await
            .unwrap()
    }

    /// Assigns and returns the assignment's `resume` and the active run's `resume_from`.
    async fn resume(&self) -> (Value, Value) {
        let resp = self.assign().await;
        assert_eq!(resp.status(), 201);
        let a: Value = resp.json().await.unwrap();
        let id = a["id"].as_str().unwrap();
        let run = self.t.get_admin_json(&format!("/active-runs/{id}")).await;
        (a["resume"].clone(), run["resume_from"].clone())
    }
}

fn expected_resume(branch_url: &str, revision: &str) -> Value {
    json!({
        "run_id": "r0",
        "result": {"fixed": 2},
        "branch_url": branch_url,
        "branches": [["main", null, "git-v1:base", revision]],
    })
}

/// Rule book §1 (and the real worker, which cannot open a `file://` store):
/// a git store never gives a resume, even with a matching successful run.
#[tokio::test]
async fn a_local_git_store_never_gives_a_resume() {
    let mut env = Env::start(|_, _| {}).await;
    let upstream = env.dir().join("upstream");
    git_repo(&upstream, "main");
    let store = env.dir().join("vcs/git/foo");
    let sha = git_repo(&store, "lintian-fixes/main");
    let rev = format!("git-v1:{sha}");
    env.seed(&format!("file://{}", upstream.display()), "git", &rev)
        .await;
    let (resume, from) = env.resume().await;
    assert_eq!((resume, from), (Value::Null, Value::Null));
}

#[tokio::test]
async fn a_rejected_or_unrelated_run_gives_no_resume() {
    let mut env = Env::start(|_, _| {}).await;
    let upstream = env.dir().join("upstream");
    bzr_branch(&upstream);
    let rev = bzr_branch(&env.dir().join("vcs/bzr/foo/lintian-fixes/main"));
    env.seed(&format!("file://{}", upstream.display()), "bzr", &rev)
        .await;
    env.conn
        .execute("UPDATE run SET publish_status = 'rejected'")
        .await
        .unwrap();
    let (resume, from) = env.resume().await;
    assert_eq!((resume, from), (Value::Null, Value::Null));

    // A run at another revision than the branch tip does not count either.
    env.conn
        .execute(
            "UPDATE run SET publish_status = 'unknown', revision = 'other'; DELETE FROM queue;
             INSERT INTO queue (codebase, suite, command) VALUES ('foo', 'lintian-fixes', 'true')",
        )
        .await
        .unwrap();
    let (resume, _) = env.resume().await;
    assert_eq!(resume, Value::Null);

    // Back at the tip and not rejected: the same store does give one, so
    // the two answers above are not an unreadable store.
    env.conn
        .execute(&*format!(
            "UPDATE run SET revision = '{rev}'; DELETE FROM queue;
             INSERT INTO queue (codebase, suite, command) VALUES ('foo', 'lintian-fixes', 'true')"
        ))
        .await
        .unwrap();
    let (_, from) = env.resume().await;
    assert_eq!(from, "r0");
}

#[tokio::test]
async fn the_campaign_branch_of_a_local_bzr_store_is_opened_with_breezy() {
    let mut env = Env::start(|_, _| {}).await;
    let upstream = env.dir().join("upstream");
    bzr_branch(&upstream);
    let store = env.dir().join("vcs/bzr/foo/lintian-fixes/main");
    let rev = bzr_branch(&store);
    env.seed(&format!("file://{}", upstream.display()), "bzr", &rev)
        .await;
    let (resume, from) = env.resume().await;
    let url = format!("file://{}/", store.display());
    assert_eq!(resume, expected_resume(&url, &rev));
    assert_eq!(from, "r0");
}

/// Serves `root` as static files (Bazaar reads branches over plain HTTP).
async fn serve_dir(root: PathBuf) -> String {
    use axum::extract::Path as UrlPath;
    use axum::http::StatusCode;
    let app = axum::Router::new().route(
        "/{*path}",
        axum::routing::get(move |UrlPath(p): UrlPath<String>| {
            let file = root.join(&p);
            async move {
                if p.split('/').any(|c| c == "..") {
                    return Err(StatusCode::BAD_REQUEST);
                }
                tokio::fs::read(file)
                    .await
                    .map_err(|_| StatusCode::NOT_FOUND)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

// Remote git stores are not tested for a resume: the store URL carries the
// branch name unescaped (`,branch=<campaign>/main`, §6.8), so Breezy reads
// `/main` as a path and upstream never finds the branch; we reproduce that.

#[tokio::test]
async fn the_campaign_branch_of_a_remote_bzr_store_is_read_over_http() {
    let served = tempfile::tempdir().unwrap();
    let rev = bzr_branch(&served.path().join("foo/lintian-fixes/main"));
    let base = serve_dir(served.path().to_path_buf()).await;
    // The store's last URL segment is replaced by the codebase (QI-11).
    let location = format!("bzr={base}/bzr");
    let mut env = Env::start(move |s, _| s.public_vcs_location = Some(location)).await;
    let upstream = env.dir().join("upstream");
    bzr_branch(&upstream);
    env.seed(&format!("file://{}", upstream.display()), "bzr", &rev)
        .await;
    let (resume, from) = env.resume().await;
    assert_eq!(from, "r0", "resume: {resume}");
    let url = format!("{base}/foo/lintian-fixes/main/");
    assert_eq!(resume, expected_resume(&url, &rev));
}

/// A forge for branches whose URL contains `fakeforge`: derived branches and
/// the states of their proposals come from `FakeForge.derived`
/// (`name → (url, [state…])`); `FakeForge.limited` makes it answer 429.
const FAKE_FORGE: &str = r#"
import breezy.forge as F
from breezy import errors
from breezy.branch import Branch

class FakeProposal:
    def __init__(self, state):
        self.state = state
    def is_merged(self):
        return self.state == "merged"
    def is_closed(self):
        return self.state == "closed"

class FakeForge(F.Forge):
    derived = {}
    limited = False
    asked = []
    def __init__(self):
        pass
    @classmethod
    def probe_from_branch(cls, branch):
        if "fakeforge" not in branch.user_url:
            raise F.UnsupportedForge(branch.user_url)
        return cls()
    @classmethod
    def probe_from_url(cls, url, possible_transports=None):
        raise F.UnsupportedForge(url)
    @classmethod
    def iter_instances(cls):
        return iter([])
    def get_derived_branch(self, main_branch, name, project=None, owner=None, preferred_schemes=None):
        FakeForge.asked.append(name)
        if FakeForge.limited:
            raise errors.UnexpectedHttpStatus("https://forge.example/api/v4/projects", 429, headers={})
        if name not in FakeForge.derived:
            raise errors.NotBranchError(name)
        return Branch.open(FakeForge.derived[name][0])
    def iter_proposals(self, source_branch, target_branch, status="open"):
        for (url, states) in FakeForge.derived.values():
            if source_branch.user_url.startswith(url):
                for s in states:
                    yield FakeProposal(s)

F.forges.register("fake", FakeForge)
"#;

fn forge_exec(code: &str) {
    use pyo3::types::PyAnyMethods;
    janitor_runner::vcs::BreezyOpener::new().expect("breezy");
    pyo3::Python::attach(|py| {
        let main = py.import("__main__").unwrap();
        let globals = main.getattr("__dict__").unwrap();
        let code = std::ffi::CString::new(code).unwrap();
        py.run(&code, Some(&globals.cast_into().unwrap()), None)
            .expect("python");
    });
}

#[tokio::test]
async fn the_forge_resume_branch_is_the_first_candidate_with_an_open_proposal() {
    forge_exec(FAKE_FORGE);
    let mut env = Env::start(|_, _| {}).await;
    let upstream = env.dir().join("fakeforge-upstream");
    git_repo(&upstream, "main");
    let merged = env.dir().join("derived-merged");
    git_repo(&merged, "master");
    let open = env.dir().join("derived-open");
    let sha = git_repo(&open, "master");
    let (m, o) = (
        format!("file://{}", merged.display()),
        format!("file://{}", open.display()),
    );
    forge_exec(&format!(
        "FakeForge.derived = {{'lintian-fixes': ({m:?}, ['merged']), \
         'lintian-fixes/main': ({o:?}, ['closed', 'open'])}}\nFakeForge.asked = []"
    ));
    let rev = format!("git-v1:{sha}");
    env.seed(&format!("file://{}", upstream.display()), "git", &rev)
        .await;
    let (resume, from) = env.resume().await;
    assert_eq!(from, "r0", "resume: {resume}");
    assert!(resume["branch_url"].as_str().unwrap().starts_with(&o));
    assert_eq!(resume["branches"][0][3], rev.as_str());

    // A 429 from the forge: the item is aborted, the host rate limited and
    // the worker told to come back later.
    forge_exec("FakeForge.limited = True");
    env.conn
        .execute("DELETE FROM queue; INSERT INTO queue (codebase, suite, command) VALUES ('foo', 'lintian-fixes', 'true')")
        .await
        .unwrap();
    let resp = env.assign().await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "120");
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"reason": "None"})
    );
    let (code,): (String,) = sqlx::query_as(
        "SELECT result_code FROM run WHERE id != 'r0' ORDER BY finish_time DESC LIMIT 1",
    )
    .fetch_one(&mut env.conn)
    .await
    .unwrap();
    assert_eq!(code, "resume-rate-limited");
    let mut redis = redis::Client::open(env.t.services.redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let limited: Option<String> = redis::cmd("HGET")
        .arg("rate-limit-hosts")
        .arg("forge.example")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(limited.is_some());
    forge_exec("FakeForge.limited = False");
}
