//! Status publications on `queue` are coalesced only under concurrency: one
//! request at a time gets one publication per change (as upstream and the
//! goldens), concurrent requests share publications without losing the
//! latest state, and each document is read from Redis, so it includes the
//! runs of another runner process sharing it.

use futures::StreamExt;
use janitor_harness::testing::TestRunner;
use janitor_runner::server::Runner;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

const CONFIG: &str = r#"
campaign {
  name: "scratch"
  default_empty: true
  generic_build {
  }
}
"#;

const SYNC: &str = "status-test-sync";

/// Every `queue` message published until the sync sentinel arrives.
async fn drain(
    stream: &mut (impl futures::Stream<Item = redis::Msg> + Unpin),
    redis_url: &str,
) -> Vec<Value> {
    let client = redis::Client::open(redis_url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("PUBLISH")
        .arg(SYNC)
        .arg("sync")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let mut out = Vec::new();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .expect("sync sentinel")
            .expect("subscription open");
        if msg.get_channel_name() == SYNC {
            return out;
        }
        let payload: String = msg.get_payload().unwrap();
        out.push(serde_json::from_str(&payload).unwrap());
    }
}

fn run_ids(doc: &Value) -> BTreeSet<String> {
    doc["processing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

async fn assign(http: &reqwest::Client, base: &str) -> String {
    let resp = http
        .post(format!("{base}/active-runs"))
        .json(&serde_json::json!({"worker": "w", "backchannel": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.unwrap();
    v["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_publication_per_change_unless_concurrent_and_none_lost() {
    let a = TestRunner::start(CONFIG).await.unwrap();
    janitor_harness::load::seed(&a.services.db.url, 40, "scratch")
        .await
        .unwrap();
    // A second runner on the same database and Redis (its own publisher).
    let s = a.second_runner_settings(CONFIG);
    let b = Runner::start(s, janitor_runner::clock::system())
        .await
        .unwrap();
    let base_a = a.admin("");
    let base_b = format!("http://{}", b.admin_addr);

    let mut pubsub = redis::Client::open(a.services.redis.url.as_str())
        .unwrap()
        .get_async_pubsub()
        .await
        .unwrap();
    pubsub.subscribe("queue").await.unwrap();
    pubsub.subscribe(SYNC).await.unwrap();
    let mut stream = pubsub.into_on_message();

    // One request at a time: one publication each, each with every run so
    // far, including the other runner's.
    let mut ids = BTreeSet::new();
    for base in [&base_a, &base_a, &base_b, &base_a] {
        ids.insert(assign(&a.http, base).await);
    }
    let docs = drain(&mut stream, &a.services.redis.url).await;
    assert_eq!(docs.len(), 4);
    for (n, doc) in docs.iter().enumerate() {
        assert_eq!(run_ids(doc).len(), n + 1);
    }
    assert_eq!(run_ids(&docs[3]), ids);

    // Concurrent requests to one runner: at most one publication each, and
    // the last one shows every run.
    let started: Vec<_> = (0..16)
        .map(|_| {
            let http = a.http.clone();
            let base = base_a.clone();
            tokio::spawn(async move { assign(&http, &base).await })
        })
        .collect();
    for t in started {
        ids.insert(t.await.unwrap());
    }
    let docs = drain(&mut stream, &a.services.redis.url).await;
    assert!(!docs.is_empty() && docs.len() <= 16, "{}", docs.len());
    assert_eq!(run_ids(docs.last().unwrap()), ids);

    // A finish publishes once, without the finished run.
    let gone = ids.pop_first().unwrap();
    let (ct, body) = janitor_harness::load::finish_body();
    let resp = a
        .http
        .post(format!("{base_a}/active-runs/{gone}/finish"))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    a.runner.background_idle().await;
    let docs = drain(&mut stream, &a.services.redis.url).await;
    assert_eq!(docs.len(), 1);
    assert_eq!(run_ids(&docs[0]), ids);
    b.shutdown().await.unwrap();
}
