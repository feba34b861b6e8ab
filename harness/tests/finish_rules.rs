//! Finish behaviour no golden shows (divergence-policy §2, §3), through the
//! real stack: a run that is no longer its queue item's current run is a
//! 404, and an upload filename that could leave the upload directory is a
//! 400 that stores nothing.

use janitor_harness::services::TestServices;
use janitor_runner::server::Runner;
use janitor_runner::settings::Settings;
use janitor_runner::state;
use janitor_runner::types::{ActiveRun, Backchannel};
use redis::AsyncCommands;
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection};

struct Env {
    _services: TestServices,
    _tmp: tempfile::TempDir,
    runner: Runner,
    conn: PgConnection,
    run: ActiveRun,
}

async fn start() -> Env {
    let services = TestServices::start().await.expect("test services");
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut s = Settings::new(services.db.url.as_str(), services.redis.url.as_str());
    s.listen_address = "127.0.0.1".into();
    s.port = 0;
    s.public_port = None;
    s.logs_location = Some(tmp.path().join("logs").display().to_string());
    s.artifact_location = Some(tmp.path().join("artifacts").display().to_string());
    s.watchdog = false;
    s.db_max_connections = 3;
    let runner = Runner::start(s, janitor_runner::clock::system())
        .await
        .expect("runner");
    let mut conn = PgConnection::connect(&services.db.url)
        .await
        .expect("connect");
    conn.execute(
        "INSERT INTO worker (name, password) VALUES ('w1', crypt('pw1', '$1$goldsal3')); \
         INSERT INTO codebase (name, vcs_type) VALUES ('fin', 'git'); \
         INSERT INTO queue (codebase, suite, command, bucket) VALUES ('fin', 'scratch', 'true', 'default')",
    )
    .await
    .expect("seed");
    let (queue_id,): (i32,) = sqlx::query_as("SELECT id FROM queue")
        .fetch_one(&mut conn)
        .await
        .expect("queue id");
    let run = ActiveRun {
        queue_id: queue_id as i64,
        log_id: uuid::Uuid::new_v4().to_string(),
        codebase: Some("fin".into()),
        change_set: None,
        campaign: "scratch".into(),
        command: "true".into(),
        estimated_duration: None,
        start_time: chrono::Utc::now().naive_utc(),
        worker_name: Some("w1".into()),
        worker_link: None,
        vcs_info: serde_json::Map::new(),
        backchannel: Backchannel::None,
        instigated_context: Value::Null,
        resume_from: None,
    };
    state::register(&runner.app, &run).await.expect("register");
    Env {
        _services: services,
        _tmp: tmp,
        runner,
        conn,
        run,
    }
}

/// A multipart finish body with result.json and one more file.
fn body(filename: &str) -> (String, String) {
    let result = json!({
        "start_time": "2020-02-02T10:00:00Z",
        "finish_time": "2020-02-02T10:10:30Z",
    });
    let b = "fInIsHbOuNdArY";
    let text = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"metadata\"; filename=\"result.json\"\r\n\
         Content-Type: application/json\r\n\r\n{result}\r\n\
         --{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\nx\n\r\n--{b}--\r\n"
    );
    (format!("multipart/form-data; boundary={b}"), text)
}

async fn finish(env: &Env, filename: &str) -> (u16, Value) {
    let (ct, text) = body(filename);
    let resp = janitor_runner::tls::http_client()
        .post(format!(
            "http://{}/active-runs/{}/finish",
            env.runner.admin_addr, env.run.log_id
        ))
        .header("Content-Type", ct)
        .body(text)
        .send()
        .await
        .expect("finish");
    (
        resp.status().as_u16(),
        resp.json().await.expect("JSON answer"),
    )
}

async fn runs_stored(env: &mut Env) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM run")
        .fetch_one(&mut env.conn)
        .await
        .expect("count");
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_lost_its_queue_item_is_not_found() {
    let mut env = start().await;
    // The queue item now belongs to another run.
    let mut redis = env.runner.app.redis.clone();
    redis
        .hset::<_, _, _, ()>(
            state::ASSIGNED_QUEUE_ITEMS,
            env.run.queue_id.to_string(),
            "another-run",
        )
        .await
        .expect("hset");
    let (status, json) = finish(&env, "worker.log").await;
    assert_eq!(status, 404, "{json}");
    assert!(json["reason"].is_string());
    assert_eq!(runs_stored(&mut env).await, 0);

    // Given back, the same upload is stored (with Z timestamps, no code: a success).
    redis
        .hset::<_, _, _, ()>(
            state::ASSIGNED_QUEUE_ITEMS,
            env.run.queue_id.to_string(),
            &env.run.log_id,
        )
        .await
        .expect("hset");
    let (status, json) = finish(&env, "worker.log").await;
    assert_eq!(status, 201, "{json}");
    assert_eq!(json["result"]["code"], "success");
    assert_eq!(runs_stored(&mut env).await, 1);
    env.runner.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_names_leaving_the_directory_are_refused() {
    let mut env = start().await;
    for name in ["../escape.log", "a/b.log", "..", "a\\b.log"] {
        let (status, json) = finish(&env, name).await;
        assert_eq!(status, 400, "{name}: {json}");
        assert!(json["reason"].is_string(), "{name}: {json}");
    }
    assert_eq!(runs_stored(&mut env).await, 0);
    assert!(state::get(&env.runner.app, &env.run.log_id)
        .await
        .expect("get")
        .is_some());
    env.runner.shutdown().await.expect("shutdown");
}
