//! The status document (`GET /status`, the `queue` publication) built from
//! the active runs, keepalives and rate limits.

use super::*;
use std::sync::atomic::{AtomicU64, AtomicUsize};

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

    /// `py::json::to_string(&self.keepalive_keys(id))` without its opening
    /// brace, written straight into `out` (this runs once per active run
    /// per publication).
    fn push_keepalive_tail(&self, id: &str, out: &mut String) {
        let Some(t) = self.keepalives.get(id) else {
            out.push_str("\"keepalive_age\": null, \"last-keepalive\": null, \"mia\": null}");
            return;
        };
        out.push_str("\"last-keepalive\": \"");
        push_isoformat_seconds(t, out);
        out.push_str("\", \"keepalive_age\": ");
        let age = seconds_between(&self.now, t);
        match (self.now - *t).num_microseconds() {
            Some(us) if us == 0 || (100..1_000_000_000_000_000).contains(&us.unsigned_abs()) => {
                push_micros_as_seconds(us, out)
            }
            _ => out.push_str(&crate::py::json::float_repr(age)),
        }
        out.push_str(if age > self.timeout_secs {
            ", \"mia\": true}"
        } else {
            ", \"mia\": false}"
        });
    }

    /// [`Self::processing_entry`] as Python-JSON text, without re-serialising
    /// the stored run: the keepalive keys are spliced before its closing
    /// brace. Anything unusual (escapes, keys that would collide, duplicate
    /// ids) takes the value path, so the text is always what
    /// `py::json::to_string(&processing_entry(raw))` gives for runs the runner
    /// wrote itself. `cache` remembers the texts already checked, so a run
    /// is parsed once, not at every publication.
    fn processing_text(
        &self,
        key: &str,
        raw: &str,
        out: &mut String,
        cache: &mut SpliceCache,
    ) -> bool {
        let body = raw.trim();
        let id = match cache.checked(key, raw) {
            Some(id) => id,
            None => {
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
                cache.remember(key, raw, id)
            }
        };
        let open = body[..body.len() - 1].trim_end();
        out.push_str(open);
        if open != "{" {
            out.push_str(", ");
        }
        self.push_keepalive_tail(&id, out);
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
        self.document_text_with(&mut SpliceCache::default())
    }

    /// [`Self::document_text`], with the runs checked by earlier documents.
    pub(super) fn document_text_with(&self, cache: &mut SpliceCache) -> String {
        let rest = crate::py::json::to_string(&self.limits_and_hosts());
        let size: usize = self.runs.iter().map(|(_, r)| r.len() + 96).sum();
        let mut out = String::with_capacity(size + rest.len() + 32);
        out.push_str("{\"processing\": [");
        let mut first = true;
        for (key, raw) in &self.runs {
            let mark = out.len();
            if !first {
                out.push_str(", ");
            }
            if self.processing_text(key, raw, &mut out, cache) {
                first = false;
            } else {
                out.truncate(mark);
            }
        }
        cache.finish_document();
        out.push_str("], ");
        out.push_str(&rest[1..]);
        out
    }
}

/// Stored runs whose text was checked and whose id was read, by hash field:
/// an unchanged text (compared byte for byte) is not parsed again. Only the
/// runs of the last document are kept.
#[derive(Debug, Default)]
pub struct SpliceCache {
    last: HashMap<String, (String, String)>,
    current: HashMap<String, (String, String)>,
}

impl SpliceCache {
    /// The id of `raw` if it was checked before under `key`.
    fn checked(&mut self, key: &str, raw: &str) -> Option<String> {
        let (k, entry) = self.last.remove_entry(key)?;
        if entry.0 != raw {
            return None;
        }
        let id = entry.1.clone();
        self.current.insert(k, entry);
        Some(id)
    }

    fn remember(&mut self, key: &str, raw: &str, id: &str) -> String {
        self.current
            .insert(key.to_string(), (raw.to_string(), id.to_string()));
        id.to_string()
    }

    fn finish_document(&mut self) {
        self.last = std::mem::take(&mut self.current);
    }
}

/// `isoformat(timespec="seconds")` into `out`.
fn push_isoformat_seconds(t: &NaiveDateTime, out: &mut String) {
    use chrono::{Datelike, Timelike};
    use std::fmt::Write;
    if (1..=9999).contains(&t.year()) {
        let _ = write!(
            out,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
    } else {
        out.push_str(&isoformat_seconds(t));
    }
}

/// Python's `repr(us / 1e6)` for `us == 0` or `1e-4 <= |us / 1e6| < 1e9`:
/// there the shortest round-trip digits are the exact decimal (distinct
/// microsecond values are further apart than a float's spacing), in fixed
/// notation.
fn push_micros_as_seconds(us: i64, out: &mut String) {
    use std::fmt::Write;
    let sign = if us < 0 { "-" } else { "" };
    let (int, frac) = (us.unsigned_abs() / 1_000_000, us.unsigned_abs() % 1_000_000);
    if frac == 0 {
        let _ = write!(out, "{sign}{int}.0");
    } else {
        let digits = format!("{frac:06}");
        let _ = write!(out, "{sign}{int}.{}", digits.trim_end_matches('0'));
    }
}

/// Read everything the status document needs in one atomic round trip.
pub(super) async fn status_inputs(runs: &RunStore) -> Result<StatusInputs<'_>, StateError> {
    let mut redis = runs.redis.clone();
    let (stored, keepalives, limits): (Hash, Hash, Hash) = redis::pipe()
        .atomic()
        .hgetall(ACTIVE_RUNS)
        .hgetall(LAST_KEEPALIVE)
        .hgetall(RATE_LIMIT_HOSTS)
        .query_async(&mut redis)
        .await?;
    Ok(StatusInputs::from_hashes(runs, stored, keepalives, limits))
}

/// A Redis hash as read: (field, value) pairs.
type Hash = Vec<(String, String)>;

impl<'a> StatusInputs<'a> {
    fn from_hashes(runs: &'a RunStore, stored: Hash, keepalives: Hash, limits: Hash) -> Self {
        let now = runs.clock.now_naive();
        StatusInputs {
            now,
            timeout_secs: runs.run_timeout_minutes as f64 * 60.0,
            runs: stored,
            keepalives: keepalives
                .into_iter()
                .filter_map(|(k, v)| parse_naive(&v).map(|t| (k, t)))
                .collect(),
            limits: live_limits(limits, now),
            avoid_hosts: &runs.avoid_hosts,
        }
    }
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

/// Above this many runs in the last document, a caller no longer waits for
/// its publication (see [`publish_status`]). Far above anything the goldens
/// hold, so their publications stay upstream's; at 1,000 runs reading,
/// building and sending the ~0.6 MB document is what every assign and
/// finish used to wait for (8 workers: 204 cycles/s, 402 once deferred).
pub const SYNC_PUBLICATION_MAX_RUNS: usize = 64;

/// Least time between a publication and the next deferred one. Without it,
/// 8 workers with 1,000 active runs kept one publication in flight at all
/// times, more than half of the runner's CPU (2.15 ms per cycle against
/// 0.94 with it), for subscribers that only show the latest. A change still
/// gets a publication read after it, at most this much later.
pub const DEFERRED_PUBLICATION_INTERVAL: std::time::Duration =
    std::time::Duration::from_millis(100);

/// Coalesces status publications: every caller gets a publication of a
/// document read *after* its change, but callers that wait while one is
/// being built share the next one. One caller at a time (the goldens, a
/// single worker) therefore sees exactly one publication per change, as
/// upstream, while documents are small; under concurrency the publications
/// (each a full document, rebuilt from Redis so changes by other runner
/// processes are included) stop multiplying with the request rate.
#[derive(Debug, Default)]
pub struct StatusPublisher {
    /// Changes announced so far.
    pub(super) requested: AtomicU64,
    /// Changes covered by the last completed publication.
    pub(super) published: AtomicU64,
    /// Runs in the last document built.
    pub(super) last_runs: AtomicUsize,
    /// Held while a publication is built.
    pub(super) turn: tokio::sync::Mutex<Turn>,
    /// This process's changes to what the document shows (see [`Change`]).
    pub(super) changes: std::sync::Mutex<ChangeCount>,
    /// Publications that read the document from Redis, counted as they
    /// start their read.
    pub(super) reads: AtomicU64,
    /// Snapshots discarded in a row (see [`Change::wants_snapshot`]).
    pub(super) discarded: AtomicU64,
}

#[derive(Debug, Default)]
pub(super) struct ChangeCount {
    /// Changes sent so far; the latest one's number.
    sent: u64,
    /// Changes sent whose reply has not arrived.
    in_flight: usize,
}

/// A change to the active runs, keepalives or rate limits, from just
/// before it is sent until its reply (every write of this module takes
/// one). It lets a change's publication use the document's hashes as the
/// change's own script read them, a round trip fewer than reading them
/// again, when that copy is as new as a read made now would be for this
/// process: no other change of this process was in flight when it was sent
/// and none has been sent since (then every change of this process is in
/// it), and no publication has read Redis since (so none already sent
/// anything newer). Otherwise the publication reads afresh, as before.
/// Changes by other runner processes are in the copy if they were made
/// before it; the order of publications across processes is as racy as
/// upstream's either way.
pub(super) struct Change<'a> {
    publisher: &'a StatusPublisher,
    id: u64,
    reads: u64,
    /// Worth asking the script for the hashes: this change was sent alone,
    /// the caller would wait for the publication (documents past
    /// [`SYNC_PUBLICATION_MAX_RUNS`] are built in the background, later),
    /// and recent snapshots were used. Under steady concurrency another
    /// change is nearly always sent before the publication, so copies would
    /// only be read and thrown away; then one change in
    /// [`SNAPSHOT_PROBE_EVERY`] asks, to notice when that stops.
    pub(super) wants_snapshot: bool,
}

impl StatusPublisher {
    pub(super) fn begin_change(&self) -> Change<'_> {
        // Read first: a publication read that starts meanwhile only makes
        // the snapshot unusable.
        let reads = self.reads.load(Ordering::SeqCst);
        let (id, alone) = {
            let mut c = self.changes.lock().expect("change count");
            let alone = c.in_flight == 0;
            c.in_flight += 1;
            c.sent += 1;
            (c.sent, alone)
        };
        let recent = self.discarded.load(Ordering::Relaxed) < SNAPSHOT_DISCARDS_TOLERATED
            || id % SNAPSHOT_PROBE_EVERY == 0;
        Change {
            publisher: self,
            id,
            reads,
            wants_snapshot: alone
                && recent
                && self.last_runs.load(Ordering::Relaxed) <= SYNC_PUBLICATION_MAX_RUNS,
        }
    }

    /// Is `s` still as new as a fresh read, for this process?
    fn is_current(&self, s: &Snapshot) -> bool {
        self.changes.lock().expect("change count").sent == s.change
            && self.reads.load(Ordering::SeqCst) == s.reads
    }
}

impl Change<'_> {
    /// The hashes the change's script returned (active runs, keepalives,
    /// rate limits, each as HGETALL replies).
    pub(super) fn snapshot(&self, parts: [redis::Value; 3]) -> Result<Snapshot, StateError> {
        let [stored, keepalives, limits] = parts;
        Ok(Snapshot {
            stored: redis::from_owned_redis_value(stored)?,
            keepalives: redis::from_owned_redis_value(keepalives)?,
            limits: redis::from_owned_redis_value(limits)?,
            change: self.id,
            reads: self.reads,
        })
    }
}

impl Drop for Change<'_> {
    fn drop(&mut self) {
        if let Ok(mut c) = self.publisher.changes.lock() {
            c.in_flight -= 1;
        }
    }
}

/// Snapshots discarded in a row after which changes stop asking for them.
const SNAPSHOT_DISCARDS_TOLERATED: u64 = 4;
/// While they do not ask, one change in this many still does.
const SNAPSHOT_PROBE_EVERY: u64 = 16;

/// The status document's hashes as read by the script that made a change
/// (see [`Change`]); handed to [`publish_status_with`].
#[derive(Debug)]
pub struct Snapshot {
    stored: Hash,
    keepalives: Hash,
    limits: Hash,
    change: u64,
    reads: u64,
}

/// What the publication being built keeps for the next one.
#[derive(Debug, Default)]
pub struct Turn {
    /// The runs already checked.
    cache: SpliceCache,
    /// When the last publication was sent.
    last: Option<tokio::time::Instant>,
}

/// Publish the status document on `queue` (after a change to active runs).
///
/// While the last document held at most [`SYNC_PUBLICATION_MAX_RUNS`] runs
/// the caller waits for the publication, as upstream does (and a Redis
/// fault reaches it). Past that, the publication is a background job (so
/// `Background::idle` covers it) and the caller answers at once: assign and
/// finish latency no longer grows with the number of active runs. The
/// guarantee is the same either way: a publication of a document read after
/// the caller's change follows it, in order; changes made while one is
/// being built share the next one.
pub async fn publish_status(runs: &RunStore) -> Result<(), StateError> {
    publish_status_with(runs, None).await
}

/// [`publish_status`] after a change whose script returned a [`Snapshot`]:
/// published from it, without reading again, while it is current.
pub async fn publish_status_with(
    runs: &RunStore,
    snapshot: Option<Snapshot>,
) -> Result<(), StateError> {
    let p = &runs.status;
    let mine = p.requested.fetch_add(1, Ordering::SeqCst) + 1;
    if p.last_runs.load(Ordering::Relaxed) <= SYNC_PUBLICATION_MAX_RUNS {
        return publish_covering(runs, mine, false, snapshot).await;
    }
    let deferred = runs.clone();
    runs.background.spawn_unlimited(async move {
        if let Err(e) = publish_covering(&deferred, mine, true, None).await {
            tracing::warn!(error = %e, "publishing the status document failed");
        }
    });
    Ok(())
}

/// Publish unless a publication covering change `mine` was made meanwhile;
/// a `deferred` one first waits out [`DEFERRED_PUBLICATION_INTERVAL`],
/// holding the turn, so the changes made meanwhile share it.
async fn publish_covering(
    runs: &RunStore,
    mine: u64,
    deferred: bool,
    snapshot: Option<Snapshot>,
) -> Result<(), StateError> {
    let p = &runs.status;
    let mut turn = p.turn.lock().await;
    if p.published.load(Ordering::SeqCst) >= mine {
        if snapshot.is_some() {
            p.discarded.fetch_add(1, Ordering::Relaxed);
        }
        return Ok(());
    }
    if let (true, Some(last)) = (deferred, turn.last) {
        tokio::time::sleep_until(last + DEFERRED_PUBLICATION_INTERVAL).await;
    }
    // Every change announced up to here is visible in Redis already, so the
    // document read next covers it; so does a current snapshot, which no
    // change of this process has been sent since.
    let covers = p.requested.load(Ordering::SeqCst);
    let inputs = match snapshot {
        Some(s) if p.is_current(&s) => {
            p.discarded.store(0, Ordering::Relaxed);
            StatusInputs::from_hashes(runs, s.stored, s.keepalives, s.limits)
        }
        other => {
            if other.is_some() {
                p.discarded.fetch_add(1, Ordering::Relaxed);
            }
            p.reads.fetch_add(1, Ordering::SeqCst);
            status_inputs(runs).await?
        }
    };
    let text = inputs.document_text_with(&mut turn.cache);
    p.last_runs.store(inputs.runs.len(), Ordering::Relaxed);
    let mut redis = runs.redis.clone();
    redis.publish::<_, _, ()>(QUEUE_CHANNEL, text).await?;
    turn.last = Some(tokio::time::Instant::now());
    p.published.store(covers, Ordering::SeqCst);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(now: NaiveDateTime, keepalive: Option<NaiveDateTime>) -> StatusInputs<'static> {
        StatusInputs {
            now,
            timeout_secs: 3600.0,
            runs: Vec::new(),
            keepalives: keepalive
                .map(|t| ("a".to_string(), t))
                .into_iter()
                .collect(),
            limits: Vec::new(),
            avoid_hosts: &[],
        }
    }

    #[test]
    fn the_written_keepalive_keys_are_the_serialised_ones() {
        let now = parse_naive("2020-02-02T11:30:00.5").unwrap();
        let offsets: [i64; 22] = [
            0,
            1,
            50,
            99,
            100,
            101,
            1_500,
            123_456,
            1_000_000,
            59_999_999,
            3_600_000_000,
            3_600_000_001,
            86_400_000_007,
            -1,
            -99,
            -100,
            -123_456,
            -3_600_000_000,
            999_999_999_999_999,
            1_000_000_000_000_000,
            10_000_000_000_000_000,
            63_000_000_000_000_000,
        ];
        for us in offsets {
            let Some(t) = now.checked_sub_signed(chrono::Duration::microseconds(us)) else {
                continue;
            };
            let s = inputs(now, Some(t));
            let mut out = String::new();
            s.push_keepalive_tail("a", &mut out);
            let expected = crate::py::json::to_string(&s.keepalive_keys("a"));
            assert_eq!(out, expected[1..], "offset {us} µs");
        }
        let s = inputs(now, None);
        let mut out = String::new();
        s.push_keepalive_tail("a", &mut out);
        assert_eq!(out, crate::py::json::to_string(&s.keepalive_keys("a"))[1..]);
    }

    #[test]
    fn a_cached_document_is_the_uncached_one() {
        let now = parse_naive("2020-02-02T11:30:00.5").unwrap();
        let mut s = inputs(now, parse_naive("2020-02-02T11:00:00"));
        s.runs = vec![
            (
                "a".into(),
                r#"{"queue_id": 1, "id": "a", "command": "x"}"#.into(),
            ),
            ("b".into(), r#"{"queue_id": 2, "id": "b"}"#.into()),
            ("c".into(), "not json".into()),
            ("d".into(), r#"{"id": "d", "mia": 1}"#.into()),
        ];
        let mut cache = SpliceCache::default();
        for _ in 0..2 {
            assert_eq!(s.document_text_with(&mut cache), s.document_text());
        }
        // A run re-saved under the same field, one gone, one new.
        s.runs[0].1 = r#"{"queue_id": 1, "id": "a", "command": "y"}"#.into();
        s.runs.remove(1);
        s.runs
            .push(("e".into(), r#"{"queue_id": 5, "id": "e"}"#.into()));
        let text = s.document_text_with(&mut cache);
        assert_eq!(text, s.document_text());
        assert!(text.contains(r#""command": "y""#), "{text}");
        assert_eq!(
            cache.last.len(),
            2,
            "only the last document's plain runs are kept"
        );
    }

    /// A run store on a private Redis, and a subscriber to `queue`.
    async fn store_and_subscriber(
        redis: &crate::test_redis::TestRedis,
    ) -> (
        RunStore,
        std::pin::Pin<Box<dyn futures::Stream<Item = redis::Msg> + Send>>,
    ) {
        let client = redis::Client::open(redis.url.as_str()).unwrap();
        let start = chrono::DateTime::parse_from_rfc3339("2020-02-02T10:00:00Z").unwrap();
        let runs = RunStore::new(
            redis::aio::ConnectionManager::new(client.clone())
                .await
                .unwrap(),
            std::sync::Arc::new(crate::clock::ManualClock::new(start.into())),
            std::sync::Arc::new(crate::metrics::Metrics::new()),
            crate::background::Background::new(1),
            60,
            Vec::new(),
        );
        let mut pubsub = client.get_async_pubsub().await.unwrap();
        pubsub.subscribe(QUEUE_CHANNEL).await.unwrap();
        (runs, Box::pin(pubsub.into_on_message()))
    }

    async fn store_runs(runs: &RunStore, ids: std::ops::Range<usize>) {
        let mut r = runs.connection();
        for i in ids {
            r.hset::<_, _, _, ()>(
                ACTIVE_RUNS,
                format!("r{i}"),
                format!(r#"{{"queue_id": {i}, "id": "r{i}"}}"#),
            )
            .await
            .unwrap();
        }
    }

    /// The number of runs in the next `queue` message.
    async fn next_processing(
        messages: &mut (impl futures::Stream<Item = redis::Msg> + Unpin),
    ) -> usize {
        let doc: Value = serde_json::from_str(&next_document(messages).await).unwrap();
        doc["processing"].as_array().unwrap().len()
    }

    async fn nothing_more(messages: &mut (impl futures::Stream<Item = redis::Msg> + Unpin)) {
        use futures::StreamExt;
        let more =
            tokio::time::timeout(std::time::Duration::from_millis(100), messages.next()).await;
        assert!(more.is_err(), "unexpected publication");
    }

    fn active(queue_id: i64, id: &str) -> ActiveRun {
        ActiveRun {
            queue_id,
            log_id: id.into(),
            codebase: Some(format!("cb-{queue_id}")),
            change_set: None,
            campaign: "lintian-fixes".into(),
            command: "true".into(),
            estimated_duration: None,
            start_time: parse_naive("2020-02-02T10:00:00").unwrap(),
            worker_name: Some("w1".into()),
            worker_link: None,
            vcs_info: Map::new(),
            backchannel: crate::types::Backchannel::None,
            instigated_context: Value::Null,
            resume_from: None,
        }
    }

    /// Status reads made so far: each is a MULTI/EXEC pipeline, and nothing
    /// else these tests do uses one.
    async fn exec_calls(runs: &RunStore) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut runs.connection())
            .await
            .unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("cmdstat_exec:calls="))
            .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
    }

    /// The text of the next `queue` message.
    async fn next_document(
        messages: &mut (impl futures::Stream<Item = redis::Msg> + Unpin),
    ) -> String {
        use futures::StreamExt;
        let msg = tokio::time::timeout(std::time::Duration::from_secs(10), messages.next())
            .await
            .expect("a publication")
            .unwrap();
        msg.get_payload().unwrap()
    }

    /// What `publication` sent, checked to be built without reading Redis
    /// again and to be what a read made now gives (the clock stands still).
    async fn published_from_copy(
        runs: &RunStore,
        messages: &mut (impl futures::Stream<Item = redis::Msg> + Unpin),
        publication: impl std::future::Future<Output = Result<(), StateError>>,
    ) -> String {
        let reads = exec_calls(runs).await;
        publication.await.unwrap();
        let published = next_document(messages).await;
        assert_eq!(exec_calls(runs).await, reads, "the document was read again");
        assert_eq!(
            published,
            status_inputs(runs).await.unwrap().document_text()
        );
        published
    }

    #[tokio::test]
    async fn a_change_made_alone_is_published_from_its_own_script_reply() {
        let redis = crate::test_redis::test_redis().await;
        let (runs, mut messages) = store_and_subscriber(&redis).await;
        rate_limit(&runs, "example.com", None).await.unwrap();
        keepalive(&runs, "r0").await.unwrap();

        let r1 = active(1, "r1");
        let snapshot = claim(&runs, &r1).await.unwrap();
        assert!(snapshot.is_some(), "a change sent alone brings the hashes");
        let published =
            published_from_copy(&runs, &mut messages, announce(&runs, &r1, snapshot)).await;
        assert!(published.contains(r#""id": "r1""#), "{published}");
        assert!(published.contains("example.com"), "{published}");

        let released = release_finished(&runs, &r1, "{}", true, None)
            .await
            .unwrap();
        assert!(released.existed && released.snapshot.is_some());
        let publication = publish_status_with(&runs, released.snapshot);
        let published = published_from_copy(&runs, &mut messages, publication).await;
        assert!(published.starts_with(r#"{"processing": []"#), "{published}");
    }

    #[tokio::test]
    async fn a_snapshot_that_another_change_overtook_is_not_published() {
        let redis = crate::test_redis::test_redis().await;
        let (runs, mut messages) = store_and_subscriber(&redis).await;

        // Another change sent after the claim: the claim's copy misses it.
        let (r1, r2) = (active(1, "r1"), active(2, "r2"));
        let first = claim(&runs, &r1).await.unwrap();
        let second = claim(&runs, &r2).await.unwrap();
        announce(&runs, &r1, first).await.unwrap();
        let doc = next_document(&mut messages).await;
        assert!(doc.contains(r#""id": "r2""#), "{doc}");
        announce(&runs, &r2, second).await.unwrap();
        assert!(next_document(&mut messages).await.contains(r#""id": "r1""#));

        // A publication read Redis after the copy was made, and saw a run
        // another runner process added since: publishing the copy after it
        // would take that run back out of the last document.
        let (other, _) = store_and_subscriber(&redis).await;
        let r5 = active(5, "r5");
        let copy = claim(&runs, &r5).await.unwrap();
        assert!(copy.is_some());
        register(&other, &active(6, "r6")).await.unwrap();
        assert!(next_document(&mut messages).await.contains(r#""id": "r6""#));
        publish_status(&runs).await.unwrap();
        assert!(next_document(&mut messages).await.contains(r#""id": "r6""#));
        announce(&runs, &r5, copy).await.unwrap();
        let last = next_document(&mut messages).await;
        assert!(last.contains(r#""id": "r6""#), "{last}");

        // A change sent while another is in flight brings no copy.
        let in_flight = runs.status.begin_change();
        let r3 = active(3, "r3");
        assert!(claim(&runs, &r3).await.unwrap().is_none());
        drop(in_flight);
        // Nor does one that would not wait for its publication.
        runs.status
            .last_runs
            .store(SYNC_PUBLICATION_MAX_RUNS + 1, Ordering::Relaxed);
        let r4 = active(4, "r4");
        assert!(claim(&runs, &r4).await.unwrap().is_none());
        runs.status.last_runs.store(0, Ordering::Relaxed);

        // After a few copies thrown away, changes stop asking for them but
        // for one in SNAPSHOT_PROBE_EVERY; a copy used makes them ask again.
        runs.status
            .discarded
            .store(SNAPSHOT_DISCARDS_TOLERATED, Ordering::Relaxed);
        let asking = (0..SNAPSHOT_PROBE_EVERY)
            .filter(|_| runs.status.begin_change().wants_snapshot)
            .count();
        assert_eq!(asking, 1);
        let mut silent = 0;
        loop {
            let q = 10 + silent;
            let run = active(q, &format!("p{q}"));
            if let Some(copy) = claim(&runs, &run).await.unwrap() {
                announce(&runs, &run, Some(copy)).await.unwrap();
                next_document(&mut messages).await;
                break;
            }
            silent += 1;
            assert!(silent < SNAPSHOT_PROBE_EVERY as i64, "no change asked");
        }
        assert_eq!(runs.status.discarded.load(Ordering::Relaxed), 0);
        assert!(claim(&runs, &active(99, "p99")).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn past_the_threshold_callers_do_not_wait_and_publications_still_follow_each_change() {
        let redis = crate::test_redis::test_redis().await;
        let (runs, mut messages) = store_and_subscriber(&redis).await;
        let wait = std::time::Duration::from_millis(200);

        // A small document: the caller waits for its publication (here held
        // up by a publication in progress), as upstream.
        store_runs(&runs, 0..3).await;
        publish_status(&runs).await.unwrap();
        assert_eq!(next_processing(&mut messages).await, 3);
        let turn = runs.status.turn.lock().await;
        assert!(
            tokio::time::timeout(wait, publish_status(&runs))
                .await
                .is_err(),
            "with {} runs the caller waits for its publication",
            3
        );
        drop(turn);

        // Past the threshold: once a document that large was published,
        // callers answer at once and the publication follows.
        let n = SYNC_PUBLICATION_MAX_RUNS + 6;
        store_runs(&runs, 3..n).await;
        publish_status(&runs).await.unwrap();
        assert_eq!(next_processing(&mut messages).await, n);
        let turn = runs.status.turn.lock().await;
        tokio::time::timeout(wait * 25, publish_status(&runs))
            .await
            .expect("the caller does not wait")
            .unwrap();
        // Two more changes while the publisher is busy: the waiting
        // publications share one document, read after the last of them.
        let mut r = runs.connection();
        r.hdel::<_, _, ()>(ACTIVE_RUNS, "r0").await.unwrap();
        publish_status(&runs).await.unwrap();
        r.hdel::<_, _, ()>(ACTIVE_RUNS, "r1").await.unwrap();
        publish_status(&runs).await.unwrap();
        nothing_more(&mut messages).await;
        assert!(
            runs.background.in_flight() > 0,
            "deferred publications are background jobs"
        );
        drop(turn);
        runs.background.idle().await;
        assert_eq!(next_processing(&mut messages).await, n - 2);
        let first = tokio::time::Instant::now();
        nothing_more(&mut messages).await;

        // Deferred publications are spaced: the next one waits out the
        // interval since the last (received, so measured a little short).
        let at_least = DEFERRED_PUBLICATION_INTERVAL / 2;
        let mut received = first;
        for (i, id) in ["r2", "r3"].into_iter().enumerate() {
            r.hdel::<_, _, ()>(ACTIVE_RUNS, id).await.unwrap();
            publish_status(&runs).await.unwrap();
            assert_eq!(next_processing(&mut messages).await, n - 3 - i);
            assert!(received.elapsed() >= at_least, "{:?}", received.elapsed());
            received = tokio::time::Instant::now();
        }

        // Back under the threshold, callers wait again.
        let mut r = runs.connection();
        r.del::<_, ()>(ACTIVE_RUNS).await.unwrap();
        publish_status(&runs).await.unwrap();
        runs.background.idle().await;
        assert_eq!(next_processing(&mut messages).await, 0);
        let turn = runs.status.turn.lock().await;
        // (Synchronous publications are never spaced.)
        assert!(tokio::time::timeout(wait, publish_status(&runs))
            .await
            .is_err());
        drop(turn);
    }
}
