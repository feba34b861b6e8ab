//! The long-lived objects shared by both HTTP apps (Python's QueueProcessor).

use crate::background::Background;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::settings::Settings;
use sqlx::PgPool;

pub struct App {
    pub db: PgPool,
    /// Everything in Redis goes through it.
    pub runs: crate::state::RunStore,
    pub clock: SharedClock,
    pub settings: Settings,
    pub config: Config,
    pub background: Background,
    pub metrics: std::sync::Arc<Metrics>,
    pub storage: crate::storage::Storage,
    /// Opens codebase branches at assignment (Breezy, else the git CLI; a
    /// test double in tests), chosen once at start-up.
    pub opener: std::sync::Arc<dyn crate::vcs::BranchOpener>,
    /// The public VCS stores by kind (`--public-vcs-location`), parsed once
    /// at start-up.
    pub vcs_managers: Vec<(String, crate::vcs::VcsManager)>,
    /// Candidate selections shared by concurrent assigns.
    pub selection: crate::assign::SelectionPool,
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
        let mut redis = self.runs.connection();
        let cmd = redis::cmd("PING");
        match tokio::time::timeout(limit, cmd.query_async::<String>(&mut redis)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("Redis is unavailable: {e}")),
            Err(_) => Err("Redis is unavailable: no answer within 2 s".into()),
        }
    }
}
