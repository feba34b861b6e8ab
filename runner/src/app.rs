//! The long-lived objects shared by both HTTP apps (Python's QueueProcessor).

use crate::background::Background;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::settings::Settings;
use redis::aio::ConnectionManager;
use sqlx::PgPool;

pub struct App {
    pub db: PgPool,
    pub redis: ConnectionManager,
    pub clock: SharedClock,
    pub settings: Settings,
    pub config: Config,
    pub background: Background,
    pub metrics: Metrics,
    pub storage: crate::storage::Storage,
    pub status: crate::state::StatusPublisher,
}

impl App {
    /// `Err(reason)` unless PostgreSQL and Redis both answer within a
    /// couple of seconds (the `/ready` check).
    pub async fn check_dependencies(&self) -> Result<(), String> {
        let limit = std::time::Duration::from_secs(2);
        let db = tokio::time::timeout(limit, sqlx::query("SELECT 1").execute(&self.db));
        match db.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("the database is unavailable: {e}")),
            Err(_) => return Err("the database is unavailable: no answer within 2 s".into()),
        }
        let mut redis = self.redis.clone();
        let cmd = redis::cmd("PING");
        match tokio::time::timeout(limit, cmd.query_async::<String>(&mut redis)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("Redis is unavailable: {e}")),
            Err(_) => Err("Redis is unavailable: no answer within 2 s".into()),
        }
    }
}

/// Why the request failed if the cause is PostgreSQL or Redis being
/// unreachable (connection refused or dropped, timed out), not the request.
pub fn dependency_unavailable(err: &anyhow::Error) -> Option<String> {
    fn redis_down(e: &redis::RedisError) -> bool {
        e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal()
    }
    for cause in err.chain() {
        let redis = cause.downcast_ref::<redis::RedisError>().or_else(|| {
            match cause.downcast_ref::<crate::state::StateError>() {
                Some(crate::state::StateError::Redis(e)) => Some(e),
                _ => None,
            }
        });
        if let Some(e) = redis.filter(|e| redis_down(e)) {
            return Some(format!("Redis is unavailable: {e}"));
        }
        if let Some(
            e @ (sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed),
        ) = cause.downcast_ref::<sqlx::Error>()
        {
            return Some(format!("the database is unavailable: {e}"));
        }
    }
    None
}
