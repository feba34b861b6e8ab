//! Every route answers malformed input with a clear 4xx (divergence-policy §2:
//! 400 `{"reason"}` where Python 500s) and changes nothing. There is no
//! catch-panic layer: a handler that panicked would drop the connection, and
//! the request would fail here.

use janitor_harness::testing::TestRunner;
use serde_json::Value;
use sqlx::{Connection, PgConnection, Row};

const CONFIG: &str = r#"
committer: "Janitor Bot <janitor@example.com>"
campaign {
  name: "scratch"
  default_empty: true
  generic_build {
  }
}
"#;

enum Body {
    None,
    Raw(&'static str, &'static str),
}

/// (method, path, body, what the answer must be)
fn cases() -> Vec<(&'static str, &'static str, Body)> {
    use Body::*;
    let bad_json = Raw("application/json", "{not json");
    vec![
        ("POST", "/active-runs", Raw("application/json", "{not json")),
        ("POST", "/active-runs", Raw("application/json", "[1, 2]")),
        (
            "POST",
            "/active-runs",
            Raw("application/json", r#"{"backchannel": {"kind": "http"}}"#),
        ),
        (
            "POST",
            "/active-runs",
            Raw("application/json", r#"{"codebase": 5}"#),
        ),
        ("POST", "/schedule", bad_json),
        (
            "POST",
            "/schedule",
            Raw("application/json", r#"{"codebase": []}"#),
        ),
        (
            "POST",
            "/schedule-control",
            Raw("application/json", "{not json"),
        ),
        (
            "POST",
            "/schedule-control",
            Raw("application/json", r#"{"run_id": 7}"#),
        ),
        (
            "POST",
            "/runs/some-run",
            Raw("application/json", "{not json"),
        ),
        (
            "POST",
            "/runs/some-run",
            Raw("application/json", r#"{"publish_status": "nonsense"}"#),
        ),
        ("POST", "/codebases", Raw("application/json", "{not json")),
        (
            "POST",
            "/codebases",
            Raw("application/json", r#"[{"name": 3}]"#),
        ),
        ("POST", "/candidates", Raw("application/json", "{not json")),
        (
            "POST",
            "/candidates",
            Raw("application/json", r#"[{"campaign": "scratch"}]"#),
        ),
        (
            "POST",
            "/candidates",
            Raw("application/json", r#"{"x": 1}"#),
        ),
        ("DELETE", "/candidates/not-a-number", None),
        ("DELETE", "/candidates/999", None),
        ("GET", "/queue/position", None),
        ("GET", "/queue?limit=abc", None),
        (
            "POST",
            "/active-runs/no-such-run/finish",
            Raw("text/plain", "hello"),
        ),
        ("GET", "/log/no-such-run", None),
        ("GET", "/log/no-such-run/x.log", None),
        ("POST", "/kill/no-such-run", None),
        ("GET", "/runs/no-such-run", None),
        ("GET", "/active-runs/no-such-run", None),
    ]
}

async fn table_counts(url: &str) -> Vec<(String, i64)> {
    let mut db = PgConnection::connect(url).await.unwrap();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    let mut out = Vec::new();
    for t in tables {
        let n: i64 = sqlx::query(&format!("SELECT count(*) FROM \"{t}\""))
            .fetch_one(&mut db)
            .await
            .unwrap()
            .get(0);
        out.push((t, n));
    }
    out
}

#[tokio::test]
async fn malformed_requests_get_a_clear_4xx_and_change_nothing() {
    let t = TestRunner::start(CONFIG).await.unwrap();
    let before = table_counts(&t.services.db.url).await;
    let mut failures = Vec::new();
    for (method, path, body) in cases() {
        let mut req = t.http.request(method.parse().unwrap(), t.admin(path));
        if let Body::Raw(ct, text) = body {
            req = req.header("content-type", ct).body(text);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: no answer (did the handler panic?): {e}"));
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap_or_default().to_string())
            .unwrap_or_default();
        let text = resp.text().await.unwrap();
        if !(400..500).contains(&status) {
            failures.push(format!("{method} {path}: {status} {text}"));
            continue;
        }
        // A 400 explains itself as JSON `{"reason": …}` (the rule book's answer).
        if status == 400 && ct.starts_with("application/json") {
            let v: Value = serde_json::from_str(&text).unwrap();
            if !v["reason"].is_string() {
                failures.push(format!("{method} {path}: 400 without a reason: {text}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "answers outside 4xx:\n  {}",
        failures.join("\n  ")
    );
    assert_eq!(
        before,
        table_counts(&t.services.db.url).await,
        "malformed input changed the database"
    );
}

#[tokio::test]
async fn the_public_app_refuses_malformed_input_too() {
    let t = TestRunner::start(CONFIG).await.unwrap();
    let cases: [(&str, &str, Option<&str>); 4] = [
        ("POST", "/runner/active-runs", Some("{not json")),
        ("POST", "/runner/active-runs", Some("[]")),
        ("POST", "/runner/active-runs/no-such-run/finish", Some("x")),
        ("GET", "/runner/active-runs/no-such-run", None),
    ];
    for (method, path, body) in cases {
        let mut req = t
            .http
            .request(method.parse().unwrap(), t.public(path))
            .header("authorization", "Basic bm9ib2R5Om5vdGhpbmc=");
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        let status = req.send().await.unwrap().status().as_u16();
        assert!((400..500).contains(&status), "{method} {path}: {status}");
    }
}
