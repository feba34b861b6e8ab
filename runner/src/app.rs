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
    pub status: StatusPublisher,
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

/// Coalesces status publications: every caller gets a publication of a
/// document read *after* its change, but callers that wait while one is
/// being built share the next one. One caller at a time (the goldens, a
/// single worker) therefore sees exactly one publication per change, as
/// upstream; under concurrency the publications (each a full document,
/// rebuilt from Redis so changes by other runner processes are included)
/// stop multiplying with the request rate.
#[derive(Debug, Default)]
pub struct StatusPublisher {
    /// Changes announced so far.
    pub(crate) requested: std::sync::atomic::AtomicU64,
    /// Changes covered by the last completed publication.
    pub(crate) published: std::sync::atomic::AtomicU64,
    pub(crate) turn: tokio::sync::Mutex<()>,
}
