//! Numbers in requests as Python reads them (the numeric-input audit): a
//! bool is an int, asyncpg truncates floats for integer columns, and which
//! check Python makes first decides the answer.

use janitor_harness::testing::TestRunner;
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection, Row};

/// `scratch` has no command (a candidate must give one); `cmd` has one.
const CONFIG: &str = r#"
committer: "Janitor Bot <janitor@example.com>"
campaign {
  name: "scratch"
  default_empty: true
  generic_build {
  }
}
campaign {
  name: "cmd"
  command: "true"
  default_empty: true
  generic_build {
  }
}
"#;

struct Answer {
    status: u16,
    content_type: String,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text))
    }
}

async fn send(t: &TestRunner, method: &str, path: &str, body: Option<Value>) -> Answer {
    let mut req = t.http.request(method.parse().unwrap(), t.admin(path));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("answer");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    Answer {
        status,
        content_type,
        text: resp.text().await.unwrap(),
    }
}

async fn post(t: &TestRunner, path: &str, body: Value) -> Answer {
    send(t, "POST", path, Some(body)).await
}

async fn db(t: &TestRunner) -> PgConnection {
    PgConnection::connect(&t.services.db.url).await.unwrap()
}

async fn codebase(t: &TestRunner, name: &str) {
    let a = post(
        t,
        "/codebases",
        json!([{"name": name, "url": format!("https://example.com/{name}")}]),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
}

/// `(priority, estimated_duration as text)` of the (codebase, campaign) row.
async fn queued(conn: &mut PgConnection, codebase: &str, campaign: &str) -> (i64, String) {
    let row = sqlx::query(
        "SELECT priority, estimated_duration::text FROM queue \
         WHERE codebase = $1 AND suite = $2",
    )
    .bind(codebase)
    .bind(campaign)
    .fetch_one(conn)
    .await
    .expect("queue row");
    (row.get(0), row.get(1))
}

async fn min_priority(conn: &mut PgConnection) -> i64 {
    sqlx::query_scalar("SELECT COALESCE(MIN(priority), 0) FROM queue")
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn bools_are_python_ints() {
    let t = TestRunner::start(CONFIG).await.unwrap();
    let mut conn = db(&t).await;

    // /codebases value true and false: int4 1 and 0.
    for (name, v, want) in [("b1", true, 1), ("b0", false, 0)] {
        let a = post(
            &t,
            "/codebases",
            json!([{"name": name, "url": format!("https://example.com/{name}"), "value": v}]),
        )
        .await;
        assert_eq!(a.status, 200, "codebases value {v}: {}", a.text);
        let got: Option<i32> = sqlx::query_scalar("SELECT value FROM codebase WHERE name = $1")
            .bind(name)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(got, Some(want), "codebase {name}");
    }

    // Candidate value true is 1 (`True == 0` is false); success_chance
    // true/false is 1.0/0.0.
    for (name, chance, want) in [("b1", true, 1.0), ("b0", false, 0.0)] {
        let a = post(
            &t,
            "/candidates",
            json!([{"campaign": "scratch", "codebase": name, "command": "true",
                    "value": true, "success_chance": chance}]),
        )
        .await;
        assert_eq!(a.status, 200, "candidate {name}: {}", a.text);
        assert_eq!(
            a.json()["success"].as_array().unwrap().len(),
            1,
            "{}",
            a.text
        );
        let row = sqlx::query("SELECT value, success_chance FROM candidate WHERE codebase = $1")
            .bind(name)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(row.get::<Option<i32>, _>(0), Some(1));
        assert_eq!(row.get::<Option<f64>, _>(1), Some(want));
    }

    // /schedule offset true: priority MIN + 1, echoed as sent;
    // estimated_duration true: one second.
    codebase(&t, "s1").await;
    let min = min_priority(&mut conn).await;
    let a = post(
        &t,
        "/schedule",
        json!({"campaign": "cmd", "codebase": "s1", "offset": true, "estimated_duration": true}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let body = a.json();
    assert_eq!(body["offset"], json!(true));
    assert_eq!(body["estimated_duration_seconds"], json!(1.0));
    assert_eq!(
        queued(&mut conn, "s1", "cmd").await,
        (min + 1, "00:00:01".to_owned())
    );

    // /schedule-control: offset true likewise; estimated_duration true is
    // converted but unused (QH-13).
    codebase(&t, "c1").await;
    let min = min_priority(&mut conn).await;
    let a = post(
        &t,
        "/schedule-control",
        json!({"codebase": "c1", "main_branch_revision": "rev1", "requester": "t",
               "offset": true, "estimated_duration": true}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["offset"], json!(true));
    assert_eq!(queued(&mut conn, "c1", "control").await.0, min + 1);
}

#[tokio::test]
async fn python_checks_first_what_it_checks_first() {
    let t = TestRunner::start(CONFIG).await.unwrap();
    codebase(&t, "sc").await;

    // /schedule-control: the run lookup comes before any use of the other
    // fields, so an unknown run is a 404 whatever they hold.
    for extra in [
        json!({"offset": "x"}),
        json!({"refresh": 1}),
        json!({"bucket": "zz"}),
        json!({"change_set": 5}),
        json!({"requester": 5}),
    ] {
        let mut body = json!({"requester": "t", "run_id": "nope"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let a = post(&t, "/schedule-control", body.clone()).await;
        assert_eq!(a.status, 404, "{body}: {}", a.text);
        assert_eq!(a.json(), json!({"reason": "Run not found"}), "{body}");
    }

    // /schedule: without a command anywhere, Python's text 400 comes before
    // the mistyped offset would fail the insert.
    let a = post(
        &t,
        "/schedule",
        json!({"campaign": "scratch", "codebase": "sc", "offset": "x"}),
    )
    .await;
    assert_eq!(
        (
            a.status,
            a.content_type.starts_with("text/plain"),
            a.text.as_str()
        ),
        (400, true, "no command specified")
    );

    // Candidates: `value == 0` is checked before the (non-string) command
    // is used.
    let a = post(
        &t,
        "/candidates",
        json!([{"campaign": "scratch", "codebase": "sc", "command": 5, "value": 0}]),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["invalid_value"], json!([0]));
    assert_eq!(a.json()["success"], json!([]));
}

async fn queue_count(conn: &mut PgConnection) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM queue")
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn offsets_are_exact_bigints() {
    let t = TestRunner::start(CONFIG).await.unwrap();
    let mut conn = db(&t).await;
    codebase(&t, "o1").await;

    // 2^53 + 1: exact as Python's int, and echoed as sent.
    let a = post(
        &t,
        "/schedule",
        json!({"campaign": "cmd", "codebase": "o1", "offset": 9007199254740993u64}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["offset"], json!(9007199254740993u64), "{}", a.text);
    assert_eq!(queued(&mut conn, "o1", "cmd").await.0, 9007199254740993);

    // Beyond bigint: an OverflowError (500) upstream, a 400 here, nothing
    // stored (no saturation to i64::MAX).
    let before = queue_count(&mut conn).await;
    for offset in [json!(1e19), json!(9223372036854775808u64), json!(-1e19)] {
        codebase(&t, "o2").await;
        let a = post(
            &t,
            "/schedule",
            json!({"campaign": "cmd", "codebase": "o2", "offset": offset}),
        )
        .await;
        assert_eq!(a.status, 400, "offset {offset}: {}", a.text);
        assert!(a.json()["reason"].is_string(), "{}", a.text);
        let a = post(
            &t,
            "/schedule-control",
            json!({"codebase": "o2", "main_branch_revision": "r", "requester": "t",
                   "offset": offset}),
        )
        .await;
        assert_eq!(a.status, 400, "control offset {offset}: {}", a.text);
    }
    assert_eq!(queue_count(&mut conn).await, before);
}

#[tokio::test]
async fn estimated_durations_span_a_timedelta() {
    let t = TestRunner::start(CONFIG).await.unwrap();
    let mut conn = db(&t).await;
    codebase(&t, "d1").await;

    // 1e13 s: exact (115740740 days 17:46:40), not clamped to i64 µs.
    let a = post(
        &t,
        "/schedule",
        json!({"campaign": "cmd", "codebase": "d1", "estimated_duration": 1e13}),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json()["estimated_duration_seconds"], json!(1e13));
    assert_eq!(
        queued(&mut conn, "d1", "cmd").await.1,
        "115740740 days 17:46:40"
    );

    // 1e14 s is beyond 999999999 days: Python 500s (OverflowError) on
    // both routes, before anything is stored.
    let before = queue_count(&mut conn).await;
    codebase(&t, "d2").await;
    let a = post(
        &t,
        "/schedule",
        json!({"campaign": "cmd", "codebase": "d2", "estimated_duration": 1e14}),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.text);
    let a = post(
        &t,
        "/schedule-control",
        json!({"codebase": "d2", "main_branch_revision": "r", "requester": "t",
               "estimated_duration": 1e14}),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(queue_count(&mut conn).await, before);
}

#[tokio::test]
async fn candidate_ids_are_read_as_python_int() {
    let t = TestRunner::start(CONFIG).await.unwrap();
    let mut conn = db(&t).await;
    codebase(&t, "x1").await;
    let a = post(
        &t,
        "/candidates",
        json!([{"campaign": "scratch", "codebase": "x1", "command": "true", "value": 5}]),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let id: i32 = sqlx::query_scalar("SELECT id FROM candidate")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(id, 1);

    // `int("1_")` and `int("_1")` raise (a 500 upstream): 400.
    for path in ["/candidates/1_", "/candidates/_1", "/candidates/1__0"] {
        let a = send(&t, "DELETE", path, None).await;
        assert_eq!(a.status, 400, "{path}: {}", a.text);
    }
    // `int("0_1")` is 1.
    let a = send(&t, "DELETE", "/candidates/0_1", None).await;
    assert_eq!((a.status, a.text.as_str()), (200, "{}"));
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM candidate")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 0);
}
