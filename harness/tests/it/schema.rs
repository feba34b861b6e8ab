//! The migrations build exactly the Python runner's schema: a fresh database
//! is dumped with the same catalogue queries as ../shared/schema/dump_catalog.py
//! and compared with golden/schema/python-schema.json.

use janitor_harness::catalog::{diff_catalogs, dump_catalog};
use janitor_harness::services;
use sqlx::{Connection, Executor, PgConnection};

fn expected() -> serde_json::Value {
    let path = janitor_harness::golden_dir().join("schema/python-schema.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn migrations_build_the_python_schema() {
    let db = services::postgres()
        .await
        .unwrap()
        .create_database()
        .await
        .unwrap();
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    let actual = dump_catalog(&mut conn).await.unwrap();
    let diffs = diff_catalogs(&expected(), &actual);
    assert!(
        diffs.is_empty(),
        "schema differs from the Python runner's:\n  {}",
        diffs.join("\n  ")
    );
}

#[tokio::test]
async fn a_schema_change_is_reported_by_name() {
    let db = services::postgres()
        .await
        .unwrap()
        .create_database()
        .await
        .unwrap();
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    conn.execute("DROP INDEX queue_bucket_priority_id_idx")
        .await
        .unwrap();
    conn.execute("ALTER TABLE worker ADD COLUMN extra text")
        .await
        .unwrap();
    let diffs = diff_catalogs(&expected(), &dump_catalog(&mut conn).await.unwrap());
    assert!(
        diffs
            .iter()
            .any(|d| d.contains("queue_bucket_priority_id_idx")),
        "{diffs:?}"
    );
    assert!(diffs.iter().any(|d| d.contains("extra")), "{diffs:?}");
}
