//! Simulated workers that behave like the real `janitor-worker` towards the
//! runner's public app, for fault injection: each assigns, then finishes its
//! run, retrying 5xx answers and connection errors with back-off (the same
//! request again, as the worker's retry does) and treating a 404 as final.
//! Every run id handed out and every answer is recorded, so a test can check
//! afterwards that no result was lost and no item was handed out twice.

use base64::Engine;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct WorkerLoad {
    /// Public app base URLs; worker `i` starts on `urls[i % len]` and moves
    /// to the next one after a connection error (a load balancer's view).
    pub urls: Vec<String>,
    pub user: String,
    pub password: String,
    pub workers: usize,
    /// No new assignment after this; retries of a finish go on past it
    /// until `give_up`.
    pub duration: Duration,
    pub give_up: Duration,
}

/// What the workers saw.
#[derive(Debug, Default)]
pub struct Outcome {
    /// (run id, queue id) of every assignment handed out.
    pub assigned: Vec<(String, i64)>,
    /// Runs whose finish was answered 201.
    pub finished: Vec<String>,
    /// Runs whose finish was answered 404 (final for a worker: lost).
    pub refused: Vec<String>,
    /// Runs still unfinished when the workers gave up.
    pub abandoned: Vec<String>,
    pub requests: u64,
    /// 5xx answers and connection errors (each retried).
    pub errors: u64,
    /// Any other answer: (status, body).
    pub unexpected: Vec<(u16, String)>,
    /// When each 2xx arrived, for recovery times.
    pub successes: Vec<Instant>,
}

impl Outcome {
    /// Queue items handed out more than once.
    pub fn doubles(&self) -> usize {
        let mut seen: HashMap<i64, usize> = HashMap::new();
        for (_, q) in &self.assigned {
            *seen.entry(*q).or_default() += 1;
        }
        seen.values().map(|n| n - 1).sum()
    }

    /// Time from `at` to the first 2xx after it.
    pub fn recovery_after(&self, at: Instant) -> Option<Duration> {
        self.successes
            .iter()
            .filter(|t| **t >= at)
            .min()
            .map(|t| *t - at)
    }
}

enum Answer {
    Ok(Value),
    /// 5xx or no answer: retry.
    Retry,
    /// A final answer other than 2xx.
    Final(u16, String),
}

struct Worker {
    load: WorkerLoad,
    client: reqwest::Client,
    auth: String,
    url: usize,
    out: Arc<Mutex<Outcome>>,
}

impl Worker {
    async fn send(&mut self, path: &str, body: Body) -> Answer {
        let url = format!("{}{path}", self.load.urls[self.url % self.load.urls.len()]);
        let req = self
            .client
            .post(&url)
            .header("authorization", &self.auth)
            .timeout(Duration::from_secs(10));
        let req = match body {
            Body::Json(v) => req.json(&v),
            Body::Multipart(ct, bytes) => req.header("content-type", ct).body(bytes),
        };
        let resp = req.send().await;
        self.out.lock().unwrap().requests += 1;
        let Ok(resp) = resp else {
            self.out.lock().unwrap().errors += 1;
            self.url += 1;
            return Answer::Retry;
        };
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let mut out = self.out.lock().unwrap();
        match status {
            200..=299 => {
                out.successes.push(Instant::now());
                Answer::Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
            }
            500..=599 if !(status == 503 && text.contains("queue empty")) => {
                out.errors += 1;
                Answer::Retry
            }
            _ => Answer::Final(status, text),
        }
    }

    async fn run(mut self, started: Instant) {
        let mut backoff = Backoff::default();
        while started.elapsed() < self.load.duration {
            let body = Body::Json(json!({"backchannel": null, "worker_link": null}));
            let assignment = match self.send("/runner/active-runs", body).await {
                Answer::Ok(v) => v,
                Answer::Retry => {
                    backoff.wait().await;
                    continue;
                }
                Answer::Final(503, _) => return, // queue empty
                Answer::Final(status, text) => {
                    self.out.lock().unwrap().unexpected.push((status, text));
                    return;
                }
            };
            backoff = Backoff::default();
            let id = assignment["id"].as_str().unwrap_or_default().to_string();
            let queue_id = assignment["queue_id"].as_i64().unwrap_or(-1);
            self.out
                .lock()
                .unwrap()
                .assigned
                .push((id.clone(), queue_id));
            let (ct, bytes) = crate::load::finish_body();
            loop {
                if started.elapsed() > self.load.give_up {
                    self.out.lock().unwrap().abandoned.push(id);
                    return;
                }
                let path = format!("/runner/active-runs/{id}/finish");
                match self
                    .send(&path, Body::Multipart(ct.clone(), bytes.clone()))
                    .await
                {
                    Answer::Ok(_) => {
                        self.out.lock().unwrap().finished.push(id);
                        break;
                    }
                    Answer::Retry => backoff.wait().await,
                    Answer::Final(404, _) => {
                        self.out.lock().unwrap().refused.push(id);
                        break;
                    }
                    Answer::Final(status, text) => {
                        self.out.lock().unwrap().unexpected.push((status, text));
                        break;
                    }
                }
            }
            backoff = Backoff::default();
        }
    }
}

enum Body {
    Json(Value),
    Multipart(String, Vec<u8>),
}

/// 50 ms doubling to 1 s: the worker backs off instead of spinning.
struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Backoff(Duration::from_millis(50))
    }
}

impl Backoff {
    async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_secs(1));
    }
}

/// Runs the workers to the end (every one stops by itself: queue empty,
/// `duration` reached, or `give_up` reached mid-finish).
pub async fn run(load: WorkerLoad) -> Outcome {
    let out = Arc::new(Mutex::new(Outcome::default()));
    let client = janitor_runner::tls::client_builder()
        .pool_max_idle_per_host(load.workers)
        .build()
        .expect("http client");
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", load.user, load.password))
    );
    let started = Instant::now();
    let tasks: Vec<_> = (0..load.workers)
        .map(|i| {
            let w = Worker {
                load: load.clone(),
                client: client.clone(),
                auth: auth.clone(),
                url: i,
                out: out.clone(),
            };
            tokio::spawn(w.run(started))
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    Arc::try_unwrap(out)
        .map(|m| m.into_inner().unwrap())
        .unwrap_or_default()
}
