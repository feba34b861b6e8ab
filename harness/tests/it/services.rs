//! The real test services: each test gets its own database and Redis server,
//! and the GCS emulator answers the JSON API.

use janitor_harness::services::{self, TestServices};
use redis::AsyncCommands;
use sqlx::{Connection, Executor, PgConnection, Row};

#[tokio::test]
async fn each_test_gets_its_own_database_cloned_from_the_migrated_template() {
    let (a, b) = tokio::join!(TestServices::start(), TestServices::start());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_ne!(a.db.name, b.db.name);
    let mut ca = PgConnection::connect(&a.db.url).await.unwrap();
    let mut cb = PgConnection::connect(&b.db.url).await.unwrap();
    ca.execute("INSERT INTO worker (name, password) VALUES ('only-in-a', 'x')")
        .await
        .unwrap();
    let n: i64 = sqlx::query("SELECT count(*) FROM worker")
        .fetch_one(&mut cb)
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "databases are shared");
    // The template is migrated: the Debian part (debversion) is there.
    let v: String = sqlx::query("SELECT '1.0-1'::debversion::text")
        .fetch_one(&mut cb)
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "1.0-1");
    let tz: String = sqlx::query("SHOW timezone")
        .fetch_one(&mut cb)
        .await
        .unwrap()
        .get(0);
    assert_eq!(tz, "UTC");
}

#[tokio::test]
async fn each_test_gets_its_own_redis_server() {
    if std::env::var(services::redis::REDIS_URL_ENV).is_ok() {
        return; // one shared server by request: scenarios take turns instead
    }
    let a = TestServices::start().await.unwrap();
    let b = TestServices::start().await.unwrap();
    assert_ne!(a.redis.url, b.redis.url);
    let mut ca = a.redis.connection().await.unwrap();
    let mut cb = b.redis.connection().await.unwrap();
    ca.set::<_, _, ()>("k", "a").await.unwrap();
    let got: Option<String> = cb.get("k").await.unwrap();
    assert_eq!(got, None);
}

#[tokio::test]
async fn the_gcs_emulator_stores_and_lists_objects_over_the_json_api() {
    let gcs = services::gcs().await.unwrap();
    let bucket = format!("b-{}", uuid::Uuid::new_v4().simple());
    gcs.create_bucket(&bucket).await.unwrap();
    let resp = janitor_harness::testing::http_client()
        .post(format!(
            "{}/upload/storage/v1/b/{bucket}/o?uploadType=media&name=dir/x.txt",
            gcs.endpoint
        ))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(
        gcs.objects(&bucket).await.unwrap(),
        vec![("dir/x.txt".to_string(), b"hello".to_vec())]
    );
}

#[tokio::test]
async fn a_spawned_server_is_removed_when_dropped() {
    match services::provider_for(services::redis::REDIS_URL_ENV) {
        services::Provider::Env(_) => return,
        services::Provider::Container => {
            // The container is removed (not only stopped) when dropped.
            let s = TestServices::start().await.unwrap();
            let id = s.redis.container_id().expect("a container id");
            assert!(services::containers::container_exists(&id));
            drop(s);
            assert!(
                !services::containers::container_exists(&id),
                "redis container left behind"
            );
            return;
        }
        services::Provider::Spawn => {}
    }
    let s = TestServices::start().await.unwrap();
    let socket = s.redis.url.trim_start_matches("redis+unix://").to_string();
    assert!(std::path::Path::new(&socket).exists());
    drop(s);
    assert!(
        !std::path::Path::new(&socket).exists(),
        "redis directory left behind"
    );
}
