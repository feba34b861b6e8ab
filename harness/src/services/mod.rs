//! Real PostgreSQL, Redis, GCS-emulator and S3 servers for replays and tests,
//! provided (in this order of preference) by URLs in the environment, by
//! testcontainers when a Docker engine answers, or by processes the harness
//! spawns itself and removes when done.

pub mod containers;
pub mod gcs;
pub mod postgres;
pub mod process;
pub mod redis;
pub mod s3;

use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    /// An existing server named by an environment variable.
    Env(String),
    /// A testcontainers container.
    Container,
    /// A process spawned by the harness.
    Spawn,
}

/// The selection rule: environment first, then Docker (if this build can use
/// it), then spawned processes.
pub fn choose(env_value: Option<String>, docker: bool, containers_built: bool) -> Provider {
    match env_value.filter(|v| !v.trim().is_empty()) {
        Some(v) => Provider::Env(v),
        None if docker && containers_built => Provider::Container,
        None => Provider::Spawn,
    }
}

/// How the server named by `env` is provided in this process.
pub fn provider_for(env: &str) -> Provider {
    let docker = cfg!(feature = "containers") && containers::docker_answers();
    choose(
        std::env::var(env).ok(),
        docker,
        cfg!(feature = "containers"),
    )
}

static POSTGRES: OnceCell<postgres::PostgresServer> = OnceCell::const_new();
static GCS: OnceCell<gcs::GcsServer> = OnceCell::const_new();

/// The process-wide PostgreSQL server with its migrated template.
pub async fn postgres() -> anyhow::Result<&'static postgres::PostgresServer> {
    POSTGRES
        .get_or_try_init(|| {
            postgres::PostgresServer::start(provider_for(postgres::DATABASE_URL_ENV))
        })
        .await
}

/// The provider as the replay reports it: `Container, image NAME` for a
/// container, else the variant (`Spawn`, `Env("…")`).
pub fn describe(provider: &Provider, image: (&str, &str)) -> String {
    match provider {
        Provider::Container => format!("Container, image {}", containers::image(image)),
        other => format!("{other:?}"),
    }
}

/// The GCS emulator if this process has started it.
pub fn gcs_started() -> Option<&'static gcs::GcsServer> {
    GCS.get()
}

/// The process-wide GCS emulator (started on first use).
pub async fn gcs() -> anyhow::Result<&'static gcs::GcsServer> {
    GCS.get_or_try_init(|| async { gcs::GcsServer::start(&provider_for(gcs::GCS_ENV)).await })
        .await
}

/// Everything one scenario or test needs, private to it.
#[derive(Debug)]
pub struct TestServices {
    pub db: postgres::TestDatabase,
    pub redis: redis::RedisServer,
    pub setup: Duration,
}

impl TestServices {
    pub async fn start() -> anyhow::Result<TestServices> {
        let pg = postgres().await?;
        let t0 = Instant::now();
        let redis_provider = provider_for(redis::REDIS_URL_ENV);
        let (db, redis) = tokio::try_join!(
            pg.create_database(),
            redis::RedisServer::start(&redis_provider)
        )?;
        Ok(TestServices {
            db,
            redis,
            setup: t0.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_wins_over_docker_and_spawn() {
        assert_eq!(
            choose(Some("postgres://x".into()), true, true),
            Provider::Env("postgres://x".into())
        );
    }

    #[test]
    fn docker_is_used_only_when_it_answers_and_is_built_in() {
        assert_eq!(choose(None, true, true), Provider::Container);
        assert_eq!(choose(None, true, false), Provider::Spawn);
        assert_eq!(choose(None, false, true), Provider::Spawn);
    }

    #[test]
    fn blank_environment_values_are_ignored() {
        assert_eq!(choose(Some("  ".into()), false, false), Provider::Spawn);
    }
}
