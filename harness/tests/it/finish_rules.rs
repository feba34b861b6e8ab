//! Finish behaviour no golden shows (divergence-policy §2, §3), through the
//! real stack: a run that is no longer its queue item's current run is a
//! 404, and an upload filename that could leave the upload directory is a
//! 400 that stores nothing.

use janitor_harness::testing::TestRunner;
use janitor_runner::state;
use janitor_runner::types::ActiveRun;
use redis::AsyncCommands;
use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};

struct Env {
    t: TestRunner,
    conn: PgConnection,
    run: ActiveRun,
}

async fn start() -> Env {
    let t = TestRunner::start_with("", |s, _| {
        s.public_port = None;
        s.db_max_connections = 3;
    })
    .await
    .expect("runner");
    let conn = PgConnection::connect(&t.services.db.url)
        .await
        .expect("connect");
    let run = t
        .queue_and_register("fin", "scratch", "true")
        .await
        .expect("run");
    Env { t, conn, run }
}

/// A multipart finish body with result.json and one more file.
fn body(filename: &str) -> (String, Vec<u8>) {
    let result = json!({
        "start_time": "2020-02-02T10:00:00Z",
        "finish_time": "2020-02-02T10:10:30Z",
    });
    janitor_harness::testing::finish_body(&result, &[(filename, b"x\n")])
}

async fn finish(env: &Env, filename: &str) -> (u16, Value) {
    let (ct, text) = body(filename);
    let resp = janitor_harness::testing::http_client()
        .post(format!(
            "http://{}/active-runs/{}/finish",
            env.t.runner.admin_addr, env.run.log_id
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
    let mut redis = env.t.runner.app.runs.connection();
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
    env.t.runner.shutdown().await.expect("shutdown");
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
    assert!(state::get(&env.t.runner.app.runs, &env.run.log_id)
        .await
        .expect("get")
        .is_some());
    env.t.runner.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_item_requeued_under_another_change_set_goes_with_its_run() {
    let mut env = start().await;
    // Another queue row the finish must leave alone.
    let other = env
        .t
        .queue_and_register("other", "scratch", "true")
        .await
        .expect("second run");
    // The item moved to another change set since it was assigned: the
    // run's (codebase, campaign, change set) key no longer finds it.
    sqlx::query("INSERT INTO change_set (id, campaign) VALUES ('moved', 'scratch')")
        .execute(&mut env.conn)
        .await
        .expect("change set");
    sqlx::query("UPDATE queue SET change_set = 'moved' WHERE id = $1")
        .bind(env.run.queue_id)
        .execute(&mut env.conn)
        .await
        .expect("move");
    let (status, json) = finish(&env, "worker.log").await;
    assert_eq!(status, 201, "{json}");
    assert_eq!(runs_stored(&mut env).await, 1);
    let ids: Vec<(i32,)> = sqlx::query_as("SELECT id FROM queue ORDER BY id")
        .fetch_all(&mut env.conn)
        .await
        .expect("queue");
    assert_eq!(
        ids,
        [(other.queue_id as i32,)],
        "only the finished run's item goes"
    );
    env.t.runner.shutdown().await.expect("shutdown");
}
