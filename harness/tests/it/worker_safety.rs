//! Safe with the real worker (issue 17) and with a hostile one (issue 10),
//! through the real stack: an in-process runner on its own PostgreSQL and
//! Redis, a worker's diagnostics server played by wiremock, and finishes
//! sent as the worker sends them.

use chrono::TimeDelta;
use janitor_harness::testing::{finish_body, seed, Messages, TestRunner};
use janitor_runner::clock::ManualClock;
use janitor_runner::types::{ActiveRun, Backchannel};
use janitor_runner::{state, watchdog};
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};
use std::sync::Arc;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CONFIG: &str = "campaign {\n  name: \"fix\"\n  generic_build {\n  }\n}\n";

fn result_json() -> Value {
    json!({
        "code": "success",
        "description": "Fixed",
        "start_time": "2020-02-02T10:00:00",
        "finish_time": "2020-02-02T10:10:30",
        "value": 1
    })
}

async fn start(clock: Option<Arc<ManualClock>>) -> TestRunner {
    let r = match clock {
        Some(c) => TestRunner::start_with_clock(CONFIG, c, |_, _| {}).await,
        None => TestRunner::start(CONFIG).await,
    };
    r.expect("runner")
}

async fn db(t: &TestRunner) -> PgConnection {
    PgConnection::connect(&t.services.db.url)
        .await
        .expect("connect")
}

/// The run, registered as just assigned, with `bc` as its backchannel.
async fn run_with_backchannel(t: &TestRunner, codebase: &str, bc: Backchannel) -> ActiveRun {
    let mut run = t
        .queue_and_register(codebase, "fix", "true")
        .await
        .expect("register");
    run.backchannel = bc;
    state::update(&t.runner.app.runs, &run)
        .await
        .expect("update");
    run
}

async fn finish(
    t: &TestRunner,
    url: String,
    login: Option<(&str, &str)>,
    log: &[u8],
) -> (u16, Value) {
    let (ct, body) = finish_body(&result_json(), &[("worker.log", log)]);
    let mut req = t.http.post(url).header("content-type", ct).body(body);
    if let Some((u, p)) = login {
        req = req.basic_auth(u, Some(p));
    }
    let resp = req.send().await.expect("finish");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn run_rows(conn: &mut PgConnection, id: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM run WHERE id = $1")
        .bind(id)
        .fetch_one(conn)
        .await
        .expect("count")
}

fn stored_log(t: &TestRunner, run: &ActiveRun) -> String {
    use std::io::Read;
    let p = t.dir.path().join(format!(
        "logs/{}/{}/worker.log.gz",
        run.codebase.as_deref().unwrap(),
        run.log_id
    ));
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&p).expect("stored log"))
        .read_to_string(&mut text)
        .expect("gzip");
    text
}

// --- 1. The keepalive against the worker's diagnostics server -------------

/// The worker answers `GET /log-id` with its run id as a JSON string
/// (../shared/worker/README.md item 5): the run stays active through several
/// pings, past the run timeout, and is finished normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_string_log_id_keeps_the_run_alive() {
    let start_time = chrono::DateTime::parse_from_rfc3339("2020-02-02T10:00:00Z")
        .unwrap()
        .into();
    let clock = Arc::new(ManualClock::new(start_time));
    let t = start(Some(clock.clone())).await;
    let worker = MockServer::start().await;
    let run = run_with_backchannel(
        &t,
        "alive",
        Backchannel::Polling {
            my_url: format!("{}/", worker.uri()),
        },
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/log-id"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(format!("\"{}\"", run.log_id), "application/json"),
        )
        .mount(&worker)
        .await;
    let app = t.runner.app.clone();
    // Four pings, 21 minutes apart: 84 minutes in all, past the 60-minute
    // run timeout, so only the recorded keepalives keep the run.
    for _ in 0..4 {
        clock.advance(TimeDelta::minutes(21));
        let aborts = watchdog::sweep(&app).await.expect("sweep");
        assert!(aborts.is_empty(), "{aborts:?}");
    }
    let pings = worker.received_requests().await.unwrap();
    assert_eq!(pings.len(), 4);
    assert!(state::get(&app.runs, &run.log_id).await.unwrap().is_some());

    let (status, body) = finish(
        &t,
        t.admin(&format!("/active-runs/{}/finish", run.log_id)),
        None,
        b"done\n",
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["result"]["code"], "success");
    t.runner.shutdown().await.unwrap();
}

/// A worker whose `/log-id` names another run moved on: aborted as today.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_id_naming_another_run_aborts_it() {
    let start_time = chrono::DateTime::parse_from_rfc3339("2020-02-02T10:00:00Z")
        .unwrap()
        .into();
    let clock = Arc::new(ManualClock::new(start_time));
    let t = start(Some(clock.clone())).await;
    let worker = MockServer::start().await;
    Mock::given(path("/log-id"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("\"other-run\"", "application/json"))
        .mount(&worker)
        .await;
    let run = run_with_backchannel(
        &t,
        "moved",
        Backchannel::Polling {
            my_url: format!("{}/", worker.uri()),
        },
    )
    .await;
    clock.advance(TimeDelta::minutes(21));
    let aborts = watchdog::sweep(&t.runner.app).await.expect("sweep");
    assert_eq!(aborts.len(), 1);
    let (aborted, abort) = &aborts[0];
    assert_eq!(aborted.log_id, run.log_id);
    assert_eq!(abort.code, "run-disappeared");
    assert_eq!(
        abort.description,
        format!(
            "Worker started processing new run other-run rather than {}",
            run.log_id
        )
    );
    t.runner.shutdown().await.unwrap();
}

// --- 3. A retried finish is idempotent -------------------------------------

/// The worker uploads again after a lost 201: both answers are 201 with the
/// same result, one run row, one `result` message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_finish_twice_is_stored_once_and_answered_twice() {
    let t = start(None).await;
    let run = t.queue_and_register("twice", "fix", "true").await.unwrap();
    let results = Messages::subscribe(&t.services.redis.url, "result")
        .await
        .unwrap();
    let url = t.admin(&format!("/active-runs/{}/finish", run.log_id));
    let (s1, first) = finish(&t, url.clone(), None, b"once\n").await;
    let (s2, second) = finish(&t, url, None, b"once\n").await;
    assert_eq!((s1, s2), (201, 201), "{first}\n{second}");
    assert_eq!(second["id"], first["id"]);
    assert_eq!(second["logs"], first["logs"]);
    assert_eq!(second["filenames"], first["filenames"]);
    for key in [
        "code",
        "description",
        "duration",
        "log_id",
        "start_time",
        "finish_time",
        "value",
    ] {
        assert_eq!(second["result"][key], first["result"][key], "{key}");
    }
    // Same keys: the worker reads one body shape.
    let keys = |v: &Value| {
        v["result"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&second), keys(&first));
    assert_eq!(run_rows(&mut db(&t).await, &run.log_id).await, 1);
    assert_eq!(results.taken().await.len(), 1);

    // The public app answers the run's own worker the same way.
    let (s3, third) = finish(
        &t,
        t.public(&format!("/runner/active-runs/{}/finish", run.log_id)),
        Some(("w1", "pw1")),
        b"once\n",
    )
    .await;
    assert_eq!(s3, 201, "{third}");
    assert_eq!(third["result"]["code"], "success");
    assert_eq!(results.taken().await.len(), 1);
    t.runner.shutdown().await.unwrap();
}

/// A crash between the commit and the release in Redis leaves the run
/// stored and still active: the worker's retry completes the release and
/// the `result` publication, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_commit_without_release_completes_it() {
    let t = start(None).await;
    let app = t.runner.app.clone();
    let run = t.queue_and_register("crash", "fix", "true").await.unwrap();
    let url = t.admin(&format!("/active-runs/{}/finish", run.log_id));
    let (s1, _) = finish(&t, url.clone(), None, b"first\n").await;
    assert_eq!(s1, 201);
    // Put Redis back as it was before the release: the state a crash
    // right after the commit leaves.
    state::claim(&app.runs, &run).await.expect("re-claim");
    assert!(state::get(&app.runs, &run.log_id).await.unwrap().is_some());

    let results = Messages::subscribe(&t.services.redis.url, "result")
        .await
        .unwrap();
    let (s2, body) = finish(&t, url, None, b"second\n").await;
    assert_eq!(s2, 201, "{body}");
    assert_eq!(body["result"]["code"], "success");
    assert_eq!(state::get(&app.runs, &run.log_id).await.unwrap(), None);
    assert_eq!(
        state::claim_holder(&app.runs, run.queue_id).await.unwrap(),
        None
    );
    let published = results.taken().await;
    assert_eq!(published.len(), 1, "{published:?}");
    let message: Value = serde_json::from_str(&published[0]).unwrap();
    assert_eq!(message["log_id"], run.log_id);
    // The retry wrote nothing: the stored log is the first attempt's.
    assert_eq!(stored_log(&t, &run), "first\n");
    assert_eq!(run_rows(&mut db(&t).await, &run.log_id).await, 1);
    t.runner.shutdown().await.unwrap();
}

// --- 4. Live-run endpoints against a worker that lacks them ---------------

/// The real worker serves no `/logs` and has no `/kill`: clear answers with
/// a reason, never 500, and the run stays as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_logs_against_a_worker_without_those_routes() {
    let t = start(None).await;
    let worker = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(404))
        .mount(&worker)
        .await;
    let run = run_with_backchannel(
        &t,
        "bare",
        Backchannel::Polling {
            my_url: format!("{}/", worker.uri()),
        },
    )
    .await;
    let before = state::get(&t.runner.app.runs, &run.log_id).await.unwrap();
    for (verb, p, want) in [
        ("GET", format!("/log/{}", run.log_id), 501),
        ("GET", format!("/log/{}/worker.log", run.log_id), 404),
        ("POST", format!("/kill/{}", run.log_id), 501),
    ] {
        let req = match verb {
            "GET" => t.http.get(t.admin(&p)),
            _ => t.http.post(t.admin(&p)),
        };
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), want, "{verb} {p}");
        let body: Value = resp.json().await.expect("a JSON reason");
        assert!(body["reason"].is_string(), "{verb} {p}: {body}");
    }
    assert_eq!(
        state::get(&t.runner.app.runs, &run.log_id).await.unwrap(),
        before
    );
    t.runner.shutdown().await.unwrap();
}

// --- Hostile workers (issue 10) --------------------------------------------

/// A backchannel that redirects to the admin app must not read it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backchannel_redirect_is_not_followed() {
    let t = start(None).await;
    let evil = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(302).insert_header("location", t.admin("/active-runs").as_str()),
        )
        .mount(&evil)
        .await;
    let run = run_with_backchannel(
        &t,
        "evil",
        Backchannel::Polling {
            my_url: format!("{}/", evil.uri()),
        },
    )
    .await;
    for p in [
        format!("/log/{}", run.log_id),
        format!("/log/{}/worker.log", run.log_id),
    ] {
        let resp = t.http.get(t.admin(&p)).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 502, "{p}");
        let text = resp.text().await.unwrap();
        assert!(
            !text.contains("\"queue_id\""),
            "{p} read the admin app back: {text}"
        );
    }
    t.runner.shutdown().await.unwrap();
}

/// Only the run's worker may finish it on the public app.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_worker_cannot_finish_the_run() {
    let t = start(None).await;
    let run = t.queue_and_register("owned", "fix", "true").await.unwrap();
    seed::worker(&mut db(&t).await, "w2", "pw2").await.unwrap();
    let url = t.public(&format!("/runner/active-runs/{}/finish", run.log_id));
    let (status, body) = finish(&t, url.clone(), Some(("w2", "pw2")), b"theirs\n").await;
    assert_eq!(status, 403, "{body}");
    assert!(body["reason"].is_string());
    assert!(state::get(&t.runner.app.runs, &run.log_id)
        .await
        .unwrap()
        .is_some());
    assert_eq!(run_rows(&mut db(&t).await, &run.log_id).await, 0);
    let (status, body) = finish(&t, url, Some(("w1", "pw1")), b"mine\n").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(stored_log(&t, &run), "mine\n");
    t.runner.shutdown().await.unwrap();
}

/// Finish A stalls mid-upload, finish B completes; A, once its upload
/// ends, writes nothing over B's logs and answers from the stored run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_second_finish_leaves_no_trace() {
    let t = start(None).await;
    let run = t.queue_and_register("race", "fix", "true").await.unwrap();
    let url = t.admin(&format!("/active-runs/{}/finish", run.log_id));
    let (ct, body) = finish_body(&result_json(), &[("worker.log", b"from A\n")]);
    let (head, tail) = body.split_at(body.len() - 20);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    tx.send(Ok(head.to_vec())).await.unwrap();
    let stream = tokio_stream_from(rx);
    let a = {
        let req = t
            .http
            .post(url.clone())
            .header("content-type", ct)
            .body(reqwest::Body::wrap_stream(stream));
        tokio::spawn(async move { req.send().await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (sb, b) = finish(&t, url, None, b"from B\n").await;
    assert_eq!(sb, 201, "{b}");
    tx.send(Ok(tail.to_vec())).await.unwrap();
    drop(tx);
    let resp = a.await.unwrap().expect("finish A");
    assert_eq!(resp.status().as_u16(), 201);
    assert_eq!(stored_log(&t, &run), "from B\n");
    assert_eq!(run_rows(&mut db(&t).await, &run.log_id).await, 1);
    t.runner.shutdown().await.unwrap();
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

// --- 5. Operators can see the work -------------------------------------------

/// The binary, run as an operator runs it (stderr not a terminal): the log
/// of a run cycle at INFO shows the assignment and the finish with their
/// fields, and carries no escape codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cycle_is_logged_at_info_without_escape_codes() {
    use std::io::{BufRead, BufReader};
    let services = janitor_harness::services::TestServices::start()
        .await
        .expect("services");
    let dir = tempfile::tempdir().unwrap();
    for sub in ["vcs/git", "vcs/bzr", "logs", "artifacts"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
    }
    let d = dir.path().display();
    let conf = dir.path().join("janitor.conf");
    std::fs::write(
        &conf,
        format!(
            "database_location: \"{}\"\nredis_location: \"{}\"\nlogs_location: \"{d}/logs\"\n\
             artifact_location: \"{d}/artifacts\"\n\
             campaign {{\n  name: \"fix\"\n  default_empty: true\n  generic_build {{\n  }}\n}}\n",
            services.db.url, services.redis.url
        ),
    )
    .unwrap();
    let mut conn = PgConnection::connect(&services.db.url).await.unwrap();
    seed::worker(&mut conn, "w1", "pw1").await.unwrap();
    seed::queued(&mut conn, "logged", "fix", "true")
        .await
        .unwrap();
    let log_path = dir.path().join("stderr.log");
    let mut child = std::process::Command::new(janitor_harness::testing::runner_binary())
        .args([
            "--port",
            "0",
            "--public-port",
            "0",
            "--listen-address",
            "127.0.0.1",
        ])
        .arg("--config")
        .arg(&conf)
        .arg("--public-vcs-location")
        .arg(dir.path().join("vcs"))
        .env_remove("RUST_LOG")
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("runner binary");
    let admin = {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            if let Some(rest) = text.split("admin=").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no start-up line: {text}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    let http = janitor_harness::testing::http_client();
    let a = http
        .post(format!("http://{admin}/active-runs"))
        .json(&json!({"worker": "w1"}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let a: Value = serde_json::from_str(&a).unwrap_or_else(|_| {
        let _ = child.kill();
        panic!(
            "assign: {a}\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        )
    });
    let id = a["id"].as_str().expect("assigned").to_string();
    let (ct, body) = finish_body(&result_json(), &[("worker.log", b"x\n")]);
    let resp = http
        .post(format!("http://{admin}/active-runs/{id}/finish"))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    // SIGTERM, as an operator stops it; the runner then exits by itself.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    let lines: Vec<String> = BufReader::new(std::fs::File::open(&log_path).unwrap())
        .lines()
        .map(Result::unwrap)
        .collect();
    let text = lines.join("\n");
    assert!(!text.contains('\u{1b}'), "escape codes in\n{text}");
    let line = |what: &str| {
        lines
            .iter()
            .find(|l| l.contains(what) && l.contains(&id))
            .unwrap_or_else(|| panic!("no {what:?} line for {id} in\n{text}"))
            .clone()
    };
    let assigned = line("assigned run");
    assert!(assigned.contains("INFO"), "{assigned}");
    for field in ["codebase=logged", "campaign=fix", "worker=w1"] {
        assert!(assigned.contains(field), "{field} missing: {assigned}");
    }
    let finished = line("run finished");
    for field in ["INFO", "code=success", "duration=630"] {
        assert!(finished.contains(field), "{field} missing: {finished}");
    }
}

/// A run the watchdog aborted (and stored) is not the worker's to store any
/// more: its late upload is a 404 (final), not a 201 hiding a lost result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finish_after_an_abort_is_not_answered_as_a_retry() {
    let t = start(None).await;
    let run = t
        .queue_and_register("aborted", "fix", "true")
        .await
        .unwrap();
    let abort = watchdog::Abort {
        code: "worker-timeout",
        description: "No keepalives received in 1:01:00.".into(),
        transient: true,
    };
    watchdog::abort_run(&t.runner.app, &run, &abort)
        .await
        .unwrap();
    let (status, body) = finish(
        &t,
        t.admin(&format!("/active-runs/{}/finish", run.log_id)),
        None,
        b"late\n",
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["reason"]
            .as_str()
            .is_some_and(|r| r.contains("worker-timeout")),
        "{body}"
    );
    t.runner.shutdown().await.unwrap();
}
