//! The per-run finish lock.

use super::*;

/// Prefix of the per-run finish lock: whoever holds `finishing:<run id>`
/// owns the run until it is stored (or the lock expires). Not an upstream
/// key; it exists only while a finish or an abort is storing the run.
pub const FINISH_LOCK_PREFIX: &str = "finishing:";

/// Expiry of the lock; its holder renews it (see [`FINISH_LOCK_RENEW`]), so
/// only a lock nobody holds any more runs out.
pub(super) const FINISH_LOCK_TTL_MS: u64 = 15_000;
/// How often the holder renews the lock: a finish may take minutes (a big
/// upload to a slow store), but a lock left behind by a fault (an unlock
/// that failed, or a SET that a hung Redis ran after the runner gave up on
/// it) must expire within seconds, or every retry of the worker fails.
pub(super) const FINISH_LOCK_RENEW: std::time::Duration = std::time::Duration::from_secs(5);

/// Ownership of one run's finish (divergence-policy §3: a finish writes
/// files only once it owns the run). Released by [`FinishLock::release`];
/// a lock never released expires.
#[derive(Debug)]
pub struct FinishLock {
    pub(super) key: String,
    pub(super) token: String,
    pub(super) renewer: Option<tokio::task::JoinHandle<()>>,
    /// Let go already, with the run's release ([`release_finished`]).
    pub(super) released: std::sync::atomic::AtomicBool,
}

pub(super) static RENEW: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
",
    )
});

impl Drop for FinishLock {
    fn drop(&mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
    }
}

pub(super) static UNLOCK: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

impl FinishLock {
    /// Take the lock if nobody holds it.
    pub async fn try_acquire(
        runs: &RunStore,
        run_id: &str,
    ) -> Result<Option<FinishLock>, StateError> {
        let mut lock = FinishLock {
            key: format!("{FINISH_LOCK_PREFIX}{run_id}"),
            token: uuid::Uuid::new_v4().to_string(),
            renewer: None,
            released: Default::default(),
        };
        let mut redis = runs.redis.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(&lock.key)
            .arg(&lock.token)
            .arg("NX")
            .arg("PX")
            .arg(FINISH_LOCK_TTL_MS)
            .query_async(&mut redis)
            .await?;
        if set.is_none() {
            return Ok(None);
        }
        // Renewed while held; a renewal that fails (Redis away) is retried
        // at the next tick, and one that finds the lock gone stops.
        let (key, token) = (lock.key.clone(), lock.token.clone());
        lock.renewer = Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(FINISH_LOCK_RENEW).await;
                let renewed: Result<i32, _> = RENEW
                    .key(&key)
                    .arg(&token)
                    .arg(FINISH_LOCK_TTL_MS)
                    .invoke_async(&mut redis)
                    .await;
                if renewed == Ok(0) {
                    break;
                }
            }
        }));
        Ok(Some(lock))
    }

    /// Take the lock, waiting up to `wait` for a holder to let go.
    pub async fn acquire(
        runs: &RunStore,
        run_id: &str,
        wait: std::time::Duration,
    ) -> Result<Option<FinishLock>, StateError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(lock) = Self::try_acquire(runs, run_id).await? {
                return Ok(Some(lock));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Let go (only if still ours: an expired lock may have a new holder).
    /// The renewer stops when the lock is dropped, at the end of this call
    /// (a renewal racing the unlock finds the token gone and stops too).
    pub async fn release(self, runs: &RunStore) -> Result<(), StateError> {
        if self.released.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        let mut redis = runs.redis.clone();
        UNLOCK
            .key(&self.key)
            .arg(&self.token)
            .invoke_async::<i32>(&mut redis)
            .await?;
        Ok(())
    }
}
