//! Selecting and claiming a queue item (§4.1–§4.2), and releasing a claim
//! whose assignment failed.

use super::*;

pub(super) fn manager_for<'a>(
    managers: &'a [(String, VcsManager)],
    vcs_type: &str,
) -> Option<&'a VcsManager> {
    managers.iter().find(|(k, _)| k == vcs_type).map(|(_, m)| m)
}

/// Inline abort (§7.2): stored like any finished run (run row, queue item
/// deleted, claim released, background reschedule); a run that already
/// exists is left alone, as upstream swallows "run exists".
pub(super) async fn abort(
    app: &Arc<App>,
    run: &ActiveRun,
    code: &str,
    description: &str,
) -> anyhow::Result<()> {
    let now = app.clock.now_naive();
    let mut result = JanitorResult::aborted(run, code, Some(description.to_string()), None, now);
    match crate::finish::finish_run(app, run, &mut result).await {
        Ok(()) | Err(FinishError::RunExists(_) | FinishError::Busy(_)) => Ok(()),
        Err(e) => Err(anyhow::anyhow!(e)),
    }
}

/// VcsInfo (data-types.md §2) of a selected row, keys in upstream order.
pub(super) fn vcs_info(item: &db::queue::NextItem) -> Map<String, Value> {
    let mut m = Map::new();
    if let Some(u) = non_empty(&item.branch_url) {
        m.insert("branch_url".into(), str_value(u));
    }
    if let Some(s) = &item.subpath {
        m.insert("subpath".into(), str_value(s.clone()));
    }
    if let Some(t) = non_empty(&item.vcs_type) {
        m.insert("vcs_type".into(), str_value(t));
    }
    m
}

/// Hosts excluded from selection: `--avoid-host` plus current rate limits.
pub(super) fn excluded_hosts(
    app: &App,
    limits: Vec<(String, chrono::NaiveDateTime)>,
) -> Vec<String> {
    let mut hosts: BTreeSet<String> = app.settings.avoid_hosts.iter().cloned().collect();
    hosts.extend(limits.into_iter().map(|(host, _)| host));
    hosts.into_iter().collect()
}

/// Queue items read per selection query (see [`next_item`]).
pub(super) const SELECTION_BATCH: i64 = 8;

/// The whole procedure (§4): returns the assignment; in peek mode the claim
/// is released before returning. An assign that fails after its claim
/// releases the claim before it answers, so the item is not blocked until
/// the watchdog gives up on a run nobody has.
pub async fn next_item(
    app: &Arc<App>,
    opener: &dyn BranchOpener,
    mode: Mode,
    req: &Request,
) -> Result<Assignment, AssignError> {
    let mut conn = app.db.acquire().await?;
    let (item, campaign, pending) = claim_next(app, req, &mut conn).await?;
    let run = pending.run().clone();
    match build_assignment(app, opener, mode, conn, item, campaign, run).await {
        Err(AssignError::Internal(e)) => {
            release_failed_claim(app, pending.run()).await;
            pending.settle();
            Err(AssignError::Internal(e))
        }
        other => {
            pending.settle();
            other
        }
    }
}

/// A claim no worker has been told about yet. Dropped without
/// [`PendingClaim::settle`] (the request was cancelled: the worker hung up
/// mid-assignment, or its HTTP client timed out), the claim is released in
/// the background as after a failed claim call; otherwise the item would
/// stay blocked until the watchdog gives up on a run nobody has.
pub(super) struct PendingClaim<'a> {
    app: &'a Arc<App>,
    run: Option<ActiveRun>,
    announced: bool,
}

impl<'a> PendingClaim<'a> {
    /// Armed before the claim call is sent: a call cancelled in flight may
    /// still have run.
    fn new(app: &'a Arc<App>, run: ActiveRun) -> Self {
        PendingClaim {
            app,
            run: Some(run),
            announced: false,
        }
    }

    pub(super) fn run(&self) -> &ActiveRun {
        self.run
            .as_ref()
            .expect("a pending claim holds its run until settled")
    }

    /// Whoever holds the claim now is responsible for it (the assignment was
    /// answered, or the claim lost, withdrawn, stored or released).
    fn settle(mut self) {
        self.run = None;
    }
}

impl Drop for PendingClaim<'_> {
    fn drop(&mut self) {
        if let Some(run) = self.run.take() {
            // Dropped outside a runtime (a process exiting): nothing can be
            // sent; the watchdog frees the item, as before this guard.
            if tokio::runtime::Handle::try_current().is_err() {
                return;
            }
            tracing::warn!(run_id = %run.log_id, queue_id = run.queue_id, "assignment abandoned after its claim; releasing the claim");
            forget_claim_later(self.app, &run, self.announced);
        }
    }
}

/// The request is failing already: release the claim now if Redis answers,
/// else in the background until it does (see [`forget_claim_later`]).
pub(super) async fn release_failed_claim(app: &Arc<App>, run: &ActiveRun) {
    match state::unclaim_run(&app.runs, run).await {
        Ok(true) => {
            tracing::warn!(run_id = %run.log_id, queue_id = run.queue_id, "assignment failed after its claim; claim released");
            if let Err(e) = state::publish_status(&app.runs).await {
                tracing::warn!(error = %e, "publishing the status after a released claim failed");
            }
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(run_id = %run.log_id, error = %e, "releasing the claim of a failed assignment failed; retrying in the background");
            forget_claim_later(app, run, true);
        }
    }
}

/// Longest a claim nobody holds is retried for in the background.
pub(super) const FORGET_CLAIM_FOR: std::time::Duration = std::time::Duration::from_secs(120);

/// Remove, once Redis answers, a claim no worker was told about: a claim
/// (or release) that failed on a timeout or a dropped connection may still
/// have run, or may run later (a hung Redis executes what it had buffered
/// when it resumes). Retried with back-off, then once more two seconds
/// after the first success to catch such a late command. Without this the
/// item stays blocked until the watchdog gives up on a run nobody has.
pub(super) fn forget_claim_later(app: &Arc<App>, run: &ActiveRun, announced: bool) {
    let (app2, run) = (app.clone(), run.clone());
    app.background.spawn_unlimited(async move {
        let started = tokio::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(100);
        let mut succeeded = false;
        while started.elapsed() < FORGET_CLAIM_FOR {
            tokio::time::sleep(pause).await;
            let forgotten = if announced {
                state::unclaim_run(&app2.runs, &run).await
            } else {
                state::forget_unannounced(&app2.runs, &run).await
            };
            match forgotten {
                Ok(found) => {
                    if found {
                        tracing::warn!(run_id = %run.log_id, queue_id = run.queue_id, "claim of a failed assignment released");
                    }
                    if succeeded {
                        return;
                    }
                    succeeded = true;
                    pause = std::time::Duration::from_secs(2);
                }
                Err(_) => pause = (pause * 2).min(std::time::Duration::from_secs(2)),
            }
        }
        tracing::error!(run_id = %run.log_id, queue_id = run.queue_id, "could not release the claim of a failed assignment; the watchdog will");
    });
}

/// Where an assignment's candidates come from.
enum Source {
    /// Unfiltered requests share selections (see [`select`]).
    Shared(Shared),
    /// A request for one codebase or campaign selects on its own: candidates
    /// in queue order, a few at a time; one that loses a claim tries the
    /// next candidate instead of querying again.
    Own {
        assigned: Vec<i32>,
        exclude_hosts: Vec<String>,
        batch: std::collections::VecDeque<db::queue::NextItem>,
    },
}

impl Source {
    async fn start(app: &App, req: &Request) -> Result<Source, AssignError> {
        let filtered = |f: &Option<String>| f.as_deref().is_some_and(|f| !f.is_empty());
        if !filtered(&req.codebase) && !filtered(&req.campaign) {
            return Ok(Source::Shared(Shared::new(&app.selection)));
        }
        let (claimed, limits) = state::selection_inputs(&app.runs).await?;
        Ok(Source::Own {
            assigned: claimed
                .into_iter()
                .filter_map(|k| i32::try_from(k).ok())
                .collect(),
            exclude_hosts: excluded_hosts(app, limits),
            batch: Default::default(),
        })
    }

    async fn next(
        &mut self,
        app: &App,
        req: &Request,
        conn: &mut sqlx::PgConnection,
        aborted: &[(String, String, Option<String>)],
    ) -> Result<Option<db::queue::NextItem>, AssignError> {
        let skip = |c: &db::queue::NextItem| {
            aborted.iter().any(|(cb, camp, cs)| {
                *cb == c.codebase && *camp == c.campaign && *cs == c.change_set
            })
        };
        match self {
            Source::Shared(shared) => shared.take(app, conn, skip, aborted.len()).await,
            Source::Own {
                assigned,
                exclude_hosts,
                batch,
            } => {
                if batch.is_empty() {
                    let filter = db::queue::NextItemFilter {
                        codebase: req.codebase.as_deref(),
                        campaign: req.campaign.as_deref(),
                        exclude_hosts,
                        assigned,
                    };
                    let found = db::queue::next_items(conn, &filter, SELECTION_BATCH).await?;
                    batch.extend(found.into_iter().filter(|c| !skip(c)));
                }
                Ok(batch.pop_front())
            }
        }
    }

    /// This request will not take `id` (lost, stale or aborted).
    fn passed(&mut self, id: i32) {
        if let Source::Own { assigned, .. } = self {
            assigned.push(id);
        }
    }
}

/// Select queue items in order and claim the first one that can be
/// assigned (§4.1–§4.2): items of unknown campaigns or without a VCS URL
/// are aborted on the way.
pub(super) async fn claim_next<'a>(
    app: &'a Arc<App>,
    req: &Request,
    conn: &mut sqlx::pool::PoolConnection<sqlx::Postgres>,
) -> Result<
    (
        db::queue::NextItem,
        &'a crate::config::Campaign,
        PendingClaim<'a>,
    ),
    AssignError,
> {
    let mut source = Source::start(app, req).await?;
    // Items this assignment aborted. Aborting reschedules in the background
    // (a new queue row for the same codebase, campaign and change set):
    // whether a later selection in this loop saw that row would depend on
    // timing, so it never takes it; the next assignment does.
    let mut aborted: Vec<(String, String, Option<String>)> = Vec::new();
    loop {
        let Some(item) = source.next(app, req, conn, &aborted).await? else {
            app.metrics.queue_empty.inc();
            return Err(AssignError::QueueEmpty);
        };
        let run = ActiveRun {
            queue_id: i64::from(item.id),
            log_id: uuid::Uuid::new_v4().to_string(),
            codebase: Some(item.codebase.clone()),
            change_set: item.change_set.clone(),
            campaign: item.campaign.clone(),
            command: item.command.clone().unwrap_or_default(),
            estimated_duration: item
                .estimated_duration
                .as_ref()
                .map(|d| db::interval::total_seconds(db::interval::to_timedelta(d))),
            start_time: app.clock.now_naive(),
            worker_name: req.worker.clone(),
            worker_link: req.worker_link.clone(),
            vcs_info: vcs_info(&item),
            backchannel: req.backchannel.clone(),
            instigated_context: item.context.clone().map_or(Value::Null, Value::String),
            resume_from: None,
        };
        let taken = matches!(source, Source::Shared(_))
            .then(|| select::Taken::new(&app.selection, item.id));
        let mut pending = PendingClaim::new(app, run);
        let claimed = state::claim(&app.runs, pending.run()).await;
        drop(taken);
        let snapshot = match claimed {
            Ok(snapshot) => snapshot,
            Err(StateError::AlreadyClaimed(_)) => {
                // Someone else won this item since it was selected.
                pending.settle();
                source.passed(item.id);
                continue;
            }
            // The claim may have been recorded all the same: dropping the
            // pending claim forgets it once Redis answers.
            Err(e) => return Err(e.into()),
        };
        match check_claimed(app, conn, &item, pending.run(), snapshot).await {
            Ok(Claimed::Usable(campaign)) => {
                pending.announced = true;
                return Ok((item, campaign, pending));
            }
            Ok(Claimed::Skipped) => source.passed(item.id),
            Ok(Claimed::Aborted) => {
                source.passed(item.id);
                aborted.push((item.codebase, item.campaign, item.change_set));
            }
            Err(e) => {
                release_failed_claim(app, pending.run()).await;
                pending.settle();
                return Err(e);
            }
        }
        pending.settle();
    }
}

/// What became of a claimed item.
#[derive(Debug)]
pub enum Claimed<'a> {
    Usable(&'a crate::config::Campaign),
    /// Withdrawn: the claim was stale.
    Skipped,
    /// Aborted (unknown campaign, no VCS URL) and stored as a failed run.
    Aborted,
}

/// The checks between the claim and the assignment; an error here leaves
/// the claim for the caller to release. Public so the claim-race test
/// drives this step itself, not a copy of it. `snapshot` is what the claim
/// returned, for its publication.
pub async fn check_claimed<'a>(
    app: &'a Arc<App>,
    conn: &mut sqlx::PgConnection,
    item: &db::queue::NextItem,
    run: &ActiveRun,
    snapshot: Option<state::Snapshot>,
) -> Result<Claimed<'a>, AssignError> {
    // The item may have been finished (deleted, then released) between
    // our SELECT and our claim: then the claim is stale. One indexed
    // lookup closes the double hand-out upstream suffers from.
    if !db::queue::exists(conn, item).await? {
        state::withdraw(&app.runs, run).await?;
        return Ok(Claimed::Skipped);
    }
    state::announce(&app.runs, run, snapshot).await?;
    let Some(campaign) = app.config.campaign(&item.campaign) else {
        tracing::warn!(campaign = %item.campaign, "unknown campaign");
        let description = format!("Campaign {} unknown", item.campaign);
        abort(app, run, "unknown-campaign", &description).await?;
        return Ok(Claimed::Aborted);
    };
    if !campaign.default_empty && !run.vcs_info.contains_key("branch_url") {
        abort(app, run, "not-in-vcs", "No VCS URL known for codebase.").await?;
        return Ok(Claimed::Aborted);
    }
    Ok(Claimed::Usable(campaign))
}
