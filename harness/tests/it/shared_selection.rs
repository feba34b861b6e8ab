//! Shared candidate selection (issue 13): many concurrent assigners over
//! TWO runners sharing one PostgreSQL and one Redis (each with its own
//! selection pool) never hand out an item twice, hand out every item, and one
//! request at a time still gets the head of the queue as it is then.

use janitor_harness::testing::TestRunner;
use janitor_runner::server::Runner;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
campaign {
  name: "scratch"
  default_empty: true
  generic_build {
  }
}
"#;

const ITEMS: u64 = 150;
const ASSIGNERS: usize = 64;

async fn second_runner(a: &TestRunner) -> Runner {
    let mut s = a.second_runner_settings(CONFIG);
    s.db_max_connections = 5;
    Runner::start(s, janitor_runner::clock::system())
        .await
        .unwrap()
}

/// `(status, body)` of one assign.
async fn assign(http: &reqwest::Client, base: &str) -> (u16, Value) {
    let resp = http
        .post(format!("{base}/active-runs"))
        .json(&json!({"worker": "w", "backchannel": null}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn finish(http: &reqwest::Client, base: &str, run_id: &str) -> u16 {
    let (ct, body) = janitor_harness::load::finish_body();
    http.post(format!("{base}/active-runs/{run_id}/finish"))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Queue ids in scheduling order, claimed ones included.
async fn queue_order(db: &sqlx::PgPool) -> Vec<i64> {
    sqlx::query_scalar("SELECT id::bigint FROM queue ORDER BY bucket ASC, priority ASC, id ASC")
        .fetch_all(db)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_assigners_on_two_runners_share_selections_without_doubles() {
    let a = TestRunner::start(CONFIG).await.unwrap();
    janitor_harness::load::seed(&a.services.db.url, ITEMS, "scratch")
        .await
        .unwrap();
    let b = second_runner(&a).await;
    let bases = [a.admin(""), format!("http://{}", b.admin_addr)];
    let db = sqlx::PgPool::connect(&a.services.db.url).await.unwrap();

    // One request at a time, alternating runners: the head of the queue,
    // even when an item is queued ahead of the rest between two assigns
    // (a selection made for an earlier request must not be reused).
    let order = queue_order(&db).await;
    let (_, first) = assign(&a.http, &bases[0]).await;
    assert_eq!(first["queue_id"].as_i64(), Some(order[0]));
    let (_, second) = assign(&a.http, &bases[1]).await;
    assert_eq!(second["queue_id"].as_i64(), Some(order[1]));
    let head: i64 = sqlx::query_scalar(
        "UPDATE queue SET bucket = (enum_range(NULL::queue_bucket))[1], priority = -100000 \
         WHERE id = $1 RETURNING id::bigint",
    )
    .bind(order[order.len() - 1])
    .fetch_one(&db)
    .await
    .unwrap();
    let (_, third) = assign(&a.http, &bases[0]).await;
    assert_eq!(
        third["queue_id"].as_i64(),
        Some(head),
        "the item queued ahead"
    );
    let (_, fourth) = assign(&a.http, &bases[1]).await;
    assert_eq!(fourth["queue_id"].as_i64(), Some(order[2]));

    // Many assigners at once on both runners until the queue is empty:
    // every item handed out exactly once.
    let deadline = Instant::now() + Duration::from_secs(60);
    let tasks: Vec<_> = (0..ASSIGNERS)
        .map(|i| {
            let (http, base) = (a.http.clone(), bases[i % 2].clone());
            tokio::spawn(async move {
                let mut got = Vec::new();
                while Instant::now() < deadline && got.len() < ITEMS as usize {
                    match assign(&http, &base).await {
                        (201, body) => got.push(body["queue_id"].as_i64().unwrap()),
                        (503, body) => {
                            assert_eq!(body, json!({"reason": "queue empty"}));
                            break;
                        }
                        (status, body) => panic!("unexpected {status}: {body}"),
                    }
                }
                got
            })
        })
        .collect();
    let mut handed: BTreeMap<i64, u32> = BTreeMap::new();
    for got in [&first, &second, &third, &fourth] {
        *handed.entry(got["queue_id"].as_i64().unwrap()).or_default() += 1;
    }
    let mut total = 0;
    for t in tasks {
        for id in t.await.unwrap() {
            *handed.entry(id).or_default() += 1;
            total += 1;
        }
    }
    let doubles: Vec<_> = handed.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubles.is_empty(), "handed out twice: {doubles:?}");
    assert_eq!(handed.len() as u64, ITEMS, "every item handed out once");
    assert!(total > 0);

    // Assign → finish cycles on both runners at once (finishes delete queue
    // rows and release claims while selections are shared): no queue id is
    // ever handed out twice.
    // (The runs above stay active; the seed adds items 151..300.)
    janitor_harness::load::seed(&a.services.db.url, 2 * ITEMS, "scratch")
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(8);
    let tasks: Vec<_> = (0..ASSIGNERS)
        .map(|i| {
            let (http, base) = (a.http.clone(), bases[i % 2].clone());
            tokio::spawn(async move {
                let mut got = Vec::new();
                for _ in 0..40 {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let (status, body) = assign(&http, &base).await;
                    if status == 503 {
                        break;
                    }
                    assert_eq!(status, 201, "{body}");
                    got.push(body["queue_id"].as_i64().unwrap());
                    let run_id = body["id"].as_str().unwrap().to_string();
                    assert_eq!(finish(&http, &base, &run_id).await, 201);
                }
                got
            })
        })
        .collect();
    let mut seen = HashSet::new();
    let mut cycles = 0;
    for t in tasks {
        for id in t.await.unwrap() {
            assert!(seen.insert(id), "queue item {id} handed out twice");
            cycles += 1;
        }
    }
    assert!(cycles > ASSIGNERS, "only {cycles} cycles");
    b.shutdown().await.unwrap();
}
