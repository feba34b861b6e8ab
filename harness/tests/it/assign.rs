//! The assignment procedure against a real database and Redis, through the
//! in-process runner's HTTP apps: claims under concurrency, aborts, request
//! validation and worker authentication.

use janitor_harness::testing::TestRunner;
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection};
use std::collections::BTreeSet;

const CONFIG: &str = r#"
distribution {
  name: "unstable"
  vendor: "Debian"
}
campaign {
  name: "scratch"
  default_empty: true
  debian_build {
    base_distribution: "unstable"
  }
}
campaign {
  name: "needs-vcs"
  generic_build {
  }
}
"#;

struct Env {
    t: TestRunner,
    conn: PgConnection,
    http: reqwest::Client,
}

impl Env {
    async fn start() -> Env {
        let t = TestRunner::start(CONFIG).await.expect("runner");
        let conn = PgConnection::connect(&t.services.db.url)
            .await
            .expect("connect");
        let http = t.http.clone();
        Env { t, conn, http }
    }

    fn admin(&self, path: &str) -> String {
        self.t.admin(path)
    }

    fn public(&self, path: &str) -> String {
        self.t.public(path)
    }

    /// `n` codebases without VCS, each with one `scratch` queue item.
    async fn seed_items(&mut self, n: usize) {
        for i in 0..n {
            self.conn
                .execute(
                    format!(
                        "INSERT INTO codebase (name, vcs_type) VALUES ('c{i}', 'git'); \
                         INSERT INTO queue (codebase, suite, command, priority) \
                         VALUES ('c{i}', 'scratch', 'true', {i})"
                    )
                    .as_str(),
                )
                .await
                .expect("seed");
        }
    }

    async fn assign(&self, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(self.admin("/active-runs"))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_assigns_never_hand_out_an_item_twice() {
    let mut env = Env::start().await;
    env.seed_items(20).await;
    let requests = (0..50).map(|i| env.assign(json!({ "worker": format!("w{i}") })));
    let results = futures::future::join_all(requests).await;
    let mut queue_ids = Vec::new();
    for (status, body) in &results {
        match status {
            201 => queue_ids.push(body["queue_id"].as_i64().expect("queue_id")),
            503 => assert_eq!(body, &json!({"reason": "queue empty"})),
            other => panic!("unexpected answer {other}: {body}"),
        }
    }
    let distinct: BTreeSet<i64> = queue_ids.iter().copied().collect();
    assert_eq!(
        queue_ids.len(),
        20,
        "every item handed out once: {queue_ids:?}"
    );
    assert_eq!(distinct.len(), 20, "no item twice: {queue_ids:?}");
    let (_, runs) = {
        let resp = env
            .http
            .get(env.admin("/active-runs"))
            .send()
            .await
            .expect("list");
        (resp.status(), resp.json::<Value>().await.expect("json"))
    };
    assert_eq!(runs.as_array().map(Vec::len), Some(20));
}

#[tokio::test]
async fn items_that_cannot_run_are_aborted_and_the_next_one_assigned() {
    let mut env = Env::start().await;
    env.conn
        .execute(
            "INSERT INTO codebase (name, vcs_type) VALUES ('novcs', 'git'), ('ok', 'git'); \
             INSERT INTO queue (codebase, suite, command, priority) VALUES \
             ('novcs', 'gone-campaign', 'x', 1), ('novcs', 'needs-vcs', 'y', 2), \
             ('ok', 'scratch', 'A=1 true', 3)",
        )
        .await
        .expect("seed");
    let (status, body) = env.assign(json!({})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["codebase"], "ok");
    assert_eq!(body["command"], "true");
    assert_eq!(body["env"]["A"], "1");
    env.t.runner.background_idle().await;
    let stored: Vec<(String, String, Option<String>)> =
        sqlx::query_as("SELECT result_code, description, worker FROM run ORDER BY result_code")
            .fetch_all(&mut env.conn)
            .await
            .expect("runs");
    assert_eq!(
        stored,
        [
            (
                "not-in-vcs".to_string(),
                "No VCS URL known for codebase.".to_string(),
                None
            ),
            (
                "unknown-campaign".to_string(),
                "Campaign gone-campaign unknown".to_string(),
                None
            ),
        ]
    );
    let left: Vec<(String,)> = sqlx::query_as("SELECT suite::text FROM queue")
        .fetch_all(&mut env.conn)
        .await
        .expect("queue");
    assert_eq!(left, [("scratch".to_string(),)]);
}

#[tokio::test]
async fn bad_assign_requests_are_400_and_claim_nothing() {
    let mut env = Env::start().await;
    env.seed_items(1).await;
    for body in [
        json!({"backchannel": {"url": "http://w/"}}),
        json!({"backchannel": {"kind": "http"}}),
        json!({"codebase": 5}),
        json!([1]),
    ] {
        let (status, answer) = env.assign(body.clone()).await;
        assert_eq!(status, 400, "{body} → {answer}");
        assert!(answer["reason"].is_string());
    }
    let (status, _) = env.assign(json!({"campaign": "other"})).await;
    assert_eq!(status, 503, "the campaign filter works");
    let (status, body) = env.assign(json!({"campaign": "scratch"})).await;
    assert_eq!(status, 201);
    assert_eq!(body["branch"]["subpath"], "");
}

#[tokio::test]
async fn worker_credentials() {
    let mut env = Env::start().await;
    env.seed_items(1).await;
    env.conn
        .execute("INSERT INTO worker (name, password) VALUES ('w1', crypt('pw1', gen_salt('md5')))")
        .await
        .expect("worker");
    let basic = |creds: &str| {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(creds)
        )
    };
    for header in [
        Some(basic("w1:wrong")),
        Some(basic("nobody:pw1")),
        Some("Bearer x".to_string()),
        Some("Basic ???".to_string()),
        None,
    ] {
        let mut req = env
            .http
            .post(env.public("/runner/active-runs"))
            .json(&json!({}));
        if let Some(h) = &header {
            req = req.header("Authorization", h);
        }
        let resp = req.send().await.expect("request");
        assert_eq!(resp.status().as_u16(), 401, "{header:?}");
        assert_eq!(
            resp.headers()["www-authenticate"],
            "Basic Realm=\"Janitor\""
        );
        assert_eq!(resp.text().await.expect("body"), "worker login required");
    }
    // JSON that is not an object is judged after the credentials, as upstream.
    let resp = env
        .http
        .post(env.public("/runner/active-runs"))
        .json(&json!([1]))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 401);
    // The body is parsed before the credentials are looked at.
    let resp = env
        .http
        .post(env.public("/runner/active-runs"))
        .body("not json")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 400);
    let resp = env
        .http
        .post(env.public("/runner/active-runs"))
        .header("Authorization", basic("w1:pw1"))
        .json(&json!({"worker": "ignored"}))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 201);
    let location = resp.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(location.starts_with("/runner/active-runs/"), "{location}");
    let run: Value = env
        .http
        .get(env.public(&location))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(run["worker"], "w1");
}

/// A runner started with `opener`, one generic campaign and one queued
/// item whose codebase has a branch URL (so the assign opens it).
async fn with_opener_and_one_item(
    opener: std::sync::Arc<dyn janitor_runner::vcs::BranchOpener>,
) -> TestRunner {
    with_clock_opener_and_one_item(janitor_runner::clock::system(), opener).await
}

async fn with_clock_opener_and_one_item(
    clock: janitor_runner::clock::SharedClock,
    opener: std::sync::Arc<dyn janitor_runner::vcs::BranchOpener>,
) -> TestRunner {
    let config = "campaign {\n  name: \"fix\"\n  generic_build {\n  }\n}\n";
    let t = TestRunner::start_full(config, clock, opener, |_, _| {})
        .await
        .expect("runner");
    sqlx::raw_sql(
        "INSERT INTO codebase (name, branch_url, url, vcs_type) \
         VALUES ('c1', 'https://forge.example/c1', 'https://forge.example/c1', 'git'); \
         INSERT INTO queue (codebase, suite, command, bucket) VALUES ('c1', 'fix', 'true', 'default')",
    )
    .execute(&t.runner.app.db)
    .await
    .unwrap();
    t
}

/// The opener is the one the runner was started with: a forge that
/// rate-limits makes the assign answer 429, the host is rate-limited in
/// Redis and the run is stored as `resume-rate-limited`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limiting_forge_is_recorded_and_the_run_aborted() {
    let t = with_opener_and_one_item(std::sync::Arc::new(StandInOpener::rate_limited())).await;
    let resp = t
        .http
        .post(t.admin("/active-runs"))
        .json(&json!({"worker": "w1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status().as_u16(),
        429,
        "{}",
        resp.text().await.unwrap()
    );
    let mut redis = t.runner.app.runs.connection();
    let limited: Option<String> =
        redis::AsyncCommands::hget(&mut redis, "rate-limit-hosts", "forge.example")
            .await
            .unwrap();
    assert!(limited.is_some());
    let code: String = sqlx::query_scalar("SELECT result_code FROM run WHERE codebase = 'c1'")
        .fetch_one(&t.runner.app.db)
        .await
        .unwrap();
    assert_eq!(code, "resume-rate-limited");
    t.runner.shutdown().await.unwrap();
}

/// A branch opener that never answers, and says when it is first asked.
struct HangingOpener(std::sync::Arc<tokio::sync::Notify>);

impl janitor_runner::vcs::BranchOpener for HangingOpener {
    fn open<'a>(
        &'a self,
        _url: &'a str,
        _vcs_type: Option<&'a str>,
    ) -> futures::future::BoxFuture<
        'a,
        Result<janitor_runner::vcs::OpenedBranch, janitor_runner::vcs::OpenError>,
    > {
        let asked = self.0.clone();
        Box::pin(async move {
            asked.notify_one();
            futures::future::pending().await
        })
    }

    fn forge_resume<'a>(
        &'a self,
        _main: &'a janitor_runner::vcs::OpenedBranch,
        _names: &'a [String],
    ) -> futures::future::BoxFuture<'a, anyhow::Result<janitor_runner::vcs::ForgeResume>> {
        Box::pin(futures::future::pending())
    }
}

/// A worker that hangs up (or whose client times out) while its assignment
/// is being built leaves no claim behind: the request is cancelled after the
/// claim, and the item is free again within seconds instead of blocked until
/// the watchdog gives up on a run nobody has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assign_abandoned_by_its_worker_releases_its_claim() {
    let asked = std::sync::Arc::new(tokio::sync::Notify::new());
    let t = with_opener_and_one_item(std::sync::Arc::new(HangingOpener(asked.clone()))).await;
    let request = t
        .http
        .post(t.admin("/active-runs"))
        .json(&json!({"worker": "w1"}))
        .send();
    let worker = tokio::spawn(request);
    tokio::time::timeout(std::time::Duration::from_secs(30), asked.notified())
        .await
        .expect("the assign claimed its item and went on to open the branch");
    let runs = &t.runner.app.runs;
    assert_eq!(
        janitor_runner::state::active_run_count(runs).await.unwrap(),
        1
    );
    // The worker hangs up: its connection closes and the server drops the
    // request's future.
    worker.abort();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while janitor_runner::state::active_run_count(runs).await.unwrap() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the claim of the abandoned assignment is still held"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut redis = runs.connection();
    let claims: usize = redis::AsyncCommands::hlen(&mut redis, "assigned-queue-items")
        .await
        .unwrap();
    assert_eq!(claims, 0);
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM queue")
        .fetch_one(&t.runner.app.db)
        .await
        .unwrap();
    assert_eq!(queued, 1, "the item stays queued for the next worker");
    t.runner.shutdown().await.unwrap();
}

/// An aborted item whose codebase has a candidate is rescheduled in the
/// background: the same assignment must not pick the new item up (and abort
/// it again) depending on how fast that happens. Found by the differential
/// fuzzer (two runs of the same runner stored one or three aborted runs);
/// a second item to abort gives the reschedule time to land first.
#[tokio::test]
async fn an_aborted_item_is_not_retried_by_the_same_assignment() {
    let mut env = Env::start().await;
    env.conn
        .execute(
            "INSERT INTO codebase (name, vcs_type) VALUES ('novcs', 'git'), ('other', 'git'); \
             INSERT INTO candidate (codebase, suite, command, value) VALUES ('novcs', 'needs-vcs', 'y', 5); \
             INSERT INTO queue (codebase, suite, command, priority) VALUES \
             ('novcs', 'needs-vcs', 'y', 1), ('other', 'needs-vcs', 'z', 2)",
        )
        .await
        .expect("seed");
    for round in 0..5i64 {
        let (status, body) = env.assign(json!({})).await;
        assert_eq!((status, &body), (503, &json!({"reason": "queue empty"})));
        env.t.runner.background_idle().await;
        let runs: Vec<(String, i64)> = sqlx::query_as(
            "SELECT codebase, count(*) FROM run GROUP BY codebase ORDER BY codebase",
        )
        .fetch_all(&mut env.conn)
        .await
        .expect("runs");
        assert_eq!(
            runs,
            [("novcs".to_string(), round + 1), ("other".to_string(), 1)],
            "round {round}: each item aborted once per assignment"
        );
        let (queued,): (i64,) = sqlx::query_as("SELECT count(*) FROM queue")
            .fetch_one(&mut env.conn)
            .await
            .expect("queue");
        assert_eq!(queued, 1, "novcs rescheduled once");
    }
}

/// The interleaving behind the double hand-out once seen under load, through
/// the real steps: B selects item X; A is handed X and finishes it (queue
/// row deleted, claim released); then B claims X. The claim succeeds (Redis
/// no longer holds one), so only `check_claimed`'s look-up of the queue row
/// stops B from being handed a finished item — and it must withdraw the
/// claim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_on_an_item_finished_since_its_selection_is_withdrawn() {
    use janitor_runner::assign::{check_claimed, Claimed};
    use janitor_runner::db::queue::{self, NextItemFilter};
    use janitor_runner::state;
    use janitor_runner::types::{ActiveRun, Backchannel};

    let config = "campaign {\n  name: \"lintian-fixes\"\n  command: \"lintian-brush\"\n  \
                  default_empty: true\n  generic_build {\n  }\n}\n";
    let t = TestRunner::start(config).await.expect("runner");
    janitor_harness::load::seed(&t.services.db.url, 1, "lintian-fixes")
        .await
        .unwrap();
    let app = t.runner.app.clone();

    // B selects, as an assignment does before its claim.
    let mut conn = app.db.acquire().await.unwrap();
    let x = queue::next_item(&mut conn, &NextItemFilter::default())
        .await
        .unwrap()
        .expect("one queued item");

    // A: a whole cycle on the same item, through HTTP.
    let a = t
        .post_admin_json("/active-runs", &json!({"worker": "a", "backchannel": null}))
        .await;
    assert_eq!(a["queue_id"], json!(x.id), "A was handed another item: {a}");
    let (ct, body) = janitor_harness::load::finish_body();
    let fin = t
        .http
        .post(t.admin(&format!(
            "/active-runs/{}/finish",
            a["id"].as_str().unwrap()
        )))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(fin.status(), 201);
    t.runner.background_idle().await;

    // B claims the item it selected.
    let run = ActiveRun {
        queue_id: i64::from(x.id),
        log_id: uuid::Uuid::new_v4().to_string(),
        codebase: Some(x.codebase.clone()),
        change_set: None,
        campaign: x.campaign.clone(),
        command: "true".into(),
        estimated_duration: None,
        start_time: app.clock.now_naive(),
        worker_name: Some("b".into()),
        worker_link: None,
        vcs_info: serde_json::Map::new(),
        backchannel: Backchannel::None,
        instigated_context: Value::Null,
        resume_from: None,
    };
    let snapshot = state::claim(&app.runs, &run)
        .await
        .expect("A's claim was released, so B's claim succeeds");
    let outcome = check_claimed(&app, &mut conn, &x, &run, snapshot)
        .await
        .unwrap();
    assert!(matches!(outcome, Claimed::Skipped), "{outcome:?}");
    let claims = state::assigned_queue_items(&app.runs).await.unwrap();
    assert!(
        !claims.contains_key(&i64::from(x.id)),
        "B's stale claim on {} left in Redis: {claims:?}",
        x.id
    );
    drop(conn);
    t.runner.shutdown().await.unwrap();
}

/// A branch opener standing in for Breezy and the forges: every branch opens
/// as git (at `moved_to` when set, as Breezy normalises a URL), opening
/// takes five seconds of `clock` when given, and the forge answers 429 for
/// `forge.example` when `rate_limited`.
#[derive(Default)]
struct StandInOpener {
    clock: Option<std::sync::Arc<janitor_runner::clock::ManualClock>>,
    moved_to: Option<String>,
    rate_limited: bool,
}

impl StandInOpener {
    fn rate_limited() -> Self {
        StandInOpener {
            rate_limited: true,
            ..Default::default()
        }
    }
}

impl janitor_runner::vcs::BranchOpener for StandInOpener {
    fn open<'a>(
        &'a self,
        url: &'a str,
        _vcs_type: Option<&'a str>,
    ) -> futures::future::BoxFuture<
        'a,
        Result<janitor_runner::vcs::OpenedBranch, janitor_runner::vcs::OpenError>,
    > {
        if let Some(clock) = &self.clock {
            clock.advance(chrono::Duration::seconds(5));
        }
        let user_url = self.moved_to.clone().unwrap_or_else(|| url.to_string());
        Box::pin(async move {
            Ok(janitor_runner::vcs::OpenedBranch {
                user_url,
                name: None,
                vcs_type: "git".into(),
                colocated: Default::default(),
                handle: None,
            })
        })
    }

    fn forge_resume<'a>(
        &'a self,
        _main: &'a janitor_runner::vcs::OpenedBranch,
        _names: &'a [String],
    ) -> futures::future::BoxFuture<'a, anyhow::Result<janitor_runner::vcs::ForgeResume>> {
        let resume = if self.rate_limited {
            janitor_runner::vcs::ForgeResume::RateLimited {
                host: "forge.example".into(),
                reason: "Too many requests".into(),
            }
        } else {
            janitor_runner::vcs::ForgeResume::None
        };
        Box::pin(async move { Ok(resume) })
    }
}

/// §4.7 writes the assigned run again to keep what opening its branch
/// changed. A run that did not change is not written again (a Redis round
/// trip fewer per assignment): the stored run stays the claimed one, whose
/// `current_duration` is the claim's (QH-9), while a moved branch is stored
/// with its new URL and the duration of the re-save.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assigned_run_is_written_again_only_when_opening_its_branch_changed_it() {
    for moved_to in [None, Some("https://forge.example/c1.git")] {
        let clock = std::sync::Arc::new(janitor_runner::clock::ManualClock::new(
            chrono::DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z")
                .unwrap()
                .into(),
        ));
        let opener = StandInOpener {
            clock: Some(clock.clone()),
            moved_to: moved_to.map(str::to_string),
            rate_limited: false,
        };
        let t = with_clock_opener_and_one_item(clock, std::sync::Arc::new(opener)).await;
        let response = t
            .http
            .post(t.admin("/active-runs"))
            .json(&json!({"worker": "w1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let id = response.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let mut redis = t.runner.app.runs.connection();
        let stored: String = redis::AsyncCommands::hget(&mut redis, "active-runs", &id)
            .await
            .unwrap();
        let stored: Value = serde_json::from_str(&stored).unwrap();
        match moved_to {
            None => {
                assert_eq!(stored["vcs"]["branch_url"], "https://forge.example/c1");
                assert_eq!(stored["current_duration"], 0.0, "written again: {stored}");
            }
            Some(url) => {
                assert_eq!(stored["vcs"]["branch_url"], url, "{stored}");
                assert_eq!(stored["current_duration"], 5.0, "{stored}");
            }
        }
        t.runner.shutdown().await.unwrap();
    }
}

/// The selection is one statement PostgreSQL plans once per connection
/// (issue 13): planned afresh on every call it cost ~0.1 ms of PostgreSQL's
/// CPU per assignment, and a generic plan of `NOT (id = ANY($1))` tested
/// every row against every claimed id. Its answer stays the first unclaimed
/// items in (bucket, priority, id) order, exactly as many as asked for,
/// though the statement's limit is rounded up.
#[tokio::test]
async fn the_selection_is_planned_once_and_answers_the_first_unclaimed_items() {
    use janitor_harness::services::TestServices;
    use janitor_runner::db::queue::{self, NextItemFilter};

    let services = TestServices::start().await.expect("test services");
    janitor_harness::load::seed(&services.db.url, 60, "lintian-fixes")
        .await
        .unwrap();
    let mut conn = PgConnection::connect(&services.db.url)
        .await
        .expect("connect");
    let order: Vec<i32> = sqlx::query_scalar("SELECT id FROM queue ORDER BY bucket, priority, id")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    // Every other item of the first 40 is claimed.
    let claimed: Vec<i32> = order.iter().take(40).step_by(2).copied().collect();
    let unclaimed: Vec<i32> = order
        .iter()
        .copied()
        .filter(|id| !claimed.contains(id))
        .collect();
    let filter = NextItemFilter {
        assigned: &claimed,
        ..Default::default()
    };
    for _ in 0..8 {
        for limit in [1, 3, 5, 8] {
            let got: Vec<i32> = queue::next_items(&mut conn, &filter, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|i| i.id)
                .collect();
            assert_eq!(got, unclaimed[..limit as usize], "limit {limit}");
        }
    }
    let by_campaign = NextItemFilter {
        assigned: &claimed,
        campaign: Some("lintian-fixes"),
        ..Default::default()
    };
    let got: Vec<i32> = queue::next_items(&mut conn, &by_campaign, 3)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(got, unclaimed[..3], "filtered by campaign");
    let none = NextItemFilter::default();
    let all = queue::next_items(&mut conn, &none, 100).await.unwrap();
    assert_eq!(all.len(), 60, "fewer items than the limit: all of them");

    // On this connection (sqlx prepares each statement once), every
    // selection statement ran 8 times and went over to a generic plan.
    let plans: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT name, statement, generic_plans, custom_plans FROM pg_prepared_statements \
         WHERE statement LIKE '%FROM queue LEFT JOIN codebase%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let repeated: Vec<_> = plans.iter().filter(|(_, _, g, c)| g + c >= 8).collect();
    assert!(
        !repeated.is_empty(),
        "no selection statement found: {plans:?}"
    );
    for (name, statement, generic, custom) in repeated {
        assert!(
            *generic >= 1,
            "planned afresh on every call ({custom} custom plans, {generic} generic): {statement}"
        );
        // The plan it keeps looks the claimed ids up in a hash, not in a list.
        let plan: Vec<String> = sqlx::query_scalar(&format!(
            "EXPLAIN EXECUTE {name}('{{1,2,3,4,5,6,7,8,9,10,11,12}}'::int[])"
        ))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert!(
            plan.iter().any(|l| l.contains("hashed SubPlan")),
            "claimed ids not hashed: {plan:#?}"
        );
    }
}
