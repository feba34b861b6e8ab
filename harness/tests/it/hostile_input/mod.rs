//! Hostile input over every route (issue 10): each route's valid example
//! request is walked field by field and every field replaced by hostile
//! values (NUL, huge and fractional numbers, wrong kinds, long and non-ASCII
//! strings), plus hostile path segments and whole bodies. No answer may be a
//! 500, and a 4xx must leave the database and Redis as they were. The table
//! of requests per route is printed.

use janitor_harness::testing::{finish_body, TestRunner};
use serde_json::{json, Value};
use std::collections::BTreeMap;

const CONFIG: &str =
    "campaign {\n  name: \"fix\"\n  default_empty: true\n  generic_build {\n  }\n}\n";

/// Values a field is replaced by.
fn hostile_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(-2.5),
        json!(1e300),
        json!(i64::MAX),
        json!(u64::MAX),
        json!(""),
        json!("a\u{0}b"),
        json!("x".repeat(3000)),
        json!("é☃\u{1F600}"),
        json!("../../etc/passwd"),
        json!([]),
        json!({}),
        json!([1, "a"]),
    ]
}

/// Every leaf path of `v` (`[]` is the root), objects and arrays included.
fn paths(v: &Value, prefix: Vec<Value>, out: &mut Vec<Vec<Value>>) {
    out.push(prefix.clone());
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let mut p = prefix.clone();
                p.push(json!(k));
                paths(x, p, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let mut p = prefix.clone();
                p.push(json!(i));
                paths(x, p, out);
            }
        }
        _ => {}
    }
}

fn replaced(v: &Value, path: &[Value], with: Option<&Value>) -> Value {
    let Some((head, rest)) = path.split_first() else {
        return with.cloned().unwrap_or(Value::Null);
    };
    let mut v = v.clone();
    match (&mut v, head) {
        (Value::Object(m), Value::String(k)) => {
            if rest.is_empty() && with.is_none() {
                m.remove(k);
            } else if let Some(x) = m.get(k) {
                let x = replaced(x, rest, with);
                m.insert(k.clone(), x);
            }
        }
        (Value::Array(a), Value::Number(i)) => {
            let i = i.as_u64().unwrap() as usize;
            a[i] = replaced(&a[i], rest, with);
        }
        _ => {}
    }
    v
}

/// Every variant of `body`: each field replaced by each hostile value, each
/// field removed, and hostile whole bodies.
fn variants(body: &Value) -> Vec<Value> {
    let mut all = Vec::new();
    let mut ps = Vec::new();
    paths(body, Vec::new(), &mut ps);
    for p in &ps {
        for h in hostile_values() {
            all.push(replaced(body, p, Some(&h)));
        }
        if !p.is_empty() {
            all.push(replaced(body, p, None));
        }
    }
    all
}

struct Route {
    name: &'static str,
    method: reqwest::Method,
    path: String,
    body: Option<Value>,
    public: bool,
}

#[derive(Default)]
struct Tally {
    tried: usize,
    ok: usize,
    client: usize,
    /// 501-503: a dependency or backchannel is unavailable (not a bug).
    unavailable: usize,
    server: usize,
}

/// Codebase `c1` with a stored run `r0`, which the example requests name.
async fn seed_stored_run(db: &mut sqlx::PgConnection) {
    sqlx::raw_sql(
        "INSERT INTO codebase (name, vcs_type) VALUES ('c1', 'git'); \
         INSERT INTO change_set (id, campaign) VALUES ('r0', 'fix'); \
         INSERT INTO run (id, command, result_code, start_time, finish_time, suite, codebase, logfilenames, \
         revision, main_branch_revision, publish_status, change_set, vcs_type) VALUES ('r0', 'true', 'success', \
         '2020-01-01 00:00:00', '2020-01-01 00:01:00', 'fix', 'c1', ARRAY[]::text[], 'abc', 'def', 'unknown', 'r0', 'git')",
    )
    .execute(db)
    .await
    .unwrap();
}

/// The whole observable state: every row of the tables requests can write,
/// and every Redis key with its value. Equal before and after a 4xx.
async fn fingerprint(
    db: &mut sqlx::PgConnection,
    redis: &mut redis::aio::MultiplexedConnection,
) -> (String, Vec<Vec<u8>>) {
    let tables: String = sqlx::query_scalar(
        "SELECT concat_ws('|', \
           (SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM queue t), \
           (SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM candidate t), \
           (SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM codebase t), \
           (SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM run t), \
           (SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM change_set t), \
           (SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM worker t))",
    )
    .fetch_one(&mut *db)
    .await
    .unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(redis)
        .await
        .unwrap();
    keys.sort();
    let mut pipe = redis::pipe();
    for k in &keys {
        pipe.cmd("DUMP").arg(k);
    }
    let mut dumps: Vec<Vec<u8>> = pipe.query_async(redis).await.unwrap();
    dumps.extend(keys.into_iter().map(String::into_bytes));
    (tables, dumps)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_causes_a_500_and_no_4xx_changes_anything() {
    use sqlx::Connection;
    let t = TestRunner::start(CONFIG).await.expect("runner");
    let mut db = sqlx::PgConnection::connect(&t.services.db.url)
        .await
        .unwrap();
    let run = t.queue_and_register("c0", "fix", "true").await.unwrap();
    seed_stored_run(&mut db).await;
    let id = run.log_id.clone();
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;
    let r = |name, method: &reqwest::Method, path: &str, body: Option<Value>, public| Route {
        name,
        method: method.clone(),
        path: path.to_string(),
        body,
        public,
    };
    let routes = vec![
        r(
            "assign",
            &post,
            "/active-runs",
            Some(
                json!({"worker": "w1", "worker_link": "http://w/", "backchannel": {"kind": "http", "url": "http://127.0.0.1:9/"}, "codebase": "c1", "campaign": "fix"}),
            ),
            false,
        ),
        r(
            "upload-candidates",
            &post,
            "/candidates",
            Some(
                json!([{"codebase": "c1", "campaign": "fix", "command": "true", "value": 5, "success_chance": 0.5, "context": "x", "publish-policy": null, "change_set": null, "requester": "r"}]),
            ),
            false,
        ),
        r(
            "upload-codebases",
            &post,
            "/codebases",
            Some(
                json!([{"name": "c9", "url": "https://h/x", "branch": "main", "vcs_type": "git", "subpath": "", "value": 3, "web_url": "https://h/"}]),
            ),
            false,
        ),
        r(
            "schedule",
            &post,
            "/schedule",
            Some(
                json!({"codebase": "c1", "campaign": "fix", "requester": "r", "refresh": false, "bucket": "default", "offset": 1.5, "estimated_duration": 5}),
            ),
            false,
        ),
        r(
            "schedule-control",
            &post,
            "/schedule-control",
            Some(
                json!({"run_id": "r0", "requester": "r", "refresh": false, "bucket": "control", "offset": 2}),
            ),
            false,
        ),
        r(
            "update-run",
            &post,
            "/runs/r0",
            Some(json!({"publish_status": "approved"})),
            false,
        ),
        r(
            "public-assign",
            &post,
            "/runner/active-runs",
            Some(
                json!({"codebase": "c1", "campaign": "fix", "backchannel": null, "worker_link": null}),
            ),
            true,
        ),
    ];
    let path_routes = [
        ("get-run", get.clone(), "/runs/{}"),
        ("get-active-run", get.clone(), "/active-runs/{}"),
        ("log-index", get.clone(), "/log/{}"),
        ("log", get.clone(), "/log/{}/worker.log"),
        ("kill", post.clone(), "/kill/{}"),
        (
            "delete-candidate",
            reqwest::Method::DELETE,
            "/candidates/{}",
        ),
        (
            "queue-position",
            get.clone(),
            "/queue/position?codebase={}&campaign=fix",
        ),
        ("queue", get.clone(), "/queue?limit={}"),
    ];
    let hostile_segments = [
        "%00",
        "a%00b",
        "..",
        "%2F",
        "-1",
        "99999999999999999999",
        "1.5",
        "%F0%9F%98%80",
    ];
    let long_segment = "x".repeat(3000);

    let mut tally: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut redis = t.services.redis.connection().await.unwrap();
    let mut send = async |name: &'static str, req: reqwest::RequestBuilder, what: String| {
        let before = fingerprint(&mut db, &mut redis).await;
        let resp = req.send().await.expect("an answer");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let after = fingerprint(&mut db, &mut redis).await;
        let e = tally.entry(name).or_default();
        e.tried += 1;
        match status {
            500..=599 if status != 503 && status != 502 && status != 501 => {
                e.server += 1;
                failures.push(format!(
                    "{name} {what} -> {status} {}",
                    &text[..text.len().min(200)]
                ));
            }
            400..=499 => {
                e.client += 1;
                if before != after {
                    failures.push(format!(
                        "{name} {what} -> {status} changed state: {before:?} -> {after:?}"
                    ));
                }
            }
            _ => e.ok += 1,
        }
    };
    for route in &routes {
        let base = if route.public {
            t.public(&route.path)
        } else {
            t.admin(&route.path)
        };
        let body = route.body.clone().unwrap();
        let mut bodies: Vec<Vec<u8>> = variants(&body)
            .into_iter()
            .map(|v| serde_json::to_vec(&v).unwrap())
            .collect();
        for raw in ["", "not json", "[", "\"\\u0000\"", "123", "{\"a\":", "null"] {
            bodies.push(raw.as_bytes().to_vec());
        }
        for b in bodies {
            let what = String::from_utf8_lossy(&b[..b.len().min(120)]).into_owned();
            let mut req = t
                .http
                .request(route.method.clone(), &base)
                .header("content-type", "application/json")
                .body(b);
            if route.public {
                req = req.basic_auth("w1", Some("pw1"));
            }
            send(route.name, req, what).await;
        }
    }
    for &(name, ref method, template) in &path_routes {
        for seg in hostile_segments
            .iter()
            .copied()
            .chain([long_segment.as_str()])
        {
            let url = t.admin(&template.replace("{}", seg));
            send(
                name,
                t.http.request(method.clone(), url),
                seg[..seg.len().min(40)].to_string(),
            )
            .await;
        }
    }
    // The finish: result.json walked field by field. A variant that is
    // accepted stores the run; the walk goes on with a fresh one.
    let result = json!({"code": "build-failed", "description": "d", "start_time": "2020-02-02T10:00:00",
        "finish_time": "2020-02-02T10:10:00", "value": 3, "stage": "build", "revision": "abc",
        "branches": [["main", "origin", "a", "b"]], "tags": [["v1", "abc"]], "context": "c",
        "target": {"name": "generic", "details": {}}, "transient": false, "failure_details": {"x": 1}});
    let mut run_id = id.clone();
    for (n, v) in variants(&result).into_iter().enumerate() {
        if janitor_runner::state::get(&t.runner.app.runs, &run_id)
            .await
            .unwrap()
            .is_none()
        {
            run_id = t
                .queue_and_register(&format!("fin{n}"), "fix", "true")
                .await
                .unwrap()
                .log_id;
        }
        let (ct, body) = finish_body(&v, &[("worker.log", b"log\n")]);
        let what = v.to_string();
        let url = t.admin(&format!("/active-runs/{run_id}/finish"));
        let req = t.http.post(url).header("content-type", ct).body(body);
        send("finish", req, what[..what.len().min(120)].to_string()).await;
    }
    t.runner.background_idle().await;
    let mut table = format!(
        "hostile values, field by field\n{:<20} {:>6} {:>6} {:>6} {:>6}\n",
        "route", "tried", "2xx", "4xx", "5xx"
    );
    for (name, e) in &tally {
        table += &format!(
            "{name:<20} {:>6} {:>6} {:>6} {:>6}\n",
            e.tried, e.ok, e.client, e.server
        );
    }
    janitor_harness::testing::report("hostile-input-walk", &table);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    t.runner.shutdown().await.unwrap();
}

/// A worker login costs the same whether the name is unknown, known with an
/// md5 hash or known with a bcrypt one: every attempt runs a bcrypt round
/// when any row has one (before, an unknown name cost an md5 round when the
/// first row was md5, so names could be probed). Lower bounds only: a slow
/// machine makes every attempt slower, never faster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_login_costs_the_same_for_every_name_and_hash() {
    use sqlx::Connection;
    let t = TestRunner::start(CONFIG).await.expect("runner");
    let mut db = sqlx::PgConnection::connect(&t.services.db.url)
        .await
        .unwrap();
    sqlx::raw_sql(
        "INSERT INTO worker (name, password) VALUES \
         ('a-md5', crypt('pw', gen_salt('md5'))), ('b-bf', crypt('pw', gen_salt('bf', 10)))",
    )
    .execute(&mut db)
    .await
    .unwrap();
    let min_of = async |n: usize, f: &dyn Fn() -> reqwest::RequestBuilder| {
        let mut best = std::time::Duration::MAX;
        for _ in 0..n {
            let start = std::time::Instant::now();
            let resp = f().send().await.unwrap();
            best = best.min(start.elapsed());
            assert_eq!(resp.status(), 401);
        }
        best
    };
    // One bcrypt round in the database, the fastest of several taken before
    // and after the logins: a load spike during the first samples must not
    // make the yardstick long.
    async fn bcrypt_round(db: &mut sqlx::PgConnection, best: &mut std::time::Duration) {
        for _ in 0..3 {
            let start = std::time::Instant::now();
            sqlx::query("SELECT crypt('x', password) FROM worker WHERE name = 'b-bf'")
                .execute(&mut *db)
                .await
                .unwrap();
            *best = (*best).min(start.elapsed());
        }
    }
    let mut bcrypt = std::time::Duration::MAX;
    bcrypt_round(&mut db, &mut bcrypt).await;
    let url = t.public("/runner/active-runs");
    let mut took = Vec::new();
    for (name, password) in [("nobody", "pw"), ("a-md5", "wrong"), ("b-bf", "wrong")] {
        let best = min_of(3, &|| {
            t.http
                .post(&url)
                .basic_auth(name, Some(password))
                .json(&json!({}))
        })
        .await;
        took.push((name, best));
    }
    bcrypt_round(&mut db, &mut bcrypt).await;
    // Half a round: an attempt without one (an md5 round, or none) costs a
    // hundredth of it, so the margin is for noise, not for doubt.
    for (name, best) in took {
        assert!(
            best.as_secs_f64() >= 0.5 * bcrypt.as_secs_f64(),
            "{name}: {best:?} against a bcrypt round of {bcrypt:?}"
        );
    }
    // And the right password still logs in, on either kind of hash.
    for name in ["a-md5", "b-bf"] {
        let resp = t
            .http
            .post(&url)
            .basic_auth(name, Some("pw"))
            .json(&json!({"codebase": "none", "campaign": "fix"}))
            .send()
            .await
            .unwrap();
        assert_ne!(resp.status(), 401, "{name}");
    }
    t.runner.shutdown().await.unwrap();
}

/// An upload that stops sending is answered 408 after
/// `--body-idle-timeout` and leaves the run active and nothing stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_that_stops_sending_is_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = TestRunner::start_with(CONFIG, |s, _| {
        s.body_idle_timeout = std::time::Duration::from_secs(1);
    })
    .await
    .expect("runner");
    let run = t.queue_and_register("idle", "fix", "true").await.unwrap();
    let (ct, body) = finish_body(
        &json!({"code": "success", "description": "d"}),
        &[("worker.log", b"log\n")],
    );
    let mut conn = tokio::net::TcpStream::connect(t.runner.admin_addr)
        .await
        .unwrap();
    let head = format!(
        "POST /active-runs/{}/finish HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
        run.log_id,
        body.len() + 100
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body[..body.len() / 2]).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer 10 s after the body stopped");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(janitor_runner::state::get(&t.runner.app.runs, &run.log_id)
        .await
        .unwrap()
        .is_some());
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM run")
        .fetch_one(&t.runner.app.db)
        .await
        .unwrap();
    assert_eq!(stored, 0);
    t.runner.shutdown().await.unwrap();
}

mod fuzz;
