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

/// A database made from the migrated template, and a connection to it.
async fn fresh_database() -> (services::postgres::TestDatabase, PgConnection) {
    let db = services::postgres()
        .await
        .unwrap()
        .create_database()
        .await
        .unwrap();
    let conn = PgConnection::connect(&db.url).await.unwrap();
    (db, conn)
}

#[tokio::test]
async fn migrations_build_the_python_schema() {
    let (_db, mut conn) = fresh_database().await;
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
    let (_db, mut conn) = fresh_database().await;
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

/// The runner's enums are the schema's: same labels, same order (the
/// queue's bucket order is the enum's), and each binds as its type.
#[tokio::test]
async fn the_runners_enums_match_the_schema() {
    use janitor_runner::db::enums::{PublishStatus, QueueBucket, VcsType};
    use strum::VariantNames;
    let (_db, mut conn) = fresh_database().await;
    for (ty, ours) in [
        ("queue_bucket", QueueBucket::VARIANTS),
        ("publish_status", PublishStatus::VARIANTS),
        ("vcs_type", VcsType::VARIANTS),
    ] {
        let labels: Vec<String> =
            sqlx::query_scalar(&format!("SELECT unnest(enum_range(NULL::{ty}))::text"))
                .fetch_all(&mut conn)
                .await
                .unwrap();
        assert_eq!(labels, ours, "{ty}");
    }
    let (bucket, status, vcs): (QueueBucket, PublishStatus, VcsType) =
        sqlx::query_as("SELECT $1, $2, $3")
            .bind(QueueBucket::MissingDeps)
            .bind(PublishStatus::NeedsManualReview)
            .bind(VcsType::Darcs)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        (bucket, status, vcs),
        (
            QueueBucket::MissingDeps,
            PublishStatus::NeedsManualReview,
            VcsType::Darcs
        )
    );
}
