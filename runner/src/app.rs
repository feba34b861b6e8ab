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
