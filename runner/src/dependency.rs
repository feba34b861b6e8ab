//! Telling a dependency fault (PostgreSQL or Redis unreachable) from any
//! other failure, so it is answered 503 and retried, never a 500.

/// Why the request failed if the cause is PostgreSQL or Redis being
/// unreachable (connection refused or dropped, timed out), not the request.
pub fn unavailable(err: &anyhow::Error) -> Option<String> {
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
