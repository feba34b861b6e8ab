//! The status document (`GET /status`, the `queue` publication) built from
//! the active runs, keepalives and rate limits.

use super::*;
use std::sync::atomic::AtomicU64;

/// The active runs as stored (stale `current_duration`, QH-9), each with the
/// keepalive keys appended (data-types.md §3.4).
pub async fn processing(runs: &RunStore) -> Result<Vec<Value>, StateError> {
    let keepalives = keepalives(runs).await?;
    let mut redis = runs.redis.clone();
    let stored: Vec<(String, String)> = redis.hgetall(ACTIVE_RUNS).await?;
    let status = StatusInputs {
        now: runs.clock.now_naive(),
        timeout_secs: runs.run_timeout_minutes as f64 * 60.0,
        runs: stored,
        keepalives,
        limits: Vec::new(),
        avoid_hosts: &[],
    };
    Ok(status
        .runs
        .iter()
        .filter_map(|(_, raw)| status.processing_entry(raw))
        .collect())
}

/// Everything the status document is made of, read from Redis in one go.
pub struct StatusInputs<'a> {
    pub now: NaiveDateTime,
    pub timeout_secs: f64,
    /// `active-runs` as stored: (run id, JSON text).
    pub runs: Vec<(String, String)>,
    pub keepalives: HashMap<String, NaiveDateTime>,
    /// Live rate limits (host, until).
    pub limits: Vec<(String, NaiveDateTime)>,
    pub avoid_hosts: &'a [String],
}

/// The first fields of a stored run, enough to splice the keepalive keys
/// onto its text without re-serialising it.
#[derive(serde::Deserialize)]
pub(super) struct RunId {
    #[serde(default)]
    pub(super) id: Option<Value>,
}

impl StatusInputs<'_> {
    /// The keepalive keys of run `id`, in upstream's insertion order.
    fn keepalive_keys(&self, id: &str) -> Map<String, Value> {
        let mut m = Map::new();
        match self.keepalives.get(id) {
            Some(t) => {
                let age = seconds_between(&self.now, t);
                m.insert("last-keepalive".into(), Value::String(isoformat_seconds(t)));
                m.insert("keepalive_age".into(), serde_json::json!(age));
                m.insert("mia".into(), Value::Bool(age > self.timeout_secs));
            }
            None => {
                m.insert("keepalive_age".into(), Value::Null);
                m.insert("last-keepalive".into(), Value::Null);
                m.insert("mia".into(), Value::Null);
            }
        }
        m
    }

    /// One `processing` entry as a value; `None` for a stored value that is
    /// not a JSON object (skipped, as upstream's status would fail on it).
    fn processing_entry(&self, raw: &str) -> Option<Value> {
        let Ok(Value::Object(mut m)) = serde_json::from_str::<Value>(raw) else {
            return None;
        };
        let id = m
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        m.extend(self.keepalive_keys(&id));
        Some(Value::Object(m))
    }

    /// [`Self::processing_entry`] as Python-JSON text, without re-serialising
    /// the stored run: the keepalive keys are spliced before its closing
    /// brace. Anything unusual (escapes, keys that would collide, duplicate
    /// ids) takes the value path, so the text is always what
    /// `py::json::to_string(&processing_entry(raw))` gives for runs the runner
    /// wrote itself.
    fn processing_text(&self, raw: &str, out: &mut String) -> bool {
        let body = raw.trim();
        let plain = body.starts_with('{')
            && body.ends_with('}')
            && !body.contains('\\')
            && !["\"last-keepalive\"", "\"keepalive_age\"", "\"mia\""]
                .iter()
                .any(|k| body.contains(k));
        let head = plain
            .then(|| serde_json::from_str::<RunId>(body).ok())
            .flatten();
        let Some(head) = head else {
            return match self.processing_entry(raw) {
                Some(v) => {
                    out.push_str(&crate::py::json::to_string(&v));
                    true
                }
                None => false,
            };
        };
        let id = head.id.as_ref().and_then(Value::as_str).unwrap_or_default();
        let tail = crate::py::json::to_string(&self.keepalive_keys(id));
        let open = body[..body.len() - 1].trim_end();
        out.push_str(open);
        if open != "{" {
            out.push_str(", ");
        }
        out.push_str(&tail[1..]);
        true
    }

    fn limits_and_hosts(&self) -> Map<String, Value> {
        let mut limits = Map::new();
        for (host, until) in &self.limits {
            limits.insert(host.clone(), Value::String(isoformat_seconds(until)));
        }
        let mut doc = Map::new();
        doc.insert(
            "avoid_hosts".into(),
            Value::Array(
                self.avoid_hosts
                    .iter()
                    .map(|h| Value::String(h.clone()))
                    .collect(),
            ),
        );
        doc.insert("rate_limit_hosts".into(), Value::Object(limits));
        doc
    }

    /// The status document (runner-http-api.md §2.4) as a value.
    pub fn document(&self) -> Value {
        let processing = self
            .runs
            .iter()
            .filter_map(|(_, raw)| self.processing_entry(raw))
            .collect();
        let mut doc = Map::new();
        doc.insert("processing".into(), Value::Array(processing));
        doc.extend(self.limits_and_hosts());
        Value::Object(doc)
    }

    /// `py::json::to_string(&self.document())`, built from the stored texts.
    pub fn document_text(&self) -> String {
        let rest = crate::py::json::to_string(&self.limits_and_hosts());
        let size: usize = self.runs.iter().map(|(_, r)| r.len() + 96).sum();
        let mut out = String::with_capacity(size + rest.len() + 32);
        out.push_str("{\"processing\": [");
        let mut first = true;
        for (_, raw) in &self.runs {
            let mark = out.len();
            if !first {
                out.push_str(", ");
            }
            if self.processing_text(raw, &mut out) {
                first = false;
            } else {
                out.truncate(mark);
            }
        }
        out.push_str("], ");
        out.push_str(&rest[1..]);
        out
    }
}

/// Read everything the status document needs in one atomic round trip.
pub(super) async fn status_inputs(runs: &RunStore) -> Result<StatusInputs<'_>, StateError> {
    let now = runs.clock.now_naive();
    let mut redis = runs.redis.clone();
    type Hash = Vec<(String, String)>;
    let (stored, keepalives, limits): (Hash, Hash, Hash) = redis::pipe()
        .atomic()
        .hgetall(ACTIVE_RUNS)
        .hgetall(LAST_KEEPALIVE)
        .hgetall(RATE_LIMIT_HOSTS)
        .query_async(&mut redis)
        .await?;
    Ok(StatusInputs {
        now,
        timeout_secs: runs.run_timeout_minutes as f64 * 60.0,
        runs: stored,
        keepalives: keepalives
            .into_iter()
            .filter_map(|(k, v)| parse_naive(&v).map(|t| (k, t)))
            .collect(),
        limits: live_limits(limits, now),
        avoid_hosts: &runs.avoid_hosts,
    })
}

/// The status document of `GET /status` and the `queue` channel (§2.4).
pub async fn status_document(runs: &RunStore) -> Result<Value, StateError> {
    Ok(status_inputs(runs).await?.document())
}

pub async fn publish<T: serde::Serialize + ?Sized>(
    runs: &RunStore,
    channel: &str,
    message: &T,
) -> Result<(), StateError> {
    let mut redis = runs.redis.clone();
    redis
        .publish::<_, _, ()>(channel, crate::py::json::to_string(message))
        .await?;
    Ok(())
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
    pub(super) requested: AtomicU64,
    /// Changes covered by the last completed publication.
    pub(super) published: AtomicU64,
    pub(super) turn: tokio::sync::Mutex<()>,
}

/// Publish the status document on `queue` (after a change to active runs).
pub async fn publish_status(runs: &RunStore) -> Result<(), StateError> {
    let p = &runs.status;
    let mine = p.requested.fetch_add(1, Ordering::SeqCst) + 1;
    let _turn = p.turn.lock().await;
    if p.published.load(Ordering::SeqCst) >= mine {
        return Ok(());
    }
    // Every change announced up to here is visible in Redis already, so the
    // document read next covers it.
    let covers = p.requested.load(Ordering::SeqCst);
    let text = status_inputs(runs).await?.document_text();
    let mut redis = runs.redis.clone();
    redis.publish::<_, _, ()>(QUEUE_CHANNEL, text).await?;
    p.published.store(covers, Ordering::SeqCst);
    Ok(())
}
