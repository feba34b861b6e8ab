//! Redis state (runner-internals.md §2, §5): active runs, queue-item claims,
//! keepalives, rate-limited hosts, and the publications on `queue`.
//!
//! Unlike upstream (QI-8: check, then write), the claim is atomic: one Lua
//! script claims the queue item with HSETNX and writes the run only if the
//! claim succeeded, so no queue item is handed out twice even across
//! runner processes.

use crate::clock::SharedClock;
use crate::metrics::{Metrics, NONE_LABEL};
use crate::types::time::{isoformat, isoformat_seconds, parse_naive, seconds_between};
use crate::types::ActiveRun;
use chrono::NaiveDateTime;
use redis::AsyncCommands;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::LazyLock;

mod lock;
mod status;

pub use lock::*;
pub use status::*;

/// The runner's Redis state behind one object: the connection, the clock
/// that stamps what it writes, the metrics it keeps exact, the status
/// publisher (and the background jobs that build large publications), and
/// the two settings the status document reports. Owned by `App`; this
/// module's functions take it as their first argument. Cheap to clone (a
/// deferred publication takes a copy).
#[derive(Clone)]
pub struct RunStore {
    pub(crate) redis: redis::aio::ConnectionManager,
    pub(crate) clock: SharedClock,
    pub(crate) metrics: std::sync::Arc<Metrics>,
    pub(crate) status: std::sync::Arc<StatusPublisher>,
    pub(crate) background: crate::background::Background,
    pub(crate) run_timeout_minutes: u64,
    pub(crate) avoid_hosts: std::sync::Arc<[String]>,
}

impl RunStore {
    pub fn new(
        redis: redis::aio::ConnectionManager,
        clock: SharedClock,
        metrics: std::sync::Arc<Metrics>,
        background: crate::background::Background,
        run_timeout_minutes: u64,
        avoid_hosts: Vec<String>,
    ) -> RunStore {
        RunStore {
            redis,
            clock,
            metrics,
            status: Default::default(),
            background,
            run_timeout_minutes,
            avoid_hosts: avoid_hosts.into(),
        }
    }

    /// A connection for the few callers that speak Redis themselves (the
    /// readiness PING).
    pub fn connection(&self) -> redis::aio::ConnectionManager {
        self.redis.clone()
    }
}

pub const ACTIVE_RUNS: &str = "active-runs";
pub const ASSIGNED_QUEUE_ITEMS: &str = "assigned-queue-items";
pub const LAST_KEEPALIVE: &str = "last-keepalive";
pub const RATE_LIMIT_HOSTS: &str = "rate-limit-hosts";
pub const QUEUE_CHANNEL: &str = "queue";

/// How the Redis connection behaves when Redis goes away: without
/// timeouts the `redis` crate waits forever on a dead socket, and its
/// default reconnect back-off gives up after a few attempts, leaving the
/// manager stalled long after Redis is back. Here each command fails
/// within seconds (the request answers 503) and every later command tries
/// a fresh connection, so the runner recovers as soon as Redis answers.
pub fn connection_config() -> redis::aio::ConnectionManagerConfig {
    redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(std::time::Duration::from_secs(1))
        .set_response_timeout(std::time::Duration::from_millis(1500))
        .set_number_of_retries(1)
        .set_factor(100)
        .set_max_delay(500)
}

/// Active runs live only in Redis (as upstream): a Redis that restarts
/// without persistence forgets them all. Said loudly at start-up; a Redis
/// that hides its configuration (managed services disable CONFIG) is not
/// second-guessed.
pub async fn warn_without_persistence(redis: &mut redis::aio::ConnectionManager) {
    let get = |key: &'static str| {
        let mut r = redis.clone();
        async move {
            redis::cmd("CONFIG")
                .arg("GET")
                .arg(key)
                .query_async::<Vec<String>>(&mut r)
                .await
                .ok()
                .and_then(|v| v.into_iter().nth(1))
        }
    };
    if let (Some(save), Some(aof)) = (get("save").await, get("appendonly").await) {
        if save.trim().is_empty() && aof == "no" {
            tracing::warn!(
                "Redis has no persistence (save \"\", appendonly no): a Redis restart forgets every active run, \
                 whose results are then refused (404) and whose items are handed out again"
            );
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("queue item {0} is already claimed")]
    AlreadyClaimed(i64),
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
}

static REGISTER: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[4])
if ARGV[5] == '1' then
  return {1, redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[3]),
    redis.call('HGETALL', KEYS[4])}
end
return 1
",
    )
});

/// Claim the run's queue item and record the run (register, §5.1).
pub async fn register(runs: &RunStore, run: &ActiveRun) -> Result<(), StateError> {
    let snapshot = claim(runs, run).await?;
    announce(runs, run, snapshot).await
}

/// The atomic half of `register`: claim the queue item and store the run.
/// Nothing is published yet, so a claim that turns out stale can be
/// withdrawn with [`withdraw`] without anyone having seen it. The status
/// document's hashes come back with the claim when they may spare
/// [`announce`] a read (see [`Change`]).
pub async fn claim(runs: &RunStore, run: &ActiveRun) -> Result<Option<Snapshot>, StateError> {
    let now = runs.clock.now_naive();
    let json = crate::py::json::to_string(&run.to_json(&now));
    let mut redis = runs.redis.clone();
    let change = runs.status.begin_change();
    let reply: redis::Value = REGISTER
        .key(ASSIGNED_QUEUE_ITEMS)
        .key(ACTIVE_RUNS)
        .key(LAST_KEEPALIVE)
        .key(RATE_LIMIT_HOSTS)
        .arg(run.queue_id.to_string())
        .arg(&run.log_id)
        .arg(json)
        .arg(isoformat(&now))
        .arg(if change.wants_snapshot { "1" } else { "0" })
        .invoke_async(&mut redis)
        .await?;
    match reply {
        redis::Value::Int(0) => Err(StateError::AlreadyClaimed(run.queue_id)),
        redis::Value::Array(parts) => match <[redis::Value; 4]>::try_from(parts) {
            Ok([_, stored, keepalives, limits]) => {
                Ok(Some(change.snapshot([stored, keepalives, limits])?))
            }
            Err(_) => Err(unexpected("claim", "a claim and three hashes")),
        },
        redis::Value::Int(1) => Ok(None),
        _ => Err(unexpected("claim", "0 or 1")),
    }
}

fn unexpected(what: &'static str, expected: &'static str) -> StateError {
    StateError::Redis(redis::RedisError::from((
        redis::ErrorKind::TypeError,
        what,
        format!("the script did not return {expected}"),
    )))
}

/// The visible half of `register`: the `queue` publication (from the
/// claim's snapshot while it is current) and the metrics.
pub async fn announce(
    runs: &RunStore,
    run: &ActiveRun,
    snapshot: Option<Snapshot>,
) -> Result<(), StateError> {
    publish_status_with(runs, snapshot).await?;
    runs.metrics
        .active_runs
        .with_label_values(&[&runs
            .metrics
            .worker_label
            .of(run.worker_name.as_deref().unwrap_or(NONE_LABEL))])
        .inc();
    runs.metrics.run_count.inc();
    Ok(())
}

/// Undo a [`claim`] that was never announced (no metrics to correct).
pub async fn withdraw(runs: &RunStore, run: &ActiveRun) -> Result<(), StateError> {
    let mut redis = runs.redis.clone();
    let _change = runs.status.begin_change();
    redis::pipe()
        .atomic()
        .hdel(ASSIGNED_QUEUE_ITEMS, run.queue_id.to_string())
        .ignore()
        .hdel(ACTIVE_RUNS, &run.log_id)
        .ignore()
        .hdel(LAST_KEEPALIVE, &run.log_id)
        .ignore()
        .query_async::<()>(&mut redis)
        .await?;
    Ok(())
}

/// Re-save a run (update, §5.2): `current_duration` is recomputed now.
pub async fn update(runs: &RunStore, run: &ActiveRun) -> Result<(), StateError> {
    let json = crate::py::json::to_string(&run.to_json(&runs.clock.now_naive()));
    let mut redis = runs.redis.clone();
    let _change = runs.status.begin_change();
    redis
        .hset::<_, _, _, ()>(ACTIVE_RUNS, &run.log_id, json)
        .await?;
    Ok(())
}

/// The active run with this id, if any (§5.3). A stored value that does not
/// parse is an error, not a missing run.
pub async fn get(runs: &RunStore, run_id: &str) -> anyhow::Result<Option<ActiveRun>> {
    let mut redis = runs.redis.clone();
    let raw: Option<String> = redis.hget(ACTIVE_RUNS, run_id).await?;
    match raw {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => {
            let v: Value = serde_json::from_str(&s)?;
            Ok(Some(ActiveRun::from_json(&v)?))
        }
    }
}

/// Forget a run (unclaim, §5.4). The gauge drops even for an unknown run, as upstream.
pub async fn unclaim(runs: &RunStore, run_id: &str) -> anyhow::Result<Option<ActiveRun>> {
    let run = get(runs, run_id).await?;
    let worker = run
        .as_ref()
        .and_then(|r| r.worker_name.clone())
        .unwrap_or_else(|| NONE_LABEL.to_string());
    runs.metrics
        .active_runs
        .with_label_values(&[&runs.metrics.worker_label.of(&worker)])
        .dec();
    if let Some(run) = &run {
        let mut redis = runs.redis.clone();
        let _change = runs.status.begin_change();
        redis::pipe()
            .atomic()
            .hdel(ASSIGNED_QUEUE_ITEMS, run.queue_id.to_string())
            .ignore()
            .hdel(ACTIVE_RUNS, run_id)
            .ignore()
            .hdel(LAST_KEEPALIVE, run_id)
            .ignore()
            .query_async::<()>(&mut redis)
            .await?;
    }
    Ok(run)
}

static UNCLAIM: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local raw = redis.call('HGET', KEYS[2], ARGV[1])
local found = raw and raw ~= ''
if ARGV[3] ~= '' and (found or ARGV[5] == '1') then
  redis.call('PUBLISH', ARGV[3], ARGV[4])
end
if found then
  redis.call('HDEL', KEYS[1], ARGV[2])
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
end
if KEYS[5] and redis.call('GET', KEYS[5]) == ARGV[7] then
  redis.call('DEL', KEYS[5])
end
if ARGV[6] == '1' then
  return {raw, redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[3]),
    redis.call('HGETALL', KEYS[4])}
end
return raw
",
    )
});

/// [`unclaim`] for a run the caller has already loaded (abort, peek): one
/// round trip instead of two. The stored run is re-read inside the script,
/// so a run already gone is left alone, as `unclaim` does.
pub async fn unclaim_run(runs: &RunStore, run: &ActiveRun) -> Result<bool, StateError> {
    Ok(release(runs, run, None, false, None, false).await?.existed)
}

/// What [`release_finished`] did.
#[derive(Debug)]
pub struct Released {
    /// The run was still active, and this release removed it.
    pub existed: bool,
    /// The status document's hashes right after, for the publication that
    /// follows (see [`Change`]).
    pub snapshot: Option<Snapshot>,
}

/// After a finished run is stored: PUBLISH its result on `result`, then
/// [`unclaim_run`], in one round trip. The attempt that stored the run
/// publishes `always` (even if Redis lost the run); a retry completing a
/// release publishes only if it finds the run, so the message goes out once.
///
/// `lock`, the run's finish lock, is let go in the same round trip: once
/// the run is stored and released, a concurrent finish is answered from the
/// stored run and needs no lock (the caller's [`FinishLock::release`] then
/// sends nothing).
pub async fn release_finished(
    runs: &RunStore,
    run: &ActiveRun,
    result: &str,
    always: bool,
    lock: Option<&FinishLock>,
) -> Result<Released, StateError> {
    release(runs, run, Some(("result", result)), always, lock, true).await
}

/// Remove a claim whose registration may or may not have reached Redis (the
/// script failed on a timeout or a dropped connection): removed if found,
/// without touching the gauge, which only an announced run counts.
pub async fn forget_unannounced(runs: &RunStore, run: &ActiveRun) -> Result<bool, StateError> {
    let mut redis = runs.redis.clone();
    let _change = runs.status.begin_change();
    let raw: Option<String> = UNCLAIM
        .key(ASSIGNED_QUEUE_ITEMS)
        .key(ACTIVE_RUNS)
        .key(LAST_KEEPALIVE)
        .key(RATE_LIMIT_HOSTS)
        .arg(&run.log_id)
        .arg(run.queue_id.to_string())
        .arg("")
        .arg("")
        .arg("0")
        .arg("0")
        .invoke_async(&mut redis)
        .await?;
    Ok(raw.is_some_and(|r| !r.is_empty()))
}

async fn release(
    runs: &RunStore,
    run: &ActiveRun,
    message: Option<(&str, &str)>,
    always: bool,
    lock: Option<&FinishLock>,
    publishes: bool,
) -> Result<Released, StateError> {
    let (channel, text) = message.unwrap_or_default();
    let mut redis = runs.redis.clone();
    let change = runs.status.begin_change();
    let want = publishes && change.wants_snapshot;
    let mut script = UNCLAIM.prepare_invoke();
    script
        .key(ASSIGNED_QUEUE_ITEMS)
        .key(ACTIVE_RUNS)
        .key(LAST_KEEPALIVE)
        .key(RATE_LIMIT_HOSTS)
        .arg(&run.log_id)
        .arg(run.queue_id.to_string())
        .arg(channel)
        .arg(text)
        .arg(if always { "1" } else { "0" })
        .arg(if want { "1" } else { "0" });
    if let Some(lock) = lock {
        script.key(&lock.key).arg(&lock.token);
    }
    let (raw, snapshot): (Option<String>, _) = if want {
        let parts: Vec<redis::Value> = script.invoke_async(&mut redis).await?;
        match <[redis::Value; 4]>::try_from(parts) {
            Ok([raw, stored, keepalives, limits]) => (
                redis::from_owned_redis_value(raw)?,
                Some(change.snapshot([stored, keepalives, limits])?),
            ),
            Err(_) => return Err(unexpected("release", "a run and three hashes")),
        }
    } else {
        (script.invoke_async(&mut redis).await?, None)
    };
    if let Some(lock) = lock {
        lock.released
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    let existed = raw.is_some_and(|r| !r.is_empty());
    // Only the release that removed the run counts it out, so the gauge
    // stays exact when two requests (or runner processes) race to release.
    if existed {
        let worker = run.worker_name.as_deref().unwrap_or(NONE_LABEL);
        runs.metrics
            .active_runs
            .with_label_values(&[&runs.metrics.worker_label.of(worker)])
            .dec();
    }
    Ok(Released { existed, snapshot })
}

static RUN_AND_CLAIM: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then
  return {}
end
local ok, run = pcall(cjson.decode, raw)
if ok and type(run) == 'table' and type(run['queue_id']) == 'number' then
  local q = string.format('%d', run['queue_id'])
  return {raw, q, redis.call('HGET', KEYS[2], q)}
end
return {raw}
",
    )
});

/// The active run `run_id` and the run id holding the claim on its queue
/// item, in one round trip (the finish routes' check that the run is still
/// its item's current run).
pub async fn get_with_claim(
    runs: &RunStore,
    run_id: &str,
) -> anyhow::Result<Option<(ActiveRun, Option<String>)>> {
    let mut redis = runs.redis.clone();
    let found: Vec<Option<String>> = RUN_AND_CLAIM
        .key(ACTIVE_RUNS)
        .key(ASSIGNED_QUEUE_ITEMS)
        .arg(run_id)
        .invoke_async(&mut redis)
        .await?;
    let mut found = found.into_iter();
    let raw = match found.next().flatten() {
        Some(raw) if !raw.is_empty() => raw,
        _ => return Ok(None),
    };
    let run = ActiveRun::from_json(&serde_json::from_str(&raw)?)?;
    let holder = match (found.next().flatten(), found.next()) {
        (Some(q), Some(holder)) if q == run.queue_id.to_string() => holder,
        // The script could not read the queue id as we do: ask directly.
        _ => claim_holder(runs, run.queue_id).await?,
    };
    Ok(Some((run, holder)))
}

/// The run id holding the claim on a queue item, if any.
pub async fn claim_holder(runs: &RunStore, queue_id: i64) -> Result<Option<String>, StateError> {
    let mut redis = runs.redis.clone();
    Ok(redis
        .hget(ASSIGNED_QUEUE_ITEMS, queue_id.to_string())
        .await?)
}

/// What selection needs from Redis, read in one round trip: the claimed
/// queue ids and the hosts whose rate limit lies in the future.
pub async fn selection_inputs(
    runs: &RunStore,
) -> Result<(Vec<i64>, Vec<(String, NaiveDateTime)>), StateError> {
    let now = runs.clock.now_naive();
    let mut redis = runs.redis.clone();
    let (claims, limits): (Vec<String>, Vec<(String, String)>) = redis::pipe()
        .hkeys(ASSIGNED_QUEUE_ITEMS)
        .hgetall(RATE_LIMIT_HOSTS)
        .query_async(&mut redis)
        .await?;
    Ok((
        claims.iter().filter_map(|k| k.parse().ok()).collect(),
        live_limits(limits, now),
    ))
}

fn live_limits(all: Vec<(String, String)>, now: NaiveDateTime) -> Vec<(String, NaiveDateTime)> {
    all.into_iter()
        .filter_map(|(h, t)| parse_naive(&t).map(|t| (h, t)))
        .filter(|(_, t)| *t > now)
        .collect()
}

/// The queue item → run id claims.
pub async fn assigned_queue_items(runs: &RunStore) -> Result<HashMap<i64, String>, StateError> {
    let mut redis = runs.redis.clone();
    let all: HashMap<String, String> = redis.hgetall(ASSIGNED_QUEUE_ITEMS).await?;
    Ok(all
        .into_iter()
        .filter_map(|(k, v)| k.parse().ok().map(|k| (k, v)))
        .collect())
}

pub async fn active_run_count(runs: &RunStore) -> Result<usize, StateError> {
    let mut redis = runs.redis.clone();
    Ok(redis.hlen(ACTIVE_RUNS).await?)
}

/// Every active run as stored: (run id, JSON text), for the watchdog.
pub async fn active_runs_raw(runs: &RunStore) -> Result<Vec<(String, String)>, StateError> {
    let mut redis = runs.redis.clone();
    Ok(redis.hgetall(ACTIVE_RUNS).await?)
}

/// Record that the worker of `run_id` was heard from now.
pub async fn keepalive(runs: &RunStore, run_id: &str) -> Result<(), StateError> {
    let mut redis = runs.redis.clone();
    let _change = runs.status.begin_change();
    redis
        .hset::<_, _, _, ()>(LAST_KEEPALIVE, run_id, isoformat(&runs.clock.now_naive()))
        .await?;
    Ok(())
}

/// Every run's last keepalive.
pub async fn keepalives(runs: &RunStore) -> Result<HashMap<String, NaiveDateTime>, StateError> {
    let mut redis = runs.redis.clone();
    let all: HashMap<String, String> = redis.hgetall(LAST_KEEPALIVE).await?;
    Ok(all
        .into_iter()
        .filter_map(|(k, v)| parse_naive(&v).map(|t| (k, t)))
        .collect())
}

/// `rate_limited(host, retry_after)`: no retry-after → now + 120 s.
pub async fn rate_limit(
    runs: &RunStore,
    host: &str,
    retry_after: Option<NaiveDateTime>,
) -> Result<(), StateError> {
    runs.metrics
        .rate_limited_host
        .with_label_values(&[&runs.metrics.host_label.of(host)])
        .inc();
    let until =
        retry_after.unwrap_or_else(|| runs.clock.now_naive() + chrono::Duration::seconds(120));
    let mut redis = runs.redis.clone();
    let _change = runs.status.begin_change();
    redis
        .hset::<_, _, _, ()>(RATE_LIMIT_HOSTS, host, isoformat(&until))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Backchannel;
    use serde_json::json;

    fn t(s: &str) -> NaiveDateTime {
        parse_naive(s).unwrap()
    }

    fn run(queue_id: i64, id: &str, command: &str) -> String {
        let mut vcs = Map::new();
        vcs.insert("vcs_type".into(), json!("git"));
        let run = ActiveRun {
            queue_id,
            log_id: id.into(),
            codebase: Some(format!("cb-{queue_id}")),
            change_set: None,
            campaign: "lintian-fixes".into(),
            command: command.into(),
            estimated_duration: Some(15.0),
            start_time: t("2020-02-02T10:00:00.25"),
            worker_name: Some("w1".into()),
            worker_link: None,
            vcs_info: vcs,
            backchannel: Backchannel::Polling {
                my_url: "http://w1/".into(),
            },
            instigated_context: Value::Null,
            resume_from: None,
        };
        crate::py::json::to_string(&run.to_json(&t("2020-02-02T10:00:01")))
    }

    fn inputs(runs: Vec<(String, String)>, avoid: &[String]) -> StatusInputs<'_> {
        StatusInputs {
            now: t("2020-02-02T11:30:00.5"),
            timeout_secs: 3600.0,
            runs,
            keepalives: [
                ("a".to_string(), t("2020-02-02T11:00:00")),
                ("b".to_string(), t("2020-02-02T10:00:00.123456")),
            ]
            .into_iter()
            .collect(),
            limits: vec![("github.com".into(), t("2099-01-01T00:00:00"))],
            avoid_hosts: avoid,
        }
    }

    #[test]
    fn spliced_status_text_is_the_serialised_document() {
        let avoid = vec!["salsa.debian.org".to_string()];
        let runs = vec![
            ("a".into(), run(1, "a", "lintian-brush")),
            ("b".into(), run(2, "b", "A=\"x y\" lintian-brush --\u{e9}")),
            ("c".into(), run(3, "c", "no keepalive")),
            ("d".into(), "{}".into()),
            ("e".into(), "[1, 2]".into()),
            ("f".into(), "not json".into()),
            ("g".into(), r#"{"id": "a", "mia": true}"#.into()),
            ("h".into(), r#"{"id": 5}"#.into()),
            ("i".into(), r#"{"id": "c", "id": "a"}"#.into()),
            ("j".into(), r#"{"\u0069d": "a"}"#.into()),
        ];
        let s = inputs(runs, &avoid);
        let text = s.document_text();
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            s.document(),
            "{text}"
        );
        // Runs as the runner stores them come out byte for byte.
        let canonical: Vec<_> = s.runs[..4].to_vec();
        let s = inputs(canonical, &avoid);
        assert_eq!(s.document_text(), crate::py::json::to_string(&s.document()));
        assert_eq!(s.document()["processing"].as_array().unwrap().len(), 4);
        assert_eq!(s.document()["processing"][1]["mia"], json!(true));
        assert_eq!(s.document()["processing"][2]["mia"], Value::Null);
    }

    #[tokio::test]
    async fn a_finish_lock_goes_with_the_release_of_its_run() {
        let redis = crate::test_redis::test_redis().await;
        let client = redis::Client::open(redis.url.as_str()).unwrap();
        let start = chrono::DateTime::parse_from_rfc3339("2020-02-02T10:00:00Z").unwrap();
        let runs = RunStore::new(
            redis::aio::ConnectionManager::new(client).await.unwrap(),
            std::sync::Arc::new(crate::clock::ManualClock::new(start.into())),
            std::sync::Arc::new(crate::metrics::Metrics::new()),
            crate::background::Background::new(1),
            60,
            Vec::new(),
        );
        let active = |queue_id: i64, id: &str| {
            ActiveRun::from_json(&serde_json::from_str(&run(queue_id, id, "true")).unwrap())
                .unwrap()
        };
        let lock_key = |id: &str| format!("{FINISH_LOCK_PREFIX}{id}");
        let mut conn = runs.connection();

        let r1 = active(1, "r1");
        register(&runs, &r1).await.unwrap();
        let lock = FinishLock::try_acquire(&runs, "r1").await.unwrap().unwrap();
        assert!(
            release_finished(&runs, &r1, "{}", true, Some(&lock))
                .await
                .unwrap()
                .existed
        );
        // Gone in the release's own round trip, before the holder lets go.
        let held: bool = conn.exists(lock_key("r1")).await.unwrap();
        assert!(!held, "the lock outlived the release of its run");
        lock.release(&runs).await.unwrap();

        // A lock that expired and was taken by another holder stays theirs.
        let r2 = active(2, "r2");
        register(&runs, &r2).await.unwrap();
        let lock = FinishLock::try_acquire(&runs, "r2").await.unwrap().unwrap();
        conn.set::<_, _, ()>(lock_key("r2"), "someone-else")
            .await
            .unwrap();
        assert!(
            release_finished(&runs, &r2, "{}", true, Some(&lock))
                .await
                .unwrap()
                .existed
        );
        let holder: Option<String> = conn.get(lock_key("r2")).await.unwrap();
        assert_eq!(holder.as_deref(), Some("someone-else"));
        lock.release(&runs).await.unwrap();
        let holder: Option<String> = conn.get(lock_key("r2")).await.unwrap();
        assert_eq!(holder.as_deref(), Some("someone-else"));
    }

    #[test]
    fn an_empty_status_has_every_key() {
        let s = inputs(Vec::new(), &[]);
        assert_eq!(
            s.document_text(),
            r#"{"processing": [], "avoid_hosts": [], "rate_limit_hosts": {"github.com": "2099-01-01T00:00:00"}}"#
        );
        assert_eq!(s.document_text(), crate::py::json::to_string(&s.document()));
    }
}
