//! Redis state (runner-internals.md §2, §5): active runs, queue-item claims,
//! keepalives, rate-limited hosts, and the publications on `queue`.
//!
//! Unlike upstream (QI-8: check, then write), the claim is atomic: one Lua
//! script claims the queue item with HSETNX and writes the run only if the
//! claim succeeded, so no queue item is handed out twice even across
//! runner processes.

use crate::app::App;
use crate::metrics::NONE_LABEL;
use crate::types::time::{isoformat, isoformat_seconds, parse_naive, seconds_between};
use crate::types::ActiveRun;
use chrono::NaiveDateTime;
use redis::AsyncCommands;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::LazyLock;

pub const ACTIVE_RUNS: &str = "active-runs";
pub const ASSIGNED_QUEUE_ITEMS: &str = "assigned-queue-items";
pub const LAST_KEEPALIVE: &str = "last-keepalive";
pub const RATE_LIMIT_HOSTS: &str = "rate-limit-hosts";
pub const QUEUE_CHANNEL: &str = "queue";

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
return 1
",
    )
});

/// Claim the run's queue item and record the run (register, §5.1).
pub async fn register(app: &App, run: &ActiveRun) -> Result<(), StateError> {
    claim(app, run).await?;
    announce(app, run).await
}

/// The atomic half of `register`: claim the queue item and store the run.
/// Nothing is published yet, so a claim that turns out stale can be
/// withdrawn with [`withdraw`] without anyone having seen it.
pub async fn claim(app: &App, run: &ActiveRun) -> Result<(), StateError> {
    let now = app.clock.now_naive();
    let json = crate::pyjson::to_string(&run.to_json(&now));
    let mut redis = app.redis.clone();
    let claimed: i32 = REGISTER
        .key(ASSIGNED_QUEUE_ITEMS)
        .key(ACTIVE_RUNS)
        .key(LAST_KEEPALIVE)
        .arg(run.queue_id.to_string())
        .arg(&run.log_id)
        .arg(json)
        .arg(isoformat(&now))
        .invoke_async(&mut redis)
        .await?;
    if claimed == 0 {
        return Err(StateError::AlreadyClaimed(run.queue_id));
    }
    Ok(())
}

/// The visible half of `register`: the `queue` publication and the metrics.
pub async fn announce(app: &App, run: &ActiveRun) -> Result<(), StateError> {
    publish_status(app).await?;
    app.metrics
        .active_runs
        .with_label_values(&[run.worker_name.as_deref().unwrap_or(NONE_LABEL)])
        .inc();
    app.metrics.run_count.inc();
    Ok(())
}

/// Undo a [`claim`] that was never announced (no metrics to correct).
pub async fn withdraw(app: &App, run: &ActiveRun) -> Result<(), StateError> {
    let mut redis = app.redis.clone();
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
pub async fn update(app: &App, run: &ActiveRun) -> Result<(), StateError> {
    let json = crate::pyjson::to_string(&run.to_json(&app.clock.now_naive()));
    let mut redis = app.redis.clone();
    redis
        .hset::<_, _, _, ()>(ACTIVE_RUNS, &run.log_id, json)
        .await?;
    Ok(())
}

/// The active run with this id, if any (§5.3). A stored value that does not
/// parse is an error, not a missing run.
pub async fn get(app: &App, run_id: &str) -> anyhow::Result<Option<ActiveRun>> {
    let mut redis = app.redis.clone();
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
pub async fn unclaim(app: &App, run_id: &str) -> anyhow::Result<Option<ActiveRun>> {
    let run = get(app, run_id).await?;
    let worker = run
        .as_ref()
        .and_then(|r| r.worker_name.clone())
        .unwrap_or_else(|| NONE_LABEL.to_string());
    app.metrics.active_runs.with_label_values(&[&worker]).dec();
    if let Some(run) = &run {
        let mut redis = app.redis.clone();
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

/// The queue item → run id claims.
pub async fn assigned_queue_items(app: &App) -> Result<HashMap<i64, String>, StateError> {
    let mut redis = app.redis.clone();
    let all: HashMap<String, String> = redis.hgetall(ASSIGNED_QUEUE_ITEMS).await?;
    Ok(all
        .into_iter()
        .filter_map(|(k, v)| k.parse().ok().map(|k| (k, v)))
        .collect())
}

pub async fn active_run_count(app: &App) -> Result<usize, StateError> {
    let mut redis = app.redis.clone();
    Ok(redis.hlen(ACTIVE_RUNS).await?)
}

/// Record that the worker of `run_id` was heard from now.
pub async fn keepalive(app: &App, run_id: &str) -> Result<(), StateError> {
    let mut redis = app.redis.clone();
    redis
        .hset::<_, _, _, ()>(LAST_KEEPALIVE, run_id, isoformat(&app.clock.now_naive()))
        .await?;
    Ok(())
}

/// Every run's last keepalive.
pub async fn keepalives(app: &App) -> Result<HashMap<String, NaiveDateTime>, StateError> {
    let mut redis = app.redis.clone();
    let all: HashMap<String, String> = redis.hgetall(LAST_KEEPALIVE).await?;
    Ok(all
        .into_iter()
        .filter_map(|(k, v)| parse_naive(&v).map(|t| (k, t)))
        .collect())
}

/// `rate_limited(host, retry_after)`: no retry-after → now + 120 s.
pub async fn rate_limit(
    app: &App,
    host: &str,
    retry_after: Option<NaiveDateTime>,
) -> Result<(), StateError> {
    app.metrics
        .rate_limited_host
        .with_label_values(&[host])
        .inc();
    let until =
        retry_after.unwrap_or_else(|| app.clock.now_naive() + chrono::Duration::seconds(120));
    let mut redis = app.redis.clone();
    redis
        .hset::<_, _, _, ()>(RATE_LIMIT_HOSTS, host, isoformat(&until))
        .await?;
    Ok(())
}

/// Hosts whose rate limit lies in the future, with its end.
pub async fn rate_limited_hosts(app: &App) -> Result<Vec<(String, NaiveDateTime)>, StateError> {
    let now = app.clock.now_naive();
    let mut redis = app.redis.clone();
    let all: Vec<(String, String)> = redis.hgetall(RATE_LIMIT_HOSTS).await?;
    Ok(all
        .into_iter()
        .filter_map(|(h, t)| parse_naive(&t).map(|t| (h, t)))
        .filter(|(_, t)| *t > now)
        .collect())
}

/// The active runs as stored (stale `current_duration`, QH-9), each with the
/// keepalive keys appended (data-types.md §3.4).
pub async fn processing(app: &App) -> Result<Vec<Value>, StateError> {
    let now = app.clock.now_naive();
    let keepalives = keepalives(app).await?;
    let mut redis = app.redis.clone();
    let runs: Vec<(String, String)> = redis.hgetall(ACTIVE_RUNS).await?;
    let timeout = app.settings.run_timeout_minutes as f64 * 60.0;
    let mut out = Vec::with_capacity(runs.len());
    for (_, raw) in runs {
        let Ok(Value::Object(mut m)) = serde_json::from_str::<Value>(&raw) else {
            continue;
        };
        let id = m
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match keepalives.get(&id) {
            Some(t) => {
                let age = seconds_between(&now, t);
                m.insert("last-keepalive".into(), Value::String(isoformat_seconds(t)));
                m.insert("keepalive_age".into(), serde_json::json!(age));
                m.insert("mia".into(), Value::Bool(age > timeout));
            }
            None => {
                m.insert("keepalive_age".into(), Value::Null);
                m.insert("last-keepalive".into(), Value::Null);
                m.insert("mia".into(), Value::Null);
            }
        }
        out.push(Value::Object(m));
    }
    Ok(out)
}

/// The status document of `GET /status` and the `queue` channel (§2.4).
pub async fn status_document(app: &App) -> Result<Value, StateError> {
    let processing = processing(app).await?;
    let mut limits = Map::new();
    for (host, until) in rate_limited_hosts(app).await? {
        limits.insert(host, Value::String(isoformat_seconds(&until)));
    }
    let mut doc = Map::new();
    doc.insert("processing".into(), Value::Array(processing));
    doc.insert(
        "avoid_hosts".into(),
        Value::Array(
            app.settings
                .avoid_hosts
                .iter()
                .map(|h| Value::String(h.clone()))
                .collect(),
        ),
    );
    doc.insert("rate_limit_hosts".into(), Value::Object(limits));
    Ok(Value::Object(doc))
}

pub async fn publish<T: serde::Serialize + ?Sized>(
    app: &App,
    channel: &str,
    message: &T,
) -> Result<(), StateError> {
    let mut redis = app.redis.clone();
    redis
        .publish::<_, _, ()>(channel, crate::pyjson::to_string(message))
        .await?;
    Ok(())
}

/// Publish the status document on `queue`.
pub async fn publish_status(app: &App) -> Result<(), StateError> {
    let doc = status_document(app).await?;
    publish(app, QUEUE_CHANNEL, &doc).await
}
