//! The property-based fuzzer: every route of both apps gets
//! `FUZZ_REQUESTS_PER_ROUTE` (default 10,000) generated requests, sent to the
//! real router in process (no sockets: the accept loop's limits have their own
//! tests). Bodies are the route's example with one to three generated edits
//! (a field replaced by any JSON value, removed, or a key added), or a whole
//! generated JSON value, or random bytes; path segments, query strings and
//! credentials are generated too. The seed is fixed, so a failure replays.

use super::*;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;

/// Strings that mean something to some route.
const MEANINGFUL: &[&str] = &[
    "",
    "..",
    "../../etc/passwd",
    "/",
    "%00",
    "-1",
    "0",
    "1e400",
    "NaN",
    "2020-02-30T25:61:61",
    "2020-02-02T10:00:00",
    "http://127.0.0.1:1/",
    "file:///etc/passwd",
    "fix",
    "c1",
    "r0",
    "w1",
    "git",
    "bzr",
    "success",
    "default",
    "true",
    "null",
    "é",
];

fn arb_string() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "\\PC{0,12}",
        2 => any::<String>(),
        1 => "[a-z]{0,4}\u{0}[a-z]{0,4}",
        1 => (0usize..4000).prop_map(|n| "x".repeat(n)),
        3 => prop::sample::select(MEANINGFUL).prop_map(str::to_string),
    ]
    .boxed()
}

fn arb_json() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-5i64..100).prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        arb_string().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((arb_string(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
    .boxed()
}

#[derive(Debug, Clone)]
enum Edit {
    Replace(Index, Value),
    Remove(Index),
    Add(Index, String, Value),
}

#[derive(Debug, Clone)]
enum Body {
    Edited(Vec<Edit>),
    Whole(Value),
    Raw(Vec<u8>),
}

fn arb_edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        6 => (any::<Index>(), arb_json()).prop_map(|(i, v)| Edit::Replace(i, v)),
        2 => any::<Index>().prop_map(Edit::Remove),
        1 => (any::<Index>(), arb_string(), arb_json()).prop_map(|(i, k, v)| Edit::Add(i, k, v)),
    ]
}

fn arb_body() -> impl Strategy<Value = Body> {
    prop_oneof![
        8 => prop::collection::vec(arb_edit(), 1..4).prop_map(Body::Edited),
        1 => arb_json().prop_map(Body::Whole),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Body::Raw),
    ]
}

/// JSON pointers of every value in `v`, the root included.
fn pointers(v: &Value, prefix: String, out: &mut Vec<String>) {
    out.push(prefix.clone());
    let esc = |k: &str| k.replace('~', "~0").replace('/', "~1");
    match v {
        Value::Object(m) => m
            .iter()
            .for_each(|(k, x)| pointers(x, format!("{prefix}/{}", esc(k)), out)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| pointers(x, format!("{prefix}/{i}"), out)),
        _ => {}
    }
}

fn apply(example: &Value, edits: &[Edit]) -> Value {
    let mut v = example.clone();
    for e in edits {
        let mut ps = Vec::new();
        pointers(&v, String::new(), &mut ps);
        match e {
            Edit::Replace(i, x) => {
                if let Some(t) = v.pointer_mut(i.get::<String>(&ps)) {
                    *t = x.clone();
                }
            }
            Edit::Remove(i) => {
                let p = i.get::<String>(&ps).clone();
                let Some((parent, last)) = p.rsplit_once('/') else {
                    continue;
                };
                let last = last.replace("~1", "/").replace("~0", "~");
                match v.pointer_mut(parent) {
                    Some(Value::Object(m)) => {
                        m.remove(&last);
                    }
                    Some(Value::Array(a)) => {
                        if let Ok(n) = last.parse::<usize>() {
                            if n < a.len() {
                                a.remove(n);
                            }
                        }
                    }
                    _ => {}
                }
            }
            Edit::Add(i, k, x) => {
                if let Some(Value::Object(m)) = v.pointer_mut(i.get::<String>(&ps)) {
                    m.insert(k.clone(), x.clone());
                }
            }
        }
    }
    v
}

fn body_bytes(example: &Value, b: &Body) -> Vec<u8> {
    match b {
        Body::Edited(edits) => serde_json::to_vec(&apply(example, edits)).unwrap(),
        Body::Whole(v) => serde_json::to_vec(v).unwrap(),
        Body::Raw(bytes) => bytes.clone(),
    }
}

/// Percent-encodes everything but unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A path segment or query value: encoded generated text, or one of the
/// raw forms that mean something to a URL parser.
fn arb_segment() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => arb_string().prop_map(|s| encode(&s)),
        1 => prop::sample::select(&["%00", "a%00b", "..", "%2F", "%2e%2e", "%FF", "%F0%9F%98%80", "."][..])
            .prop_map(str::to_string),
    ]
}

/// An `Authorization` header: mostly valid, else generated.
fn arb_auth() -> impl Strategy<Value = Option<String>> {
    use base64::Engine;
    let b64 = |b: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(b);
    prop_oneof![
        6 => Just(Some(format!("Basic {}", b64(b"w1:pw1".to_vec())))),
        1 => Just(None),
        2 => (arb_string(), arb_string())
            .prop_map(move |(u, p)| Some(format!("Basic {}", b64(format!("{u}:{p}").into_bytes())))),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(move |b| Some(format!("Basic {}", b64(b)))),
        1 => "[ -~]{0,30}".prop_map(Some),
    ]
}

#[derive(Clone, Copy)]
enum Shape {
    /// A JSON body: the example, edited.
    Json(&'static str),
    /// `{}` in the path replaced by generated segments.
    Path,
    /// No input but a generated query string.
    Query,
}

struct FuzzRoute {
    name: &'static str,
    method: axum::http::Method,
    template: &'static str,
    shape: Shape,
    public: bool,
}

/// Every route of both apps but the finish (fuzzed on its own below).
fn fuzz_routes() -> Vec<FuzzRoute> {
    use axum::http::Method;
    let r = |name, method, template, shape, public| FuzzRoute {
        name,
        method,
        template,
        shape,
        public,
    };
    vec![
        r("health", Method::GET, "/health", Shape::Query, false),
        r("ready", Method::GET, "/ready", Shape::Query, false),
        r("metrics", Method::GET, "/metrics", Shape::Query, false),
        r("status", Method::GET, "/status", Shape::Query, false),
        r(
            "get-active-runs",
            Method::GET,
            "/active-runs",
            Shape::Query,
            false,
        ),
        r(
            "peek",
            Method::GET,
            "/active-runs/+peek",
            Shape::Query,
            false,
        ),
        r(
            "download-codebases",
            Method::GET,
            "/codebases",
            Shape::Query,
            false,
        ),
        r(
            "download-candidates",
            Method::GET,
            "/candidates",
            Shape::Query,
            false,
        ),
        r("queue", Method::GET, "/queue?limit={}", Shape::Path, false),
        r(
            "queue-position",
            Method::GET,
            "/queue/position?codebase={}&campaign={}",
            Shape::Path,
            false,
        ),
        r(
            "get-active-run",
            Method::GET,
            "/active-runs/{}",
            Shape::Path,
            false,
        ),
        r("log-index", Method::GET, "/log/{}", Shape::Path, false),
        r("log", Method::GET, "/log/{}/{}", Shape::Path, false),
        r("kill", Method::POST, "/kill/{}", Shape::Path, false),
        r("get-run", Method::GET, "/runs/{}", Shape::Path, false),
        r(
            "delete-candidate",
            Method::DELETE,
            "/candidates/{}",
            Shape::Path,
            false,
        ),
        r(
            "public-get-active-run",
            Method::GET,
            "/runner/active-runs/{}",
            Shape::Path,
            true,
        ),
        r(
            "assign",
            Method::POST,
            "/active-runs",
            Shape::Json(
                r#"{"worker": "w1", "worker_link": "http://w/", "backchannel": {"kind": "http", "url": "http://127.0.0.1:9/"}, "codebase": "c1", "campaign": "fix"}"#,
            ),
            false,
        ),
        r(
            "upload-candidates",
            Method::POST,
            "/candidates",
            Shape::Json(
                r#"[{"codebase": "c1", "campaign": "fix", "command": "true", "value": 5, "success_chance": 0.5, "context": "x", "publish-policy": null, "change_set": null, "requester": "r"}]"#,
            ),
            false,
        ),
        r(
            "upload-codebases",
            Method::POST,
            "/codebases",
            Shape::Json(
                r#"[{"name": "c9", "url": "https://h/x", "branch": "main", "vcs_type": "git", "subpath": "", "value": 3, "web_url": "https://h/"}]"#,
            ),
            false,
        ),
        r(
            "schedule",
            Method::POST,
            "/schedule",
            Shape::Json(
                r#"{"codebase": "c1", "campaign": "fix", "requester": "r", "refresh": false, "bucket": "default", "offset": 1.5, "estimated_duration": 5}"#,
            ),
            false,
        ),
        r(
            "schedule-control",
            Method::POST,
            "/schedule-control",
            Shape::Json(
                r#"{"run_id": "r0", "requester": "r", "refresh": false, "bucket": "control", "offset": 2}"#,
            ),
            false,
        ),
        r(
            "update-run",
            Method::POST,
            "/runs/r0",
            Shape::Json(r#"{"publish_status": "approved"}"#),
            false,
        ),
        r(
            "public-assign",
            Method::POST,
            "/runner/active-runs",
            Shape::Json(
                r#"{"codebase": "c1", "campaign": "fix", "backchannel": null, "worker_link": null}"#,
            ),
            true,
        ),
    ]
}

/// One generated request of a route.
#[derive(Debug, Clone)]
struct Generated {
    segments: Vec<String>,
    query: Vec<(String, String)>,
    body: Body,
    auth: Option<String>,
    content_type: Option<String>,
}

fn arb_request() -> impl Strategy<Value = Generated> {
    (
        prop::collection::vec(arb_segment(), 2),
        prop::collection::vec((arb_segment(), arb_segment()), 0..3),
        arb_body(),
        arb_auth(),
        prop_oneof![
            8 => Just(Some("application/json".to_string())),
            1 => Just(None),
            1 => "[ -~]{0,30}".prop_map(Some),
        ],
    )
        .prop_map(|(segments, query, body, auth, content_type)| Generated {
            segments,
            query,
            body,
            auth,
            content_type,
        })
}

fn build(route: &FuzzRoute, g: &Generated) -> axum::http::Request<axum::body::Body> {
    let mut path = route.template.to_string();
    for seg in &g.segments {
        if let Some(at) = path.find("{}") {
            path.replace_range(at..at + 2, seg);
        }
    }
    let (body, extra_query) = match route.shape {
        Shape::Json(example) => {
            let example: Value = serde_json::from_str(example).unwrap();
            (body_bytes(&example, &g.body), false)
        }
        Shape::Path => (Vec::new(), false),
        Shape::Query => (Vec::new(), true),
    };
    if extra_query && !g.query.is_empty() {
        let q: Vec<String> = g.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        path = format!("{path}?{}", q.join("&"));
    }
    let mut req = axum::http::Request::builder()
        .method(route.method.clone())
        .uri(path);
    if let Some(ct) = &g.content_type {
        req = req.header("content-type", ct.as_str());
    }
    if route.public {
        if let Some(a) = &g.auth {
            req = req.header("authorization", a.as_str());
        }
    }
    req.body(axum::body::Body::from(body)).unwrap()
}

/// Result parts for the finish: the example result.json edited, then files
/// with generated names and contents.
fn arb_finish() -> impl Strategy<Value = (Body, Vec<(String, Vec<u8>)>, bool)> {
    let name = prop_oneof![
        4 => Just("worker.log".to_string()),
        1 => "[a-z.]{1,12}",
        1 => arb_string(),
    ];
    (
        arb_body(),
        prop::collection::vec((name, prop::collection::vec(any::<u8>(), 0..32)), 0..3),
        prop::bool::weighted(0.05),
    )
}

fn requests_per_route() -> usize {
    std::env::var("FUZZ_REQUESTS_PER_ROUTE")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzed_requests_on_every_route_never_500_and_4xx_change_nothing() {
    use sqlx::Connection;
    use tower::ServiceExt;
    let t = TestRunner::start(CONFIG).await.expect("runner");
    let mut db = sqlx::PgConnection::connect(&t.services.db.url)
        .await
        .unwrap();
    let mut redis = t.services.redis.connection().await.unwrap();
    let mut run_id = t
        .queue_and_register("c0", "fix", "true")
        .await
        .unwrap()
        .log_id;
    seed_stored_run(&mut db).await;
    let admin = janitor_runner::http::admin::router(t.runner.app.clone());
    let public = janitor_runner::http::public::router(t.runner.app.clone());
    let n = requests_per_route();
    let mut proprunner = proptest::test_runner::TestRunner::deterministic();
    let mut tally: BTreeMap<&str, Tally> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    let mut state = fingerprint(&mut db, &mut redis).await;
    let started = std::time::Instant::now();

    // Sends one request, counts its answer and checks the state after it.
    macro_rules! send {
        ($name:expr, $router:expr, $req:expr, $what:expr) => {{
            let resp = $router.clone().oneshot($req).await.unwrap();
            let status = resp.status().as_u16();
            let text = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap_or_default();
            let e = tally.entry($name).or_default();
            e.tried += 1;
            if (400..500).contains(&status) {
                e.client += 1;
                let after = fingerprint(&mut db, &mut redis).await;
                if after != state && failures.len() < 20 {
                    failures.push(format!(
                        "{} {:?} -> {status} changed the state",
                        $name, $what
                    ));
                }
                state = after;
            } else {
                if matches!(status, 500 | 504..=599) {
                    e.server += 1;
                    if failures.len() < 20 {
                        failures.push(format!(
                            "{} {:?} -> {status} {}",
                            $name,
                            $what,
                            String::from_utf8_lossy(&text[..text.len().min(200)])
                        ));
                    }
                } else if (501..=503).contains(&status) {
                    e.unavailable += 1;
                } else {
                    e.ok += 1;
                }
                // An accepted request may go on in the background.
                t.runner.background_idle().await;
                state = fingerprint(&mut db, &mut redis).await;
            }
            status
        }};
    }

    let strategy = arb_request();
    for route in fuzz_routes() {
        let router = if route.public { &public } else { &admin };
        for _ in 0..n {
            let g = strategy.new_tree(&mut proprunner).unwrap().current();
            let req = build(&route, &g);
            send!(route.name, router, req, g);
        }
    }
    // The finish: a generated result.json and files, for the active run
    // (a fresh one once a finish was accepted) or, sometimes, a generated id.
    let finish = arb_finish();
    for i in 0..n {
        let (body, files, other_id) = finish.new_tree(&mut proprunner).unwrap().current();
        let result = json!({"code": "build-failed", "description": "d", "start_time": "2020-02-02T10:00:00",
            "finish_time": "2020-02-02T10:10:00", "value": 3, "stage": "build", "revision": "abc",
            "branches": [["main", "origin", "a", "b"]], "tags": [["v1", "abc"]], "context": "c",
            "target": {"name": "generic", "details": {}}, "transient": false, "failure_details": {"x": 1}});
        let result: Value = match &body {
            Body::Edited(edits) => apply(&result, edits),
            Body::Whole(v) => v.clone(),
            Body::Raw(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        };
        let files: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect();
        let (ct, bytes) = finish_body(&result, &files);
        let id = if other_id {
            encode(&format!("{i}-{run_id}"))
        } else {
            run_id.clone()
        };
        let req = axum::http::Request::post(format!("/active-runs/{id}/finish"))
            .header("content-type", ct)
            .body(axum::body::Body::from(bytes))
            .unwrap();
        let status = send!("finish", &admin, req, (result.to_string(), files.len()));
        if (200..300).contains(&status) && !other_id {
            run_id = t
                .queue_and_register(&format!("fin{i}"), "fix", "true")
                .await
                .unwrap()
                .log_id;
            state = fingerprint(&mut db, &mut redis).await;
        }
    }
    let mut table = format!(
        "fuzzed requests ({} per route, {:.0} s; a 4xx that changed the state: {})\n{:<22} {:>6} {:>6} {:>6} {:>7} {:>6}\n",
        n,
        started.elapsed().as_secs_f64(),
        failures.iter().filter(|f| f.contains("changed the state")).count(),
        "route",
        "tried",
        "2xx",
        "4xx",
        "501-503",
        "5xx"
    );
    for (name, e) in &tally {
        table += &format!(
            "{name:<22} {:>6} {:>6} {:>6} {:>7} {:>6}\n",
            e.tried, e.ok, e.client, e.unavailable, e.server
        );
    }
    janitor_harness::testing::report("hostile-input-fuzz", &table);
    assert!(
        failures.is_empty(),
        "{} failures (first 20):\n{}",
        failures.len(),
        failures.join("\n")
    );
    for (name, e) in &tally {
        assert_eq!(e.tried, n, "{name}");
    }
    t.runner.shutdown().await.unwrap();
}
