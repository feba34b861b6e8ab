//! Running one scenario: fresh services and fixtures, seeds, the target, the
//! steps, and the capture of everything FORMAT.md compares — normalised.

use crate::fixtures::{create_repos, FakeWorker, ScenarioDir};
use crate::normalize::Normalizer;
use crate::scenario::{Scenario, GOLDEN_FAKE_WORKER, GOLDEN_ROOT};
use crate::services::TestServices;
use crate::target::{Environment, GcsBuckets, RunningTarget, TargetSpec};
use anyhow::Context;
use base64::Engine;
use futures::StreamExt;
use serde_json::{json, Map, Value};
use sqlx::{Connection, Executor, PgConnection, Row};
use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Response headers FORMAT.md §3 keeps.
pub const KEPT_HEADERS: [&str; 5] = [
    "content-type",
    "location",
    "www-authenticate",
    "retry-after",
    "allow",
];
const SYNC_CHANNEL: &str = "__janitor_harness_sync__";

/// Our outputs for one scenario, normalised, in golden form.
#[derive(Debug)]
pub struct Observed {
    /// `{"steps": [{"request", "response"}], "db_after", "redis_after", "files_after", "fake_worker_requests"}`
    pub doc: Value,
    /// Per-step wall time of the HTTP exchange.
    pub latencies: Vec<(String, Duration)>,
    /// Services and fixtures ready (database clone, Redis, directories, fake worker).
    pub setup: Duration,
    pub total: Duration,
    /// The gzip header mtime of each stored log, keyed like `files_after`.
    pub log_mtimes: Value,
}

/// Where the runner stores logs and artifacts during a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum StorageKind {
    /// The scenario's directories, as recorded.
    #[default]
    Filesystem,
    /// Fresh buckets of the harness's GCS emulator (`gs://` locations).
    Gcs,
    /// Logs in the `debian-janitor` bucket of a fresh S3 server (moto) named
    /// by an `http://` location; artifacts in the scenario's directory, as
    /// recorded (upstream has no S3 artifact store).
    S3,
}

pub async fn run(scenario: &Scenario, target: &TargetSpec) -> anyhow::Result<Observed> {
    run_with(scenario, target, StorageKind::Filesystem).await
}

pub async fn run_with(
    scenario: &Scenario,
    target: &TargetSpec,
    storage: StorageKind,
) -> anyhow::Result<Observed> {
    let t0 = Instant::now();
    let services = TestServices::start().await?;
    let stores = Stores::start(storage).await?;
    let dir = ScenarioDir::new()?;
    let worker = FakeWorker::start().await?;
    create_repos(&dir, &scenario.runner.repos)?;
    let setup = t0.elapsed();

    let localize = |s: &str| dir.localize(s).replace(GOLDEN_FAKE_WORKER, &worker.url());
    let mut norm = Normalizer::new(chrono::Utc::now());
    norm.map_fixture(dir.root_str(), GOLDEN_ROOT);
    norm.map_fixture(worker.url(), GOLDEN_FAKE_WORKER);
    norm.map_fixture(
        worker.url().trim_end_matches('/').to_string(),
        GOLDEN_FAKE_WORKER.trim_end_matches('/'),
    );
    seed(scenario, &services, &localize).await?;
    // Subscribe before the first step, as the recorder did.
    let collector = Collector::subscribe(&services.redis.url).await?;

    let env = Environment {
        scenario,
        dir: &dir,
        database_url: &services.db.url,
        redis_url: &services.redis.url,
        config_text: localize(&scenario.config),
        gcs: stores.gcs.as_ref(),
        s3_endpoint: stores.s3.as_ref().map(|s| s.endpoint.as_str()),
    };
    let running = RunningTarget::start(target, &env).await?;
    let (steps, latencies) = run_steps(scenario, &running, &mut norm, &localize).await?;

    running.settle().await;
    let mut conn = services.redis.connection().await?;
    let messages = collector.drain(&mut conn).await?;
    let db_after = dump_database(&services.db.url, &mut norm).await?;
    let (keys, published) = dump_redis(&mut conn, &messages, &mut norm).await?;
    let stored = stores.objects(dir.root()).await?;
    let files_after = norm.value(&files_document(&stored)?);
    let log_mtimes = norm.value(&mtimes_document(&stored));
    let fake_worker_requests = norm.value(&json!(worker.requests()));
    running.stop().await?;

    Ok(Observed {
        doc: json!({
            "steps": steps,
            "db_after": db_after,
            "redis_after": {"keys": keys, "published": published},
            "files_after": files_after,
            "fake_worker_requests": fake_worker_requests,
        }),
        latencies,
        setup,
        total: t0.elapsed(),
        log_mtimes,
    })
}

/// The object stores a replay's runner writes to, besides the scenario's
/// directories: fresh GCS buckets, or a fresh S3 server.
struct Stores {
    gcs: Option<GcsBuckets>,
    s3: Option<crate::services::s3::S3Server>,
}

impl Stores {
    async fn start(storage: StorageKind) -> anyhow::Result<Stores> {
        let mut stores = Stores {
            gcs: None,
            s3: None,
        };
        match storage {
            StorageKind::Filesystem => {}
            StorageKind::Gcs => {
                let server = crate::services::gcs().await?;
                let id = uuid::Uuid::new_v4().simple().to_string();
                let buckets = GcsBuckets {
                    endpoint: server.endpoint.clone(),
                    logs: format!("logs-{id}"),
                    artifacts: format!("artifacts-{id}"),
                };
                server.create_bucket(&buckets.logs).await?;
                server.create_bucket(&buckets.artifacts).await?;
                stores.gcs = Some(buckets);
            }
            StorageKind::S3 => {
                let server = crate::services::s3::S3Server::start().await?;
                server
                    .create_bucket(janitor_runner::storage::s3::BUCKET)
                    .await?;
                stores.s3 = Some(server);
            }
        }
        Ok(stores)
    }

    /// Everything stored: the files under `root` (or the GCS objects), and
    /// the S3 objects, whose keys (`logs/<codebase>/<run>/<name>.gz`) are the
    /// filesystem layout.
    async fn objects(&self, root: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let mut stored = match &self.gcs {
            None => raw_files(root)?,
            Some(b) => raw_objects(b).await?,
        };
        if let Some(s3) = &self.s3 {
            stored.extend(s3.objects(janitor_runner::storage::s3::BUCKET).await?);
        }
        Ok(stored)
    }
}

/// The scenario's seed SQL and Redis commands, localized.
async fn seed(
    scenario: &Scenario,
    services: &TestServices,
    localize: &dyn Fn(&str) -> String,
) -> anyhow::Result<()> {
    let mut db = PgConnection::connect(&services.db.url).await?;
    for stmt in &scenario.seed_sql {
        db.execute(localize(stmt).as_str())
            .await
            .with_context(|| format!("seed_sql: {stmt}"))?;
    }
    db.close().await?;
    let mut redis = services.redis.connection().await?;
    for args in &scenario.seed_redis {
        let mut cmd = redis::cmd(args.first().map(String::as_str).unwrap_or("PING"));
        for a in args.iter().skip(1) {
            cmd.arg(localize(a));
        }
        cmd.query_async::<redis::Value>(&mut redis)
            .await
            .with_context(|| format!("seed_redis: {args:?}"))?;
    }
    Ok(())
}

/// Every message published during the replay, in arrival order.
struct Collector {
    published: Arc<Mutex<Vec<(String, String)>>>,
    synced: tokio::sync::mpsc::UnboundedReceiver<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Collector {
    async fn subscribe(redis_url: &str) -> anyhow::Result<Collector> {
        let published = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
        let (sync_tx, synced) = tokio::sync::mpsc::unbounded_channel::<()>();
        let mut pubsub = redis::Client::open(redis_url)?.get_async_pubsub().await?;
        pubsub.psubscribe("*").await?;
        let sink = published.clone();
        let task = tokio::spawn(async move {
            let mut stream = pubsub.into_on_message();
            while let Some(msg) = stream.next().await {
                let channel = msg.get_channel_name().to_string();
                if channel == SYNC_CHANNEL {
                    let _ = sync_tx.send(());
                    continue;
                }
                let payload: String = msg.get_payload().unwrap_or_default();
                sink.lock().unwrap().push((channel, payload));
            }
        });
        Ok(Collector {
            published,
            synced,
            task,
        })
    }

    /// The messages so far: everything published before a sentinel has
    /// been delivered once the sentinel arrives.
    async fn drain(
        mut self,
        conn: &mut redis::aio::MultiplexedConnection,
    ) -> anyhow::Result<Vec<(String, String)>> {
        redis::cmd("PUBLISH")
            .arg(SYNC_CHANNEL)
            .arg("sync")
            .query_async::<()>(conn)
            .await?;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.synced.recv()).await;
        self.task.abort();
        let messages = std::mem::take(&mut *self.published.lock().unwrap());
        Ok(messages)
    }
}

/// The scenario's requests in order, each answer normalised; with the wall
/// time of each exchange by route.
async fn run_steps(
    scenario: &Scenario,
    running: &RunningTarget,
    norm: &mut Normalizer,
    localize: &dyn Fn(&str) -> String,
) -> anyhow::Result<(Vec<Value>, Vec<(String, Duration)>)> {
    let client = janitor_runner::tls::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let mut steps = Vec::new();
    let mut latencies = Vec::new();
    for step in &scenario.steps {
        let request = norm.resolve(&step.request);
        let base = if step.is_public() {
            running.public_url()
        } else {
            running.admin_url()
        };
        let t = Instant::now();
        let response = send(&client, &base, &request, localize).await?;
        latencies.push((
            format!("{} {}", step.method(), route_of(step.path())),
            t.elapsed(),
        ));
        let response = prepare_response(response, step.method(), step.path());
        let response = norm.value(&response);
        steps.push(json!({"request": step.request, "response": response}));
        running.after_step(step).await;
    }
    Ok((steps, latencies))
}

/// `/active-runs/<uuid:1>/finish` → `/active-runs/{id}/finish`, for latency reports.
pub fn route_of(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with("<uuid:")
                || seg.chars().all(|c| c.is_ascii_digit()) && !seg.is_empty()
            {
                "{id}"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

struct RawResponse {
    status: u16,
    headers: Map<String, Value>,
    content_type: String,
    body: Vec<u8>,
}

async fn send(
    client: &reqwest::Client,
    base: &str,
    request: &Value,
    localize: &dyn Fn(&str) -> String,
) -> anyhow::Result<RawResponse> {
    let method: reqwest::Method = request["method"].as_str().unwrap_or("GET").parse()?;
    let path = localize(request["path"].as_str().unwrap_or("/"));
    let mut url = url::Url::parse(&format!("{base}{path}"))?;
    if let Some(q) = request["query"].as_object() {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in q {
            let v = match v {
                Value::String(s) => localize(s),
                other => other.to_string(),
            };
            pairs.append_pair(k, &v);
        }
    }
    let mut rb = client.request(method, url);
    if let Some(h) = request["headers"].as_object() {
        for (k, v) in h {
            rb = rb.header(k, localize(v.as_str().unwrap_or_default()));
        }
    }
    if let Some(j) = request.get("json") {
        let body = localize(&serde_json::to_string(j)?);
        rb = rb.header("content-type", "application/json").body(body);
    } else if let Some(t) = request.get("text").and_then(Value::as_str) {
        let ct = request["content_type"].as_str().unwrap_or("text/plain");
        rb = rb.header("content-type", ct).body(localize(t));
    } else if let Some(parts) = request.get("multipart").and_then(Value::as_array) {
        let (ct, body) = multipart_body(parts, localize)?;
        rb = rb.header("content-type", ct).body(body);
    }
    let resp = rb.send().await?;
    let status = resp.status().as_u16();
    let mut headers = Map::new();
    for name in KEPT_HEADERS {
        if let Some(v) = resp.headers().get(name) {
            headers.insert(
                name.to_string(),
                Value::String(v.to_str().unwrap_or_default().to_string()),
            );
        }
    }
    let content_type = headers
        .get("content-type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let body = resp.bytes().await?.to_vec();
    Ok(RawResponse {
        status,
        headers,
        content_type,
        body,
    })
}

/// A multipart/form-data body written by hand: FORMAT.md wants filenames
/// exactly as given (no percent-encoding), which form builders do not promise.
pub fn multipart_body(
    parts: &[Value],
    localize: &dyn Fn(&str) -> String,
) -> anyhow::Result<(String, Vec<u8>)> {
    let boundary = format!("janitor-harness-{}", uuid::Uuid::new_v4().simple());
    let mut body = Vec::new();
    for part in parts {
        let name = part["name"].as_str().unwrap_or("file");
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{name}\"");
        if let Some(f) = part["filename"].as_str() {
            disposition.push_str(&format!("; filename=\"{f}\""));
        }
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        if let Some(ct) = part["content_type"].as_str() {
            body.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        if let Some(j) = part.get("json") {
            body.extend_from_slice(localize(&serde_json::to_string(j)?).as_bytes());
        } else if let Some(t) = part.get("text").and_then(Value::as_str) {
            body.extend_from_slice(localize(t).as_bytes());
        } else if let Some(b) = part.get("base64").and_then(Value::as_str) {
            body.extend_from_slice(&base64::engine::general_purpose::STANDARD.decode(b)?);
        }
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Ok((format!("multipart/form-data; boundary={boundary}"), body))
}

fn prepare_response(raw: RawResponse, method: &str, path: &str) -> Value {
    let mut out = Map::new();
    out.insert("status".into(), json!(raw.status));
    out.insert("headers".into(), Value::Object(raw.headers));
    if path == "/metrics" {
        // Counters depend on the process's history (FORMAT.md §3).
        out.insert("body_ignored".into(), json!(true));
    } else if raw.content_type.starts_with("application/json") {
        match serde_json::from_slice::<Value>(&raw.body) {
            Ok(mut v) => {
                sort_active_runs(&mut v, method == "GET" && path == "/active-runs");
                out.insert("json".into(), v);
            }
            Err(_) => {
                out.insert("text".into(), json!(String::from_utf8_lossy(&raw.body)));
            }
        }
    } else if method != "HEAD" {
        out.insert("text".into(), json!(String::from_utf8_lossy(&raw.body)));
    }
    Value::Object(out)
}

/// Lists of active runs are compared sorted by `queue_id` (FORMAT.md §3).
fn sort_active_runs(v: &mut Value, whole_is_list: bool) {
    fn by_queue_id(items: &mut [Value]) {
        items.sort_by_key(|r| r["queue_id"].as_i64().unwrap_or(i64::MIN));
    }
    if whole_is_list {
        if let Value::Array(items) = v {
            by_queue_id(items);
        }
    }
    if let Some(Value::Array(items)) = v.get_mut("processing") {
        by_queue_id(items);
    }
}

/// Every non-empty table of schema `public` (sqlx's bookkeeping excluded),
/// rows as PostgreSQL's `to_jsonb` renders them.
pub async fn dump_database(url: &str, norm: &mut Normalizer) -> anyhow::Result<Value> {
    let mut db = PgConnection::connect(url).await?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' \
         AND tablename <> '_sqlx_migrations' ORDER BY tablename",
    )
    .fetch_all(&mut db)
    .await?;
    let mut out = Map::new();
    for table in tables {
        let rows = sqlx::query(&format!("SELECT to_jsonb(t)::text FROM \"{table}\" t"))
            .fetch_all(&mut db)
            .await?;
        if rows.is_empty() {
            continue;
        }
        let rows: Vec<Value> = rows
            .iter()
            .map(|r| serde_json::from_str(&r.get::<String, _>(0)))
            .collect::<Result<_, _>>()?;
        out.insert(table, Value::Array(norm.table_rows(&rows)));
    }
    db.close().await?;
    Ok(Value::Object(out))
}

fn parsed(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => json!({ "json": v }),
        Err(_) => json!({ "text": text }),
    }
}

async fn dump_redis(
    conn: &mut redis::aio::MultiplexedConnection,
    published: &[(String, String)],
    norm: &mut Normalizer,
) -> anyhow::Result<(Value, Value)> {
    let mut names: Vec<String> = redis::cmd("KEYS").arg("*").query_async(conn).await?;
    names.sort();
    let mut keys = Map::new();
    for name in names {
        let kind: String = redis::cmd("TYPE").arg(&name).query_async(conn).await?;
        let value = match kind.as_str() {
            "hash" => {
                let h: std::collections::BTreeMap<String, String> =
                    redis::cmd("HGETALL").arg(&name).query_async(conn).await?;
                Value::Object(h.into_iter().map(|(k, v)| (k, parsed(&v))).collect())
            }
            "string" => {
                let s: String = redis::cmd("GET").arg(&name).query_async(conn).await?;
                parsed(&s)
            }
            "list" => {
                let l: Vec<String> = redis::cmd("LRANGE")
                    .arg(&name)
                    .arg(0)
                    .arg(-1)
                    .query_async(conn)
                    .await?;
                Value::Array(l.iter().map(|s| parsed(s)).collect())
            }
            "set" => {
                let mut l: Vec<String> =
                    redis::cmd("SMEMBERS").arg(&name).query_async(conn).await?;
                l.sort();
                Value::Array(l.iter().map(|s| parsed(s)).collect())
            }
            other => json!({ "unsupported": other }),
        };
        keys.insert(name, json!({"type": kind, "value": value}));
    }
    let keys = norm.value(&Value::Object(keys));
    let mut channels: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for (channel, payload) in published {
        let mut msg = parsed(payload);
        if let Some(j) = msg.get_mut("json") {
            sort_active_runs(j, false);
        }
        channels.entry(channel.clone()).or_default().push(msg);
    }
    let published = norm.value(&json!(channels));
    Ok((keys, published))
}

/// Stored logs and artifacts as (`logs/…` or `artifacts/…`, raw bytes).
type RawStore = Vec<(String, Vec<u8>)>;

fn raw_files(root: &Path) -> anyhow::Result<RawStore> {
    let mut out = Vec::new();
    for top in ["logs", "artifacts"] {
        let base = root.join(top);
        if base.exists() {
            walk(root, &base, &mut out)?;
        }
    }
    Ok(out)
}

/// The objects of both buckets, named as the filesystem stores name files:
/// the log bucket under `logs/`, the artifact bucket under `artifacts/`.
async fn raw_objects(b: &GcsBuckets) -> anyhow::Result<RawStore> {
    let server = crate::services::gcs().await?;
    let mut out = Vec::new();
    for (top, bucket) in [("logs", &b.logs), ("artifacts", &b.artifacts)] {
        for (name, bytes) in server.objects(bucket).await? {
            out.push((format!("{top}/{name}"), bytes));
        }
    }
    Ok(out)
}

fn is_log(rel: &str) -> bool {
    rel.starts_with("logs/") && rel.ends_with(".gz")
}

fn files_document(stored: &RawStore) -> anyhow::Result<Value> {
    let mut out = Map::new();
    for (rel, raw) in stored {
        out.insert(rel.clone(), file_entry(raw, is_log(rel))?);
    }
    Ok(Value::Object(out))
}

fn mtimes_document(stored: &RawStore) -> Value {
    let mut out = Map::new();
    for (rel, raw) in stored.iter().filter(|(rel, _)| is_log(rel)) {
        let mtime = janitor_runner::storage::gcs::gzip_mtime(raw);
        out.insert(rel.clone(), json!(mtime));
    }
    Value::Object(out)
}

fn walk(root: &Path, dir: &Path, out: &mut RawStore) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(root, &path, out)?;
            continue;
        }
        let rel = path.strip_prefix(root)?.display().to_string();
        out.push((rel, std::fs::read(&path)?));
    }
    Ok(())
}

pub fn file_entry(raw: &[u8], gzip: bool) -> anyhow::Result<Value> {
    use sha2::{Digest, Sha256};
    let content = if gzip {
        let mut d = flate2::read::GzDecoder::new(raw);
        let mut buf = Vec::new();
        d.read_to_end(&mut buf)
            .context("a stored log is not valid gzip")?;
        buf
    } else {
        raw.to_vec()
    };
    let mut entry = Map::new();
    if gzip {
        entry.insert("gzip".into(), json!(true));
    }
    entry.insert(
        "sha256".into(),
        json!(hex::encode(Sha256::digest(&content))),
    );
    entry.insert("size".into(), json!(content.len()));
    if let Ok(text) = String::from_utf8(content) {
        entry.insert("text".into(), json!(text));
    }
    Ok(Value::Object(entry))
}
