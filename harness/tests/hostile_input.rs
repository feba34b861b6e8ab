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
    server: usize,
}

async fn fingerprint(t: &TestRunner, db: &mut sqlx::PgConnection) -> (Vec<i64>, Vec<String>) {
    let counts: Vec<i64> = sqlx::query_scalar(
        "SELECT n FROM (SELECT 1 AS o, count(*) AS n FROM queue UNION ALL \
         SELECT 2, count(*) FROM candidate UNION ALL SELECT 3, count(*) FROM codebase UNION ALL \
         SELECT 4, count(*) FROM run UNION ALL SELECT 5, count(*) FROM change_set) c ORDER BY o",
    )
    .fetch_all(&mut *db)
    .await
    .unwrap();
    let mut redis = t.services.redis.connection().await.unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut redis)
        .await
        .unwrap();
    let mut fields: Vec<String> = redis::cmd("HKEYS")
        .arg("active-runs")
        .query_async(&mut redis)
        .await
        .unwrap();
    keys.append(&mut fields);
    keys.sort();
    (counts, keys)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_causes_a_500_and_no_4xx_changes_anything() {
    use sqlx::Connection;
    let t = TestRunner::start(CONFIG).await.expect("runner");
    let mut db = sqlx::PgConnection::connect(&t.services.db.url)
        .await
        .unwrap();
    let run = t.queue_and_register("c0", "fix", "true").await.unwrap();
    sqlx::raw_sql(
        "INSERT INTO codebase (name, vcs_type) VALUES ('c1', 'git'); \
         INSERT INTO change_set (id, campaign) VALUES ('r0', 'fix'); \
         INSERT INTO run (id, command, result_code, start_time, finish_time, suite, codebase, logfilenames, \
         revision, main_branch_revision, publish_status, change_set, vcs_type) VALUES ('r0', 'true', 'success', \
         '2020-01-01 00:00:00', '2020-01-01 00:01:00', 'fix', 'c1', ARRAY[]::text[], 'abc', 'def', 'unknown', 'r0', 'git')",
    )
    .execute(&mut db)
    .await
    .unwrap();
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
    let mut send = async |name: &'static str, req: reqwest::RequestBuilder, what: String| {
        let before = fingerprint(&t, &mut db).await;
        let resp = req.send().await.expect("an answer");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let after = fingerprint(&t, &mut db).await;
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
        if janitor_runner::state::get(&t.runner.app, &run_id)
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
    println!(
        "\n{:<20} {:>6} {:>6} {:>6} {:>6}",
        "route", "tried", "2xx", "4xx", "5xx"
    );
    for (name, e) in &tally {
        println!(
            "{name:<20} {:>6} {:>6} {:>6} {:>6}",
            e.tried, e.ok, e.client, e.server
        );
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    t.runner.shutdown().await.unwrap();
}
