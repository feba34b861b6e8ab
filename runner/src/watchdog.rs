//! The keepalive watchdog (runner-internals.md §6.1–§6.2): runs silent for
//! `run_timeout // 3` minutes are pinged through their backchannel; a fatal
//! ping or a silence longer than the timeout aborts them.
//!
//! The decision is a pure function ([`decide`]); [`sweep`] gathers the runs
//! from Redis, pings the due ones and records keepalives; [`watch`] repeats
//! it and hands each abort to `abort_run` (or the caller's abort).

use crate::app::App;
use crate::backchannel::{self, BackchannelError};
use crate::finish::{self, FinishError};
use crate::state;
use crate::types::result::JanitorResult;
use crate::types::ActiveRun;
use chrono::{NaiveDateTime, TimeDelta};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Pause between two sweeps.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// A run to abort, as `abort_run` takes it (always transient here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Abort {
    pub code: &'static str,
    pub description: String,
    pub transient: bool,
}

/// What one health check concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The ping succeeded: record a keepalive now.
    pub keepalive: bool,
    pub abort: Option<Abort>,
}

/// Time since the run was last heard from (or since it started).
pub fn keepalive_age(
    now: &NaiveDateTime,
    last_keepalive: Option<&NaiveDateTime>,
    start_time: &NaiveDateTime,
) -> TimeDelta {
    *now - *last_keepalive.unwrap_or(start_time)
}

/// Runs silent for less than `run_timeout // 3` minutes are not pinged.
pub fn due_for_check(age: TimeDelta, run_timeout_minutes: u64) -> bool {
    age >= TimeDelta::minutes((run_timeout_minutes / 3) as i64)
}

/// The health check's verdict given the ping's outcome (§6.2).
pub fn decide(
    age: TimeDelta,
    run_timeout_minutes: u64,
    ping: &Result<(), BackchannelError>,
) -> Decision {
    let abort = |code, description| Decision {
        keepalive: false,
        abort: Some(Abort {
            code,
            description,
            transient: true,
        }),
    };
    let age = match ping {
        Ok(()) => {
            return Decision {
                keepalive: true,
                abort: None,
            }
        }
        Err(BackchannelError::NotSupported) if age > TimeDelta::days(1) => {
            return abort(
                "run-disappeared",
                "no support for ping, and haven't heard back in > 1 day".into(),
            )
        }
        Err(BackchannelError::Fatal(reason)) => return abort("run-disappeared", reason.clone()),
        Err(BackchannelError::NotSupported) | Err(BackchannelError::Unreachable(_)) => age,
        // An answer that makes no sense ends the check upstream (an uncaught
        // exception, logged): no keepalive, no abort.
        Err(
            e @ (BackchannelError::Invalid(_)
            | BackchannelError::NotFound(_)
            | BackchannelError::Lacks(_)),
        ) => {
            tracing::warn!(error = %e, "watchdog ping failed");
            return Decision {
                keepalive: false,
                abort: None,
            };
        }
    };
    if age > TimeDelta::minutes(run_timeout_minutes as i64) {
        return abort(
            "worker-timeout",
            format!("No keepalives received in {}.", str_timedelta(age)),
        );
    }
    Decision {
        keepalive: false,
        abort: None,
    }
}

/// Ping the run's backchannel and decide (the health check minus its effects).
pub async fn check(run: &ActiveRun, age: TimeDelta, run_timeout_minutes: u64) -> Decision {
    let ping = backchannel::ping(&run.backchannel, &run.log_id).await;
    match &ping {
        Ok(()) => {
            tracing::info!(run_id = %run.log_id, "watchdog ping answered; keepalive recorded")
        }
        Err(BackchannelError::NotSupported) => {}
        Err(e) => tracing::warn!(run_id = %run.log_id, reason = %e, "watchdog ping failed"),
    }
    decide(age, run_timeout_minutes, &ping)
}

/// One pass over the active runs: ping the due ones, record keepalives, and
/// return the runs to abort. An unparsable entry is logged and skipped
/// (upstream's loop dies on it, QI-23).
pub async fn sweep(app: &App) -> anyhow::Result<Vec<(ActiveRun, Abort)>> {
    let timeout = app.settings.run_timeout_minutes;
    let keepalives = state::keepalives(&app.runs).await?;
    let raw = state::active_runs_raw(&app.runs).await?;
    let now = app.clock.now_naive();
    let mut due = Vec::new();
    for (id, json) in raw {
        let run = match serde_json::from_str(&json)
            .map_err(anyhow::Error::from)
            .and_then(|v| ActiveRun::from_json(&v).map_err(anyhow::Error::from))
        {
            Ok(run) => run,
            Err(e) => {
                tracing::warn!(run_id = %id, error = %e, "skipping unparsable active run");
                continue;
            }
        };
        let age = keepalive_age(&now, keepalives.get(&run.log_id), &run.start_time);
        if due_for_check(age, timeout) {
            due.push((run, age));
        }
    }
    let decisions =
        futures::future::join_all(due.iter().map(|(run, age)| check(run, *age, timeout))).await;
    let mut aborts = Vec::new();
    for ((run, _), decision) in due.into_iter().zip(decisions) {
        if decision.keepalive {
            if let Err(e) = state::keepalive(&app.runs, &run.log_id).await {
                tracing::warn!(run_id = %run.log_id, error = %e, "recording keepalive failed");
            }
        }
        if let Some(abort) = decision.abort {
            aborts.push((run, abort));
        }
    }
    Ok(aborts)
}

/// The watchdog loop: sweep, abort through `abort_run` (the finish code's
/// abort; a "run exists" failure is only logged), sleep, forever.
pub async fn watch<F, Fut>(app: Arc<App>, abort_run: F)
where
    F: Fn(Arc<App>, ActiveRun, Abort) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    loop {
        match sweep(&app).await {
            Ok(aborts) => {
                for (run, abort) in aborts {
                    let id = run.log_id.clone();
                    tracing::warn!(
                        run_id = %id,
                        codebase = run.codebase.as_deref().unwrap_or(""),
                        code = abort.code,
                        reason = %abort.description,
                        "watchdog aborting run"
                    );
                    if let Err(e) = abort_run(app.clone(), run, abort).await {
                        tracing::warn!(run_id = %id, error = %e, "watchdog abort failed");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "watchdog sweep failed"),
        }
        tokio::time::sleep(INTERVAL).await;
    }
}

/// `abort_run` (internals §7.2): store the run with the watchdog's code as a
/// result without worker data. A run stored meanwhile ("run exists") is
/// only logged, as upstream.
pub async fn abort_run(app: &Arc<App>, run: &ActiveRun, abort: &Abort) -> anyhow::Result<()> {
    let mut result = JanitorResult::aborted(
        run,
        abort.code,
        Some(abort.description.clone()),
        Some(abort.transient),
        app.clock.now_naive(),
    );
    match finish::finish_run(app, run, &mut result).await {
        Ok(()) => Ok(()),
        Err(FinishError::RunExists(id)) => {
            tracing::info!(run_id = %id, "run already stored; watchdog abort skipped");
            Ok(())
        }
        // A finish (or another runner's watchdog) is storing it right now.
        Err(FinishError::Busy(id)) => {
            tracing::info!(run_id = %id, "run is being finished; watchdog abort skipped");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Start the watchdog (once per runner; dropping the handle does not stop it,
/// aborting it does).
pub fn spawn(app: Arc<App>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(watch(app, |app, run, abort| async move {
        abort_run(&app, &run, &abort).await
    }))
}

/// Python's `str(timedelta)`: `[D day[s], ]H:MM:SS[.ffffff]`, days floored
/// (so `-1 s` is `-1 day, 23:59:59`).
pub fn str_timedelta(d: TimeDelta) -> String {
    const DAY_US: i64 = 86_400_000_000;
    let us = d.num_microseconds().unwrap_or(i64::MAX);
    let days = us.div_euclid(DAY_US);
    let rest = us.rem_euclid(DAY_US);
    let (secs, frac) = (rest / 1_000_000, rest % 1_000_000);
    let mut out = String::new();
    if days != 0 {
        let unit = if days.abs() == 1 { "day" } else { "days" };
        out.push_str(&format!("{days} {unit}, "));
    }
    out.push_str(&format!(
        "{}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    ));
    if frac != 0 {
        out.push_str(&format!(".{frac:06}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::test_redis::test_redis;
    use crate::types::Backchannel;
    use redis::AsyncCommands;
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    fn mins(m: i64) -> TimeDelta {
        TimeDelta::minutes(m)
    }

    fn abort_of(d: &Decision) -> Option<(&'static str, &str)> {
        d.abort.as_ref().map(|a| (a.code, a.description.as_str()))
    }

    #[test]
    fn str_timedelta_matches_python() {
        assert_eq!(str_timedelta(TimeDelta::zero()), "0:00:00");
        assert_eq!(str_timedelta(TimeDelta::seconds(3723)), "1:02:03");
        assert_eq!(
            str_timedelta(TimeDelta::microseconds(3_723_500_000)),
            "1:02:03.500000"
        );
        assert_eq!(str_timedelta(TimeDelta::days(1)), "1 day, 0:00:00");
        assert_eq!(
            str_timedelta(TimeDelta::days(2) + TimeDelta::microseconds(61_000_001)),
            "2 days, 0:01:01.000001"
        );
        assert_eq!(str_timedelta(TimeDelta::seconds(-1)), "-1 day, 23:59:59");
    }

    #[test]
    fn age_runs_from_the_last_keepalive_or_the_start() {
        let clock = ManualClock::new(
            chrono::DateTime::parse_from_rfc3339("2020-02-02T10:00:00Z")
                .unwrap()
                .into(),
        );
        let start = clock.now_naive();
        clock.advance(mins(30));
        let kept = clock.now_naive();
        clock.advance(mins(5));
        let now = clock.now_naive();
        assert_eq!(keepalive_age(&now, None, &start), mins(35));
        assert_eq!(keepalive_age(&now, Some(&kept), &start), mins(5));
    }

    #[test]
    fn only_runs_silent_for_a_third_of_the_timeout_are_checked() {
        assert!(!due_for_check(mins(19) + TimeDelta::seconds(59), 60));
        assert!(due_for_check(mins(20), 60));
        // Integer division: 10 // 3 == 3 minutes.
        assert!(!due_for_check(TimeDelta::seconds(179), 10));
        assert!(due_for_check(mins(3), 10));
    }

    #[test]
    fn successful_ping_is_a_keepalive_whatever_the_age() {
        let d = decide(TimeDelta::days(3), 60, &Ok(()));
        assert_eq!(
            d,
            Decision {
                keepalive: true,
                abort: None
            }
        );
    }

    #[test]
    fn fatal_ping_aborts_as_run_disappeared() {
        let d = decide(mins(21), 60, &Err(BackchannelError::Fatal("gone".into())));
        assert!(!d.keepalive);
        assert_eq!(abort_of(&d), Some(("run-disappeared", "gone")));
        assert!(d.abort.unwrap().transient);
    }

    #[test]
    fn retryable_ping_failure_times_out_only_after_the_timeout() {
        let unreachable = Err(BackchannelError::Unreachable("refused".into()));
        assert_eq!(decide(mins(60), 60, &unreachable).abort, None);
        let d = decide(mins(61) + TimeDelta::milliseconds(250), 60, &unreachable);
        assert_eq!(
            abort_of(&d),
            Some((
                "worker-timeout",
                "No keepalives received in 1:01:00.250000."
            ))
        );
    }

    #[test]
    fn no_backchannel_times_out_then_disappears_after_a_day() {
        let unsupported = Err(BackchannelError::NotSupported);
        assert_eq!(decide(mins(30), 60, &unsupported).abort, None);
        assert_eq!(
            abort_of(&decide(mins(90), 60, &unsupported)),
            Some(("worker-timeout", "No keepalives received in 1:30:00."))
        );
        // A long timeout: the one-day rule comes first.
        assert_eq!(
            abort_of(&decide(TimeDelta::days(1) + mins(1), 10_000, &unsupported)),
            Some((
                "run-disappeared",
                "no support for ping, and haven't heard back in > 1 day"
            ))
        );
        assert_eq!(decide(TimeDelta::days(1), 10_000, &unsupported).abort, None);
    }

    #[test]
    fn nonsense_answers_neither_keep_alive_nor_abort() {
        let d = decide(
            TimeDelta::days(2),
            60,
            &Err(BackchannelError::Invalid("x".into())),
        );
        assert_eq!(
            d,
            Decision {
                keepalive: false,
                abort: None
            }
        );
    }

    async fn test_app(redis_url: &str, clock: Arc<ManualClock>) -> App {
        let client = redis::Client::open(redis_url).unwrap();
        let background = crate::background::Background::new(1);
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let settings = crate::settings::Settings::new("postgres://unused", redis_url);
        App {
            // Never used by the watchdog: a lazy pool opens no connection.
            db: sqlx::PgPool::connect_lazy("postgres://unused@127.0.0.1:1/unused").unwrap(),
            runs: state::RunStore::new(
                redis::aio::ConnectionManager::new(client).await.unwrap(),
                clock.clone(),
                metrics.clone(),
                background.clone(),
                settings.run_timeout_minutes,
                Vec::new(),
            ),
            clock,
            settings,
            config: crate::config::parse_config("").unwrap(),
            background,
            metrics,
            storage: crate::storage::Storage::default(),
            opener: Arc::new(crate::vcs::DefaultOpener),
            vcs_managers: Vec::new(),
            selection: Default::default(),
        }
    }

    async fn store(app: &App, run: &ActiveRun) {
        let mut r = app.runs.connection();
        let json = crate::py::json::to_string(&run.to_json(&app.clock.now_naive()));
        r.hset::<_, _, _, ()>(state::ACTIVE_RUNS, &run.log_id, json)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn sweep_pings_due_runs_records_keepalives_and_returns_aborts() {
        let redis = test_redis().await;
        let start = chrono::DateTime::parse_from_rfc3339("2020-02-02T10:00:00Z")
            .unwrap()
            .into();
        let clock = Arc::new(ManualClock::new(start));
        let app = test_app(&redis.url, clock.clone()).await;

        let alive = MockServer::start().await;
        Mock::given(path("/log-id"))
            .respond_with(ResponseTemplate::new(200).set_body_string("alive"))
            .mount(&alive)
            .await;
        let mut alive_run = run_with(Backchannel::Polling {
            my_url: format!("{}/", alive.uri()),
        });
        alive_run.log_id = "alive".into();
        let mut silent_run = run_with(Backchannel::None);
        silent_run.log_id = "silent".into();
        // Recently heard from: not pinged at all.
        let fresh = MockServer::start().await;
        let mut fresh_run = run_with(Backchannel::Polling {
            my_url: format!("{}/", fresh.uri()),
        });
        fresh_run.log_id = "fresh".into();
        for run in [&alive_run, &silent_run, &fresh_run] {
            store(&app, run).await;
        }
        let mut r = app.runs.connection();
        r.hset::<_, _, _, ()>(state::ACTIVE_RUNS, "junk", "{not json")
            .await
            .unwrap();
        clock.advance(TimeDelta::minutes(61));
        state::keepalive(&app.runs, "fresh").await.unwrap();
        clock.advance(TimeDelta::minutes(5));

        let aborts = sweep(&app).await.unwrap();
        let got: Vec<_> = aborts
            .iter()
            .map(|(run, a)| (run.log_id.as_str(), a.code, a.description.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![(
                "silent",
                "worker-timeout",
                "No keepalives received in 1:06:00."
            )]
        );
        let keepalives = state::keepalives(&app.runs).await.unwrap();
        assert_eq!(keepalives.get("alive"), Some(&clock.now_naive()));
        assert!(!keepalives.contains_key("silent"));
        assert!(fresh.received_requests().await.unwrap().is_empty());
        assert_eq!(alive.received_requests().await.unwrap().len(), 1);
    }

    fn run_with(bc: Backchannel) -> ActiveRun {
        let v = serde_json::json!({
            "queue_id": 1, "id": "run-1", "codebase": "c", "change_set": null,
            "campaign": "x", "command": "true", "estimated_duration": null,
            "current_duration": 0.0, "start_time": "2020-02-02T10:00:00",
            "worker": "w1", "worker_link": null, "vcs": {},
            "backchannel": bc.to_json(), "instigated_context": null, "resume_from": null,
        });
        ActiveRun::from_json(&v).unwrap()
    }

    #[tokio::test]
    async fn check_pings_the_worker_of_the_run() {
        let server = MockServer::start().await;
        Mock::given(path("/log-id"))
            .respond_with(ResponseTemplate::new(200).set_body_string("other-run"))
            .mount(&server)
            .await;
        let run = run_with(Backchannel::Polling {
            my_url: format!("{}/", server.uri()),
        });
        let d = check(&run, mins(25), 60).await;
        assert_eq!(
            abort_of(&d),
            Some((
                "run-disappeared",
                "Worker started processing new run other-run rather than run-1"
            ))
        );

        let server = MockServer::start().await;
        Mock::given(path("/log-id"))
            .respond_with(ResponseTemplate::new(200).set_body_string("run-1"))
            .mount(&server)
            .await;
        let run = run_with(Backchannel::Polling {
            my_url: format!("{}/", server.uri()),
        });
        assert_eq!(
            check(&run, mins(90), 60).await,
            Decision {
                keepalive: true,
                abort: None
            }
        );
    }
}
