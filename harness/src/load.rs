//! `janitor-harness load`: simulated workers looping assign → finish against
//! any runner (ours or the Python one), closed-loop or open-loop at a fixed
//! rate, with latency histograms, double hand-out detection and, given the
//! runner's pid, its CPU time per cycle and peak RSS.

use anyhow::{bail, Context};
use base64::Engine;
use hdrhistogram::Histogram;
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection, Row};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Base URL of the runner app (admin, or public with `public`).
    pub url: String,
    pub public: bool,
    pub user: Option<String>,
    pub password: Option<String>,
    pub workers: usize,
    pub duration: Duration,
    /// Open-loop: cycles started per second across all workers.
    pub rate: Option<f64>,
    pub pid: Option<u32>,
}

#[derive(Default)]
struct Shared {
    assign: Option<Histogram<u64>>,
    finish: Option<Histogram<u64>>,
    /// queue id → times handed out.
    handed: HashMap<i64, u32>,
    errors: HashMap<String, u64>,
    cycles: u64,
    empty: u64,
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram")
}

/// One finish body: result.json (code, description, times) and one small log.
pub fn finish_body() -> (String, Vec<u8>) {
    let boundary = format!("load-{}", uuid::Uuid::new_v4().simple());
    let now = chrono::Utc::now()
        .naive_utc()
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string();
    let result = json!({"code": "success", "description": "load test", "start_time": now, "finish_time": now});
    let mut body = Vec::new();
    for (name, filename, ct, payload) in [
        (
            "metadata",
            "result.json",
            "application/json",
            result.to_string().into_bytes(),
        ),
        (
            "file",
            "worker.log",
            "text/plain",
            b"load test log line\n".to_vec(),
        ),
    ] {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: {ct}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&payload);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// CPU seconds (user + system) and peak/current RSS in KiB of a process.
pub fn process_usage(pid: u32) -> Option<(f64, u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu = (f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / ticks;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Some((cpu, kib("VmHWM:"), kib("VmRSS:")))
}

pub async fn run(opts: LoadOptions) -> anyhow::Result<Value> {
    let client = janitor_runner::tls::client_builder()
        .pool_max_idle_per_host(opts.workers.max(1))
        .build()?;
    let shared = Arc::new(Mutex::new(Shared {
        assign: Some(hist()),
        finish: Some(hist()),
        ..Default::default()
    }));
    let auth = match (&opts.user, &opts.password) {
        (Some(u), Some(p)) => Some(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )),
        _ => None,
    };
    let before = opts.pid.and_then(process_usage);
    let start = Instant::now();
    let deadline = start + opts.duration;
    let ticket = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..opts.workers {
        let (client, shared, opts, auth, ticket) = (
            client.clone(),
            shared.clone(),
            opts.clone(),
            auth.clone(),
            ticket.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let base = opts.url.trim_end_matches('/').to_string();
            let assign_url = if opts.public { format!("{base}/runner/active-runs") } else { format!("{base}/active-runs") };
            loop {
                // Open loop: latency counts from the scheduled send time, so a
                // slow runner cannot hide queueing (coordinated omission).
                let scheduled = match opts.rate {
                    Some(rate) => {
                        let k = ticket.fetch_add(1, Ordering::SeqCst);
                        let at = start + Duration::from_secs_f64(k as f64 / rate);
                        if at >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(at.into()).await;
                        at
                    }
                    None => Instant::now(),
                };
                if Instant::now() >= deadline {
                    break;
                }
                let mut req = client
                    .post(&assign_url)
                    .header("content-type", "application/json")
                    // The seeded worker's name: an unknown worker makes every finish log a warning.
                    .body(json!({"worker": if opts.public { Value::Null } else { json!("load") }, "backchannel": null}).to_string());
                if let Some(a) = &auth {
                    req = req.header("authorization", a);
                }
                let resp = match req.send().await {
                    Ok(r) => r,
                    Err(e) => {
                        *shared.lock().unwrap().errors.entry(format!("assign: {e}")).or_default() += 1;
                        continue;
                    }
                };
                let status = resp.status().as_u16();
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                let assigned = scheduled.elapsed();
                if status == 503 {
                    shared.lock().unwrap().empty += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                if status != 201 {
                    *shared.lock().unwrap().errors.entry(format!("assign {status}")).or_default() += 1;
                    continue;
                }
                let id = body["id"].as_str().unwrap_or_default().to_string();
                let queue_id = body["queue_id"].as_i64().unwrap_or(-1);
                let finish_url = if opts.public {
                    format!("{base}/runner/active-runs/{id}/finish")
                } else {
                    format!("{base}/active-runs/{id}/finish")
                };
                let (ct, payload) = finish_body();
                let t = Instant::now();
                let mut req = client.post(&finish_url).header("content-type", ct).body(payload);
                if let Some(a) = &auth {
                    req = req.header("authorization", a);
                }
                let fin = req.send().await;
                let finished = t.elapsed();
                let mut s = shared.lock().unwrap();
                s.assign.as_mut().unwrap().saturating_record(assigned.as_micros() as u64);
                *s.handed.entry(queue_id).or_default() += 1;
                match fin {
                    Ok(r) if r.status().as_u16() == 201 => {
                        s.finish.as_mut().unwrap().saturating_record(finished.as_micros() as u64);
                        s.cycles += 1;
                    }
                    Ok(r) => *s.errors.entry(format!("finish {}", r.status().as_u16())).or_default() += 1,
                    Err(e) => *s.errors.entry(format!("finish: {e}")).or_default() += 1,
                }
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let after = opts.pid.and_then(process_usage);
    let s = shared.lock().unwrap();
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    let (a, f) = (s.assign.as_ref().unwrap(), s.finish.as_ref().unwrap());
    let doubles: u64 = s
        .handed
        .values()
        .filter(|n| **n > 1)
        .map(|n| (*n - 1) as u64)
        .sum();
    let mut report = json!({
        "workers": opts.workers,
        "duration_s": elapsed,
        "mode": if opts.rate.is_some() { "open-loop" } else { "closed-loop" },
        "rate": opts.rate,
        "cycles": s.cycles,
        "cycles_per_s": s.cycles as f64 / elapsed,
        "unique_items": s.handed.len(),
        "unique_items_per_s": s.handed.len() as f64 / elapsed,
        "double_handouts_seen_by_clients": doubles,
        "queue_empty_answers": s.empty,
        "errors": s.errors,
        "assign_ms": {"p50": ms(a, 0.5), "p99": ms(a, 0.99), "max": a.max() as f64 / 1000.0, "n": a.len()},
        "finish_ms": {"p50": ms(f, 0.5), "p99": ms(f, 0.99), "max": f.max() as f64 / 1000.0, "n": f.len()},
    });
    if let (Some((c0, _, _)), Some((c1, hwm, rss))) = (before, after) {
        report["runner_cpu_s"] = json!(c1 - c0);
        report["runner_cpu_ms_per_cycle"] = json!(if s.cycles > 0 {
            (c1 - c0) * 1000.0 / s.cycles as f64
        } else {
            0.0
        });
        report["runner_peak_rss_mib"] = json!(hwm as f64 / 1024.0);
        report["runner_rss_mib"] = json!(rss as f64 / 1024.0);
    }
    Ok(report)
}

/// Runs per queue item, from the database after a load run: (items handed out
/// more than once, extra runs). Load items have unique (codebase, suite), so
/// two runs for one pair since `since` mean one item was handed out twice.
pub async fn check_db(url: &str, since: chrono::NaiveDateTime) -> anyhow::Result<(i64, i64)> {
    let mut db = PgConnection::connect(url).await.context("--check-db")?;
    let row = sqlx::query(
        "SELECT count(*)::bigint, coalesce(sum(n - 1), 0)::bigint FROM \
         (SELECT count(*) AS n FROM run WHERE start_time >= $1 AND codebase LIKE 'load-%' \
          GROUP BY codebase, suite HAVING count(*) > 1) d",
    )
    .bind(since)
    .fetch_one(&mut db)
    .await?;
    Ok((row.get(0), row.get(1)))
}

/// `load seed`: `items` queue entries over codebases `load-<i>` for `campaign`,
/// with varied priorities and every bucket, plus a worker `load`/`load`.
pub async fn seed(url: &str, items: u64, campaign: &str) -> anyhow::Result<()> {
    if items == 0 {
        bail!("--items must be positive");
    }
    let mut db = PgConnection::connect(url).await?;
    db.execute("INSERT INTO worker (name, password) VALUES ('load', crypt('load', gen_salt('bf', 4))) ON CONFLICT DO NOTHING")
        .await?;
    sqlx::query(
        "INSERT INTO codebase (name, vcs_type) SELECT 'load-' || i, 'git' FROM generate_series(1, $1::bigint) i \
         ON CONFLICT DO NOTHING",
    )
    .bind(items as i64)
    .execute(&mut db)
    .await?;
    sqlx::query(
        "INSERT INTO queue (codebase, suite, command, priority, bucket, estimated_duration, refresh) \
         SELECT 'load-' || i, $2, 'true', (i * 7919) % 1000 - 500, \
                (enum_range(NULL::queue_bucket))[1 + (i % array_length(enum_range(NULL::queue_bucket), 1))], \
                make_interval(secs => 10 + i % 600), false \
         FROM generate_series(1, $1::bigint) i ON CONFLICT DO NOTHING",
    )
    .bind(items as i64)
    .bind(campaign)
    .execute(&mut db)
    .await?;
    Ok(())
}
